"""Networks in code: Tower, the digits helpers, the three styles, tracebacks, state-dict names, the zoo."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from digits_widgets.errors import NetworkError
from digits_widgets.nets import (Network, StepOutput, Tower, TrainableNet, build_network, digits,
                                 exec_network_source, model_property, zoo)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def train_steps(net: Network, x: torch.Tensor, y: torch.Tensor | None, steps: int = 5,
                lr: float = 1e-3) -> list[float]:
    """Adam steps on one fixed batch; the losses seen."""
    opt = torch.optim.Adam([p for p in net.module.parameters() if p.requires_grad], lr=lr)
    losses = []
    for _ in range(steps):
        out = net.module(x, y)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(out.loss.item())
    return losses


# ---------------------------------------------------------------- Tower

class Probe(Tower):
    calls = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fc = nn.Linear(int(np.prod(self.input_shape)), self.nclasses)

    @model_property
    def inference(self):
        type(self).calls += 1
        return self.fc(digits.flatten(self.x))

    @model_property
    def loss(self):
        a = self.inference  # read twice: computed once per batch
        return digits.classification_loss(a, self.y) + 0 * digits.classification_loss(self.inference, self.y)


def test_tower_attributes_and_flags() -> None:
    net = build_network(Probe, (1, 4, 4), 3, params={'answer': 42})
    tower = net.module.inner
    assert net.style == 'tower' and isinstance(tower, Probe)
    assert tower.input_shape == (1, 4, 4) and tower.nclasses == 3
    assert tower.params['answer'] == 42 and tower.params['input_shape'] == (1, 4, 4)
    assert tower.params['inputShape'] == (1, 4, 4) and tower.params['nclasses'] == 3 and 'ngpus' in tower.params
    x, y = torch.randn(5, 1, 4, 4), torch.tensor([0, 1, 2, 0, 1])
    net.module.train()
    net.module(x, y)
    assert tower.x is x and tower.y is y and tower.is_training and not tower.is_inference
    net.module.eval()
    net.module(x, None)
    assert not tower.is_training and tower.is_inference and tower.y is None
    assert tower.summaries == []


def test_model_property_computed_once_per_forward() -> None:
    net = build_network(Probe, (1, 4, 4), 3)
    x, y = torch.randn(2, 1, 4, 4), torch.tensor([0, 1])
    Probe.calls = 0
    net.module(x, y)
    assert Probe.calls == 1
    net.module(x, y)
    assert Probe.calls == 2
    first = net.module.inner(x)
    assert net.module.inner.inference is first  # cached until the next batch
    assert Probe.calls == 3


def test_layer_creates_once_on_first_batch() -> None:
    class Lazy(Tower):
        @model_property
        def inference(self):
            h = digits.flatten(self.x)
            fc = self.layer('fc', lambda: nn.Linear(h.shape[1], 2))
            return fc(h)

        @model_property
        def loss(self):
            return digits.mse_loss(self.inference, self.y)

    tower = Lazy((4, 1, 1), 0)
    assert 'fc' not in dict(tower.named_children())
    net = build_network(Lazy, (4, 1, 1))  # the build batch creates the layer
    fc = net.module.inner.fc
    assert isinstance(fc, nn.Linear) and fc.in_features == 4
    net.module(torch.randn(3, 4, 1, 1), torch.randn(3, 2))
    assert net.module.inner.fc is fc
    assert [n for n, _ in net.module.named_parameters()] == ['inner.fc.weight', 'inner.fc.bias']
    with pytest.raises(TypeError, match='nn.Module'):
        net.module.inner.layer('bad', lambda: 3)


def test_attribute_error_in_property_is_the_real_one() -> None:
    src = ("class UserModel(Tower):\n"
           "    @model_property\n"
           "    def inference(self):\n"
           "        return self.conv9(self.x)\n"
           "    @model_property\n"
           "    def loss(self):\n"
           "        return self.inference.sum()\n")
    with pytest.raises(NetworkError) as info:
        build_network(src, (1, 2, 2), name='typo')
    assert "conv9" in str(info.value)
    assert 'File "<digits_model:typo>", line 4, in inference' in info.value.traceback_text


def test_loss_without_labels() -> None:
    ae = ("class UserModel(Tower):\n"
          "    def __init__(self, *a, **k):\n"
          "        super().__init__(*a, **k)\n"
          "        self.fc = nn.Linear(4, 4)\n"
          "    @model_property\n"
          "    def inference(self):\n"
          "        return self.fc(digits.flatten(self.x)).view_as(self.x)\n"
          "    @model_property\n"
          "    def loss(self):\n"
          "        return digits.mse_loss(self.inference, self.x)\n")
    x = torch.randn(2, 1, 2, 2)
    out = build_network(ae, (1, 2, 2)).module(x)
    assert out.loss is not None and out.loss.item() == pytest.approx(F.mse_loss(out.output, x).item())
    cls = build_network(Probe, (1, 4, 4), 3).module(torch.randn(2, 1, 4, 4))
    assert cls.loss is None and cls.output.shape == (2, 3) and 'accuracy' not in cls.metrics


def test_summaries_loss_forms_and_accuracy() -> None:
    class Multi(Probe):
        @model_property
        def loss(self):
            self.summaries.append(('mean_logit', self.inference.mean()))
            self.summaries.append({'two': 2.0})
            ce = digits.classification_loss(self.inference, self.y)
            return [{'loss': ce, 'vars': []}, {'loss': 2 * ce, 'vars': []}]

    x, y = torch.randn(4, 1, 4, 4), torch.tensor([0, 1, 2, 1])
    out = build_network(Multi, (1, 4, 4), 3).module(x, y)
    assert isinstance(out, StepOutput)
    ce = F.cross_entropy(out.output, y)
    assert out.loss.item() == pytest.approx(3 * ce.item(), rel=1e-5)
    assert set(out.metrics) == {'mean_logit', 'two', 'accuracy'}
    assert out.metrics['two'].item() == 2.0
    expected = (out.output.argmax(1) == y).float().mean()
    assert out.metrics['accuracy'].item() == pytest.approx(expected.item())

    model = nn.Sequential(nn.Flatten(), nn.Linear(3, 2))
    out = build_network((model, lambda o, t: {'loss': F.mse_loss(o, t), 'mae': (o - t).abs().mean()}),
                        (3, 1, 1)).module(torch.randn(2, 3, 1, 1), torch.randn(2, 2))
    assert set(out.metrics) == {'mae'} and out.loss.dim() == 0


# ---------------------------------------------------------------- digits helpers

def test_classification_loss_and_accuracy_by_hand() -> None:
    pred = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 3.0]])
    y = torch.tensor([0, 1])
    hand = (-math.log(math.exp(2) / (math.exp(2) + 2)) - math.log(math.e / (1 + math.e + math.exp(3)))) / 2
    assert digits.classification_loss(pred, y).item() == pytest.approx(hand, rel=1e-6)
    assert digits.classification_loss(pred, y.float()).item() == pytest.approx(hand, rel=1e-6)
    assert digits.classification_accuracy(pred, y).item() == pytest.approx(0.5)


def test_top_n_accuracy() -> None:
    pred = torch.tensor([[0.1, 0.5, 0.4], [0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])
    y = torch.tensor([2, 2, 0])
    # row 0: label 2 is 2nd; row 1: label 2 is 3rd; row 2: label 0 ties with class 1 behind class 2.
    assert digits.classification_accuracy_top_n(pred, y, 1).item() == pytest.approx(0.0)
    assert digits.classification_accuracy_top_n(pred, y, 2).item() == pytest.approx(2 / 3)
    assert digits.classification_accuracy_top_n(pred, y, 3).item() == pytest.approx(1.0)


def test_mse_l1_and_contrastive_by_hand() -> None:
    a = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    b = torch.tensor([[1.0, 0.0], [0.3, 0.4]])
    assert digits.mse_loss(a, b).item() == pytest.approx((0 + 4 + 0.09 + 0.16) / 4)
    assert digits.l1_loss(a, b).item() == pytest.approx((0 + 2 + 0.3 + 0.4) / 4)
    y = torch.tensor([1.0, 0.0])  # first pair similar, second dissimilar
    d0, d1 = 4.0, 0.25
    hand = (d0 + max(1.0 - math.sqrt(1e-6 + d1), 0) ** 2) / 2
    assert digits.constrastive_loss(a, b, y).item() == pytest.approx(hand, rel=1e-6)
    assert digits.contrastive_loss(a, b, y, margin=1.0).item() == pytest.approx(hand, rel=1e-6)
    hand2 = (d0 + max(2.0 - math.sqrt(1e-6 + d1), 0) ** 2) / 2
    assert digits.constrastive_loss(a, b, y, margin=2.0).item() == pytest.approx(hand2, rel=1e-6)


def test_layout_and_colour_helpers() -> None:
    nhwc = torch.arange(2 * 3 * 4 * 5).reshape(2, 3, 4, 5)
    nchw = digits.nhwc_to_nchw(nhwc)
    assert nchw.shape == (2, 5, 3, 4) and nchw[1, 4, 2, 3] == nhwc[1, 2, 3, 4]
    assert torch.equal(digits.nchw_to_nhwc(nchw), nhwc)
    hwc = np.arange(3 * 4 * 3).reshape(3, 4, 3)
    chw = digits.hwc_to_chw(hwc)
    assert chw.shape == (3, 3, 4) and chw[2, 1, 0] == hwc[1, 0, 2]
    assert np.array_equal(digits.chw_to_hwc(chw), hwc)
    image = torch.stack([torch.full((2, 2), float(c)) for c in (0, 1, 2)])  # CHW, channels B, G, R
    assert digits.bgr_to_rgb(image)[:, 0, 0].tolist() == [2.0, 1.0, 0.0]
    batch = image.unsqueeze(0).repeat(2, 1, 1, 1)
    assert digits.bgr_to_rgb(batch)[1, :, 1, 1].tolist() == [2.0, 1.0, 0.0]
    assert torch.equal(digits.rgb_to_bgr(digits.bgr_to_rgb(batch)), batch)
    assert digits.bgr_to_rgb(image.numpy())[:, 0, 0].tolist() == [2.0, 1.0, 0.0]
    assert digits.flatten(nhwc).shape == (2, 60)
    with pytest.raises(ValueError, match='4-D'):
        digits.nhwc_to_nchw(hwc)
    assert (digits.STAGE_TRAIN, digits.STAGE_VAL, digits.STAGE_INF) == ('train', 'val', 'inf')


# ---------------------------------------------------------------- styles from source text

TOWER_SRC = """
class UserModel(Tower):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fc = nn.Linear(math.prod(self.input_shape), self.nclasses)

    @model_property
    def inference(self):
        return self.fc(digits.flatten(self.x))

    @model_property
    def loss(self):
        return digits.classification_loss(self.inference, self.y)
