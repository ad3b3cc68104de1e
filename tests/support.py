"""What several test files share: the tutorial's one-layer regression network as a user types it, and a
small gradients dataset to train it on, and a wait for a job's log line."""
import re
import time

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


def gradients_dataset(name: str = "g", train_count: int = 64, val_count: int = 16):
    """A finished 8x8 gradients dataset (the regression tutorial's kind), small enough for any test."""
    import digits_widgets as dw

    ds = dw.datasets.gradients(name, train_count=train_count, val_count=val_count, image_size=(8, 8), seed=0)
    ds.wait(60)
    return ds


def wait_for_log(job, pattern: str, log: str = "train.log", timeout: float = 60.0) -> "re.Match":
    """Poll a job's log until a line matches ``pattern`` (the match), or fail naming what the log holds."""
    deadline = time.monotonic() + timeout
    path = job.dir / log
    while True:
        text = path.read_text() if path.exists() else ""
        m = re.search(pattern, text)
        if m:
            return m
        if time.monotonic() > deadline:
            raise AssertionError(f"{log} never matched {pattern!r} in {timeout:.0f} s; it ends:\n{text[-800:]}")
        time.sleep(0.05)  # polling interval of a condition wait
