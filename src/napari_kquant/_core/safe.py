"""Safe writes: never delete or overwrite what napari-kquant did not make (standard library).

Every writer of the package goes through here:

* a file or folder that exists is replaced only when the caller asks (``overwrite``);
  a folder only when napari-kquant made it (``is_ours``);
* nothing is written into, over or through a protected path (the inputs, the source
  store), whatever links lead there: a hard link or a symlink at an output name is
  never written through, because outputs are written under a temporary sibling name
  and then renamed into place;
* a write that fails or is cancelled leaves no partial output, and what was at the
  path before is still there.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path


class OutputError(ValueError):
    """An output that would delete, overwrite or write into something it must not."""


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name the same file or folder (symlinks and hard links followed)."""
    first = _identity(Path(a))
    return first is not None and first == _identity(Path(b))


def overlaps(path: Path, protected: Path) -> bool:
    """Whether writing ``path`` would touch ``protected``: the same, inside, or around it."""
    path, protected = Path(os.path.abspath(path)), Path(os.path.abspath(protected))
    resolved, guarded = path.resolve(), protected.resolve()
    if same_file(path, protected):
        return True
    return any(
        a == b or b in a.parents or a in b.parents
        for a in (path, resolved)
        for b in (protected, guarded)
    )


def check_target(
    path,
    *,
    overwrite: bool = False,
    protected: Iterable = (),
    is_ours: Callable[[Path], bool] | None = None,
    what: str = "output",
) -> Path:
    """Refuse an output path that exists (unless ``overwrite``) or touches a protected path.

    ``is_ours``: for folders, whether an existing one was made by napari-kquant (only
    those are replaced, even with ``overwrite``).
    """
    path = Path(path)
    for guarded in protected:
        if overlaps(path, Path(guarded)):
            raise OutputError(
                f"refusing to write the {what} {path}: it is (or holds, or is inside) the "
                f"input {guarded}; choose another path"
            )
    if not (path.exists() or path.is_symlink()):
        return path
    if not overwrite:
        raise OutputError(
            f"{path} exists: napari-kquant does not overwrite it unless asked "
            "(overwrite=True, --overwrite, or 'replace' in the widget); or choose another path"
        )
    if path.is_symlink():
        raise OutputError(f"{path} is a symbolic link: napari-kquant does not replace links")
    if path.is_dir() and (is_ours is None or not is_ours(path)):
        raise OutputError(
            f"{path} is a folder napari-kquant did not make: it is never replaced; "
            "choose another path, or remove it yourself"
        )
    if not path.is_dir() and is_ours is not None:
        raise OutputError(f"{path} is a file, not an earlier export: choose another path")
    return path


def _sibling(path: Path, tag: str) -> Path:
    """A hidden name beside ``path`` that keeps its suffix (writers pick formats by it)."""
    return path.with_name(f".{path.stem}.kquant-{tag}-{secrets.token_hex(4)}{path.suffix}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def replacing(path, **checks) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; on success move it into place.

    The target is checked first (:func:`check_target`, with ``checks``). If the body
    raises (or a generator using it is closed), the temporary output is removed and
    ``path`` is left as it was.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with replacing(target) as tmp:
    ...     _ = tmp.write_text("new")
    >>> target.read_text()
    'new'
    """
    path = check_target(path, **checks)
    tmp = _sibling(path, "partial")
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"nothing was written to {path}")
        if not checks.get("overwrite"):
            # created exclusively: another writer (a second run into the same folder)
            # may have made the path since it was checked; never replace that
            _move_no_replace(tmp, path)
        elif path.is_dir() and not path.is_symlink():
            old = _sibling(path, "old")
            os.rename(path, old)
            os.rename(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)  # replaces a file or link entry, never writes through it
    except BaseException:
        _remove(tmp)
        raise


def _move_no_replace(tmp: Path, path: Path) -> None:
    """Rename ``tmp`` to ``path`` atomically, failing if ``path`` exists by then."""
    try:
        if tmp.is_dir():
            _rename_no_replace(tmp, path)
        else:  # a hard link is created only where no name exists: atomic, then the temp goes
            os.link(tmp, path)
            tmp.unlink()
    except FileExistsError:
        raise OutputError(
            f"{path} appeared while it was being written (another run writing the same "
            "output?): napari-kquant does not overwrite it; nothing of this output was kept"
        ) from None


def _rename_no_replace(tmp: Path, path: Path) -> None:
    """``renameat2(RENAME_NOREPLACE)`` where the system has it, else check and rename."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:  # not Linux: a folder is renamed only onto nothing
        if path.exists() or path.is_symlink():
            raise FileExistsError(path)
        os.rename(tmp, path)
        return
    at_cwd, no_replace = -100, 1  # AT_FDCWD, RENAME_NOREPLACE
    if renameat2(at_cwd, os.fsencode(tmp), at_cwd, os.fsencode(path), no_replace) != 0:
        error = ctypes.get_errno()
        if error == errno.EEXIST:
            raise FileExistsError(path)
        raise OSError(error, os.strerror(error), str(path))


@contextmanager
def exclusive(folders: Iterable) -> Iterator[None]:
    """Hold an exclusive lock on each output folder while a batch writes into it.

    A second run into the same folder is refused at once (no waiting, no mixing of
    two runs' outputs). The lock files live in the temporary folder, not among the
    outputs, and the system releases them when a process ends, however it ends.
    Where the system has no ``flock`` (Windows) nothing is locked; the exclusive
    creation of each output still refuses what another run wrote first.
    """
    try:
        import fcntl
    except ImportError:
        yield
        return
    import hashlib
    import tempfile

    handles = []
    try:
        for folder in sorted({os.path.realpath(f) for f in folders}):
            name = hashlib.sha1(os.fsencode(folder)).hexdigest()[:16]
            lock = os.path.join(tempfile.gettempdir(), f"napari-kquant-{name}.lock")
            handle = os.open(lock, os.O_RDONLY | os.O_CREAT, 0o600)
            handles.append(handle)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputError(
                    f"another napari-kquant run is writing into {folder}: wait for it to "
                    "finish, or choose another output folder (-o)"
                ) from None
        yield
    finally:
        for handle in handles:
            os.close(handle)  # closing releases the lock


def write_safely(path, text: str, *, what: str = "file", **checks) -> Path:
    """Write ``text`` to ``path`` through :func:`replacing` (the one way to write a file)."""
    with replacing(path, what=what, **checks) as tmp:
        tmp.write_text(text)
    return Path(path)


def plan_outputs(
    targets: Iterable,
    *,
    protected: Iterable = (),
    overwrite: bool = False,
    is_ours: Callable[[Path], bool] | None = None,
) -> None:
    """Check a whole batch of outputs before anything is written.

    ``targets`` are ``(output path, what produces it)`` pairs (an input's name). Two
    producers of one path, an output that exists (without ``overwrite``) or that
    touches a protected path are all refused with one message listing them.
    """
    protected = list(protected)
    seen: dict[str, tuple[Path, object]] = {}
    problems = []
    for path, owner in targets:
        key = os.path.normcase(os.path.abspath(path))
        if key in seen:
            problems.append(f"{path} would be written for both {seen[key][1]} and {owner}")
            continue
        seen[key] = (Path(path), owner)
        try:
            check_target(path, overwrite=overwrite, protected=protected, is_ours=is_ours)
        except OutputError as exc:
            problems.append(str(exc))
    if problems:
        shown = "; ".join(problems[:5])
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise OutputError(f"nothing was written: {shown}{more}")
