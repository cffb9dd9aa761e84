"""quantize(): fit a palette to an image and label it (core: numpy, cv2, dask; no napari).

The one entry point for every kind of input: numpy arrays are fitted and labelled
in memory (``kmeans``), lazy and multiscale arrays fitted on a sample and labelled
chunk by chunk (``lazy``), stacks per plane here.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from .cancel import keyboard_interrupts
from .fast.contract import label_dtype
from .kinds import takes_lazy_path
from .kmeans import Job, Quantization
from .layout import Layout
from .lazy import quantize_lazy, quantize_sampled
from .options import QUANTIZE_DEFAULTS, Options, choices, layout_keywords
from .palette import Palette
from .validate import (
    InvalidInputError,
    check_choice,
    check_k,
    check_mask_shape,
    check_seed,
)


@keyboard_interrupts
def quantize(
    image,
    k: int = 8,
    *,
    method: str = "fast",
    attempts: int = 3,
    max_iter: int = 100,
    epsilon: float | None = None,
    criteria: str | tuple = "eps+max_iter",
    init: str = "kmeans++",
    seed: int = 0,
    rgb: bool | None = None,
    mask=None,
    channel_axis: int | None = None,
    color_space: str = "rgb",
    standardize: bool = False,
    planes: str = "stack",
    sample_size: int | None = None,
    fit_level: int = -1,
) -> Quantization:
    """Quantize the colours of ``image`` to ``k`` colours with k-means.

    Parameters
    ----------
    image : (..., C) or (...) ndarray
        RGB (C=3) or RGBA (C=4) image, or a gray image, of any number of spatial
        dimensions; unsigned/signed integer or float dtype. The input is never modified.
    k : int
        Number of colours (clusters), 1 <= k <= number of distinct colours.
    method : {"fast", "opencv"}
        ``"fast"`` (default) runs k-means on a weighted colour summary and finishes
        with exact passes over all pixels. ``"opencv"`` runs ``cv2.kmeans`` on every
        pixel as float32: the OpenCV tutorial recipe, bit for bit.
    attempts : int
        Number of initialisations tried; the most compact result is kept.
    max_iter : int
        Maximum number of Lloyd iterations (when ``criteria`` includes ``max_iter``).
    epsilon : float, optional
        Stop when no centre moves by more than this, in the image's value units
        (when ``criteria`` includes ``eps``). Default: 0.001 of the value range.
    criteria : {"eps+max_iter", "eps", "max_iter"} or tuple
        Which termination criteria apply. An OpenCV tuple ``(type, max_iter,
        epsilon)`` is accepted too and overrides ``max_iter`` and ``epsilon``.
    init : {"kmeans++", "random"}
        Centre initialisation. For ``"opencv"`` these are ``KMEANS_PP_CENTERS`` and
        ``KMEANS_RANDOM_CENTERS``; for ``"fast"``, weighted k-means++ and random pixels.
    seed : int or None
        Seed of the random generator (``cv2.setRNGSeed`` for ``"opencv"``), 0 to
        2**31 - 1. ``None`` draws one; ``params["seed"]`` records it, so the run can
        be repeated.
    rgb : bool, optional
        Whether the last axis holds colour channels. ``None`` guesses as napari
        does: a last axis of length 3 or 4 on an image of 3+ dimensions.
    mask : (...) array_like of bool, optional
        Cluster only the pixels where ``mask`` is true (non-zero); it has the image's
        spatial shape. Pixels outside get label 0 and keep their value in the
        quantized image. NaN and inf pixels of float images are always outside.
    channel_axis : int, optional
        The axis holding features to cluster together, all of them (e.g. fluorescence
        channels stacked from several layers): pixels are clustered on the vector of
        their values. ``None``: RGB(A) or gray, as ``rgb`` says.
    color_space : {"rgb", "lab"}
        Cluster in the image's RGB values (default, the OpenCV recipe) or in CIELAB,
        where distances follow how different colours look. Lab applies to RGB(A)
        images of unsigned integers (full intensity = the dtype's maximum) or floats
        in 0..1. Centres and the quantized image are in the image's own RGB either way.
    standardize : bool
        Scale each channel to zero mean and unit variance (z-score, over the clustered
        pixels) before clustering, so that a bright channel does not dominate.
    planes : {"stack", "each"}
        ``"stack"`` (default): one palette for all the pixels of an nD stack, so a
        colour means the same in every plane. ``"each"``: a palette per 2D plane (the
        last two spatial axes); plane p (in C order) gets labels ``p * k + 1`` to
        ``(p + 1) * k``, so that every label names one row of ``centers``.
    sample_size : int, optional
        Fit the centres on this many pixels drawn at random (from ``seed``), then
        label every pixel with its nearest centre. Default: all pixels for numpy
        input, 1,000,000 for lazy input.
    fit_level : int
        For multiscale input (a list of arrays, largest first), the level fitted on
        (default -1, the lowest resolution; 0 with ``sample_size`` samples level 0).

    Lazy input: a dask array (or zarr, or any array that is not numpy's) is never
    loaded whole. The centres are fitted on a sample drawn chunk by chunk, and the
    result's ``labels`` and ``image`` are dask arrays computed block by block (lists
    of them, one per level, for multiscale input); its counts and compactness are
    the sample's. With a ``dask.distributed.Client`` active the work runs on it.

    Returns
    -------
    Quantization
        ``labels`` (1..k, darkest first), ``centers`` (k, C), ``image`` (same shape and
        dtype as the input), ``compactness``, ``counts``, ``params``, ``elapsed``.
        With ``color_space="lab"`` or ``standardize`` the compactness is measured in
        the space clustered; with ``planes="each"``, ``centers`` has k rows per plane.

    Raises
    ------
    ValueError
        If ``image`` is empty or not numeric; if no pixel is left to cluster (empty
        mask, all NaN); if ``k`` < 1 or exceeds the number of pixels or of distinct
        colours; if an option is out of range; if the run would need more working
        memory than the machine has available.

    Notes
    -----
    To reproduce the OpenCV tutorial recipe (``cv2.kmeans(Z, K, None, (EPS +
    MAX_ITER, 10, 1.0), 10, KMEANS_RANDOM_CENTERS)`` after ``cv2.setRNGSeed(seed)``)
    use ``method="opencv", init="random", attempts=10, max_iter=10, epsilon=1.0``:
    the partition, centres and compactness are the same, with labels renumbered
    darkest first and the quantized image rounded rather than truncated.

    Examples
    --------
    >>> from skimage import data
    >>> result = quantize(data.astronaut(), k=4, seed=0)
    >>> result.image.shape, result.image.dtype, result.k
    ((512, 512, 3), dtype('uint8'), 4)
    >>> sorted(set(result.labels.ravel().tolist()))
    [1, 2, 3, 4]
    """
    started = time.perf_counter()
    seed = check_seed(seed)  # once: a drawn seed then serves every plane and sample
    options = {name: value for name, value in locals().items() if name in QUANTIZE_DEFAULTS}
    options.pop("sample_size"), options.pop("fit_level")
    if takes_lazy_path(image):
        return quantize_lazy(image, k, sample_size=sample_size, fit_level=fit_level, **options)
    if sample_size is not None:
        return quantize_sampled(np.asarray(image), k, sample_size=sample_size, **options)
    k = check_k(k)
    if check_choice("planes", planes, choices("planes")) == "each":
        return _quantize_planes(image, k, options, started)
    job = Job.of(image, Options.picked(options), **layout_keywords(options))
    job.check_k(k)
    return job.result(job.fit(k), started)


def _quantize_planes(image, k: int, options: dict, started: float) -> Quantization:
    """``planes="each"``: quantize every 2D plane of a stack on its own."""
    image = np.asarray(image)
    axis = options["channel_axis"]
    layout = Layout.of(image, options["rgb"], axis)
    data = layout.arrange(image)
    spatial = data.shape[:-1] if layout.channels else data.shape
    options = {**options, "planes": "stack", "channel_axis": -1 if axis is not None else None}
    if len(spatial) <= 2:  # a single plane
        result = quantize(image, k, **{**options, "channel_axis": axis})
        return replace(result, params={**result.params, "planes": "each", "n_planes": 1})
    mask = None if options["mask"] is None else np.asarray(options["mask"])
    if mask is not None:
        check_mask_shape(mask, spatial)
    planes = list(np.ndindex(spatial[:-2]))
    dtype = label_dtype(k * len(planes))
    labels = np.zeros(spatial, dtype=dtype)
    out = np.empty_like(data)
    results = []
    for p, index in enumerate(planes):
        plane_mask = None if mask is None else mask[index]
        try:
            result = quantize(data[index], k, **{**options, "mask": plane_mask})
        except ValueError as exc:
            raise InvalidInputError(f"plane {index}: {exc}") from None
        plane_labels = labels[index]
        plane_labels[...] = result.labels
        plane_labels[plane_labels > 0] += dtype.type(p * k)
        out[index] = result.image
        results.append(result)
    params = {
        **results[0].params,
        "planes": "each",
        "n_planes": len(planes),
        "plane_compactness": [r.compactness for r in results],
        "channel_axis": axis,
    }
    if params.get("channel_scale") is not None:
        params["channel_scale"] = [r.params["channel_scale"] for r in results]
    return Quantization(
        labels=labels,
        centers=np.concatenate([r.centers for r in results]),
        image=layout.restore(out),
        compactness=float(sum(r.compactness for r in results)),
        sse=float(sum(r.sse for r in results)),
        counts=np.concatenate([r.counts for r in results]),
        params=params,
        elapsed=time.perf_counter() - started,
    )


@keyboard_interrupts
def apply_palette(
    image,
    centers,
    *,
    rgb: bool | None = None,
    mask=None,
    channel_axis: int | None = None,
    color_space: str | None = None,
    channel_scale=None,
) -> Quantization:
    """Quantize ``image`` with given centres: every pixel takes its nearest centre.

    This is how a palette fitted on one image (a plane, a region, another file) is
    reapplied to others. Labels follow the rows of ``centers`` (label i is row i - 1);
    they are not reordered.

    Parameters
    ----------
    image : (..., C) or (...) ndarray
        As for :func:`quantize`.
    centers : Palette or (k, C) array_like
        A :class:`Palette` (its colour space and scaling are used), or centres in the
        image's value units: C = 3 for RGB(A) images, 1 for gray, the number of
        features along ``channel_axis``.
    rgb, mask, channel_axis : optional
        As for :func:`quantize`.
    color_space : {"rgb", "lab"}, optional
        For bare centres: where the nearest centre is measured (default "rgb").
    channel_scale : (C,) array_like, optional
        For bare centres: divide each channel by this before measuring distances (a
        standardized fit's ``params["channel_scale"]``).

    Returns
    -------
    Quantization
        Labels (nearest centre, exactly, for every pixel), the given centres, the
        quantized image, compactness and counts; ``params["method"]`` is ``"palette"``.

    Raises
    ------
    ValueError
        If ``centers`` is not a finite (k, C) array matching the image's channels, or
        for any reason :func:`quantize` refuses the image.

    Examples
    --------
    >>> from skimage import data
    >>> fitted = quantize(data.astronaut(), 6, seed=0)
    >>> again = apply_palette(data.astronaut(), fitted.centers)
    >>> bool((again.labels == fitted.labels).all())
    True
    >>> apply_palette(data.coffee(), fitted.centers).image.shape
    (400, 600, 3)
    """
    if isinstance(centers, Palette):
        if color_space is not None or channel_scale is not None:
            raise InvalidInputError(
                "a Palette carries its colour space and scaling: give color_space and "
                "channel_scale only with bare centres"
            )
        palette = centers
    else:
        centers = np.asarray(centers, dtype=np.float64)
        if centers.ndim == 1:
            centers = centers[:, None]
        palette = Palette(
            centers,
            color_space="rgb" if color_space is None else color_space,
            channel_scale=channel_scale,
        )
    return palette.apply(image, mask=mask, rgb=rgb, channel_axis=channel_axis)
