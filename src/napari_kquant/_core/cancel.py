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


def active() -> bool:
    """Whether the run on this thread can be cancelled (it runs inside :func:`cancellable`)."""
    return getattr(_local, "event", None) is not None


def checkpoint() -> None:
    """Raise :class:`Cancelled` if the run on this thread was asked to stop."""
    event = getattr(_local, "event", None)
    if event is not None and event.is_set():
        raise Cancelled("cancelled")


@contextmanager
def serial() -> Iterator[None]:
    """Run every :func:`on_threads` call inside in order, on this thread.

    For work inside a task of a scheduler that already runs one task per core (a
    dask block): threads of our own would only compete with its threads.
    """
    before = getattr(_local, "worker", False)
    _local.worker = True
    try:
        yield
    finally:
        _local.worker = before


def on_threads(function, items, threads: int) -> list:
    """``[function(item) for item in items]`` on up to ``threads`` threads, in order.

    Each worker thread sees this thread's cancel event, so :func:`checkpoint` in
    ``function`` stops the run there too (the exception comes back here). The
    threads are kept between calls (:func:`_shared_pool`): starting them cost
    about 2 ms a call, as much as a whole small fit. This thread does one share
    of the work itself, and a call from a worker thread runs in order there (a
    nested call never waits for the pool it runs on).
    """
    items = list(items)
    if threads < 2 or len(items) < 2 or getattr(_local, "worker", False):
        return [function(item) for item in items]
    event = getattr(_local, "event", None)
    results = [None] * len(items)
    claim = iter(range(len(items)))
    lock = threading.Lock()
    stop = threading.Event()  # a failure anywhere: nobody claims another item

    def drain():
        try:
            while not stop.is_set():
                with lock:
                    index = next(claim, None)
                if index is None:
                    return
                if event is None:
                    results[index] = function(items[index])
                else:
                    with cancellable(event):
                        results[index] = function(items[index])
        except BaseException:
            stop.set()
            raise

    helpers = [_shared_pool().submit(drain) for _ in range(min(threads, len(items)) - 1)]
    try:
        drain()
    finally:
        # A helper not started yet would find nothing left: it is not waited for (a
        # worker thread idle for a while took 0.4 to 1.5 ms to wake on a VM, longer
        # than the whole work of a small table)
        failures = [helper.exception() for helper in helpers if not helper.cancel()]
    for failure in failures:
        if failure is not None:
            raise failure
    return results


_pool = None
_pool_lock = threading.Lock()


def _mark_worker() -> None:
    _local.worker = True


def _shared_pool():
    """The process's worker threads (made on first use; again after a fork)."""
    global _pool
    import os

    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid():
            from concurrent.futures import ThreadPoolExecutor

            workers = max(1, (os.cpu_count() or 1) - 1)
            pool = ThreadPoolExecutor(
                workers, thread_name_prefix="napari-kquant", initializer=_mark_worker
            )
            _pool = (os.getpid(), pool)
        return _pool[1]


def in_child_process(function, *args, poll_s: float = 0.05):
    """``function(*args)`` run in a fresh Python process that a cancel ends at once.

    For a call that cannot stop half way (one ``cv2.kmeans`` attempt can take a
    minute): the calling thread waits for the result, checking the cancel event every
    ``poll_s`` seconds, and kills the process when it is set. ``function`` must be
    importable (a module-level function); its exceptions come back as
    :class:`ChildError` with the original message.

    The process is a new interpreter (``python -c``) that gets its call and returns
    its result through files in a private temporary folder: not a fork (forking a
    process with threads, as napari's, is unsafe) and not multiprocessing's spawn,
    which runs the caller's main script again (a napari script without a main
    guard would open a second viewer).
    """
    import os
    import pickle
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="napari-kquant-") as folder:
        call, answer = os.path.join(folder, "call"), os.path.join(folder, "answer")
        with open(call, "wb") as file:
            pickle.dump((function, args), file, protocol=pickle.HIGHEST_PROTOCOL)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        errors = open(os.path.join(folder, "errors"), "w+b")  # noqa: SIM115 (closed below)
        process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, call, answer],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )
        try:
            while True:
                try:
                    process.wait(poll_s)
                    break
                except subprocess.TimeoutExpired:
                    checkpoint()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            errors.seek(0)
            error = errors.read().decode(errors="replace")
            errors.close()
        if not os.path.exists(answer):
            if process.returncode < 0:  # a signal: the out-of-memory killer sends SIGKILL
                raise WorkerKilled(-process.returncode)
            lines = error.strip().splitlines() or [f"exit code {process.returncode}"]
            raise ChildError(f"the worker process failed: {lines[-1]}")
        with open(answer, "rb") as file:
            ok, value = pickle.load(file)
    if not ok:
        raise ChildError(value)
    return value


class ChildError(RuntimeError):
    """An exception in :func:`in_child_process`'s worker, with its message."""


class WorkerKilled(ChildError):
    """:func:`in_child_process`'s worker was ended by a signal it did not ask for."""

    def __init__(self, signal_number: int):
        import signal

        try:
            name = signal.Signals(signal_number).name
        except ValueError:
            name = f"signal {signal_number}"
        self.signal_number = signal_number
        hint = " (what the system's out-of-memory killer does)" if name == "SIGKILL" else ""
        super().__init__(f"the worker process was killed by {name}{hint}")


def interrupted(exc: BaseException | None) -> bool:
    """Whether ``exc`` is, or was caused by, a Ctrl+C (KeyboardInterrupt).

    A Ctrl+C that arrives inside a compiled kernel comes out as ``SystemError: ...
    returned a result with an exception set``, caused by the KeyboardInterrupt.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def keyboard_interrupts(function):
    """Decorate an entry point so that a Ctrl+C always raises KeyboardInterrupt."""
    import functools

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except SystemError as exc:
            if interrupted(exc):  # the kernel's SystemError says nothing more
                raise KeyboardInterrupt from None
            raise

    return wrapper


_CHILD = "from napari_kquant._core.cancel import _child; _child()"


def _child() -> None:
    """The worker process: run the pickled call, pickle what it returns or raises."""
    import pickle
    import sys

    call, answer = sys.argv[1:3]
    with open(call, "rb") as file:
        function, args = pickle.load(file)
    try:
        result = (True, function(*args))
    except Exception as exc:  # the parent raises it
        result = (False, f"{type(exc).__name__}: {exc}")
    with open(answer + ".part", "wb") as file:
        pickle.dump(result, file, protocol=pickle.HIGHEST_PROTOCOL)
    import os

    os.replace(answer + ".part", answer)
