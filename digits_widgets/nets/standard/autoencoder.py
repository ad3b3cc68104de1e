"""MNIST autoencoder 784-300-50-300-784 (DIGITS' autoencoder tutorial, Torch7 style).

The label is the input (label_hook), so the network learns to reconstruct the mean-subtracted image it is
fed, as in DIGITS; the output is in the same units as that input. Every step is a named layer, so Test One
with visualisations shows the normalised input, the 50-unit code (relu2) and the reconstruction.
Image sizes other than 28x28 work: the first and last layers follow input_shape.
"""
from collections import OrderedDict


class MulConstant(nn.Module):
    """Torch7's nn.MulConstant: multiply by a fixed number."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale

    def extra_repr(self):
        return f'scale={self.scale}'


def network(params):
    channels, height, width = params['input_shape']
    size = channels * height * width
    model = nn.Sequential(OrderedDict([
        ('scale', MulConstant(0.00390625)),
        ('flatten', nn.Flatten()),            # C*H*W -> 784
        ('fc1', nn.Linear(size, 300)),
        ('relu1', nn.ReLU()),
        ('fc2', nn.Linear(300, 50)),
        ('relu2', nn.ReLU()),                 # the 50-unit code
        ('fc3', nn.Linear(50, 300)),
        ('relu3', nn.ReLU()),
        ('fc4', nn.Linear(300, size)),
        ('unflatten', nn.Unflatten(1, (channels, height, width))),  # 784 -> 1x28x28
    ]))
    return {
        'model': model,
        'loss': nn.MSELoss(),
        'train_batch_size': 64,
        'validation_batch_size': 100,
        'label_hook': lambda input, label: input,
    }
