"""The dock widgets: "K-means quantization" (one K) and "Compare K" (a sweep of K)."""

from __future__ import annotations

import contextlib
import functools
import signal
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
from qtpy.QtCore import Qt, QThreadPool, QTimer
from qtpy.QtWidgets import QApplication, QSizePolicy
from superqt import QCollapsible

from .._core.cancel import Cancelled, cancellable
from .._core.options import MAX_K, bounds, choices, default, describe, kind, optional
from .._core.quantize import apply_palette, quantize
from .._core.sweep import Sweep, iter_sweep, parse_ks, psnr_peak, sweep
from .._io.zarr_export import iter_export_zarr
from .._napari.layers import (
    METADATA_KEY,
    Request,
    grid,
    label_colors,
    placement_of,
    request_for,
    result_layer_data,
    result_names,
    show_layer_data,
    show_sweep_results,
    stack_k_at,
    stack_names,
    sweep_layer,
    use_palette,
)

if TYPE_CHECKING:
    import napari

# Cancelled runs stop at the engines' next checkpoint, within about a second (a long
# OpenCV call runs in a worker process that the cancel ends).
SHUTDOWN_WAIT_MS = 3_000


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
    # a float that may be automatic: its minimum, 0, reads "auto"
    spin = FloatSpinBox(
        value=0.0,
        min=0.0,
        max=1e9,
        step=0.1,
        label=label,
        tooltip=f"{tooltip} At 0 it reads 'auto': that default is used.",
    )
    spin.native.setSpecialValueText("auto")
    return spin


@functools.cache
def _tooltips() -> dict[str, str]:
    """Every field's tooltip, from the docstrings of the functions the docks run."""
    return {
        **describe(sweep_layer.__doc__),
        **describe(sweep.__doc__),
        **describe(quantize.__doc__),
    }


def tooltip(name: str, extra: str = "") -> str:
    """The docstring text of parameter ``name``, and ``extra`` for what the dock adds."""
    return " ".join(text for text in (_tooltips().get(name, ""), extra) if text)


def collapsible(title: str, widgets: list) -> tuple[Container, QCollapsible]:
    """``widgets`` in a labelled container inside a section the user can fold (folded)."""
    inner = Container(widgets=widgets, labels=True)
    section = QCollapsible(title)
    section.addWidget(inner.native)
    section.collapse(animate=False)
    return inner, section


class _Refused(NamedTuple):
    """Bad input, reported to the user as a notification rather than a traceback."""

    message: str


