"""The "K-means quantization" dock widget: choose an image layer and K, click Run."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, NamedTuple

from magicgui.widgets import (
    ComboBox,
    Container,
    FloatSpinBox,
    Label,
    PushButton,
    SpinBox,
    create_widget,
)
from napari.layers import Image
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QThreadPool

from ._kmeans import CRITERIA, INITS, METHODS, quantize
from ._layers import METADATA_KEY, layer_array, result_layer_data, show_layer_data

if TYPE_CHECKING:
    import napari

SHUTDOWN_WAIT_MS = 120_000


class QuantizeWidget(Container):
    """Dock widget that quantizes the chosen image layer off the GUI thread."""

    def __init__(self, napari_viewer: napari.Viewer):
        super().__init__(labels=True)
        self._viewer = napari_viewer
        self._worker = None
        self.image = create_widget(annotation=Image, label="image")
        self.k = SpinBox(value=8, min=1, max=1024, label="K")
        self.method = ComboBox(choices=METHODS, value="fast", label="method")
        self.attempts = SpinBox(value=3, min=1, max=100, label="attempts")
        self.max_iter = SpinBox(value=100, min=1, max=100_000, label="max iterations")
        self.epsilon = FloatSpinBox(
            value=0.0,
            min=0.0,
            max=1e9,
            step=0.1,
            label="epsilon",
            tooltip="Stop when no centre moves more than this (image units). "
            "0: 0.1% of the value range.",
        )
        self.criteria = ComboBox(choices=tuple(CRITERIA), value="eps+max_iter", label="criteria")
        self.init = ComboBox(choices=INITS, value="kmeans++", label="init")
        self.seed = SpinBox(value=0, min=0, max=2**31 - 1, label="seed")
        self.run_button = PushButton(text="Run")
        self.status = Label(value="")
        self.extend(
            [
                self.image,
                self.k,
                self.method,
                self.attempts,
                self.max_iter,
                self.epsilon,
                self.criteria,
                self.init,
                self.seed,
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
        return {
            "method": self.method.value,
            "attempts": self.attempts.value,
            "max_iter": self.max_iter.value,
            "epsilon": self.epsilon.value or None,
            "criteria": self.criteria.value,
            "init": self.init.value,
            "seed": self.seed.value,
        }

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
        """Start quantizing the chosen layer (results arrive as layers when done)."""
        if self.running:
            show_info("napari-kquant: a run is in progress: wait for it or cancel it")
            return
        layer = self.image.value
        if layer is None:
            show_error("napari-kquant: no image layer to quantize: open or select an image layer")
            return
        try:
            data = layer_array(layer)
        except ValueError as exc:
            show_error(f"napari-kquant: {exc}")
            return
        k = self.k.value
        worker = create_worker(
            _quantize_or_refuse,
            data,
            k,
            rgb=layer.rgb,
            **self.options(),
            _progress={"desc": f"k-means K={k} on {layer.name}"},
            _start_thread=False,
            _connect={
                "returned": lambda result: self._show(layer, result),
                "finished": self._finished,
            },
        )
        self._worker = worker
        self.run_button.text = "Cancel"
        self.status.value = f"running K={k} on {layer.name}…"
        worker.start()

    def cancel(self):
        """Stop waiting for the run in flight; its result is discarded."""
        if self._worker is not None:
            self._worker.quit()
            self.status.value = "cancelled"

    def _shutdown(self, *_):
        """Stop the run in flight and wait for its thread (the widget is going away)."""
        worker, self._worker = self._worker, None
        if worker is None:
            return
        with contextlib.suppress(TypeError, RuntimeError):
            worker.finished.disconnect(self._finished)
        worker.quit()
        # quantize() cannot be interrupted: wait for its thread to end.
        QThreadPool.globalInstance().waitForDone(SHUTDOWN_WAIT_MS)

    def _show(self, layer, result):
        if isinstance(result, _Refused):
            show_error(f"napari-kquant: {result.message}")
            self.status.value = "refused: see the notification"
            return
        if layer not in self._viewer.layers:
            show_info(f"napari-kquant: {layer.name!r} was removed during the run; result discarded")
            return
        show_layer_data(self._viewer, result_layer_data(layer, result))
        self.status.value = (
            f"K={result.k}: compactness {result.compactness:.4g}, {result.elapsed:.2f} s"
        )

    def _finished(self):
        self._worker = None
        self.run_button.text = "Run"


class _Refused(NamedTuple):
    """Bad input, reported to the user as a notification rather than a traceback."""

    message: str


def _quantize_or_refuse(*args, **kwargs):
    """Run quantize(); bad input comes back as a refusal rather than an exception.

    A worker treats raised and returned exceptions alike, as errors with a traceback.

    Anything else still raises and reaches napari's error reporting with its traceback.
    """
    try:
        return quantize(*args, **kwargs)
    except ValueError as exc:
        return _Refused(str(exc))
