"""The dock widgets: "K-means quantization" (one K) and "Compare K" (a sweep of K)."""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, NamedTuple

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
    Select,
    SpinBox,
    create_widget,
)
from napari.layers import Image, Labels, Shapes
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QThreadPool

from .._core.cancel import Cancelled, cancellable
from .._core.options import MAX_K, bounds, choices, default, describe, kind, optional
from .._core.quantize import apply_palette, quantize
from .._core.sweep import Sweep, iter_sweep, parse_ks, psnr_peak
from .._io.zarr_export import iter_export_zarr
from .._napari.layers import (
    METADATA_KEY,
    Request,
    grid,
    label_colors,
    request_for,
    result_layer_data,
    result_names,
    show_layer_data,
    show_sweep_results,
    stack_names,
    use_palette,
)

if TYPE_CHECKING:
    import napari

# Cancelled runs stop at the engines' next checkpoint, within about a second; an
# OpenCV attempt in progress cannot be interrupted and is left to end on its own.
SHUTDOWN_WAIT_MS = 5_000


# The options each dock offers, in this order; their widgets, bounds, defaults and
# tooltips all come from Options and quantize()'s docstring.
WIDGET_OPTIONS = (
    "color_space",
    "standardize",
    "method",
    "attempts",
    "max_iter",
    "epsilon",
    "criteria",
    "init",
    "seed",
)
LABELS = {
    "color_space": "colour space",
    "standardize": "standardize channels (z-score)",
    "max_iter": "max iterations",
}


def option_widget(name: str):
    """The magicgui widget for one option of Options, with its tooltip."""
    label = LABELS.get(name, name.replace("_", " "))
    tooltip = _tooltips().get(name, "")
    value = default(name)
    if kind(name) == "choice":
        return ComboBox(choices=choices(name), value=value, label=label, tooltip=tooltip)
    if kind(name) == "flag":
        return CheckBox(value=value, text=label, tooltip=tooltip)
    if kind(name) == "int":
        limits = bounds(name)
        return SpinBox(
            value=value, min=int(limits.low), max=int(limits.high), label=label, tooltip=tooltip
        )
    # a float that may be automatic: 0 shows "auto"
    return FloatSpinBox(
        value=0.0,
        min=0.0,
        max=1e9,
        step=0.1,
        label=label,
        tooltip=f"{tooltip} 0: automatic.",
    )


def _tooltips() -> dict[str, str]:
    return describe(quantize.__doc__)


class _Refused(NamedTuple):
    """Bad input, reported to the user as a notification rather than a traceback."""

    message: str