class _KQuantWidget(Container):
    """What both dock widgets share: the source layer, the k-means options, Run/Cancel.

    The essential fields come first (image, K, Run, status); the rest sits in a
    folded "advanced options" section so that the dock fits small screens. Work
    runs in a napari thread worker; the Run button reads Cancel meanwhile.
    """

    PLANE_CHOICES = (
        ("one palette for the stack", "stack"),
        ("a palette per plane", "each"),
        ("current plane only", "current"),
    )
    RUN_TEXT = "Run"

    def __init__(self, napari_viewer: napari.Viewer, essentials: list, inputs=()):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._worker = None
        self._stop = threading.Event()  # set to cancel the run in flight
        self.image = create_widget(
            annotation=Image, label="image", options={"tooltip": "The image layer to quantize."}
        )
        self.mask = ComboBox(
            choices=self._mask_choices,
            nullable=True,
            value=None,
            label="mask",
            tooltip=tooltip(
                "mask",
                "Here: the non-zero pixels of a labels layer, or the inside of the shapes "
                "of a shapes layer.",
            ),
        )
        self.planes = ComboBox(
            choices=self.PLANE_CHOICES,
            value="stack",
            label="nD",
            tooltip=tooltip("planes", "'current plane only': just the 2D plane the viewer shows."),
        )
        for name in WIDGET_OPTIONS:
            setattr(self, name, option_widget(name))
        self.run_button = PushButton(text=self.RUN_TEXT, tooltip="Run, or cancel the run")
        self.status = Label(value="", label="status")
        # long messages wrap instead of widening the dock
        self.status.native.setWordWrap(True)
        self.status.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status.native.setMinimumWidth(0)
        self.extend([self.image, *essentials, self.run_button, self.status])
        self._advanced_widgets = [
            *inputs,
            self.mask,
            self.planes,
            *(getattr(self, name) for name in WIDGET_OPTIONS),
        ]
        self._sections: list[Container] = []
        self.run_button.changed.connect(self._on_click)
        self._viewer.layers.selection.events.active.connect(self._follow_active_layer)
        # Closing the viewer (or the dock) mid-run must leave no thread behind; so must
        # napari quitting without closing its windows first (Ctrl+C in its terminal).
        self.native.destroyed.connect(self._shutdown)
        QApplication.instance().aboutToQuit.connect(self._shutdown)
        self._ctrl_c = CtrlCCancels(self.cancel)

    def _add_section(self, title: str, widgets: list) -> Container:
        """Append a folded section holding ``widgets``."""
        inner, section = collapsible(title, widgets)
        self._sections.append(inner)
        self.native.layout().addWidget(section)
        return inner

    def _ready(self):
        """Fill the choices and follow the active layer (once every field exists)."""
        self.reset_choices()
        self._follow_active_layer()

    def reset_choices(self, *_):
        """Refresh every layer list, in the folded sections too (napari calls this)."""
        super().reset_choices()
        for section in getattr(self, "_sections", ()):
            section.reset_choices()

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
            fit_options=self.options(),
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
            self._refuse(str(exc))
            return
        self._start(worker)

    def _refuse(self, message: str):
        show_error(f"napari-kquant: {message}")
        self.status.value = f"refused: {message}"

    def _start(self, worker):
        self._worker = worker
        self.run_button.text = "Cancel"
        self._ctrl_c.hold()
        worker.start()

    def _make_worker(self, request: Request):
        raise NotImplementedError

    def _connections(self, **handlers) -> dict:
        return {**handlers, "finished": self._finished}

    def cancel(self):
        """Stop the run in flight at the engines' next checkpoint; nothing more is shown."""
        if self._worker is not None:
            self._stop.set()
            self.status.value = "cancelling…"

    @property
    def cancelled(self) -> bool:
        """Whether the latest run was cancelled (its late results are dropped)."""
        return self._stop.is_set()

    def _shutdown(self, *_):
        """Stop the run in flight and wait briefly for its thread (the widget is going away)."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        for name in ("finished", "returned", "yielded", "errored"):
            with contextlib.suppress(TypeError, RuntimeError, AttributeError):
                getattr(worker, name).disconnect()
        self._stop.set()
        self._ctrl_c.release()
        QThreadPool.globalInstance().waitForDone(SHUTDOWN_WAIT_MS)

    def _refused(self, result) -> bool:
        if self.cancelled or result is _CANCELLED:
            return True
        if isinstance(result, _Refused):
            self._refuse(result.message)
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
        self._ctrl_c.release()
        self.run_button.text = self.RUN_TEXT
        if self.cancelled:
            self.status.value = "cancelled"


class QuantizeWidget(_KQuantWidget):
    """Dock widget that quantizes the chosen image layer at one K, off the GUI thread."""

    def __init__(self, napari_viewer: napari.Viewer):
        self.k = SpinBox(value=8, min=1, max=MAX_K, label="K", tooltip=tooltip("k"))
        self.features = Select(
            choices=(),
            value=[],
            label="with layers",
            tooltip=tooltip(
                "channel_axis",
                "Here: the image and these single-channel layers clustered together "
                "(e.g. fluorescence channels): each pixel is the vector of their values.",
            ),
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
        self.export_path = FileEdit(
            mode="w",
            filter="*.zarr",
            label="export to",
            tooltip="A new folder ending in .zarr: the latest result's labels and "
            "quantized image as OME-Zarr, with the palette in its attributes.",
        )
        self.export_replace = CheckBox(
            value=False,
            text="replace an earlier export there",
            tooltip="Replace a zarr folder that napari-kquant exported before. Other "
            "files and folders are never replaced.",
        )
        self.export_button = PushButton(
            text="Export result as OME-Zarr", tooltip="Write the latest result (cancellable)."
        )
        self.export_button.changed.connect(self.export)
        self._add_section("advanced options", self._advanced_widgets)
        self._add_section("export", [self.export_path, self.export_replace, self.export_button])
        # the choices read the viewer's layers, known from here on
        self.features.choices = self._feature_choices
        self.palette_from.choices = self._palette_choices
        self.image.changed.connect(lambda *_: self.features.reset_choices())
        self._ready()

    def _feature_choices(self, widget=None) -> list:
        chosen = self.image.value
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Image)
            and not layer.rgb
            and METADATA_KEY not in layer.metadata
            and layer is not chosen
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
            self._refuse("nothing to export yet: run a quantization first")
            return
        path = str(self.export_path.value)
        if not path or path == ".":
            self._refuse("choose where to export (a folder name ending in .zarr)")
            return
        try:
            request, result = self.last
            bands = iter_export_zarr(
                result,
                path,
                overwrite=self.export_replace.value,
                placement=placement_of(request.layers[0]),  # the source's calibration
                colors=label_colors(request.layers, result.centers),  # as napari shows them
                channel_names=[layer.name for layer in request.layers]
                if len(request.layers) > 1
                else None,
            )
        except ValueError as exc:
            self._refuse(f"export: {exc}")
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
    palette of the shown K are drawn in the widget.

    One K is shown at a time, and everything names the same one: the K slider of a
    stacked sweep, the "show K" list, the highlighted point of the plot, the palette,
    the viewer's text overlay and the visible layers. Moving any of them (the slider,
    the list, a click on the plot) moves the others; while a sweep runs the newest K
    is shown, and when it ends the elbow K.
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
        self.k_choice = ComboBox(
            choices=[],
            label="show K",
            tooltip="The K shown on the canvas, in the palette and on the plot. The K "
            "slider of a stacked sweep and clicks on the plot's points choose it too.",
        )
        self.grid_button = PushButton(
            text="Grid view on/off", tooltip="napari's grid view: the layers side by side."
        )
        self.extend([self.k_choice, self.grid_button])
        self.grid_button.changed.connect(self.toggle_grid)
        self.k_choice.changed.connect(self.show_k)
        self.results = []
        self._request = None
        self._shown_display = "layers"
        self.shown_k = None
        self.plot = SweepPlot()
        self.plot.on_pick = self.show_k
        self.native.layout().addWidget(self.plot.canvas)
        self._add_section("advanced options", self._advanced_widgets)
        self._peak = 1.0
        self._viewer.dims.events.current_step.connect(self._slider_moved)
        self._ready()

    def _finished(self):
        super()._finished()
        elbow = self.plot.elbow
        if not self.cancelled and elbow is not None and self.results:
            self.show_k(elbow)

    def _make_worker(self, request: Request):
        ks = parse_ks(self.ks.value)
        layer = request.layers[0]
        self.results = []
        self._request = request
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
        if self._refused(result) or self._source_gone(request):
            return
        self.results.append(result)
        show_sweep_results(self._viewer, request, self.results, self._shown_display)
        ks = [r.k for r in self.results]
        with self.k_choice.changed.blocked():
            self.k_choice.choices = ks
        self.plot.draw(Sweep(tuple(ks), tuple(self.results), self._peak), request.name)
        self.status.value = f"K={ks[0]}..{ks[-1]} done ({len(ks)} values)"
        self.show_k(result.k)

    def _stacked_labels(self):
        """The stacked labels layer of the latest sweep, if it is still in the viewer."""
        if self._request is None or self._shown_display != "stack":
            return None
        name = stack_names(self._request.name, self._request.suffix)[1]
        return self._viewer.layers[name] if name in self._viewer.layers else None  # noqa: SIM401

    def _slider_moved(self, event=None):
        stacked = self._stacked_labels()
        if stacked is None:
            return
        k = stack_k_at(stacked, self._viewer)
        if k is not None and k != self.shown_k:
            self.show_k(k)

    def show_k(self, k=None):
        """Show K = ``k`` (default: the K chosen in the list) everywhere at once."""
        k = self.k_choice.value if k is None else k
        result = next((r for r in self.results if r.k == k), None)
        if result is None or self._request is None:
            return
        self.shown_k = k
        if self._shown_display == "stack":
            stacked = self._stacked_labels()
            if stacked is not None:
                axis = self._viewer.dims.ndim - stacked.ndim
                index = [r.k for r in self.results].index(k)
                if self._viewer.dims.current_step[axis] != index:
                    self._viewer.dims.set_current_step(axis, index)
        else:
            for other in self.results:
                for name in result_names(self._request.name, other.k, self._request.suffix):
                    if name in self._viewer.layers:
                        self._viewer.layers[name].visible = other.k == k
        if self.k_choice.value != k:
            with self.k_choice.changed.blocked():
                self.k_choice.value = k
        self.plot.highlight(k)
        self.plot.draw_palette(result, label_colors(self._request.layers, result.centers))

    def toggle_grid(self):
        """Switch napari's grid view (side by side layers) on or off."""
        settings = grid(self._viewer)
        settings.enabled = not settings.enabled


