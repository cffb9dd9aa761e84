"""Lazy quantization of dask, zarr and multiscale data (core: numpy, cv2, dask; no napari).

The centres are fitted on a bounded random sample of pixels, drawn chunk by chunk;
the labels and the quantized image are then dask arrays built block by block with
the fitted centres (``map_blocks``), so only the chunks that are looked at are ever
computed. Every step is a plain dask graph: with a ``dask.distributed.Client``
active, the same calls run on its workers.

The sample is a set of global pixel positions drawn from ``seed``; each chunk keeps
the positions that fall inside it. It therefore does not depend on the chunking, and
a numpy array quantized with the same ``sample_size`` and ``seed`` is fitted on the
very same pixels, in the same (C) order.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from .cancel import serial
from .fast.contract import label_dtype
from .kinds import is_multiscale
from .kmeans import Job, Quantization, label_eager, render
from .layout import Layout
from .options import QUANTIZE_DEFAULTS, Options
from .palette import register_applier
from .spaces import FeatureSpace
from .validate import (
    InvalidInputError,
    NothingToCluster,
    check_count,
    check_k,
    check_mask_shape,
    working_dtype,
)

DEFAULT_SAMPLE = 1_000_000  # pixels the centres are fitted on, by default


def quantize_lazy(
    image, k: int, *, sample_size: int | None = None, fit_level: int = -1, **options
) -> Quantization:
    """:func:`napari_kquant.quantize` for lazy (dask, zarr) and multiscale input.

    Fits on up to ``sample_size`` pixels (default 1,000,000) of ``image``, or of
    level ``fit_level`` of a multiscale list (default the lowest resolution), and
    returns a Quantization whose ``labels`` and ``image`` are dask arrays (lists of
    dask arrays, one per level, for multiscale input). ``counts``, ``compactness``
    and ``fractions`` are those of the sample.
    """
    started = time.perf_counter()
    k = check_k(k)
    options = {**QUANTIZE_DEFAULTS, **options}
    if options.pop("planes") != "stack":
        raise InvalidInputError(
            "planes='each' needs the whole stack in memory: use planes='stack' on lazy data, "
            "or quantize planes one at a time"
        )
    sample_size = _check_sample_size(sample_size)
    multiscale = is_multiscale(image)
    levels = [as_dask(level) for level in (image if multiscale else [image])]
    if not -len(levels) <= fit_level < len(levels):
        raise InvalidInputError(
            f"fit_level={fit_level} is not a level of this {len(levels)}-level image"
        )
    mask = options.pop("mask")
    if mask is not None and multiscale:
        raise InvalidInputError("masks apply to single-resolution images: pass one level")
    rgb, axis = options.pop("rgb"), options.pop("channel_axis")
    layout = Layout.of(levels[fit_level], rgb, axis)
    _, fitted = fit_sample(layout.arrange(levels[fit_level]), layout, k, sample_size, mask, options)
    applied = apply_lazy(image, fitted.palette, mask=mask, rgb=rgb, channel_axis=axis)
    params = {
        **fitted.params,
        "rgb": layout.rgb,
        "channel_axis": axis,
        "lazy": True,
        "sample_size": int(sample_size),
        "fit_level": fit_level % len(levels) if multiscale else 0,
        "multiscale": multiscale,
    }
    return replace(
        applied,
        compactness=fitted.compactness,
        sse=fitted.sse,
        counts=fitted.counts,
        params=params,
        elapsed=time.perf_counter() - started,
    )


def apply_lazy(image, palette, *, mask=None, rgb=None, channel_axis=None) -> Quantization:
    """Label lazy or multiscale input with ``palette`` (the lazy apply strategy).

    The labels and the quantized image are dask arrays (lists of them, one per level,
    for multiscale input) computed block by block. Nothing is computed here, so the
    result's ``counts`` are the palette's (those of its fit; zeros when it has none)
    and its compactness is NaN.
    """
    started = time.perf_counter()
    multiscale = is_multiscale(image)
    levels = [as_dask(level) for level in (image if multiscale else [image])]
    if mask is not None and multiscale:
        raise InvalidInputError("masks apply to single-resolution images: pass one level")
    layout = Layout.of(levels[0], rgb, channel_axis)
    n_clustered = layout.clustered(levels[0].shape[layout.axis] if layout.channels else 1)
    if palette.centers.shape[1] != n_clustered:
        raise InvalidInputError(
            f"centers must be a (k, {n_clustered}) array for this image, got shape "
            f"{palette.centers.shape}"
        )
    outputs = [_lazy_outputs(layout.arrange(level), layout, palette, mask) for level in levels]
    space = FeatureSpace.for_palette(palette, working_dtype(levels[0].dtype), layout.rgb)
    labels = [out[0] for out in outputs]
    images = [layout.restore(out[1]) for out in outputs]
    counts = palette.counts if palette.counts is not None else np.zeros(palette.k, np.int64)
    return Quantization(
        labels=labels if multiscale else labels[0],
        centers=palette.centers,
        image=images if multiscale else images[0],
        compactness=float("nan"),
        counts=counts,
        params={
            **palette.params,
            "k": palette.k,
            "method": "palette",
            "color_space": palette.color_space,
            "rgb": layout.rgb,
            "channel_axis": channel_axis,
            "lazy": True,
            "multiscale": multiscale,
            **(
                {}
                if palette.channel_scale is None
                else {
                    "channel_scale": palette.channel_scale.tolist(),
                    "channel_offset": np.asarray(space.offset).tolist(),
                }
            ),
        },
        elapsed=time.perf_counter() - started,
    )


register_applier("lazy", apply_lazy)


def as_dask(array):
    """A dask array of ``array``, chunked as it is stored (zarr) or else automatically."""
    import dask.array as da

    if isinstance(array, da.Array):
        if any(np.isnan(size) for size in array.shape):
            raise InvalidInputError(
                f"this dask array's chunk sizes are unknown (shape {array.shape}): call "
                "array.compute_chunk_sizes() first (e.g. after boolean indexing)"
            )
        return array
    chunks = getattr(array, "chunks", None)
    if isinstance(chunks, tuple) and all(isinstance(c, (int, np.integer)) for c in chunks):
        return da.from_array(array, chunks=chunks)
    return da.from_array(array, chunks="auto")


def _check_sample_size(sample_size) -> int:
    if sample_size is None:
        return DEFAULT_SAMPLE
    return check_count("sample_size", sample_size)


def fit_sample(data, layout, k, sample_size, mask, options) -> tuple[Job, Quantization]:
    """Fit ``k`` centres on a sample of ``data`` (channels last); the job and its result.

    The result's params record the pixels actually fitted on (``sampled``).
    """
    started = time.perf_counter()
    table, kept = sample_pixels(data, layout, sample_size, options["seed"], mask)
    if not kept:
        raise InvalidInputError(
            "no pixel to cluster: the mask selects none, or every selected pixel is NaN or inf"
        )
    job = Job.of(
        table if layout.channels else table[:, 0],
        Options.picked(options),
        rgb=layout.rgb,
        channel_axis=-1 if layout.features else None,
    )
    job.check_k(k)
    fitted = job.result(job.fit(k), started)
    return job, replace(fitted, params={**fitted.params, "sampled": int(kept)})


def quantize_sampled(image: np.ndarray, k: int, *, sample_size: int, **options) -> Quantization:
    """Eager quantize() fitted on a sample, every pixel labelled with its nearest centre.

    The centres are those the lazy path fits on the same pixels.
    """
    import dask.array as da

    started = time.perf_counter()
    k = check_k(k)
    options = {**QUANTIZE_DEFAULTS, **options}
    if options.pop("planes") != "stack":
        raise InvalidInputError(
            "planes='each' fits every plane on all its pixels: drop sample_size"
        )
    sample_size = _check_sample_size(sample_size)
    mask, rgb, axis = options.pop("mask"), options.pop("rgb"), options.pop("channel_axis")
    layout = Layout.of(image, rgb, axis)
    data = layout.arrange(da.from_array(image, chunks=image.shape))
    _, fitted = fit_sample(data, layout, k, sample_size, mask, options)
    applied = fitted.palette.apply(
        image, mask=mask, rgb=None if layout.features else layout.channels, channel_axis=axis
    )
    params = {**fitted.params, "channel_axis": axis, "sample_size": sample_size}
    return replace(applied, params=params, elapsed=time.perf_counter() - started)


def sample_pixels(data, layout: Layout, sample_size: int, seed: int, mask=None):
    """Up to ``sample_size`` pixels of ``data`` (channels last), drawn chunk by chunk.

    Returns the (n, width) table of the drawn pixels that are clustered (inside the
    mask, finite), in C order of their positions, and n.
    """
    import dask
    import dask.array as da

    spatial = data.shape[:-1] if layout.channels else data.shape
    n_pixels = int(np.prod(spatial))
    if sample_size >= n_pixels:
        positions = np.arange(n_pixels, dtype=np.int64)
    else:
        rng = np.random.default_rng(seed)
        positions = np.sort(rng.choice(n_pixels, size=sample_size, replace=False))
    coords = np.unravel_index(positions, spatial)
    spatial_chunks = data.chunks[: len(spatial)]
    # which chunk along each axis holds each drawn pixel
    block_index = [
        np.searchsorted(np.cumsum(chunks), c, side="right")
        for chunks, c in zip(spatial_chunks, coords, strict=True)
    ]
    block_ids = np.ravel_multi_index(block_index, [len(c) for c in spatial_chunks])
    order = np.argsort(block_ids, kind="stable")
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]) for c in spatial_chunks]
    blocks = data.to_delayed()
    if mask is not None:
        mask = da.asarray(mask)
        check_mask_shape(mask, spatial)
        mask_blocks = mask.rechunk(spatial_chunks).to_delayed()
    tasks, owners = [], []
    unique_ids, first = np.unique(block_ids[order], return_index=True)
    bounds = [*first[1:], len(order)]
    for block_id, begin, end in zip(unique_ids, first, bounds, strict=True):
        chosen = order[begin:end]
        index = np.unravel_index(block_id, [len(c) for c in spatial_chunks])
        local = tuple(c[chosen] - s[i] for c, s, i in zip(coords, starts, index, strict=True))
        key = (*index, 0) if layout.channels else index  # (a channel axis in one chunk)
        block = blocks[key]
        block_mask = None if mask is None else mask_blocks[index]
        tasks.append(dask.delayed(_take)(block, local, layout.channels, block_mask))
        owners.append(chosen)
    pieces = dask.compute(*tasks)
    width = data.shape[-1] if layout.channels else 1
    table = np.empty((len(positions), width), dtype=data.dtype)
    keep = np.zeros(len(positions), dtype=bool)
    for chosen, (values, inside) in zip(owners, pieces, strict=True):
        table[chosen] = values
        keep[chosen] = inside
    if np.issubdtype(table.dtype, np.floating):
        keep &= np.isfinite(table[:, : layout.clustered(width)]).all(axis=1)  # not alpha
    table = table[keep]
    return table, len(table)


def _take(block, local, channels, block_mask):
    """The drawn pixels of one chunk, and whether each is inside the mask."""
    block = np.asarray(block)
    values = block[local] if channels else block[local][:, None]
    inside = (
        np.ones(len(values), bool) if block_mask is None else np.asarray(block_mask)[local] != 0
    )
    return values, inside


def _lazy_outputs(data, layout, palette, mask):
    """Labels and quantized image of ``data`` as dask arrays, block by block.

    One task per block reads it and labels it by the eager path (:func:`label_eager`:
    the same compiled passes, so the labels are byte-identical); the image's task
    paints that block from its labels (:func:`render`). Each on the task's own
    thread (dask runs one task per core). Computing both reads and labels each block
    once; computing the labels alone paints nothing.
    """
    import dask.array as da

    kwargs = {
        "palette": palette,
        "rgb": layout.rgb,
        "channel_axis": -1 if layout.features else None,  # (channels last by now)
    }
    dtype = label_dtype(palette.k)
    spatial_ndim = data.ndim - 1 if layout.channels else data.ndim
    masks = []
    if mask is not None:
        mask = da.asarray(mask).rechunk(data.chunks[:spatial_ndim]).astype(bool)
        masks = [mask[..., None] if layout.channels else mask]
    empty = (0,) * data.ndim
    pairs = da.map_blocks(  # each block: (labels, the block)
        _label_block, data, *masks, dtype=data.dtype, meta=np.empty(empty, data.dtype), **kwargs
    )
    image = pairs.map_blocks(
        _render_block, dtype=data.dtype, meta=np.empty(empty, data.dtype), **kwargs
    )
    if not layout.channels:
        return pairs.map_blocks(_labels_of, dtype=dtype, meta=np.empty(empty, dtype)), image
    # the labels keep a channel axis of length 1 and drop it after: dropping it in
    # map_blocks would make dask concatenate each block's pair (the channels are one
    # chunk: Layout.arrange)
    with_axis = pairs.map_blocks(
        _labels_of,
        chunks=(*data.chunks[:-1], (1,)),
        dtype=dtype,
        meta=np.empty(empty, dtype),
        channel_axis=True,
    )
    return with_axis[..., 0], image


def _label_block(block, mask=None, *, palette, rgb, channel_axis):
    """A block's labels (nearest centre, 1-based; 0 outside the mask or non-finite), and it."""
    block = np.ascontiguousarray(block)  # (one copy of a view, which both passes then read)
    channels = rgb or channel_axis is not None
    if mask is not None:
        mask = np.asarray(mask)[..., 0] if channels else np.asarray(mask)
    with serial():
        try:
            labels = label_eager(block, palette, mask=mask, rgb=rgb, channel_axis=channel_axis)
        except NothingToCluster:
            labels = np.zeros(block.shape[:-1] if channels else block.shape, label_dtype(palette.k))
    return labels, block


def _labels_of(pair, channel_axis=False):
    return pair[0][..., None] if channel_axis else pair[0]


def _render_block(pair, *, palette, rgb, channel_axis):
    """The quantized pixels of a labelled block (label 0 keeps the source value)."""
    labels, block = pair
    with serial():
        return render(block, labels, palette.centers, rgb or channel_axis is not None)
