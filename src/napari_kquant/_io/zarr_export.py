"""Exporting results to zarr, chunk by chunk and safely (numpy, dask, zarr; no napari)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .._core.cancel import checkpoint
from .._core.kmeans import Quantization

EXPORT_KEY = "napari_kquant"  # the group attribute that marks (and describes) an export


def export_zarr(
    result: Quantization, path, *, image: bool = True, overwrite: bool = False, progress=None
) -> Path:
    """Write a lazy (or eager) result's labels (and quantized image) to a zarr group.

    The group holds ``labels`` (and ``image``) with the result's chunks, one array per
    level for multiscale results (``labels/0``, ``labels/1``, ...), and the palette in
    its attributes (``centers``, ``counts``, ``params``). Chunks are computed and
    written band by band (on a distributed cluster when a client is active);
    ``progress(done, total)`` is called after each band.

    The group is written under a temporary name beside ``path`` and moved into place
    when complete: a failed or cancelled export leaves nothing behind and whatever
    was at ``path`` untouched. An existing ``path`` is refused unless ``overwrite``,
    and even then only an earlier napari-kquant export is replaced (never another
    folder); a path in, around or equal to the source's own zarr store is refused.

    Returns
    -------
    Path
        The group written.

    Raises
    ------
    ValueError
        If ``path`` exists (without ``overwrite``), is not an earlier export, or
        touches the source's store.

    Examples
    --------
    >>> import tempfile, pathlib, zarr
    >>> from skimage import data
    >>> from napari_kquant import quantize
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> path = export_zarr(quantize(data.coffee(), 3), folder / "coffee-k3.zarr")
    >>> zarr.open_group(str(path), mode="r")["labels"].shape
    (400, 600)
    >>> export_zarr(quantize(data.coffee(), 3), path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    napari_kquant._io.safe.OutputError: ... exists: napari-kquant does not overwrite it ...
    >>> _ = export_zarr(quantize(data.coffee(), 4), path, overwrite=True)
    """
    bands = iter_export_zarr(result, path, image=image, overwrite=overwrite)
    for done, total in bands:
        if progress is not None:
            progress(done, total)
    return Path(path)


def iter_export_zarr(result: Quantization, path, *, image: bool = True, overwrite: bool = False):
    """:func:`export_zarr` as an iterator of ``(done, total)`` bands (close it to cancel).

    The path is checked at once (ValueError as for :func:`export_zarr`); the writing
    happens as the iterator is advanced.
    """
    import dask.array as da

    from .safe import check_target

    outputs = [("labels", result.labels)]
    if image:
        outputs.append(("image", result.image))
    multiscale = isinstance(result.labels, list)
    arrays = {
        f"{name}/{level}" if multiscale else name: da.asarray(array)
        for name, levels in outputs
        for level, array in enumerate(levels if multiscale else [levels])
    }
    checks = {
        "overwrite": overwrite,
        "protected": source_stores(arrays.values()),
        "is_ours": is_export,
    }
    check_target(path, what="export", **checks)
    return _write_export(result, path, arrays, checks)


def _write_export(result, path, arrays: dict, checks: dict):
    """Write ``arrays`` (zarr path -> dask array) band by band into a new group at ``path``."""
    import dask.array as da
    import zarr

    from .safe import replacing

    with replacing(path, what="export", **checks) as partial:
        group = zarr.open_group(str(partial), mode="w-")
        palette = {
            "centers": result.centers.tolist(),
            "counts": result.counts.tolist(),
            "params": result.params,
        }
        group.attrs[EXPORT_KEY] = json.loads(json.dumps(palette, default=str))
        bands = []
        for name, array in arrays.items():
            target = group.create_array(
                name,
                shape=array.shape,
                chunks=tuple(c[0] for c in array.chunks),
                dtype=array.dtype,
            )
            bands += [(array, target, start) for start in _band_starts(array)]
        for done, (array, target, (begin, end)) in enumerate(bands, 1):
            checkpoint()
            da.store(array[begin:end], target, regions=(slice(begin, end),), lock=False)
            yield done, len(bands)


def is_export(path) -> bool:
    """Whether ``path`` is a zarr group that napari-kquant exported."""
    import zarr

    try:
        return EXPORT_KEY in zarr.open_group(str(path), mode="r").attrs
    except Exception:  # not a zarr group at all
        return False


def source_stores(arrays) -> list[Path]:
    """Local folders of the zarr stores that dask ``arrays`` read from."""
    found: list[Path] = []

    def walk(node, depth):
        root = getattr(getattr(node, "store", None), "root", None)
        if root is not None and hasattr(node, "path"):
            found.append(Path(root) / node.path if node.path else Path(root))
            return
        if depth > 8:
            return
        if isinstance(node, (list, tuple)):
            children = node
        elif isinstance(node, dict):
            children = node.values()
        else:  # dask tasks keep their arguments in attributes
            children = [getattr(node, a) for a in ("value", "args", "kwargs") if hasattr(node, a)]
            children = [c for c in children if not callable(c)]
        for child in children:
            walk(child, depth + 1)

    for array in arrays:
        for task in dict(array.__dask_graph__()).values():
            walk(task, 0)
    unique = {os.path.abspath(p): p for p in found}
    return list(unique.values())


def _band_starts(array):
    """Row ranges of the array's chunk rows along its first axis."""
    edges = np.concatenate([[0], np.cumsum(array.chunks[0])])
    return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))