class SweepPlot:
    """Matplotlib canvas with the elbow plot and the shown K's palette.

    A click anywhere over the curve picks the nearest K (by its x position); hovering
    near a point shows its figures and a pointing hand.
    """

    HOVER_PX = 12  # how near (in pixels) the pointer must be to a point to show it
    EXPLAINED = (
        "compactness: the sum of squared distances of the pixels to their centres, in "
        "the clustering space (lower: tighter clusters). PSNR: peak signal-to-noise ratio "
        "of the quantized image against the source, in dB (higher: closer). The dotted "
        "line marks the elbow, where more K stops paying. Click a point to show that K."
    )

    def __init__(self):
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 3.0), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(200)
        self.canvas.setToolTip(self.EXPLAINED)
        self.curve, self.palette = self.figure.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]})
        self.psnr_axis = self.curve.twinx()
        self.line = None
        self.marker = None
        self.hover = None
        self.elbow = None
        self.ks: tuple = ()
        self.shown_k = None
        self._figures: dict = {}
        self.on_pick = None
        self.canvas.mpl_connect("button_press_event", self._clicked)
        self.canvas.mpl_connect("motion_notify_event", self._moved)

    def draw(self, sweep: Sweep, title: str):
        """Compactness and PSNR against K, with the suggested elbow."""
        from matplotlib.ticker import EngFormatter, MaxNLocator

        ks, compactness, psnr = sweep.ks, sweep.compactness, sweep.psnr
        self.ks = tuple(ks)
        self.curve.clear()
        self.psnr_axis.clear()
        # clear() puts a twin axis back on the left
        self.psnr_axis.yaxis.tick_right()
        self.psnr_axis.yaxis.set_label_position("right")
        (self.line,) = self.curve.plot(ks, compactness, "o-", color="tab:blue")
        self.psnr_axis.plot(ks, psnr, "s--", color="tab:orange", markersize=3)
        self.curve.set_xlabel("K")
        self.curve.xaxis.set_major_locator(MaxNLocator(integer=True))
        # 1.2 G rather than an offset text "1e9" over the title
        self.curve.yaxis.set_major_formatter(EngFormatter(places=1, sep=""))
        self.curve.set_ylabel("compactness (SSE)", color="tab:blue")
        self.psnr_axis.set_ylabel("PSNR (dB)", color="tab:orange")
        self.elbow = sweep.elbow()
        if self.elbow is not None:
            self.curve.axvline(self.elbow, color="grey", linestyle=":")
            self.curve.set_title(f"{title}: elbow at K={self.elbow}", fontsize=9)
        (self.marker,) = self.psnr_axis.plot(
            [],
            [],
            "o",
            markersize=13,
            markerfacecolor="none",
            markeredgecolor="black",
            markeredgewidth=2,
            zorder=5,
        )
        self.marker.set_transform(self.curve.transData)  # drawn on top, placed on the curve
        self.hover = self.psnr_axis.annotate(
            "",
            (0, 0),
            xycoords=self.curve.transData,
            xytext=(8, 8),
            textcoords="offset points",
            fontsize=7,
            zorder=6,
            bbox={"boxstyle": "round", "fc": "lightyellow", "alpha": 0.9},
        )
        self.hover.set_visible(False)
        self._figures = dict(zip(ks, zip(compactness, psnr, strict=True), strict=True))
        self.canvas.draw_idle()

    def highlight(self, k: int):
        """Ring the point of ``k`` on the curve."""
        if self.marker is None or k not in self._figures:
            return
        self.marker.set_data([k], [self._figures[k][0]])
        self.shown_k = k
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

    def point_of(self, k: int) -> tuple[float, float]:
        """Display (pixel) coordinates of K's point on the curve, matplotlib's origin."""
        return tuple(self.curve.transData.transform((k, self._figures[k][0])))

    def nearest(self, x: float, y: float | None = None, within: float | None = None):
        """The K whose point is nearest to display position (x, y); x alone when y is None."""
        if not self.ks:
            return None
        points = {k: self.point_of(k) for k in self.ks}
        distance = {
            k: abs(px - x) if y is None else ((px - x) ** 2 + (py - y) ** 2) ** 0.5
            for k, (px, py) in points.items()
        }
        k = min(distance, key=distance.get)
        return k if within is None or distance[k] <= within else None

    def _clicked(self, event):
        if event.inaxes not in (self.curve, self.psnr_axis) or event.button != 1:
            return
        k = self.nearest(event.x)
        if k is not None and self.on_pick is not None:
            self.on_pick(k)

    def _moved(self, event):
        if self.hover is None:
            return
        over = event.inaxes in (self.curve, self.psnr_axis)
        k = self.nearest(event.x, event.y, self.HOVER_PX) if over else None
        visible = self.hover.get_visible()
        if k is None:
            if visible:
                self.hover.set_visible(False)
                self.canvas.unsetCursor()
                self.canvas.draw_idle()
            return
        compactness, psnr = self._figures[k]
        self.hover.xy = (k, compactness)
        self.hover.set_text(f"K={k}\ncompactness {compactness:.4g}\nPSNR {psnr:.1f} dB")
        self.hover.set_visible(True)
        self.canvas.setCursor(Qt.CursorShape.PointingHandCursor)
        self.canvas.draw_idle()


class CtrlCCancels:
    """While a run is in flight, Ctrl+C in napari's terminal cancels it (as Cancel does).

    Qt's event loop runs no Python while it waits, so a Ctrl+C would only be seen
    when the run ends: a timer gives the interpreter a moment every 100 ms, and the
    SIGINT handler is ours until the run ends (napari's own comes back then).
    Only on the main thread, where Python runs signal handlers.
    """

    def __init__(self, cancel):
        self._cancel = cancel
        self._previous = None
        self._timer = QTimer()
        self._timer.setInterval(100)
        self._timer.timeout.connect(lambda: None)

    def hold(self):
        if self._previous is not None or threading.current_thread() is not threading.main_thread():
            return
        self._previous = signal.signal(signal.SIGINT, self._handle)
        self._timer.start()

    def release(self):
        if self._previous is None:
            return
        with contextlib.suppress(ValueError, RuntimeError):  # interpreter or Qt going away
            self._timer.stop()
            signal.signal(signal.SIGINT, self._previous)
        self._previous = None

    def _handle(self, signum, frame):
        self._cancel()


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
