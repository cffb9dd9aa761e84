"""The "Compare K" dock: a sweep of K, one shown K that every view follows."""

from __future__ import annotations

from typing import TYPE_CHECKING

from magicgui.widgets import ComboBox, LineEdit, PushButton
from napari.qt.threading import create_worker
from psygnal import Signal

from .._core.sweep import Sweep, parse_ks, psnr_peak
from .._napari.layers import (
    grid,
    label_colors,
    show_result,
    show_sweep_results,
    stack_k_at,
    unwrapped,
)
from .._napari.request import Request
from .base import KQuantDock, sweep_or_refuse, tooltip
from .sweep_plot import SweepPlot

if TYPE_CHECKING:
    import napari


class ShownK:
    """The K that Compare K shows, among the Ks swept: one value, one signal.

    The views (the K slider of a stacked sweep, the "show K" list, the plot's ring,
    the palette, the visible layers, the slider's label) observe ``changed``; the
    inputs (slider, list, a click on the plot) only call :meth:`set` (napari's
    ``Dims`` model and its sliders are the pattern).
    """

    changed = Signal(int)

    def __init__(self):
        self.ks: tuple[int, ...] = ()
        self.k: int | None = None

    def set(self, k) -> None:
        """Show ``k`` (ignored unless it was swept; no signal when already shown)."""
        if k in self.ks and k != self.k:
            self.k = k
            self.changed.emit(k)

    def reset(self, ks=()) -> None:
        self.ks = tuple(ks)
        if self.k not in self.ks:
            self.k = None


