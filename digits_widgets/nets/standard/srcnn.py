"""SRCNN for image reconstruction (Dong et al. 2014; DIGITS' image-reconstruction tutorial), plain PyTorch.

conv 9x9 64 (pad 4) + PReLU(64) -> conv 1x1 32 + PReLU(32) -> conv 5x5 C (pad 2), L1 loss (Zhao et al.) between
the output and the target image, both in label units (0..255).

Residual form: output = x + 255 * conv3(...), with conv3 starting at zero, so an untrained network returns its
input and learns only the correction; that trains much faster than predicting the image from scratch. The
layers see x / 255. With mean subtraction 'none' (the suggested setting) the identity is exact; with 'pixel'
the correction's bias learns the mean back; an 'image' mean cannot be fully recovered, so avoid it here.
"""


class SRCNN(nn.Module):

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, 9, padding=4)
        self.prelu1 = nn.PReLU(64)
        self.conv2 = nn.Conv2d(64, 32, 1)
        self.prelu2 = nn.PReLU(32)
        self.conv3 = nn.Conv2d(32, channels, 5, padding=2)
        nn.init.zeros_(self.conv3.weight)
        nn.init.zeros_(self.conv3.bias)

    def forward(self, x):
        h = self.prelu1(self.conv1(x / 255.0))
        h = self.prelu2(self.conv2(h))
        return x + 255.0 * self.conv3(h)


model = SRCNN(input_shape[0])
loss = digits.l1_loss
