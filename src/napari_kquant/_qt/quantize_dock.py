"""The "K-means quantization" dock: one K, palette reuse, OME-Zarr export."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    FileEdit,
    PushButton,
    SpinBox,
)
from napari.layers import Labels
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QThreadPool

from .._core.options import MAX_K
from .._core.quantize import apply_palette, quantize
from .._io.zarr_export import iter_export_zarr
from .._napari.layers import (
    METADATA_KEY,
    label_colors,
    palette_request,
    placement_of,
    result_behind,
    show_result,
)
from .._napari.request import Request
from .base import (
    SHUTDOWN_WAIT_MS,
    STAND_IN,
    WIDGET_OPTIONS,
    KQuantDock,
    export_steps,
    refusing,
    tooltip,
)
from .live import LivePreview

if TYPE_CHECKING:
    import napari


class QuantizeWidget(KQuantDock):
    """Dock widget that quantizes the chosen image layer at one K, off the GUI thread."""

    def __init__(self, napari_viewer: napari.Viewer):
        self.k = SpinBox(value=8, min=1, max=MAX_K, label="K", tooltip=tooltip("k"))
        self.palette_from = ComboBox(
            choices=(),
            nullable=True,
            value=None,
            label="palette from",
            tooltip="Apply the palette of an earlier result instead of fitting one: "
            "every pixel takes its nearest centre (K is the palette's).",
        )
        live = CheckBox(value=False, text="live")
        super().__init__(napari_viewer, [self.k, live], [self.palette_from])
        self.live = LivePreview(self, live)
        self.live.watch(
            [self.k, self.mask, self.features, *(getattr(self, n) for n in WIDGET_OPTIONS)]
        )
        self.last = None  # (request, result) of the latest run, for export
        self.export_path = FileEdit(
            mode="w",
            filter="*.zarr",
            label="export to",
            tooltip="A new folder ending in .zarr: the selected result's (or the latest "
            "run's) labels and quantized image as OME-Zarr, with the palette in its "
            "attributes.",
        )
        self.export_replace = CheckBox(
            value=False,
            text="replace an earlier export there",
            tooltip="Replace a zarr folder that napari-kquant exported before. Other "
            "files and folders are never replaced.",
        )
        self.export_button = PushButton(
            text="Export result as OME-Zarr",
            tooltip="Write the selected result layer's result, or the latest run's (cancellable).",
        )
        self.export_button.changed.connect(self.export)
        self._add_section("advanced options", self._advanced_widgets)
        self._add_section("export", [self.export_path, self.export_replace, self.export_button])
        # the choices read the viewer's layers, known from here on
        self.palette_from.choices = self._palette_choices
        self.palette_from.changed.connect(self._palette_chosen)
        self._ready()

    def live_request(self) -> Request:
        """What a live run quantizes: the dock's request, on the current plane of a stack."""
        layer = self.image.value
        return self.request(planes="current" if layer is not None and layer.ndim > 2 else "stack")

    def _shutdown(self, *_):
        """Also stop the live runs, and wait briefly for their threads."""
        running = self.live.running
        self.live.shutdown()
        super()._shutdown()
        if running:
            QThreadPool.globalInstance().waitForDone(SHUTDOWN_WAIT_MS)

    def _palette_choices(self, widget=None) -> list:
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Labels)
            and isinstance(layer.metadata.get(METADATA_KEY, {}).get("centers"), list)
        ]

    def _make_worker(self, request: Request):
        palette_layer = self.palette_from.value
        if palette_layer is not None:
            request, palette = palette_request(request, palette_layer)
        connect = self._connections(returned=lambda result: self._show(request, result))
        if palette_layer is not None:
            self.status.value = f"applying the palette of {palette_layer.name}…"
            return create_worker(
                refusing(apply_palette, self._stop),
                request.data,
                palette,
                **request.options,
                _progress={"desc": f"palette of {palette_layer.name} on {request.name}"},
                _start_thread=False,
                _connect=connect,
            )
        k = self.k.value
        self.status.value = f"running K={k} on {request.name}…{self.engine_note()}"
        return create_worker(
            refusing(quantize, self._stop),
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
        show_result(self._viewer, request, result)
        self.last = (request, result)
        lazy = " (lazy: chunks are computed as you view them)" if result.params.get("lazy") else ""
        stand_in = f" {STAND_IN}" if "kernels" in result.params else ""
        self.status.value = (
            f"K={result.k}: compactness {result.compactness:.4g}, {result.elapsed:.2f} s"
            f"{lazy}{stand_in}"
        )

    def exported_result(self):
        """``(request, result)`` to export: the selected result layer's, else the latest run's.

        Results of either dock count (Compare K's "keep this K" too), so a K chosen
        in a sweep is exported by selecting its layer.
        """
        behind = result_behind(self._viewer.layers.selection.active)
        return behind if behind is not None else self.last

    def _palette_chosen(self, *_):
        """K comes from the palette while one is chosen: the field says so."""
        palette_layer = self.palette_from.value
        self.k.enabled = palette_layer is None
        self.k.label = "K" if palette_layer is None else "K (the palette's)"
        if palette_layer is not None:
            centers = palette_layer.metadata.get(METADATA_KEY, {}).get("centers") or []
            with self.k.changed.blocked():
                self.k.value = min(max(len(centers), self.k.min), self.k.max)

    def export(self):
        """Write the latest result as OME-Zarr (labels and quantized image), chunk by chunk."""
        if self.running:
            show_info("napari-kquant: a run is in progress: wait for it or cancel it")
            return
        chosen = self.exported_result()
        if chosen is None:
            self._refuse("nothing to export yet: run a quantization first")
            return
        path = str(self.export_path.value)
        if not path or path == "." or not path.rstrip("/").endswith(".zarr"):
            self._refuse("choose where to export: a folder name ending in .zarr")
            return
        try:
            request, result = chosen
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
            export_steps,
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
