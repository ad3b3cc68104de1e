"""The Network section of the model form: DIGITS' Standard Networks, Previous Networks and Custom Network tabs.

:class:`NetworkTabs` is a part of :class:`~digits_widgets.ui.model_form.ModelForm` (a base class of it): the
tabs, "Customize" (a network's text into the Custom tab), "Use suggested settings", "Use the %%digits_model
cell", and a previous model's snapshot or a Caffe tab's .caffemodel as the pretrained weights. It is apart
from the form's options, Visualize and Create because choosing a network is a page of its own in DIGITS, and
it reads only a few of the form's things: ``fields`` (``pretrained``), ``lr_editor`` (suggested settings set
the policy) and ``_mark`` (a message next to the network).
"""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Callable

import ipywidgets as widgets

from .. import api
from ..errors import DigitsError, OptionError
from ..nets import zoo
from ..nets.source import last_cell
from ..store.jobs import find_job
from .custom_network import FRAMEWORK_TITLES, CustomNetwork

if TYPE_CHECKING:
    from .fields import Field
    from .lr_preview import LrPolicyEditor

__all__ = ["NetworkTabs", "STANDARD", "PREVIOUS", "CUSTOM"]

STANDARD, PREVIOUS, CUSTOM = range(3)   # network tab indices


class NetworkTabs:
    """The network tabs of the model form and what they do; the form builds them with :meth:`_build_network_tabs`."""

    fields: dict[str, Field]
    lr_editor: LrPolicyEditor
    _mark: Callable[[str, str], None]

    def _build_network_tabs(self) -> None:
        """The three tabs and their buttons, as ``network_tabs``; the form puts Visualize and the summary below."""
        self.standard = widgets.RadioButtons(layout=widgets.Layout(width="auto"))
        self.standard_info = widgets.HTML()
        self.standard.observe(lambda _: self._describe_standard(), "value")
        self.previous = widgets.Dropdown(description="Previous model", layout=widgets.Layout(width="420px"),
                                         style={"description_width": "140px"})
        self.previous_snapshot = widgets.Dropdown(description="Pretrained model", style=self.previous.style,
                                                  layout=self.previous.layout)
        self.previous.observe(lambda _: self._previous_changed(), "value")
        self.previous_snapshot.observe(lambda _: self._snapshot_changed(), "value")
        self.standard_framework = widgets.ToggleButtons(
            options=[("PyTorch", "pytorch")], tooltips=["The network in PyTorch", "As DIGITS shipped it for "
                                                        "Caffe (prototxt)", "As DIGITS shipped it for Torch (Lua)"],
            style={"button_width": "90px"})
        self.standard_framework.observe(lambda _: self._describe_standard(), "value")
        self.custom = CustomNetwork(on_caffemodel=self._caffemodel_changed)
        self.from_cell_button = widgets.Button(
            description="Use the %%digits_model cell", icon="paste", layout=widgets.Layout(width="auto"),
            tooltip="Copy the network of the latest %%digits_model cell run in this kernel")
        self.from_cell_button.on_click(lambda _: self.use_last_cell())
        buttons = []
        for text, tip, action in (
                ("Customize", "Copy this network into the Custom tab", lambda _: self._customize(STANDARD)),
                ("Use suggested settings", "Fill the solver fields with what this network was tuned with",
                 lambda _: self.apply_suggested()),
                ("Customize", "Copy its network into the Custom tab", lambda _: self._customize(PREVIOUS))):
            buttons.append(widgets.Button(description=text, tooltip=tip, layout=widgets.Layout(width="auto")))
            buttons[-1].on_click(action)
        self.network_tabs = widgets.Tab(children=[
            widgets.VBox([self.standard, self.standard_framework, self.standard_info, widgets.HBox(buttons[:2])]),
            widgets.VBox([self.previous, self.previous_snapshot, buttons[2]]),
            widgets.VBox([self.from_cell_button, self.custom])],
            titles=["Standard Networks", "Previous Networks", "Custom Network"])

    def network_source(self) -> str:
        """The text of the network the active tab selects; OptionError(field='network') when there is none."""
        tab = self.network_tabs.selected_index
        if tab == STANDARD and self.standard.value:
            return zoo.source(self.standard.value, self.standard_framework.value or "pytorch")
        if tab == PREVIOUS and self.previous.value:
            return find_job(self.previous.value, kind="model").network_source()
        if tab == CUSTOM:
            return self.custom.source()
        raise OptionError(["Choose a standard network", "Choose a previous model"][tab or 0], field="network")

    def _customize(self, tab: int) -> None:
        """DIGITS' "Customize": copy the chosen network's text into the Custom tab and switch to it."""
        self.network_tabs.selected_index = tab
        try:
            self.custom.value = self.network_source()
        except DigitsError as exc:
            self._mark("network", str(exc))
            return
        self.network_tabs.selected_index = CUSTOM

    def use_last_cell(self) -> None:
        """Fill the Custom tab with the network of the latest ``%%digits_model`` cell run in this kernel."""
        latest = last_cell()
        if latest is None:
            self._mark("network", "No %%digits_model cell has run in this kernel yet: run one first "
                                  "(add --no-train to define the network without training it)")
            return
        self.custom.value = latest[1]
        self.network_tabs.selected_index = CUSTOM
        self.network_message.value = self.message.value = ""   # an earlier "no cell yet" no longer holds

    def _caffemodel_changed(self, path: str) -> None:
        """The Caffe tab's .caffemodel is the pretrained weights (loaded by layer name, as DIGITS did)."""
        self.fields["pretrained"].value = path or None

    def _describe_standard(self) -> None:
        net = zoo.STANDARD.get(self.standard.value or "")
        languages = zoo.frameworks(net.name) if net is not None else ("pytorch",)
        if tuple(v for _, v in self.standard_framework.options) != languages:
            keep = self.standard_framework.value if self.standard_framework.value in languages else "pytorch"
            self.standard_framework.options = [(FRAMEWORK_TITLES[f], f) for f in languages]
            self.standard_framework.value = keep
        self.standard_framework.layout.display = None if len(languages) > 1 else "none"
        if net is None:
            self.standard_info.value = "<i>No standard network fits this dataset: write one in Custom.</i>"
            return
        tips = ", ".join(f"{k} {v}" for k, v in net.settings.items())
        self.standard_info.value = (f"<small>{html.escape(net.description)} Designed for input "
                                    f"{'×'.join(map(str, net.input_shape))} (C×H×W). Suggested: {tips}.</small>")

    def apply_suggested(self) -> None:
        """Fill the solver and mean fields with the chosen standard network's suggested settings."""
        net = zoo.STANDARD.get(self.standard.value or "")
        settings = dict(net.settings) if net is not None else {}
        if "lr_policy" in settings:
            self.lr_editor.set_values(settings.pop("lr_policy"), gamma=settings.pop("gamma", None))
        for key, value in settings.items():
            self.fields[key].value = value

    def _refresh_previous(self) -> None:
        models = list(reversed(api.jobs("model")))
        self.previous.options = [(f"{j.name} ({j.status})", j.id) for j in models]
        self.previous.value = models[0].id if models else None
        self._previous_changed()

    def _previous_changed(self) -> None:
        job = find_job(self.previous.value, kind="model") if self.previous.value else None
        snaps = [(f"Epoch #{e:g}", f"{e:g}") for e, _ in job.snapshots()] if job is not None else []
        if job is not None and job.path("snapshots", "best.pt").exists():
            snaps.append(("Best (lowest validation loss)", "best"))
        self.previous_snapshot.options = [("None", None)] + snaps
        self.previous_snapshot.value = None

    def _snapshot_changed(self) -> None:
        """Choosing a snapshot of a previous model is fine-tuning: it becomes the pretrained weights."""
        if self.previous_snapshot.value is not None and self.previous.value:
            self.fields["pretrained"].value = f"{self.previous.value}:{self.previous_snapshot.value}"