"""

TORCH7_SRC = """
def network(params):
    c, h, w = params['inputShape']
    return {
        'model': nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, c * h * w), nn.Unflatten(1, (c, h, w))),
        'loss': nn.MSELoss(),
        'labelHook': lambda input, label: input,
        'trainBatchSize': 64,
        'validationBatchSize': 100,
        'croplen': 3,
        'fineTuneHook': lambda net: nn.Sequential(net, nn.Tanh()),
    }
"""

MODULE_SRC = """
model = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 2))
loss = lambda output, target: F.mse_loss(output, target)
"""


def test_three_styles_from_source() -> None:
    tower = build_network(TOWER_SRC, (1, 4, 4), 3, name='t')
    assert tower.style == 'tower' and tower.source == TOWER_SRC and isinstance(tower.module, TrainableNet)
    out = tower.module(torch.randn(2, 1, 4, 4), torch.tensor([0, 2]))
    assert out.output.shape == (2, 3) and 'accuracy' in out.metrics

    t7 = build_network(TORCH7_SRC, (1, 4, 4), name='t7')
    assert t7.style == 'torch7'
    assert (t7.train_batch_size, t7.validation_batch_size, t7.crop_len) == (64, 100, 3)

    plain = build_network(MODULE_SRC, (1, 4, 4), name='m')
    assert plain.style == 'module'
    x, y = torch.randn(2, 1, 4, 4), torch.randn(2, 2)
    out = plain.module(x, y)
    assert out.loss.item() == pytest.approx(F.mse_loss(out.output, y).item())
    assert torch.equal(plain.module.infer(x), out.output)


def test_default_losses() -> None:
    cls = build_network(nn.Sequential(nn.Flatten(), nn.Linear(4, 3)), (1, 2, 2), 3)
    x, y = torch.randn(2, 1, 2, 2), torch.tensor([0, 2])
    out = cls.module(x, y)
    assert out.loss.item() == pytest.approx(F.cross_entropy(out.output, y).item())
    reg = build_network(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), (1, 2, 2))
    target = torch.randn(2, 2)
    out = reg.module(x, target)
    assert out.loss.item() == pytest.approx(F.mse_loss(out.output, target).item())


def test_torch7_label_hook_target_is_input() -> None:
    net = build_network(TORCH7_SRC, (1, 4, 4))
    x = torch.randn(3, 1, 4, 4)
    out = net.module(x, torch.zeros(3))  # the DB label is ignored by the hook
    assert out.loss.item() == pytest.approx(F.mse_loss(out.output, x).item())
    unlabelled = net.module(x)  # images-only dataset: the hook makes the target from x alone
    assert unlabelled.loss.item() == pytest.approx(F.mse_loss(unlabelled.output, x).item())
    assert build_network(MODULE_SRC, (1, 4, 4)).module(x).loss is None  # no hook: no labels, no loss


def test_fine_tune_hook_passthrough() -> None:
    net = build_network(TORCH7_SRC, (1, 4, 4))
    assert callable(net.fine_tune_hook)
    tuned = net.apply_fine_tune_hook()
    assert tuned.fine_tune_hook is None and tuned.style == 'torch7'
    assert isinstance(tuned.module.inner, nn.Sequential) and tuned.module.inner[0] is net.module.inner
    out = tuned.module(torch.randn(2, 1, 4, 4), torch.zeros(2))
    assert out.output.abs().max() <= 1 and out.loss is not None
    assert build_network(TOWER_SRC, (1, 4, 4), 3).apply_fine_tune_hook().fine_tune_hook is None


def test_torch7_bad_dicts() -> None:
    with pytest.raises(NetworkError, match="'model'"):
        build_network(lambda p: {'loss': nn.MSELoss()}, (1, 2, 2))
    with pytest.raises(NetworkError, match='labelhook'):
        build_network(lambda p: {'model': nn.Identity(), 'labelhook': None}, (1, 2, 2))
    with pytest.raises(NetworkError, match='trainBatchSize|train_batch_size'):
        build_network(lambda p: {'model': nn.Identity(), 'trainBatchSize': 0}, (1, 2, 2))


# ---------------------------------------------------------------- state dict names

def test_state_dict_uses_the_inner_names() -> None:
    net = build_network(TOWER_SRC, (1, 4, 4), 3)
    inner = net.module.inner
    assert list(net.module.state_dict()) == list(inner.state_dict()) == ['fc.weight', 'fc.bias']
    fresh = build_network(TOWER_SRC, (1, 4, 4), 3)
    fresh.module.load_state_dict(net.module.state_dict())
    assert torch.equal(fresh.module.inner.fc.weight, inner.fc.weight)
    fresh.module.inner.load_state_dict(build_network(TOWER_SRC, (1, 4, 4), 3).module.state_dict())
    result = fresh.module.load_state_dict({'fc.weight': inner.fc.weight, 'other': torch.zeros(1)}, strict=False)
    assert result.missing_keys == ['fc.bias'] and result.unexpected_keys == ['other']
    with pytest.raises(RuntimeError, match="Missing key.*'fc.bias'"):
        fresh.module.load_state_dict({'fc.weight': inner.fc.weight})


def test_deepcopy_and_weights_only_round_trip(tmp_path) -> None:
    import copy

    net = build_network(TORCH7_SRC, (1, 2, 2))
    twin = copy.deepcopy(net.module)
    x = torch.randn(2, 1, 2, 2)
    assert torch.equal(twin(x, x).loss, net.module(x, x).loss)
    torch.save(net.module.state_dict(), tmp_path / 'w.pt')
    fresh = build_network(TORCH7_SRC, (1, 2, 2)).module
    fresh.load_state_dict(torch.load(tmp_path / 'w.pt', weights_only=True))
    assert torch.equal(fresh.infer(x), net.module.infer(x))


def test_state_dict_names_when_wrapped_like_ddp() -> None:
    bn = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    net = build_network((bn, lambda o, t: F.mse_loss(o, t)), (1, 2, 2))
    holder = nn.Module()
    holder.module = net.module
    sd = holder.state_dict()
    assert list(sd) == ['module.' + k for k in bn.state_dict()]
    assert sd._metadata['module.1']['version'] == bn.state_dict()._metadata['1']['version']
    other = nn.Module()
    other.module = build_network((nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2)), None), (1, 2, 2)).module
    other.load_state_dict(sd)
    assert torch.equal(other.module.inner[0].weight, bn[0].weight)


def test_ddp_wraps_trainable_net(tmp_path) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    dist.init_process_group('gloo', init_method=f'file://{tmp_path}/store', rank=0, world_size=1)
    try:
        net = build_network(TOWER_SRC, (1, 4, 4), 3)
        ddp = DDP(net.module)
        out = ddp(torch.randn(4, 1, 4, 4), torch.tensor([0, 1, 2, 0]))
        assert isinstance(out, StepOutput)
        out.loss.backward()
        assert net.module.inner.fc.weight.grad is not None
        assert list(ddp.state_dict()) == ['module.fc.weight', 'module.fc.bias']
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------- errors

def test_syntax_error_names_the_line() -> None:
    src = "x = 1\ny = 2\nclass UserModel(Tower)\n    pass\n"
    with pytest.raises(NetworkError) as info:
        build_network(src, (1, 2, 2), name='cell7')
    tb = info.value.traceback_text
    assert 'File "<digits_model:cell7>", line 3' in tb
    assert 'class UserModel(Tower)' in tb and 'SyntaxError' in tb
    with pytest.raises(NetworkError):
        exec_network_source("def f(:\n", 'bad')


def test_runtime_error_traceback_starts_at_the_cell() -> None:
    src = ("class UserModel(Tower):\n"
           "    @model_property\n"
           "    def inference(self):\n"
           "        h = self.x.flatten(1)\n"
           "        return h @ torch.ones(7, 2)\n"
           "    @model_property\n"
           "    def loss(self):\n"
           "        return self.inference.sum()\n")
    with pytest.raises(NetworkError) as info:
        build_network(src, (1, 2, 2), name='mm')
    tb = info.value.traceback_text
    assert tb.startswith('Traceback (most recent call last):\n  File "<digits_model:mm>", line 5, in inference')
    assert 'return h @ torch.ones(7, 2)' in tb and 'RuntimeError' in tb
    assert 'digits_widgets' not in tb
    assert "does not build" in str(info.value)


def test_error_while_executing_source() -> None:
    with pytest.raises(NetworkError) as info:
        exec_network_source("a = 1\nb = undefined_name\n", 'ex')
    assert 'File "<digits_model:ex>", line 2, in <module>' in info.value.traceback_text
    assert 'b = undefined_name' in info.value.traceback_text
    assert exec_network_source("z = np.zeros(2)\n")['z'].shape == (2,)


def test_traceback_of_a_torch_only_model_starts_past_our_frames() -> None:
    with pytest.raises(NetworkError) as info:
        build_network(nn.Sequential(nn.Flatten(), nn.Linear(3, 2)), (1, 2, 2))
    tb = info.value.traceback_text
    assert 'digits_widgets' not in tb and '_call_impl' not in tb.split('container.py')[0]
    assert 'linear.py' in tb and 'mat1 and mat2' in tb


def test_first_batch_errors_become_network_errors() -> None:
    net = build_network(MODULE_SRC, (1, 4, 4), name='m')
    assert net.first_batch(torch.randn(2, 1, 4, 4), torch.randn(2, 2)).loss is not None
    with pytest.raises(NetworkError) as info:
        net.first_batch(torch.randn(2, 1, 4, 4), torch.randn(2, 5))
    assert 'in <lambda>' in info.value.traceback_text and 'digits_model:m' in info.value.traceback_text


def test_missing_user_model_uses_digits_sentence() -> None:
    with pytest.raises(NetworkError) as info:
        build_network("x = 1\n", (1, 2, 2))
    message = str(info.value)
    assert message.startswith("The user model class 'UserModel' is not defined.")
    assert 'network(params)' in message and '`model`' in message
    with pytest.raises(NetworkError, match="'UserModel' does not inherit from Tower"):
        build_network("class UserModel(nn.Module):\n    pass\n", (1, 2, 2))
    with pytest.raises(NetworkError, match="'UserModel' is not a class"):
        build_network("UserModel = 3\n", (1, 2, 2))
    with pytest.raises(NetworkError, match='inference'):
        build_network("class UserModel(Tower):\n    pass\n", (1, 2, 2))


# ---------------------------------------------------------------- the standard networks

def test_zoo_catalogue() -> None:
    assert zoo.names() == list(zoo.STANDARD)
    assert zoo.names('classification') == ['lenet', 'alexnet', 'googlenet']
    for name, entry in zoo.STANDARD.items():
        assert entry.name == name and entry.kind in zoo.KINDS
        assert zoo.source(name).lstrip().startswith('"""')
    with pytest.raises(NetworkError):
        zoo.source('vgg')


