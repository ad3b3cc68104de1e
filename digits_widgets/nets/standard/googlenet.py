"""GoogLeNet v1 (Szegedy et al. 2014), DIGITS' standard GoogLeNet for 256x256 colour images; plain PyTorch.

The Caffe BVLC layout: 7x7/2 stem with local response normalisation, nine inception blocks (3a-5b) and a
dropout-0.4 linear classifier after global average pooling (adaptive, so inputs from 32x32 up work). The two
auxiliary classifier heads of the paper are omitted: they only add training-time losses, and leaving them out
keeps one output per batch. The input is scaled by 1/64 (about unit variance for 8-bit pixels), since
PyTorch's default initialisation expects unit-scale data. `input_shape` and `nclasses` are the globals that
build_network provides.
"""
from collections import OrderedDict


def conv_relu(cin, cout, kernel, stride=1, padding=0):
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride=stride, padding=padding), nn.ReLU())


class Inception(nn.Module):
    """Four parallel branches (1x1; 1x1 -> 3x3; 1x1 -> 5x5; 3x3 max-pool -> 1x1) concatenated on channels."""

    def __init__(self, cin, c1, c3_reduce, c3, c5_reduce, c5, pool_proj):
        super().__init__()
        self.branch1 = conv_relu(cin, c1, 1)
        self.branch3 = nn.Sequential(conv_relu(cin, c3_reduce, 1), conv_relu(c3_reduce, c3, 3, padding=1))
        self.branch5 = nn.Sequential(conv_relu(cin, c5_reduce, 1), conv_relu(c5_reduce, c5, 5, padding=2))
        self.branch_pool = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), conv_relu(cin, pool_proj, 1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch3(x), self.branch5(x), self.branch_pool(x)], 1)


class GoogLeNet(nn.Module):

    def __init__(self, channels, nclasses):
        super().__init__()
        self.features = nn.Sequential(OrderedDict([
            ('conv1', conv_relu(channels, 64, 7, stride=2, padding=3)),
            ('pool1', nn.MaxPool2d(3, stride=2, ceil_mode=True)),
            ('norm1', nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)),
            ('conv2_reduce', conv_relu(64, 64, 1)),
            ('conv2', conv_relu(64, 192, 3, padding=1)),
            ('norm2', nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)),
            ('pool2', nn.MaxPool2d(3, stride=2, ceil_mode=True)),
            ('inception_3a', Inception(192, 64, 96, 128, 16, 32, 32)),
            ('inception_3b', Inception(256, 128, 128, 192, 32, 96, 64)),
            ('pool3', nn.MaxPool2d(3, stride=2, ceil_mode=True)),
            ('inception_4a', Inception(480, 192, 96, 208, 16, 48, 64)),
            ('inception_4b', Inception(512, 160, 112, 224, 24, 64, 64)),
            ('inception_4c', Inception(512, 128, 128, 256, 24, 64, 64)),
            ('inception_4d', Inception(512, 112, 144, 288, 32, 64, 64)),
            ('inception_4e', Inception(528, 256, 160, 320, 32, 128, 128)),
            ('pool4', nn.MaxPool2d(3, stride=2, ceil_mode=True)),
            ('inception_5a', Inception(832, 256, 160, 320, 32, 128, 128)),
            ('inception_5b', Inception(832, 384, 192, 384, 48, 128, 128)),
        ]))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.4)
        self.classifier = nn.Linear(1024, nclasses)

    def forward(self, x):
        x = self.features(x * (1.0 / 64))
        x = torch.flatten(self.avgpool(x), 1)
        return self.classifier(self.dropout(x))


model = GoogLeNet(input_shape[0], nclasses)
loss = nn.CrossEntropyLoss()
