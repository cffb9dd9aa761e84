"""Cooperative cancellation of a run in progress (core: standard library only).

A caller that may want to stop a run (the widgets' Cancel button, closing the viewer)
runs it inside :func:`cancellable` with a ``threading.Event``; the engines call
:func:`checkpoint` between their stages, iterations and blocks, which raises
:class:`Cancelled` once the event is set. Outside :func:`cancellable` a checkpoint
costs one attribute lookup and never raises.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_local = threading.local()


class Cancelled(Exception):
    """The run was cancelled before it finished."""


@contextmanager
def cancellable(event: threading.Event) -> Iterator[threading.Event]:
    """Let :func:`checkpoint` calls on this thread stop the run once ``event`` is set."""
    previous = getattr(_local, "event", None)
    _local.event = event
    try:
        yield event
    finally:
        _local.event = previous


def checkpoint() -> None:
    """Raise :class:`Cancelled` if the run on this thread was asked to stop."""
    event = getattr(_local, "event", None)
    if event is not None and event.is_set():
        raise Cancelled("cancelled")
