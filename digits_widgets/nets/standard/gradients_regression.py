"""Image regression: predict the (x, y) gradient of a synthetic image (DIGITS' regression tutorial).

Tower style, as the tutorial's TensorFlow version: scale by 0.004 -> flatten -> one linear layer with two
outputs, mean squared error against the two-float label. The layer is created on first use with
self.layer(), the PyTorch form of the tutorial's tf.get_variable inside `inference`.
"""


class UserModel(Tower):

    @model_property
    def inference(self):
        x = digits.flatten(self.x * 0.004)
        fc = self.layer('fc', lambda: nn.Linear(x.shape[1], 2))
        return fc(x)

    @model_property
    def loss(self):
        label = self.y.reshape(-1, 2)
        return digits.mse_loss(self.inference, label)
