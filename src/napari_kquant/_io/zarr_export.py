"""Exporting results as OME-Zarr, chunk by chunk and safely (numpy, dask, zarr, ome-zarr)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import numpy as np

from .._core.cancel import checkpoint
from .._core.kmeans import Quantization
from .._core.palette import channel_names, display_colors, distinct_colors
from .._core.placement import Placement
from .._core.validate import InvalidInputError

EXPORT_KEY = "napari_kquant"  # the group attribute that marks (and describes) an export
# NGFF multiscale "type" and "metadata" (SHOULD): how the levels were made
_MULTISCALE_INFO = {
    "type": "napari-kquant",
    "metadata": {
        "description": "k-means quantization: every level labelled with one palette; the "
        "levels are those of the source (one level for a single-resolution source)"
    },
}


def export_zarr(
    result: Quantization,
    path,
    *,
    image: bool = True,
    overwrite: bool = False,
    progress=None,
    scale=None,
    translate=None,
    units=None,
    axis_names=None,
    colors=None,
    channel_names=None,
) -> Path:
    """Write a result as OME-Zarr (NGFF 0.5): the quantized image and its labels.

    The store is what napari-ome-zarr, ome-zarr-py, QuPath and Fiji/BigDataViewer
    open: the quantized image as a multiscale image at the root (one level per level
    of a multiscale result; a colour or feature axis becomes the ``c`` axis), the
    labels under ``labels/clusters`` with ``image-label`` ``colors`` (each label in
    its centre's colour) and ``properties`` (count, fraction and centre values per
    label), and the full palette (:meth:`Palette.to_dict`) with the parameters in the
    root's ``napari_kquant`` attribute. The metadata are written by ome-zarr-py.
    Lazy results are computed and written band by band (on a distributed cluster
    when a client is active); ``progress(done, total)`` is called after each band.
    ``image=False`` writes only the labels group (the root's multiscale image then
    points at the labels, so that readers which open a store by its root find them).

    The source's calibration goes with it: ``scale`` (pixel size), ``translate``
    (position of the first pixel), ``units`` (e.g. ``"µm"``, written as NGFF's
    ``micrometer``) and ``axis_names`` (e.g. ``("t", "y", "x")``: a ``t`` axis is
    written as time) of the spatial axes, as a napari layer holds them. Channels go
    after time and before space, as NGFF 0.5 orders them, and every array carries
    its ``dimension_names``. ``colors`` (RGBA in 0..1, one per label) are the labels'
    colours as napari shows them (default: each RGB centre's colour, a grey ramp over
    gray centres, distinct colours for features). ``channel_names`` name feature
    channels (a colour image's are red, green and blue), in NGFF's ``omero`` block.

    The store is written under a temporary name beside ``path`` and moved into place
    when complete: a failed or cancelled export leaves nothing behind and whatever
    was at ``path`` untouched. An existing ``path`` is refused unless ``overwrite``,
    and even then only an earlier napari-kquant export is replaced (never another
    folder); a path in, around or equal to the source's own zarr store is refused.

    Returns
    -------
    Path
        The store written.

    Raises
    ------
    ValueError
        If ``path`` exists (without ``overwrite``), is not an earlier export, or
        touches the source's store; if the image has more than 4 spatial axes.

    Examples
    --------
    >>> import tempfile, pathlib, zarr
    >>> from skimage import data
    >>> from napari_kquant import quantize
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> path = export_zarr(quantize(data.coffee(), 3), folder / "coffee-k3.ome.zarr")
    >>> zarr.open_group(str(path), mode="r")["labels/clusters/0"].shape
    (400, 600)
    >>> export_zarr(quantize(data.coffee(), 3), path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    napari_kquant._core.safe.OutputError: ... exists: napari-kquant does not overwrite it ...
    >>> _ = export_zarr(quantize(data.coffee(), 4), path, overwrite=True)
    """
    placement = Placement(scale, translate, units, axis_names)
    bands = iter_export_zarr(
        result,
        path,
        image=image,
        overwrite=overwrite,
        placement=placement,
        colors=colors,
        channel_names=channel_names,
    )
    for done, total in bands:
        if progress is not None:
            progress(done, total)
    return Path(path)


def iter_export_zarr(
    result: Quantization,
    path,
    *,
    image: bool = True,
    overwrite: bool = False,
    placement: Placement | None = None,
    colors=None,
    channel_names=None,
):
    """:func:`export_zarr` as an iterator of ``(done, total)`` bands (close it to cancel).

    The path is checked at once (ValueError as for :func:`export_zarr`); the writing
    happens as the iterator is advanced.
    """
    import dask.array as da

    from .._core.safe import check_target

    multiscale = isinstance(result.labels, list)
    labels = [da.asarray(a) for a in (result.labels if multiscale else [result.labels])]
    images = [da.asarray(a) for a in (result.image if multiscale else [result.image])]
    placement = placement or Placement()
    spatial = labels[0].ndim
    names = placement.names(spatial)
    channel_axis = _channel_axis(result, images[0].ndim, labels[0].ndim)
    if channel_axis is not None:  # NGFF 0.5 order: time, then channels, then space
        after_time = len(names) - len(names[_first_space(placement, spatial) :])
        images = [da.moveaxis(level, channel_axis, after_time) for level in images]
    if spatial > 4:
        raise InvalidInputError(
            f"OME-Zarr holds at most 4 spatial axes (t, z, y, x): these labels have {spatial}"
        )
    if "://" in str(path):  # written locally only: a URL would become a folder named "file:"
        raise InvalidInputError(f"export to a local folder path, not a URL: {path}")
    checks: dict[str, Any] = {
        "overwrite": overwrite,
        "protected": source_stores([*labels, *images]),
        "is_ours": is_export,
    }
    check_target(path, what="export", **checks)
    return _write_export(
        result, path, labels, images if image else None, checks, placement, colors, channel_names
    )


def _channel_axis(result, image_ndim: int, label_ndim: int) -> int | None:
    """Where the quantized image keeps its channels (None for gray)."""
    if image_ndim == label_ndim:
        return None
    axis = result.params.get("channel_axis")
    return image_ndim - 1 if axis is None else axis % image_ndim


def _first_space(placement: Placement, spatial: int) -> int:
    """Index of the first space axis among the spatial ones (after the time axes)."""
    types = [axis["type"] for axis in placement.axes(spatial)]
    return next((i for i, kind in enumerate(types) if kind == "space"), len(types))


def _axes(placement: Placement, spatial: int, channels: bool) -> list[dict]:
    """NGFF axes: the spatial ones named, typed and with units; ``c`` after time."""
    axes = placement.axes(spatial)
    if channels:
        axes.insert(_first_space(placement, spatial), {"name": "c", "type": "channel"})
    return axes


def _datasets(levels, placement: Placement, channel: int | None) -> list[dict]:
    """One dataset per level: the source's pixel size (times the level's reduction) and origin."""
    first = levels[0].shape
    spatial = len(first) - (channel is not None)
    scales, origin = placement.scales(spatial), placement.translations(spatial)
    if channel is not None:
        scales.insert(channel, 1.0)
        origin.insert(channel, 0.0)
    return [
        {
            "path": str(i),
            "coordinateTransformations": [
                {
                    "type": "scale",
                    "scale": [
                        scales[axis] * (1.0 if axis == channel else first[axis] / level.shape[axis])
                        for axis in range(level.ndim)
                    ],
                },
                {"type": "translation", "translation": origin},
            ],
        }
        for i, level in enumerate(levels)
    ]


def result_colors(result) -> np.ndarray:
    """RGBA (0..1) of each label as napari shows a result's clusters by default.

    RGB: the centre's colour (integer images over their dtype's range); gray: a grey
    ramp over the centres' own range (as napari's contrast limits follow the data: a
    12-bit image in uint16 is not near black); features: distinct colours.
    """
    centers = np.asarray(result.centers, dtype=np.float64)
    if centers.shape[1] == 1:
        return display_colors(centers, float(centers.min()), float(centers.max()))
    if centers.shape[1] != 3:
        return distinct_colors(len(centers))
    dtype = np.dtype((result.image[0] if isinstance(result.image, list) else result.image).dtype)
    if np.issubdtype(dtype, np.integer):
        return display_colors(centers, 0.0, float(np.iinfo(dtype).max))
    return display_colors(centers, float(centers.min()), float(centers.max()))


def label_colors_and_properties(result, colors=None) -> tuple[list[dict], list[dict]]:
    """NGFF ``image-label`` colours and properties (count, fraction, centre per label).

    ``colors``: RGBA (0..1) per label, as napari shows them (default
    :func:`result_colors`).
    """
    centers = np.asarray(result.centers, dtype=np.float64)
    colors = result_colors(result) if colors is None else np.asarray(colors, dtype=float)
    rgba = np.rint(np.clip(colors, 0.0, 1.0) * 255).astype(int)
    names = channel_names(centers.shape[1])
    total = result.counts.sum()
    colors, properties = [], []
    for i, (colour, count) in enumerate(zip(rgba, result.counts, strict=True), 1):
        colors.append({"label-value": i, "rgba": colour.tolist()})
        row: dict[str, Any] = {"label-value": i, "count": int(count)}
        row["fraction"] = float(count / total) if total else 0.0
        row.update({f"center_{n}": float(v) for n, v in zip(names, centers[i - 1], strict=True)})
        properties.append(row)
    return colors, properties


def _write_export(
    result, path, labels, images, checks, placement, label_rgba=None, channel_names=None
):
    """Write the OME-Zarr store band by band into a temporary sibling, then move it."""
    import dask.array as da
    import zarr
    from ome_zarr.writer import write_label_metadata, write_multiscales_metadata

    from .._core.safe import replacing

    spatial = labels[0].ndim
    with replacing(path, what="export", **checks) as partial:
        root = zarr.open_group(str(partial), mode="w-")
        image_jobs, label_jobs = [], []  # (array, target, band axis) per level
        if images is not None:
            channels = images[0].ndim > spatial
            axes = _axes(placement, spatial, channels)
            channel = next((i for i, a in enumerate(axes) if a["type"] == "channel"), None)
            band_axis = 0 if channel != 0 else 1  # bands along the first non-channel axis
            for i, level in enumerate(images):
                image_jobs.append((level, _create(root, str(i), level, axes), band_axis))
            write_multiscales_metadata(
                root,
                _datasets(images, placement, channel),
                axes=axes,
                name="quantized",
                **_MULTISCALE_INFO,
            )
            if channel is not None:  # how to show the channels (NGFF's transitional omero)
                root.attrs["ome"] = {
                    **cast(dict, root.attrs["ome"]),
                    "omero": _omero(result, images[0], channel, channel_names),
                }
        group = root.require_group("labels").create_group("clusters")
        label_axes = _axes(placement, spatial, False)
        for i, level in enumerate(labels):
            label_jobs.append((level, _create(group, str(i), level, label_axes), 0))
        write_multiscales_metadata(
            group,
            _datasets(labels, placement, None),
            axes=label_axes,
            name="clusters",
            **_MULTISCALE_INFO,
        )
        if images is None:
            # labels only: the root's image is the labels themselves, so that readers that
            # open a store by its root image (napari-ome-zarr) find it and its labels
            datasets = _datasets(labels, placement, None)
            for dataset in datasets:
                dataset["path"] = f"labels/clusters/{dataset['path']}"
            write_multiscales_metadata(
                root, datasets, axes=label_axes, name="clusters", **_MULTISCALE_INFO
            )
        colors, properties = label_colors_and_properties(result, label_rgba)
        write_label_metadata(
            root["labels"],
            "clusters",
            colors=colors,
            properties=properties,
            source={"image": "../../"},
        )
        # NGFF 0.5: the labels group's "ome" attributes carry the version too
        root["labels"].attrs["ome"] = {**cast(dict, root["labels"].attrs["ome"]), "version": "0.5"}
        root.attrs[EXPORT_KEY] = json.loads(json.dumps(_provenance(result), default=str))
        bands = [
            (jobs, band)
            for jobs in _together(image_jobs, label_jobs)
            for band in _bands(jobs[0][0], jobs[0][2])
        ]
        for done, (jobs, (begin, end)) in enumerate(bands, 1):
            checkpoint()
            regions = [
                tuple(slice(begin, end) if d == axis else slice(None) for d in range(array.ndim))
                for array, _, axis in jobs
            ]
            sources = [array[region] for (array, _, _), region in zip(jobs, regions, strict=True)]
            da.store(sources, [target for _, target, _ in jobs], regions=regions, lock=False)
            yield done, len(bands)


def _together(image_jobs, label_jobs) -> list[list]:
    """The arrays written band by band together, in groups.

    A level's image and labels go together when their bands are the same (a lazy
    result's: one task makes both, so each block is labelled once), else alone.
    """
    groups = []
    for i, labels in enumerate(label_jobs):
        image = image_jobs[i] if image_jobs else None
        if image is not None and image[0].chunks[image[2]] == labels[0].chunks[labels[2]]:
            groups.append([image, labels])
            continue
        groups += [[image], [labels]] if image is not None else [[labels]]
    return groups


# Colours of the channels of a colour image (napari-ome-zarr blends them additively)
RGB_COLOURS = ("FF0000", "00FF00", "0000FF", "FFFFFF")


def _omero(result, image, channel: int, names=None) -> dict:
    """NGFF ``omero`` channels: names, colours and display windows of the quantized image.

    A colour image's channels are red, green and blue (alpha white), so that readers
    such as napari-ome-zarr blend them back into the colour image; feature channels
    are named after their layers (``names``) with distinct colours.
    """
    width = image.shape[channel]
    colour_image = bool(result.params.get("rgb")) and width in (3, 4)
    if colour_image:
        names = ["red", "green", "blue", "alpha"][:width]
        colours = list(RGB_COLOURS[:width])
    else:
        names = list(names) if names is not None else channel_names(width)
        rgb = np.rint(distinct_colors(width)[:, :3] * 255).astype(int)
        colours = ["{:02X}{:02X}{:02X}".format(*row) for row in rgb]
    centers = np.asarray(result.centers, dtype=np.float64)
    dtype = np.dtype(image.dtype)
    if np.issubdtype(dtype, np.integer):
        full = (float(np.iinfo(dtype).min), float(np.iinfo(dtype).max))
    else:
        full = (float(centers.min()), float(centers.max()))
    channels = []
    for c in range(width):
        values = centers[:, c] if c < centers.shape[1] else np.array(full)
        start, end = full if colour_image else (float(values.min()), float(values.max()))
        channels.append(
            {
                "label": str(names[c]),
                "color": colours[c],
                "window": {"min": full[0], "max": full[1], "start": start, "end": end},
                "active": True,
                "coefficient": 1.0,
                "family": "linear",
                "inverted": False,
            }
        )
    return {"channels": channels, "rdefs": {"model": "color"}}


def _create(group, name: str, array, axes: list[dict]):
    return group.create_array(
        name,
        shape=array.shape,
        chunks=tuple(c[0] for c in array.chunks),
        dtype=array.dtype,
        dimension_names=[axis["name"] for axis in axes],  # NGFF 0.5: equal to the axes
    )


def _provenance(result) -> dict:
    """The palette (when the result has one) and the parameters, for the root attributes."""
    out = {"params": result.params, "centers": result.centers.tolist()}
    out["counts"] = result.counts.tolist()
    if result.params.get("planes") != "each":
        out["palette"] = result.palette.to_dict()
    return out


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
        root = _local_root(getattr(node, "store", None))
        if root is not None and hasattr(node, "path"):
            found.append(root / node.path if node.path else root)
            return
        if depth > 8:
            return
        children: Iterable
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


def _local_root(store) -> Path | None:
    """The local folder a zarr store reads, whatever opened it; None for remote stores.

    ``LocalStore`` has a ``root``; ``da.from_zarr(path)`` and ``file://`` URLs give an
    fsspec store over the local file system, with a ``path``.
    """
    if store is None:
        return None
    root = getattr(store, "root", None)
    if root is not None:
        return Path(root)
    fs, path = getattr(store, "fs", None), getattr(store, "path", None)
    if fs is None or not path:
        return None
    fs = getattr(fs, "sync_fs", fs)  # zarr wraps a synchronous file system for asyncio
    protocols = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    if not {"file", "local"} & set(protocols):
        return None
    return Path(fs._strip_protocol(path))


def _bands(array, axis: int):
    """Index ranges of the array's chunks along ``axis`` (the first spatial axis)."""
    edges = np.concatenate([[0], np.cumsum(array.chunks[axis])])
    return list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))
