"""Defining networks: DIGITS' Tower interface on PyTorch, Torch7-style and plain-module networks, the standard
networks, and the one wrapper (TrainableNet) the trainer drives. Imports torch and numpy only, never widgets."""
from . import helpers, zoo
from . import helpers as digits
from .built import Network
from .network import build_network
from .source import exec_network_source, format_user_traceback
from .tower import Tower, model_property
from .trainable import StepOutput, TrainableNet, default_loss

__all__ = [
    'Network', 'build_network', 'exec_network_source', 'format_user_traceback',
    'Tower', 'model_property', 'TrainableNet', 'StepOutput', 'default_loss',
    'digits', 'helpers', 'zoo',
]