class CompareWidget(KQuantDock):
    """Dock widget that quantizes the chosen layer at several K and helps pick one.

    Results appear as a pair of layers per K or as one stacked pair with a K slider.
    An elbow plot (compactness and PSNR against K, the kneedle elbow marked) and the
    palette of the shown K are drawn in the widget.

    One K is shown at a time (:class:`ShownK`), and everything names the same one:
    the K slider of a stacked sweep (its label reads ``K=<k>``), the "show K" list,
    the highlighted point of the plot, the palette, the viewer's text overlay and the
    visible layers. Moving any of them moves the others; while a sweep runs the
    newest K is shown, and when it ends the elbow K. The dock keeps the layers it
    made by reference, so other layers coming and going, or a renamed result layer,
    change nothing. "keep this K" adds the shown K's pair as ordinary result layers
    (exportable from the quantization dock by selecting them).
    """

    RUN_TEXT = "Run sweep"

    def __init__(self, napari_viewer: napari.Viewer):
        self.ks = LineEdit(value="2..8", label="K values", tooltip=tooltip("ks"))
        self.display = ComboBox(
            choices=[("one layer pair per K", "layers"), ("stacked, K slider", "stack")],
            value="layers",
            label="show as",
            tooltip=tooltip("display"),
        )
        super().__init__(napari_viewer, [self.ks, self.display])
        # a sweep compares K on one palette per K: no per-plane palettes
        self.planes.choices = [c for c in self.PLANE_CHOICES if c[1] != "each"]
        self.shown = ShownK()
        self.k_choice = ComboBox(
            # read from the sweep: napari's reset_choices (any layer added or removed)
            # keeps them
            choices=lambda *_: self.shown.ks,
            label="show K",
            tooltip="The K shown on the canvas, in the palette and on the plot. The K "
            "slider of a stacked sweep and clicks on the plot's points choose it too.",
        )
        self.keep_button = PushButton(
            text="keep this K",
            tooltip="Add the shown K's quantized image and labels as ordinary result "
            "layers (select one and export it from the quantization dock).",
        )
        self.grid_button = PushButton(
            text="Grid view on/off", tooltip="napari's grid view: the layers side by side."
        )
        self.extend([self.k_choice, self.keep_button, self.grid_button])
        self.grid_button.changed.connect(self.toggle_grid)
        self.keep_button.changed.connect(self.keep)
        self.k_choice.changed.connect(lambda k: self.shown.set(k))
        self.results = []
        self._request = None
        self._shown_display = "layers"
        self._pairs: dict[int, list] = {}  # K -> its (image, labels) layers
        self._stacked: list = []  # the stacked (image, labels) layers
        self._k_axis_label = None  # (axis, label before we named it K=<k>)
        self.plot = SweepPlot(napari_viewer)
        self.plot.on_pick = self.shown.set
        self.add_native(self.plot.canvas)
        self._add_section("advanced options", self._advanced_widgets)
        self._peak = 1.0
        self.shown.changed.connect(self._show)
        self._viewer.dims.events.current_step.connect(self._slider_moved)
        # napari rebuilds the axis labels when layers come and go: name the K axis again
        self._viewer.dims.events.axis_labels.connect(self._label_k_axis)
        self._ready()

    @property
    def shown_k(self) -> int | None:
        return self.shown.k

    def show_k(self, k=None):
        """Show K = ``k`` (default: the K chosen in the list) everywhere at once."""
        self.shown.set(self.k_choice.value if k is None else k)

    def _finished(self):
        super()._finished()
        elbow = self.plot.elbow
        if not self.cancelled and elbow is not None and self.results:
            self.shown.set(elbow)

    def _make_worker(self, request: Request):
        ks = parse_ks(self.ks.value)
        self.results = []
        self._pairs = {}
        self._stacked = []
        self.shown.reset()
        self._request = request
        self._shown_display = self.display.value
        self._peak = psnr_peak(request.data)
        self.status.value = f"sweeping K={ks[0]}..{ks[-1]} on {request.name}…{self.engine_note()}"
        return create_worker(
            sweep_or_refuse,
            self._stop,
            request.data,
            ks,
            **request.options,
            **self.options(),
            _progress={"total": len(ks), "desc": f"k-means sweep on {request.name}"},
            _start_thread=False,
            _connect=self._connections(yielded=lambda result: self._add(request, result)),
        )

    def _add(self, request: Request, result):
        if self._refused(result) or self._source_gone(request):
            return
        self.results.append(result)
        shown = show_sweep_results(
            self._viewer, request, self.results, self._shown_display, self._stacked
        )
        if self._shown_display == "stack":
            self._stacked = shown
        else:
            self._pairs[result.k] = shown
        ks = [r.k for r in self.results]
        self.shown.reset(ks)
        self.k_choice.reset_choices()
        self.plot.draw(Sweep(tuple(ks), tuple(self.results), self._peak), request.name)
        self.status.value = f"K={ks[0]}..{ks[-1]} done ({len(ks)} values)"
        self.shown.set(result.k)

    def _stacked_labels(self):
        """The stacked labels layer of the latest sweep, if it is still in the viewer."""
        if self._shown_display != "stack" or not self._stacked:
            return None
        labels = self._stacked[-1]
        return labels if labels in self._viewer.layers else None

    def _k_axis(self, stacked) -> int:
        return self._viewer.dims.ndim - stacked.ndim

    def _slider_moved(self, event=None):
        stacked = self._stacked_labels()
        if stacked is not None:
            self.shown.set(stack_k_at(stacked, self._viewer))

    def _show(self, k: int):
        """Every view to K = ``k`` (``shown.changed``)."""
        result = next((r for r in self.results if r.k == k), None)
        if result is None or self._request is None:
            return
        stacked = self._stacked_labels()
        if stacked is not None:
            axis = self._k_axis(stacked)
            index = self.shown.ks.index(k)
            if self._viewer.dims.current_step[axis] != index:
                self._viewer.dims.set_current_step(axis, index)
            self._name_k_axis(axis, k)
        for other, layers in self._pairs.items():
            for layer in layers:
                if layer in self._viewer.layers:
                    layer.visible = other == k
        if self.k_choice.value != k:
            with self.k_choice.changed.blocked():
                self.k_choice.value = k
        self.plot.highlight(k)
        self.plot.draw_palette(result, label_colors(self._request.layers, result.centers))

    def _label_k_axis(self, event=None):
        stacked = self._stacked_labels()
        if stacked is not None and self.shown.k is not None:
            self._name_k_axis(self._k_axis(stacked), self.shown.k)

    def _name_k_axis(self, axis: int, k: int):
        """The K slider's label reads the K it shows (``K=4``), not just "K"."""
        labels = list(self._viewer.dims.axis_labels)
        if labels[axis] != f"K={k}":
            labels[axis] = f"K={k}"
            self._viewer.dims.axis_labels = labels

    def keep(self):
        """Add the shown K's pair as ordinary result layers (kept after later sweeps)."""
        result = next((r for r in self.results if r.k == self.shown.k), None)
        if result is None or self._request is None:
            self._refuse("nothing to keep yet: run a sweep first")
            return
        kept = show_result(self._viewer, self._request, result)
        mine = {id(unwrapped(layer)) for layer in kept}  # no longer the sweep's to hide
        self._pairs = {
            k: pair
            for k, pair in self._pairs.items()
            if not mine & {id(unwrapped(layer)) for layer in pair}
        }
        for layer in kept:
            layer.visible = True
        self._viewer.layers.selection.active = kept[-1]
        self.status.value = f"kept K={result.k}: {kept[-1].name!r} (export it from the dock)"

    def toggle_grid(self):
        """Switch napari's grid view (side by side layers) on or off."""
        settings = grid(self._viewer)
        settings.enabled = not settings.enabled
