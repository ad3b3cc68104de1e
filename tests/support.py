"""What several test files share: the tutorial's one-layer regression network, as a user types it."""

TOWER_REGRESSION = '''
class UserModel(Tower):
    @model_property
    def inference(self):
        c, h, w = self.input_shape
        fc = self.layer("fc", lambda: nn.Linear(c * h * w, 2))
        return fc(digits.flatten(self.x * 0.004))

    @model_property
    def loss(self):
        return digits.mse_loss(self.inference, self.y)
'''
