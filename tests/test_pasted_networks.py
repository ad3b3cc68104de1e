"""Networks pasted as DIGITS users wrote them: its TensorFlow imports, TensorFlow itself, Caffe and Lua text."""
from __future__ import annotations

import warnings

import pytest
import torch

from digits_widgets.errors import NetworkError
from digits_widgets.nets import build_network, exec_network_source

TOWER_BODY = '''
class UserModel(Tower):
    @model_property
    def inference(self):
        if not hasattr(self, 'fc'):
            self.fc = nn.Linear(self.input_shape[0] * self.input_shape[1] * self.input_shape[2], self.nclasses)
        return self.fc(digits.flatten(self.x))

    @model_property
    def loss(self):
        return classification_loss(self.inference, self.y)
'''

DIGITS_TF_HEADER = '''from model import Tower
from utils import model_property
import utils as digits
from digits import classification_loss
'''


def test_digits_tf_imports_are_taken_out_with_a_warning_per_line():
    source = DIGITS_TF_HEADER + TOWER_BODY
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        net = build_network(source, (1, 4, 4), nclasses=3, name='pasted')
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert [n.split(':')[0] for n in notes] == ['line 1', 'line 2', 'line 3', 'line 4']
    assert '`from model import Tower` taken out' in notes[0]
    assert {w.filename for w in caught} == {'<digits_model:pasted>'}
    out = net.first_batch(torch.zeros(2, 1, 4, 4), torch.zeros(2, dtype=torch.long))
    assert out is not None


def test_line_numbers_stay_those_of_the_cell():
    source = DIGITS_TF_HEADER + 'x = 1\nraise ValueError("boom")\n'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        with pytest.raises(NetworkError) as info:
            exec_network_source(source, 'lines')
    text = str(info.value)
    assert 'line 6' in text and 'raise ValueError("boom")' in text and 'ValueError: boom' in text


def test_multi_line_and_nested_digits_imports_keep_line_count():
    source = ('from utils import (model_property,\n    classification_loss)\n'
              'def make():\n    import utils as digits\n    return digits\nDEPTH = 3\n')
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        ns = exec_network_source(source, 'multi')
    assert ns['DEPTH'] == 3 and callable(ns['classification_loss']) and ns['make']() is ns['digits']
    assert [str(w.message).split(':')[0] for w in caught] == ['line 1', 'line 4']


@pytest.mark.parametrize('line', ['import tensorflow as tf', 'import tensorflow.contrib.slim as slim',
                                  'from tensorflow import keras'])
def test_tensorflow_import_is_named(line):
    source = f'from model import Tower\n\n{line}\n' + TOWER_BODY
    with pytest.raises(NetworkError) as info:
        exec_network_source(source, 'tfnet')
    text = str(info.value)
    assert 'this network uses TensorFlow' in text and 'written in PyTorch, see notebook 05' in text
    assert 'line 3' in text and line in text and 'NameError' not in text


def test_tf_name_error_is_named_not_bare():
    source = TOWER_BODY.replace('return self.fc(digits.flatten(self.x))',
                                'return tf.layers.dense(self.x, 10)')
    with pytest.raises(NetworkError) as info:
        build_network(source, (1, 4, 4), nclasses=3, name='usestf')
    headline = str(info.value).splitlines()[0]
    assert 'this network uses TensorFlow' in headline and 'notebook 05' in headline
    assert 'line 7' in headline and 'tf.layers.dense' in headline
    source = 'net = slim.conv2d\n'
    with pytest.raises(NetworkError, match=r'uses TensorFlow \(<digits_model:slimnet> line 1: `net = slim'):
        exec_network_source(source, 'slimnet')


def test_build_model_is_named_as_digits_tensorflow_form():
    source = 'def build_model(params):\n    return None\n'
    with pytest.raises(NetworkError) as info:
        build_network(source, (1, 4, 4), nclasses=3)
    text = str(info.value)
    assert "`build_model(params)` is DIGITS' TensorFlow form" in text and 'network(params)' in text
    assert 'UserModel(Tower)' in text and 'notebook 05' in text


PROTOTXT = '''name: "LeNet"
layer {
  name: "data"
  type: "Data"
}
'''
PROTOTXT_LAYERS = '# old style\nlayers {\n  name: "conv1"\n}\n'
LUA = '''-- LeNet, Torch7
require 'nn'
return function(params)
    local model = nn.Sequential()
    return {model = model}
end
'''


@pytest.mark.parametrize('text, kind, line', [(PROTOTXT, 'a Caffe prototxt', 1),
                                               (PROTOTXT_LAYERS, 'a Caffe prototxt', 2),
                                               ('input: "data"\ninput_dim: 1\nlayer {\n}\n', 'a Caffe prototxt', 1),
                                               (LUA, 'a Torch7 (Lua) network', 1),
                                               ("local net = nn.Sequential()\n", 'a Torch7 (Lua) network', 1)])
def test_caffe_and_lua_text_are_named_not_syntax_errors(text, kind, line):
    with pytest.raises(NetworkError) as info:
        exec_network_source(text, 'pasted')
    message = str(info.value)
    assert f"The network 'pasted' is {kind} (line {line}" in message
    assert 'SyntaxError' not in message and 'invalid syntax' not in message
    assert 'run as they are' in message and '--framework caffe|torch' in message and 'notebook 05' in message
    assert 'UserModel(Tower)' in message and 'network(params)' in message and '`model`' in message


def test_python_syntax_error_is_still_reported_as_one():
    with pytest.raises(NetworkError, match='syntax error') as info:
        exec_network_source('def f(:\n    pass\n', 'broken')
    assert 'SyntaxError' in str(info.value)