def test_zoo_styles_match_catalogue() -> None:
    for name, entry in zoo.STANDARD.items():
        if name in ('alexnet', 'googlenet', 'segmentation_fcn'):
            continue  # built in their own tests
        shape = (1, 28, 28) if name in ('lenet', 'autoencoder') else (1, 16, 16)
        nclasses = 10 if entry.kind == 'classification' else 0
        assert build_network(zoo.source(name), shape, nclasses, name=name).style == entry.style


def test_lenet_trains() -> None:
    net = build_network(zoo.source('lenet'), (1, 28, 28), 10, name='lenet')
    x, y = torch.rand(8, 1, 28, 28) * 255 - 128, torch.arange(8) % 10
    losses = train_steps(net, x, y, steps=6)
    assert losses[-1] < losses[0]
    assert net.module(x, y).output.shape == (8, 10)
    assert build_network(zoo.source('lenet'), (3, 32, 32), 4).module.infer(torch.zeros(1, 3, 32, 32)).shape == (1, 4)


@pytest.mark.parametrize('name', ['alexnet', 'googlenet'])
def test_big_classifiers_forward_backward(name: str) -> None:
    net = build_network(zoo.source(name), (3, 64, 64), 5, name=name)
    out = net.module(torch.randn(2, 3, 64, 64) * 60, torch.tensor([1, 4]))
    assert out.output.shape == (2, 5) and torch.isfinite(out.loss)
    out.loss.backward()
    assert all(p.grad is not None for p in net.module.parameters())


