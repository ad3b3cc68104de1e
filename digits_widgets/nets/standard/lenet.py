"""LeNet-5 for 28x28 gray digits: DIGITS' standard LeNet, as written in its TensorFlow guide.

Tower style. The input is scaled by 0.0125 (about 1/std of MNIST pixels); conv 5x5 20 -> max-pool 2 ->
conv 5x5 50 -> max-pool 2 -> fc 500 -> dropout 0.5 -> fc nclasses, with ReLUs after the convolutions and
fc1 (slim's default activation) and Xavier initialisation. The fc1 input size is computed from
input_shape, so other image sizes (at least 16x16) work too. slim's L2 regulariser (0.0005) is left to the
optimizer's weight decay.
"""


class UserModel(Tower):

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        channels, height, width = self.input_shape
        self.conv1 = nn.Conv2d(channels, 20, 5)
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.pool2 = nn.MaxPool2d(2)
        out_h = ((height - 4) // 2 - 4) // 2
        out_w = ((width - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(50 * out_h * out_w, 500)
        self.do1 = nn.Dropout(0.5)
        self.fc2 = nn.Linear(500, self.nclasses)
        for layer in (self.conv1, self.conv2, self.fc1, self.fc2):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    @model_property
    def inference(self):
        x = self.x * 0.0125
        x = self.pool1(F.relu(self.conv1(x)))
        x = self.pool2(F.relu(self.conv2(x)))
        x = digits.flatten(x)
        x = self.do1(F.relu(self.fc1(x)))
        return self.fc2(x)

    @model_property
    def loss(self):
        loss = digits.classification_loss(self.inference, self.y)
        accuracy = digits.classification_accuracy(self.inference, self.y)
        self.summaries.append(('accuracy', accuracy))
        return loss
