"""Live preview in the K-means dock: change K (or any option), see the result (Qt).

While **live** is on, every change of K, of an option, of the chosen layers or of the
viewed plane starts a run on what the viewer shows (:mod:`.._napari.live`) after a
short pause (changes closer together make one run). A run still in flight when the
next one starts is cancelled and its result never shown: each run has a number and
only the latest one's result reaches the layers, which are the same two live layers
updated in place. Above :data:`PREVIEW_PIXELS` a run first fits a preview on the
visible region; the full run follows once nothing has changed for
:data:`SETTLE_MS`. Runs work in threads; the GUI only builds the request and sets
the layers' data.
"""

from __future__ import annotations

import contextlib
import threading
import time

from magicgui.widgets import CheckBox
from napari.qt.threading import create_worker
from qtpy.QtCore import QTimer

from .._napari.layers import show_live_result
from .._napari.live import PREVIEW_PIXELS, live_quantize, live_refusal, plane_pixels, visible_region
from .base import KQuantDock, refused_by, refusing

# changes closer together than this make one run (typing "12" is one K, not two)
DEBOUNCE_MS = 60

# after a preview, the full-resolution run starts once nothing changed for this long
SETTLE_MS = 400

LIVE_TIP = (
    "Re-run whenever K, an option, the layers or the viewed plane change, on what the "
    "viewer shows: the current plane of a stack; above 4 Mpx a preview fitted on the "
    "visible region first, then the full result once you stop changing things. The "
    "results go to two 'live' layers, updated in place (Run still makes layers per K). "
    "Off for lazy, multiscale and very large images."
)


class LivePreview:
    """The dock's live toggle and the runs it starts (see the module docstring)."""

    def __init__(self, dock: KQuantDock, toggle: CheckBox):
        """``dock``: the K-means dock (its ``live_request`` is what a run quantizes)."""
        self.dock = dock
        self.toggle = toggle
        toggle.tooltip = LIVE_TIP
        self.layers: list = []  # the live layers, updated in place
        self.shown: list[tuple[int, int, bool]] = []  # (run, K, preview) of results shown
        self._run = 0  # the latest run's number: only its result is shown
        self._stop: threading.Event | None = None  # cancels the run in flight
        self._workers: set = set()
        self._changed_at = 0.0
        self.latency: list[float] = []  # seconds from a change to its layers (benchmarks)
        self._debounce = _single_shot(DEBOUNCE_MS, lambda: self._start(full=False))
        self._settle = _single_shot(SETTLE_MS, lambda: self._start(full=True))
        self.toggle.changed.connect(self._toggled)
        dock.image.changed.connect(self._layer_chosen)
        dock._viewer.dims.events.current_step.connect(self._plane_changed)
        self._closed = False
        self._layer_chosen()  # the layer the dock starts with

    @property
    def running(self) -> bool:
        """Whether a live run is in flight."""
        return bool(self._workers)

    def watch(self, widgets) -> None:
        """Re-run when any of ``widgets`` changes (K and every option)."""
        for widget in widgets:
            widget.changed.connect(self.changed)

    def changed(self, *_) -> None:
        """A setting changed: run shortly (a later change within DEBOUNCE_MS replaces it)."""
        if self._closed or not self.toggle.value:
            return
        self._changed_at = time.perf_counter()
        self._settle.stop()
        self._debounce.start()

    def _plane_changed(self, *_) -> None:  # (the dims slider)
        layer = self.dock.image.value
        if layer is not None and layer.ndim > 2:  # another plane of a stack is shown
            self.changed()

    def _toggled(self, on: bool) -> None:
        if on:
            self.changed()
        else:
            self.cancel()
            if self.dock.status.value.startswith("live"):
                self.dock.status.value = "live off"

    def _layer_chosen(self, *_) -> None:
        """Live is off, and cannot be turned on, for layers it cannot run on (tooltip: why)."""
        refusal = live_refusal(self.dock.image.value)
        if refusal is not None:
            self.toggle.value = False
        self.toggle.enabled = refusal is None
        self.toggle.tooltip = refusal or LIVE_TIP
        self.layers = []  # another source: its own live layers (found or made by name)
        self.changed()

    def cancel(self) -> None:
        """Stop the run in flight (its result is never shown) and any run planned."""
        self._debounce.stop()
        self._settle.stop()
        self._run += 1
        if self._stop is not None:
            self._stop.set()

    def _start(self, full: bool) -> None:
        dock = self.dock
        if not self.toggle.value:
            return
        self.cancel()  # a run still in flight is superseded
        run = self._run
        if getattr(dock, "palette_from", None) is not None and dock.palette_from.value is not None:
            dock.status.value = "live: off while a palette is chosen ('palette from'): use Run"
            return
        try:
            request = dock.live_request()
        except ValueError as exc:
            dock.status.value = f"live: {exc}"
            return
        k = dock.k.value
        region = None
        if not full and plane_pixels(request) > PREVIEW_PIXELS:
            region = visible_region(dock._viewer, request.layers[0], request)
        stop = self._stop = threading.Event()
        worker = create_worker(
            refusing(live_quantize, stop),
            request,
            k,
            dock.options(),
            region,
            _start_thread=False,
        )
        worker.returned.connect(lambda result: self._show(run, request, result, region is not None))
        worker.finished.connect(lambda: self._workers.discard(worker))
        self._workers.add(worker)
        what = "preview of K" if region is not None else "K"
        dock.status.value = f"live: {what}={k} on {request.name}…{dock.engine_note()}"
        worker.start()

    def _show(self, run: int, request, result, preview: bool) -> None:
        dock = self.dock
        if run != self._run or refused_by(result, self._refuse):
            return  # superseded, cancelled or refused
        if any(layer not in dock._viewer.layers for layer in request.layers):
            return  # the source went away meanwhile
        self.layers = show_live_result(dock._viewer, request, result, self.layers)
        self.shown.append((run, result.k, preview))
        self.latency.append(time.perf_counter() - self._changed_at)
        what = "preview (fitted on the visible region)" if preview else "full result"
        dock.status.value = f"live K={result.k}: {what}, {result.elapsed:.2f} s" + (
            " — the full result follows when you stop changing things" if preview else ""
        )
        if preview:
            self._settle.start()

    def _refuse(self, message: str) -> None:
        """Bad settings while live: said in the status line (no pop-up at every change)."""
        self.dock.status.value = f"live: refused: {message}"

    def shutdown(self) -> None:
        """Stop for good: cancel, disconnect from the viewer and the runs (the dock is closing)."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(RuntimeError):  # (Qt objects already deleted)
            self.cancel()
        with contextlib.suppress(TypeError, ValueError, RuntimeError):
            self.dock._viewer.dims.events.current_step.disconnect(self._plane_changed)
        for worker in list(self._workers):
            with contextlib.suppress(TypeError, RuntimeError):
                worker.returned.disconnect()


def _single_shot(ms: int, slot) -> QTimer:
    timer = QTimer()
    timer.setSingleShot(True)
    timer.setInterval(ms)
    timer.timeout.connect(slot)
    return timer
