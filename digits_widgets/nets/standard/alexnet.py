"""AlexNet (Krizhevsky et al. 2012), DIGITS' default standard network for 256x256 colour images; plain PyTorch.

The Caffe layers and names (conv1..conv5 with local response normalisation after conv1 and conv2, fc6 / fc7
with dropout 0.5, fc8), as one tower (no grouped convolutions, as torchvision's). Pooling rounds up like
Caffe's, and an adaptive average pool before fc6 makes every input size from 64x64 up work. The input is
scaled by 1/64 (about unit variance for 8-bit pixels), since PyTorch's default initialisation expects
unit-scale data where Caffe's used small Gaussian weights. `input_shape` and `nclasses` are the globals that
build_network provides.
"""
from collections import OrderedDict


class AlexNet(nn.Module):

    def __init__(self, channels, nclasses):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ('conv1', nn.Conv2d(channels, 96, 11, stride=4)),
            ('relu1', nn.ReLU()),
            ('norm1', nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)),
            ('pool1', nn.MaxPool2d(3, stride=2, ceil_mode=True)),
            ('conv2', nn.Conv2d(96, 256, 5, padding=2)),
            ('relu2', nn.ReLU()),
            ('norm2', nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)),
            ('pool2', nn.MaxPool2d(3, stride=2, ceil_mode=True)),
            ('conv3', nn.Conv2d(256, 384, 3, padding=1)),
            ('relu3', nn.ReLU()),
            ('conv4', nn.Conv2d(384, 384, 3, padding=1)),
            ('relu4', nn.ReLU()),
            ('conv5', nn.Conv2d(384, 256, 3, padding=1)),
            ('relu5', nn.ReLU()),
            ('pool5', nn.MaxPool2d(3, stride=2, ceil_mode=True)),
        ]))
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(OrderedDict([
            ('fc6', nn.Linear(256 * 6 * 6, 4096)),
            ('relu6', nn.ReLU()),
            ('drop6', nn.Dropout(0.5)),
            ('fc7', nn.Linear(4096, 4096)),
            ('relu7', nn.ReLU()),
            ('drop7', nn.Dropout(0.5)),
            ('fc8', nn.Linear(4096, nclasses)),
        ]))

    def forward(self, x):
        x = self.features(x * (1.0 / 64))
        x = torch.flatten(self.avgpool(x), 1)
        return self.classifier(x)


model = AlexNet(input_shape[0], nclasses)
loss = nn.CrossEntropyLoss()