class _KQuantWidget(Container):
    """What both dock widgets share: the source layer, the k-means options, Run/Cancel.

    Work runs in a napari thread worker; the Run button reads Cancel meanwhile.
    """

    PLANE_CHOICES = (
        ("one palette for the stack", "stack"),
        ("a palette per plane", "each"),
        ("current plane only", "current"),
    )

    def __init__(self, napari_viewer: napari.Viewer, k_widgets: list, input_widgets=()):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._worker = None
        self._stop = threading.Event()  # set to cancel the run in flight
        self.image = create_widget(annotation=Image, label="image")
        self.mask = ComboBox(
            choices=self._mask_choices,
            nullable=True,
            value=None,
            label="mask",
            tooltip="Cluster only the non-zero pixels of a labels layer or inside the "
            "shapes of a shapes layer; the rest keeps label 0 and its values.",
        )
        self.planes = ComboBox(choices=self.PLANE_CHOICES, value="stack", label="nD")
        for name in WIDGET_OPTIONS:
            setattr(self, name, option_widget(name))
        self.run_button = PushButton(text="Run")
        self.status = Label(value="")
        self.extend(
            [
                self.image,
                *input_widgets,
                self.mask,
                self.planes,
                *k_widgets,
                *(getattr(self, name) for name in WIDGET_OPTIONS),
                self.run_button,
                self.status,
            ]
        )
        self.run_button.changed.connect(self._on_click)
        self._viewer.layers.selection.events.active.connect(self._follow_active_layer)
        self.reset_choices()
        self._follow_active_layer()
        # Closing the viewer (or the dock) mid-run must leave no thread behind.
        self.native.destroyed.connect(self._shutdown)

    @property
    def running(self) -> bool:
        """Whether a run is in flight."""
        return self._worker is not None

    def options(self) -> dict:
        """The quantize() options as set in the widget."""
        values = {name: getattr(self, name).value for name in WIDGET_OPTIONS}
        # a number option that may be automatic shows "auto" at its minimum
        return {
            name: None if optional(name) and kind(name) == "float" and not value else value
            for name, value in values.items()
        }

    def _mask_choices(self, widget=None) -> list:
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, (Labels, Shapes))
        ]

    def request(self) -> Request:
        """The array and options the widget's inputs describe (ValueError when invalid)."""
        layer = self.image.value
        if layer is None:
            raise ValueError("no image layer to quantize: open or select an image layer")
        return request_for(
            self._viewer,
            [layer, *self._feature_layers()],
            mask=self.mask.value,
            planes=self.planes.value,
        )

    def _feature_layers(self) -> list:
        return []

    def _follow_active_layer(self, event=None):
        active = self._viewer.layers.selection.active
        # Our own results become active when added; the source stays chosen so that
        # comparing K values is one click per K.
        if (
            isinstance(active, Image)
            and METADATA_KEY not in active.metadata
            and active in self.image.choices
        ):
            self.image.value = active

    def _on_click(self):
        if self.running:
            self.cancel()
        else:
            self.run()

    def run(self):
        """Start on the chosen layer (results arrive as layers)."""
        if self.running:
            show_info("napari-kquant: a run is in progress: wait for it or cancel it")
            return
        self._stop = threading.Event()
        try:
            worker = self._make_worker(self.request())
        except ValueError as exc:
            show_error(f"napari-kquant: {exc}")
            self.status.value = "refused: see the notification"
            return
        self._start(worker)

    def _start(self, worker):
        self._worker = worker
        self.run_button.text = "Cancel"
        worker.start()

    def _make_worker(self, request: Request):
        raise NotImplementedError

    def _connections(self, **handlers) -> dict:
        return {**handlers, "finished": self._finished}

    def cancel(self):
        """Stop the run in flight at the engines' next checkpoint; nothing more is shown."""
        if self._worker is not None:
            self._stop.set()
            self.status.value = "cancelled"

    @property
    def cancelled(self) -> bool:
        """Whether the latest run was cancelled (its late results are dropped)."""
        return self._stop.is_set()

    def _shutdown(self, *_):
        """Stop the run in flight and wait briefly for its thread (the widget is going away)."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        for signal in ("finished", "returned", "yielded", "errored"):
            with contextlib.suppress(TypeError, RuntimeError, AttributeError):
                getattr(worker, signal).disconnect()
        self._stop.set()
        QThreadPool.globalInstance().waitForDone(SHUTDOWN_WAIT_MS)

    def _refused(self, result) -> bool:
        if self.cancelled or result is _CANCELLED:
            return True
        if isinstance(result, _Refused):
            show_error(f"napari-kquant: {result.message}")
            self.status.value = "refused: see the notification"
            return True
        return False

    def _source_gone(self, request: Request) -> bool:
        gone = [layer for layer in request.layers if layer not in self._viewer.layers]
        if not gone:
            return False
        show_info(f"napari-kquant: {gone[0].name!r} was removed during the run; result discarded")
        self._stop.set()
        return True

    def _finished(self):
        self._worker = None
        self.run_button.text = "Run"
        if self.cancelled:
            self.status.value = "cancelled"


class QuantizeWidget(_KQuantWidget):
    """Dock widget that quantizes the chosen image layer at one K, off the GUI thread."""

    def __init__(self, napari_viewer: napari.Viewer):
        self.k = SpinBox(value=8, min=1, max=MAX_K, label="K")
        self.features = Select(
            choices=(),
            value=[],
            label="with layers",
            tooltip="Cluster on the image and these single-channel layers together "
            "(e.g. fluorescence channels): each pixel is the vector of their values.",
        )
        self.features.native.setMaximumHeight(80)
        self.palette_from = ComboBox(
            choices=(),
            nullable=True,
            value=None,
            label="palette from",
            tooltip="Apply the palette of an earlier result instead of fitting one: "
            "every pixel takes its nearest centre (K is the palette's).",
        )
        super().__init__(napari_viewer, [self.k], [self.features, self.palette_from])
        self.last = None  # (request, result) of the latest run, for export
        self.export_path = FileEdit(mode="w", filter="*.zarr", label="export to")
        self.export_replace = CheckBox(
            value=False,
            text="replace an earlier export there",
            tooltip="Replace a zarr folder that napari-kquant exported before. Other "
            "files and folders are never replaced.",
        )
        self.export_button = PushButton(text="Export result as OME-Zarr")
        self.extend([self.export_path, self.export_replace, self.export_button])
        self.export_button.changed.connect(self.export)
        # the choices read the viewer's layers, known from here on
        self.features.choices = self._feature_choices
        self.palette_from.choices = self._palette_choices

    def _feature_choices(self, widget=None) -> list:
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Image) and not layer.rgb and METADATA_KEY not in layer.metadata
        ]

    def _palette_choices(self, widget=None) -> list:
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Labels)
            and isinstance(layer.metadata.get(METADATA_KEY, {}).get("centers"), list)
        ]

    def _feature_layers(self) -> list:
        chosen = self.image.value
        return [layer for layer in self.features.value if layer is not chosen]

    def _make_worker(self, request: Request):
        connect = self._connections(returned=lambda result: self._show(request, result))
        palette_layer = self.palette_from.value
        if palette_layer is not None:
            palette = use_palette(request, palette_layer)
            self.status.value = f"applying the palette of {palette_layer.name}…"
            return create_worker(
                _refusing(apply_palette, self._stop),
                request.data,
                palette,
                **request.options,
                _progress={"desc": f"palette of {palette_layer.name} on {request.name}"},
                _start_thread=False,
                _connect=connect,
            )
        k = self.k.value
        self.status.value = f"running K={k} on {request.name}…"
        return create_worker(
            _refusing(quantize, self._stop),
            request.data,
            k,
            **request.options,
            **self.options(),
            _progress={"desc": f"k-means K={k} on {request.name}"},
            _start_thread=False,
            _connect=connect,
        )

    def _show(self, request: Request, result):
        if self._refused(result) or self._source_gone(request):
            return
        show_layer_data(self._viewer, result_layer_data(request, result))
        self.last = (request, result)
        lazy = " (lazy: chunks are computed as you view them)" if result.params.get("lazy") else ""
        self.status.value = (
            f"K={result.k}: compactness {result.compactness:.4g}, {result.elapsed:.2f} s{lazy}"
        )

    def export(self):
        """Write the latest result as OME-Zarr (labels and quantized image), chunk by chunk."""
        if self.running:
            show_info("napari-kquant: a run is in progress: wait for it or cancel it")
            return
        if self.last is None:
            show_error("napari-kquant: nothing to export yet: run a quantization first")
            return
        path = str(self.export_path.value)
        if not path or path == ".":
            show_error("napari-kquant: choose where to export (a folder name ending in .zarr)")
            return
        try:
            bands = iter_export_zarr(self.last[1], path, overwrite=self.export_replace.value)
        except ValueError as exc:
            show_error(f"napari-kquant: {exc}")
            self.status.value = "export refused: see the notification"
            return
        self._stop = threading.Event()
        self.status.value = f"exporting to {path}…"

        def exported(_):
            if not self.cancelled:
                self.status.value = f"exported to {path}"

        worker = create_worker(
            _export_steps,
            self._stop,
            bands,
            _progress={"desc": f"export to {path}"},
            _start_thread=False,
            _connect=self._connections(
                yielded=lambda done: setattr(self.status, "value", f"exported {done[0]}/{done[1]}"),
                returned=exported,
                errored=lambda exc: show_error(f"napari-kquant: export failed: {exc}"),
            ),
        )
        self._start(worker)


class CompareWidget(_KQuantWidget):
    """Dock widget that quantizes the chosen layer at several K and helps pick one.

    Results appear as a pair of layers per K or as one stacked pair with a K slider.
    An elbow plot (compactness and PSNR against K, the kneedle elbow marked) and the
    palette of the chosen K are drawn in the widget; clicking a point of the plot or
    choosing a K in the list shows that K.
    """

    def __init__(self, napari_viewer: napari.Viewer):
        self.ks = LineEdit(value="2..8", label="K values", tooltip="e.g. 2..16 or 2,4,8")
        self.display = ComboBox(
            choices=[("one layer pair per K", "layers"), ("stacked, K slider", "stack")],
            value="layers",
            label="show as",
        )
        super().__init__(napari_viewer, [self.ks, self.display])
        # a sweep compares K on one palette per K: no per-plane palettes
        self.planes.choices = [c for c in self.PLANE_CHOICES if c[1] != "each"]
        self.run_button.text = "Run sweep"
        self.grid_button = PushButton(text="Grid view on/off")
        self.k_choice = ComboBox(choices=[], label="show K")
        self.extend([self.k_choice, self.grid_button])
        self.grid_button.changed.connect(self.toggle_grid)
        self.k_choice.changed.connect(self.show_k)
        self.results = []
        self._layer = None
        self._shown_display = "layers"
        self.plot = SweepPlot()
        self.plot.on_pick = self.show_k
        self.native.layout().addWidget(self.plot.canvas)
        self._peak = 1.0

    def _finished(self):
        super()._finished()
        self.run_button.text = "Run sweep"

    def _make_worker(self, request: Request):
        ks = parse_ks(self.ks.value)
        layer = request.layers[0]
        self.results = []
        self._layer = layer
        self._shown_display = self.display.value
        self._peak = psnr_peak(request.data)
        self.status.value = f"sweeping K={ks[0]}..{ks[-1]} on {layer.name}…"
        return create_worker(
            _sweep_or_refuse,
            self._stop,
            request.data,
            ks,
            **request.options,
            **self.options(),
            _progress={"total": len(ks), "desc": f"k-means sweep on {layer.name}"},
            _start_thread=False,
            _connect=self._connections(yielded=lambda result: self._add(request, result)),
        )

    def _add(self, request: Request, result):
        layer = request.layers[0]
        if self._refused(result) or self._source_gone(request):
            return
        self.results.append(result)
        show_sweep_results(self._viewer, layer, self.results, self._shown_display)
        ks = [r.k for r in self.results]
        self.k_choice.choices = ks
        self.plot.draw(Sweep(tuple(ks), tuple(self.results), self._peak), layer)
        with self.k_choice.changed.blocked():
            self.k_choice.value = result.k
        self.plot.draw_palette(result, label_colors(layer, result.centers))
        self.status.value = f"K={ks[0]}..{ks[-1]} done ({len(ks)} values)"

    def show_k(self, k=None):
        """Show the layers of K = ``k`` (default: the K chosen in the list)."""
        k = self.k_choice.value if k is None else k
        if k is None or self._layer is None:
            return
        result = next((r for r in self.results if r.k == k), None)
        if result is None:
            return
        if self._shown_display == "stack":
            image_name, _ = stack_names(self._layer.name)
            if image_name in self._viewer.layers:
                stacked = self._viewer.layers[image_name]
                axis = self._viewer.dims.ndim - stacked.ndim
                self._viewer.dims.set_current_step(axis, [r.k for r in self.results].index(k))
        else:
            for other in self.results:
                for name in result_names(self._layer.name, other.k):
                    if name in self._viewer.layers:
                        self._viewer.layers[name].visible = other.k == k
        self.plot.draw_palette(result, label_colors(self._layer, result.centers))
        if self.k_choice.value != k:
            with self.k_choice.changed.blocked():
                self.k_choice.value = k

    def toggle_grid(self):
        """Switch napari's grid view (side by side layers) on or off."""
        settings = grid(self._viewer)
        settings.enabled = not settings.enabled


