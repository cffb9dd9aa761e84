"""What both docks share: the source layer, the k-means options, Run/Cancel, workers."""

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
    FloatSpinBox,
    Label,
    PushButton,
    Select,
    SpinBox,
    create_widget,
)
from napari.layers import Image, Labels, Shapes
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import QEvent, QObject, QThreadPool, QTimer
from qtpy.QtWidgets import QApplication, QSizePolicy
from superqt import QCollapsible

from .._core.cancel import Cancelled, cancellable
from .._core.fast import prepare
from .._core.options import bounds, choices, default, describe, kind, optional
from .._core.quantize import quantize
from .._core.sweep import iter_sweep, sweep
from .._napari.layers import METADATA_KEY, sweep_layer
from .._napari.request import Request, request_for

if TYPE_CHECKING:
    import napari

# Cancelled runs stop at the engines' next checkpoint, within about a second (a long
# OpenCV call runs in a worker process that the cancel ends).
SHUTDOWN_WAIT_MS = 3_000

# what a result's status ends with when the numpy stand-in made it (a computer's first run)
STAND_IN = "(the fast engine's numpy stand-in)"


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


class KQuantDock(Container):
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
        # long content scrolls: both docks fit a 1366 x 768 screen whatever is unfolded
        super().__init__(labels=True, scrollable=True)
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
        self.features = Select(
            choices=self._feature_choices,
            value=[],
            label="with layers",
            tooltip=tooltip(
                "channel_axis",
                "Here: the image and these single-channel layers clustered together "
                "(e.g. fluorescence channels): each pixel is the vector of their values.",
            ),
        )
        self.features.native.setMaximumHeight(80)
        self.image.changed.connect(lambda *_: self.features.reset_choices())
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
            self.features,
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
        # napari's remove_dock_widget only takes the dock out of its window (no destroyed)
        self._removal = RemovalWatch(self.native, self._shutdown)
        QApplication.instance().aboutToQuit.connect(self._shutdown)
        self._ctrl_c = CtrlCCancels(self.cancel)
        self._watch_preparation()

    def _watch_preparation(self) -> None:
        """Prepare the fast engine as the dock opens, and say so while it lasts.

        On a computer's first run the engine's kernels compile in a background
        process (about half a minute); a person who takes a few seconds to choose
        meanwhile never waits, and runs before it is done get the numpy stand-in.
        (The preparation itself started when the package was imported.)
        """
        if not prepare.preparing():
            return
        self.status.value = f"{prepare.PREPARING} (a numpy stand-in answers meanwhile)"
        self._preparation = QTimer(self.root_native_widget)
        self._preparation.setInterval(500)

        def check():
            if prepare.preparing():
                return
            self._preparation.stop()
            if self.status.value.startswith(prepare.PREPARING):
                self.status.value = "the fast engine is ready"
            elif self.status.value.endswith(STAND_IN):  # a result of the stand-in is shown
                self.status.value += "; the fast engine is ready now"

        self._preparation.timeout.connect(check)
        self._preparation.start()

    def engine_note(self) -> str:
        """What a run's status adds while the fast engine is prepared (else nothing)."""
        method = getattr(self, "method", None)
        if method is not None and method.value == "fast" and prepare.preparing():
            return f" ({prepare.PREPARING}: its numpy stand-in answers)"
        return ""

    @property
    def native(self):
        """The scroll area around the dock's fields: what napari docks.

        napari docks a magicgui widget's ``native``; for a scrollable container that is
        the content inside the scroll area, whose minimum height (every field, the
        plot, unfolded sections) would then force napari's window taller than a
        laptop screen. Handing napari the scroll area keeps the window's minimum
        height small.
        """
        return self.root_native_widget

    def add_native(self, widget) -> None:
        """Append a Qt widget below the fields, inside the scroll area."""
        self.root_native_widget.widget().layout().addWidget(widget)

    def _ready(self):
        """Fill the choices and follow the active layer (once every field exists).

        A stretch below the last field keeps the fields together at the top when the
        dock is taller than they need (napari adds its own only around what it docks).
        """
        self.root_native_widget.widget().layout().addStretch(1)
        self.reset_choices()
        self._follow_active_layer()

    def _add_section(self, title: str, widgets: list) -> Container:
        """Append a folded section holding ``widgets``."""
        inner, section = collapsible(title, widgets)
        self._sections.append(inner)
        self.add_native(section)
        return inner

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

    def request(self, planes: str | None = None) -> Request:
        """The array and options the widget's inputs describe (ValueError when invalid).

        ``planes``: instead of the dock's choice (live runs use the current plane).
        """
        layer = self.image.value
        if layer is None:
            raise ValueError("no image layer to quantize: open or select an image layer")
        return request_for(
            self._viewer,
            [layer, *self._feature_layers()],
            mask=self.mask.value,
            planes=self.planes.value if planes is None else planes,
            fit_options=self.options(),
        )

    def _feature_choices(self, widget=None) -> list:
        """Single-channel image layers (not our results) that can join the chosen image."""
        chosen = self.image.value
        return [
            (layer.name, layer)
            for layer in self._viewer.layers
            if isinstance(layer, Image)
            and not layer.rgb
            and METADATA_KEY not in layer.metadata
            and layer is not chosen
        ]

    def _feature_layers(self) -> list:
        chosen = self.image.value
        return [layer for layer in self.features.value if layer is not chosen]

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
        return self.cancelled or refused_by(result, self._refuse)

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


class RemovalWatch(QObject):
    """Calls ``removed`` when ``widget`` is taken out of its parent (its dock is removed).

    napari's ``remove_dock_widget`` sets the docked widget's parent to None and keeps
    it alive, so ``destroyed`` does not come.
    """

    def __init__(self, widget, removed):
        super().__init__(widget)
        self._removed = removed
        widget.installEventFilter(self)

    def eventFilter(self, watched, event):
        if event.type() == QEvent.Type.ParentChange and watched.parent() is None:
            self._removed()
        return False


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


def refused_by(result, refuse) -> bool:
    """Whether ``result`` is none: a cancelled run's, or bad input (then ``refuse(message)``)."""
    if result is _CANCELLED:
        return True
    if isinstance(result, _Refused):
        refuse(result.message)
        return True
    return False


def refusing(function, stop: threading.Event):
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


def sweep_or_refuse(stop: threading.Event, *args, **kwargs):
    """Yield iter_sweep()'s results; bad input is yielded as a refusal and ends it."""
    try:
        with cancellable(stop):  # the next K stops at its first checkpoint
            yield from iter_sweep(*args, **kwargs)
    except Cancelled:
        return
    except ValueError as exc:
        yield _Refused(str(exc))


def export_steps(stop: threading.Event, bands):
    """Yield an export's progress; a cancel stops it and removes the partial export."""
    try:
        with cancellable(stop):
            yield from bands
    except Cancelled:
        return
