"""Binary segmentation FCN (DIGITS' binary-segmentation tutorial), Tower style.

conv 3x3 32 (pad 1) + ReLU -> conv 16x16 stride 16 1024 + ReLU -> transposed conv 16x16 stride 16 back to
the image's channels, trained with an L2 loss (the tutorial's TensorFlow version) against the label image
(0 = triangle, 255 = background). Input sizes must be multiples of 16; any such size works, which is why the
tutorial can test the 10x10 grid image with "do not resize".

Training choices (the prototxt's Gaussian std 0.001 and Caffe lr 1e-7 do not carry over to PyTorch):
- the mean-subtracted input is scaled by 1/255 so PyTorch's default initialisation sees unit-scale data;
- the output is 127.5 + 127.5 * deconv: it starts half-way between the two label values and the last
  layer's weights work at unit scale (a bias in pixel units would climb by ~127 in steps of the learning rate);
- L2, not L1: with L1 this network sat at "all white" (the median answer) for more than 10000 images in our
  runs; with L2 it draws triangles after the first thousand;
- suggested solver Adam 1e-3, fixed rate, batch 16 (see zoo.STANDARD): 5 epochs of 10000 triangles reach
  about 99.8% validation pixel accuracy.
"""


class UserModel(Tower):

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        channels = self.input_shape[0]
        self.conv1 = nn.Conv2d(channels, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 1024, 16, stride=16)
        self.deconv = nn.ConvTranspose2d(1024, channels, 16, stride=16)

    @model_property
    def inference(self):
        x = F.relu(self.conv1(self.x / 255))
        x = F.relu(self.conv2(x))
        return 127.5 + 127.5 * self.deconv(x)

    @model_property
    def loss(self):
        return digits.mse_loss(self.inference, self.y)