def test_gradients_regression_trains() -> None:
    net = build_network(zoo.source('gradients_regression'), (1, 8, 8), name='grad')
    x = torch.rand(16, 1, 8, 8) * 255 - 128
    y = torch.stack([x[:, 0, :, :4].mean((1, 2)), x[:, 0, :4, :].mean((1, 2))], 1) / 255
    losses = train_steps(net, x, y, steps=8, lr=1e-2)
    assert losses[-1] < losses[0]
    assert net.module.infer(x).shape == (16, 2)


def test_segmentation_fcn_trains_at_multiples_of_16() -> None:
    net = build_network(zoo.source('segmentation_fcn'), (1, 32, 32), name='seg')
    x = torch.rand(2, 1, 32, 32) * 255 - 128
    y = (torch.rand(2, 1, 32, 32) > 0.7).float() * 255
    assert net.module.infer(x).mean().item() == pytest.approx(128, abs=10)  # starts half-way between labels
    losses = train_steps(net, x, y, steps=5, lr=1e-3)
    assert losses[-1] < losses[0]
    assert net.module.infer(torch.zeros(1, 1, 48, 64)).shape == (1, 1, 48, 64)


def test_autoencoder_reconstructs_its_input() -> None:
    net = build_network(zoo.source('autoencoder'), (1, 28, 28), name='ae')
    assert (net.train_batch_size, net.validation_batch_size) == (64, 100)
    x = torch.rand(8, 1, 28, 28) * 255 - 128
    losses = train_steps(net, x, torch.zeros(8), steps=6)
    assert losses[-1] < losses[0]
    assert net.module.infer(x).shape == x.shape


def test_srcnn_trains_and_starts_at_identity() -> None:
    net = build_network(zoo.source('srcnn'), (3, 16, 16), name='sr')
    target = torch.rand(2, 3, 16, 16) * 255
    x = (target + torch.randn_like(target) * 20).clamp(0, 255)
    assert torch.equal(net.module.infer(x), x)
    losses = train_steps(net, x, target, steps=6)
    assert losses[-1] < losses[0]
    assert net.module.infer(x).shape == x.shape