class SweepPlot:
    """Matplotlib canvas with the elbow plot and the chosen K's palette."""

    def __init__(self):
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 3.6), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(300)
        self.curve, self.palette = self.figure.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]})
        self.psnr_axis = self.curve.twinx()
        self.line = None
        self.on_pick = None
        self.canvas.mpl_connect("pick_event", self._picked)

    def draw(self, sweep: Sweep, layer):
        """Compactness and PSNR against K, with the suggested elbow."""
        from matplotlib.ticker import MaxNLocator

        ks, compactness, psnr = sweep.ks, sweep.compactness, sweep.psnr
        self.curve.clear()
        self.psnr_axis.clear()
        # clear() puts a twin axis back on the left
        self.psnr_axis.yaxis.tick_right()
        self.psnr_axis.yaxis.set_label_position("right")
        (self.line,) = self.curve.plot(ks, compactness, "o-", color="tab:blue", picker=6)
        self.psnr_axis.plot(ks, psnr, "s--", color="tab:orange", markersize=3)
        self.curve.set_xlabel("K")
        self.curve.xaxis.set_major_locator(MaxNLocator(integer=True))
        self.curve.set_ylabel("compactness", color="tab:blue")
        self.psnr_axis.set_ylabel("PSNR (dB)", color="tab:orange")
        elbow = sweep.elbow()
        if elbow is not None:
            self.curve.axvline(elbow, color="grey", linestyle=":")
            self.curve.set_title(f"{layer.name}: elbow at K={elbow}", fontsize=9)
        self.elbow = elbow
        self.canvas.draw_idle()

    def draw_palette(self, result, colors):
        """The centre colours of ``result``, each as wide as its pixel fraction."""
        self.palette.clear()
        left = 0.0
        for label, (fraction, color) in enumerate(zip(result.fractions, colors, strict=True), 1):
            self.palette.barh(0, fraction, left=left, color=color[:3], edgecolor="white")
            if fraction > 0.06:
                self.palette.text(
                    left + fraction / 2,
                    0,
                    f"{label}\n{fraction:.0%}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if sum(color[:3]) < 1.5 else "black",
                )
            left += fraction
        self.palette.set_xlim(0, 1)
        self.palette.set_axis_off()
        self.palette.set_title(f"palette K={result.k} (label, fraction)", fontsize=8)
        self.canvas.draw_idle()

    def _picked(self, event):
        if event.artist is self.line and self.on_pick is not None and len(event.ind):
            self.on_pick(int(self.line.get_xdata()[event.ind[0]]))


_CANCELLED = object()  # what a cancelled run returns


def _refusing(function, stop: threading.Event):
    """``function`` run cancellably, returning bad input as a refusal rather than raising it.

    A worker treats raised and returned exceptions alike, as errors with a traceback;
    anything other than bad input still reaches napari's error reporting that way.
    """

    def run(*args, **kwargs):
        try:
            with cancellable(stop):
                return function(*args, **kwargs)
        except Cancelled:
            return _CANCELLED
        except ValueError as exc:
            return _Refused(str(exc))

    return run


def _sweep_or_refuse(stop: threading.Event, *args, **kwargs):
    """Yield iter_sweep()'s results; bad input is yielded as a refusal and ends it."""
    try:
        with cancellable(stop):  # the next K stops at its first checkpoint
            yield from iter_sweep(*args, **kwargs)
    except Cancelled:
        return
    except ValueError as exc:
        yield _Refused(str(exc))


def _export_steps(stop: threading.Event, bands):
    """Yield an export's progress; a cancel stops it and removes the partial export."""
    try:
        with cancellable(stop):
            yield from bands
    except Cancelled:
        return
