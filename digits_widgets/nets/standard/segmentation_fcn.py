"""Binary segmentation FCN (DIGITS' binary-segmentation tutorial), Tower style.

conv 3x3 32 (pad 1) + ReLU -> conv 16x16 stride 16 1024 + ReLU -> transposed conv 16x16 stride 16 back to
the image's channels, trained with an L1 loss against the label image (0 = triangle, 255 = background).
Input sizes must be multiples of 16; any such size works, which is why the tutorial can test the 10x10 grid
image with "do not resize".

Training choices (the prototxt's Gaussian std 0.001 and Caffe lr 1e-7 do not carry over to PyTorch):
- the mean-subtracted input is scaled by 1/255 so PyTorch's default initialisation sees unit-scale data;
- the output is in label units (0..255) and the upsampling bias starts at 128, the prototxt's bias filler,
  so training starts half-way between the two label values instead of at 0;
- suggested solver Adam at 1e-3 (see zoo.STANDARD).
"""


class UserModel(Tower):

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        channels = self.input_shape[0]
        self.conv1 = nn.Conv2d(channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 1024, 16, stride=16)
        self.upsample = nn.ConvTranspose2d(1024, channels, 16, stride=16)
        nn.init.constant_(self.upsample.bias, 128.0)

    @model_property
    def inference(self):
        x = self.x / 255.0
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return self.upsample(x)

    @model_property
    def loss(self):
        return digits.l1_loss(self.inference, self.y)
