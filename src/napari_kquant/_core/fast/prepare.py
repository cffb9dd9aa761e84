"""The fast engine's first use on a computer: its kernels compiled in the background (core).

numba compiles the kernels (:mod:`.kernels`) on first use, 15-45 s on two cores,
and caches the machine code on disk. Nobody should wait for that, so:

* when the package is imported, a daemon thread (:func:`start`) looks for a
  *stamp* beside numba's cache of the kernels. The stamp is written once a run of
  the warm-up (:mod:`..warmup`: every common path of the engine, on small images)
  has filled that cache, and is named after what numba's cache depends on (the
  kernels' file, numba's and Python's versions).
* with the stamp, the thread loads the cached kernels into this process, so that
  the first call does not pay for that either.
* without it, the thread starts ``python -m napari_kquant._core.warmup`` in its
  own session at low priority (it finishes even when this process ends;
  concurrent ones queue on a lock of the cache folder and find the stamp), and
  meanwhile :func:`ready` is False: the engine answers with its numpy stand-in
  (:mod:`.plain`). Once the stamp is there, calls use the kernels.
* where nothing can be cached (no writable folder at all) the thread compiles
  the kernels in this process, and the stand-in answers until it is done.

Whether a call uses the kernels is decided by the stamp alone, never by how far a
thread has come: the same call on the same computer state gives the same result.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import pickle
import subprocess
import sys
import threading
import warnings

PREPARING = "preparing the fast engine — first run on this computer"
CHILD = "NAPARI_KQUANT_PREPARING"  # set in the background process (it must not start one)
WARMUP = "napari_kquant._core.warmup"  # the background process's module

_lock = threading.Lock()
_thread: threading.Thread | None = None
_done = threading.Event()  # the thread has finished (kernels loaded, compiled or given up)
_native = threading.Event()  # the thread has begun running compiled code (see atexit below)
_exiting = threading.Event()  # the process is ending: nothing more is warmed
NATIVE_EXIT_WAIT_S = 60.0  # at exit, the longest wait for that code to finish
_compiled_here = threading.Event()  # compiled in this process (nothing could be cached)
_stamp_seen = False
_forced: bool | None = None  # tests and the background process decide themselves
_exercise = None  # the warm-up (given by the package: it runs the public entry points)
_warm = None  # what else a first call would pay for once (given by the package)


def stamp_path() -> str | None:
    """Where the stamp of a filled kernel cache goes (None: nothing can be cached)."""
    import numba

    from . import kernels

    if not kernels.CACHE:
        return None
    try:
        folder = kernels.lloyd._cache._cache_path  # type: ignore[attr-defined]  # numba's folder
    except AttributeError:  # a numba without it: use the kernels as numba decides
        return None
    source = os.stat(kernels.__file__)
    key = f"{numba.__version__}|{sys.version}|{source.st_mtime}|{source.st_size}"
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return os.path.join(folder, f"napari-kquant-ready-{digest}.pkl")


def ready() -> bool:
    """Whether the engine calls its kernels (cached on disk, or compiled here)."""
    global _stamp_seen
    if _forced is not None:
        return _forced
    if _stamp_seen or _compiled_here.is_set():
        return True
    path = stamp_path()
    _stamp_seen = path is not None and os.path.exists(path)
    return _stamp_seen


def preparing() -> bool:
    """Whether the kernels are being prepared and the stand-in answers meanwhile."""
    return not ready()


def status() -> str | None:
    """What to tell a person now: :data:`PREPARING` while it lasts, else None."""
    return PREPARING if preparing() else None


@contextlib.contextmanager
def forced(use_kernels: bool):
    """Use the kernels (True) or the numpy stand-in (False) whatever the stamp says."""
    global _forced
    before, _forced = _forced, use_kernels
    try:
        yield
    finally:
        _forced = before


def start(exercise, warm=None) -> None:
    """Begin preparing the kernels for this process (once; returns at once).

    ``exercise``: the warm-up that compiles the kernels where nothing can be cached
    (:func:`napari_kquant._core.warmup.exercise`); ``warm``: run once the kernels
    are loaded (:func:`napari_kquant._core.warmup.warm`).
    """
    global _thread, _exercise, _warm
    if os.environ.get(CHILD):
        return
    with _lock:
        if _thread is None:
            _exercise, _warm = exercise, warm
            atexit.register(_let_native_work_finish)
            _thread = threading.Thread(target=_prepare, name="napari-kquant-prepare", daemon=True)
            _thread.start()


def wait(timeout: float | None = None) -> bool:
    """Wait until the preparation (started on import) is done; whether the kernels are ready."""
    if _thread is not None:
        _done.wait(timeout)
    return ready()


def _prepare() -> None:
    try:
        path = stamp_path()
        if path is None:  # nowhere to cache: compile here, the stand-in answers meanwhile
            _compile_here()
            return
        if not os.path.exists(path):
            problem = _run_background()
            if not os.path.exists(path):
                warnings.warn(
                    f"napari-kquant: the fast engine's kernels could not be prepared in the "
                    f"background ({problem}); they are compiled in this process",
                    RuntimeWarning,
                    stacklevel=1,
                )
                _compile_here()
                return
        _native.set()  # loading and warming run compiled code (numba, OpenCV) from here
        _load(path)
    except Exception as error:
        warnings.warn(
            f"napari-kquant: preparing the fast engine failed ({error!r})",
            RuntimeWarning,
            stacklevel=1,
        )
    finally:
        _done.set()


def _let_native_work_finish() -> None:
    """At exit, let the thread finish loading the kernels (a few tenths of a second).

    A process that ends (a Ctrl+C on the command line, say) while that thread is
    inside numba's or OpenCV's compiled code is aborted by the C++ runtime
    ("terminate called without an active exception") instead of exiting cleanly.
    While the thread only waits for the background process, nothing is waited for.
    """
    _exiting.set()
    if _native.is_set():
        _done.wait(NATIVE_EXIT_WAIT_S)


def _compile_here() -> None:
    _native.set()
    if _exercise is None:  # (start() was never given the warm-up)
        return
    with forced(True):
        _exercise()
    _compiled_here.set()


def _run_background() -> str:
    """Run the background preparation and wait for it; what went wrong, if anything."""
    import numba

    env = dict(os.environ, **{CHILD: "1"})
    cache = getattr(numba.config, "CACHE_DIR", "")  # the kernels may have moved the cache
    if cache:
        env["NUMBA_CACHE_DIR"] = cache
    process = subprocess.Popen(
        [sys.executable, "-m", WARMUP],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # it finishes filling the cache even if this process ends
    )
    _, errors = process.communicate()
    lines = errors.decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else f"exit {process.returncode}"


def _load(path: str) -> None:
    """Load every kernel signature the stamp lists from numba's cache."""
    from . import kernels

    with open(path, "rb") as file:
        signatures = pickle.load(file)
    for name, sigs in signatures.items():
        dispatcher = getattr(kernels, name, None)
        for sig in sigs:
            if dispatcher is not None:
                dispatcher.compile(sig)
    if _warm is not None and not _exiting.is_set():
        try:
            _warm()
        except RuntimeError as error:
            # the process is ending: its worker threads were shut down ("cannot
            # schedule new futures after shutdown"), and warming is for a process
            # that goes on. A command-line run that ends at once gets here.
            if "shutdown" not in str(error):
                raise


def signatures() -> dict:
    """The signatures each kernel has compiled in this process (what the stamp lists)."""
    from numba.core.registry import CPUDispatcher

    from . import kernels

    return {
        name: list(value.signatures)
        for name, value in vars(kernels).items()
        if isinstance(value, CPUDispatcher) and value.signatures
    }
