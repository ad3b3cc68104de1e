"""The model form's Custom Network tab: one text box per language, as DIGITS had Caffe / Torch / TensorFlow.

The trainer recognises a network's language from its text (:func:`~digits_widgets.nets.torch7.framework_of`),
so the sub-tab a user types in is a promise the form checks: a Python cell pasted into the Caffe tab is
refused with the tab it belongs in, before anything is written to a job. The Caffe tab takes DIGITS'
pretrained ``.caffemodel`` (matched by layer name); the Torch tab says when ``lupa`` is missing.
"""
from __future__ import annotations

from importlib.util import find_spec
from typing import Callable

import ipywidgets as widgets

from ..errors import OptionError
from ..nets.torch7 import FRAMEWORKS, framework_of

__all__ = ["CustomNetwork", "FRAMEWORK_TITLES", "lupa_installed"]

FRAMEWORK_TITLES = {"pytorch": "PyTorch", "caffe": "Caffe", "torch": "Torch"}
_READS_AS = {"pytorch": "Python (PyTorch)", "caffe": "a Caffe prototxt", "torch": "Torch7 Lua"}
_PLACEHOLDERS = {
    "pytorch": "class UserModel(Tower): ...   (or an nn.Module subclass, or build_model(params))",
    "caffe": 'name: "MyNet"\nlayer {\n  name: "conv1"\n  type: "Convolution"\n  bottom: "data"\n  top: "conv1"\n'
             "  convolution_param { num_output: 20 kernel_size: 5 }\n}\n...",
    "torch": "return function(params)\n    local net = nn.Sequential()\n    ...\n    return {model = net, "
             "loss = nn.ClassNLLCriterion()}\nend",
}
_NOTES = {
    "pytorch": "A Tower class, an <code>nn.Module</code> subclass or <code>build_model(params)</code>, "
               "as in a <code>%%digits_model</code> cell.",
    "caffe": "DIGITS' prototxt as written: the dataset supplies the Data/Input layers; <code>include { phase }"
             "</code> and <code>exclude { stage: \"deploy\" }</code> choose the train, val and deploy graphs; "
             "<code>lr_mult: 0</code> freezes a layer.",
    "torch": "DIGITS' Lua contract: <code>return function(params) ... return {model=..., loss=...} end</code>; "
             "<code>nn</code>, <code>cudnn</code> and <code>inn</code> build PyTorch modules.",
}


def lupa_installed() -> bool:
    """Whether Torch7 Lua networks can run here (lupa is the optional ``[torch7]`` extra)."""
    return find_spec("lupa") is not None


class CustomNetwork(widgets.VBox):
    """Sub-tabs PyTorch, Caffe and Torch, each with its own text. ``value`` is the text of the selected
    sub-tab; setting it puts the text in the sub-tab of its language and selects that sub-tab."""

    def __init__(self, on_caffemodel: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.texts = {fw: widgets.Textarea(placeholder=_PLACEHOLDERS[fw],
                                           layout=widgets.Layout(width="100%", height="320px"))
                      for fw in FRAMEWORKS}
        self.caffemodel = widgets.Text(description="Pretrained .caffemodel", placeholder="/path/to/weights.caffemodel",
                                       style={"description_width": "160px"}, layout=widgets.Layout(width="520px"))
        if on_caffemodel is not None:
            self.caffemodel.observe(lambda c: on_caffemodel(c.new.strip()), "value")
        lua_note = ("" if lupa_installed() else
                    '<br><span style="color:#e65100">Lua networks need lupa: '
                    "<code>pip install 'digits_widgets[torch7]'</code></span>")
        pages = {fw: [widgets.HTML(f"<small>{_NOTES[fw]}</small>"), self.texts[fw]] for fw in FRAMEWORKS}
        pages["caffe"].append(self.caffemodel)
        pages["torch"][0].value += f"<small>{lua_note}</small>"
        self.tabs = widgets.Tab(children=[widgets.VBox(pages[fw]) for fw in FRAMEWORKS],
                                titles=[FRAMEWORK_TITLES[fw] for fw in FRAMEWORKS])
        self.children = [self.tabs]

    @property
    def framework(self) -> str:
        """The language of the selected sub-tab: 'pytorch', 'caffe' or 'torch'."""
        return FRAMEWORKS[self.tabs.selected_index or 0]

    @framework.setter
    def framework(self, framework: str) -> None:
        self.tabs.selected_index = FRAMEWORKS.index(framework)

    @property
    def value(self) -> str:
        return self.texts[self.framework].value

    @value.setter
    def value(self, text: str) -> None:
        framework = framework_of(text) if text.strip() else self.framework
        self.texts[framework].value = text
        self.framework = framework

    def source(self) -> str:
        """The selected sub-tab's text, checked to be in that sub-tab's language (OptionError field='network')."""
        text = self.value
        if not text.strip():
            raise OptionError(f"Write a network in the Custom Network tab ({FRAMEWORK_TITLES[self.framework]})",
                              field="network")
        found = framework_of(text)
        if found != self.framework:
            hint = (" A Torch7 network ends with `return function(params) ... end`."
                    if self.framework == "torch" else "")
            raise OptionError(f"The {FRAMEWORK_TITLES[self.framework]} tab holds text that reads as "
                              f"{_READS_AS[found]}: paste it in the {FRAMEWORK_TITLES[found]} tab.{hint}",
                              field="network")
        if found == "torch" and not lupa_installed():
            raise OptionError("Torch7 Lua networks run with lupa, which is not installed: "
                              "pip install 'digits_widgets[torch7]'", field="network")
        return text
