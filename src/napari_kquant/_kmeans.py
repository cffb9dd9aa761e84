"""Colour quantization with k-means (core: numpy + cv2 only, no napari, no Qt)."""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from . import _engines
from ._cancel import checkpoint
from ._memory import check_memory
from ._palette import COLOR_SPACES, darkest_first, lab_to_rgb, rgb_to_lab
from ._validate import (
    CRITERIA,
    MAX_ATTEMPTS,
    MAX_FLOAT_MAGNITUDE,
    OPENCV_MAX_MAGNITUDE,
    check_axis,
    check_choice,
    check_count,
    check_criteria,
    check_epsilon,
    check_flag,
    check_image,
    check_k,
    check_mask_dtype,
    check_mask_shape,
    check_seed,
    criteria_name,
    guess_rgb,
    working_table,
)

METHODS = ("fast", "opencv")
INITS = ("kmeans++", "random")
PLANES = ("stack", "each")
# re-exported for the modules that import them from here
__all__ = ["CRITERIA", "check_mask_shape", "guess_rgb"]


@dataclass(frozen=True)
class Quantization:
    """Result of :func:`quantize`.

    Attributes
    ----------
    labels : (...) ndarray of unsigned int
        Cluster of each pixel, 1..k, over the image's spatial shape (0 is reserved
        for pixels that are not clustered). Label 1 is the darkest centre.
    centers : (k, C) ndarray of float64
        Centre of each cluster in the image's own value units; row ``i`` belongs to
        label ``i + 1``. ``C`` is 3 for RGB and RGBA (alpha is not clustered), 1 for gray.
    image : ndarray
        The quantized image: same shape and dtype as the input, every pixel replaced
        by its centre (rounded and clipped for integer dtypes).
    compactness : float
        Sum of squared distances from each pixel to its centre (OpenCV's figure), in
        the space clustered (Lab or z-scored units when those were asked for).
    counts : (k,) ndarray of int64
        Pixels per label.
    params : dict
        Every parameter actually used (k, method, attempts, max_iter, epsilon,
        criteria, init, seed, rgb, channel_axis, color_space, standardize, planes,
        and ``channel_scale`` when standardized).
    elapsed : float
        Seconds spent in :func:`quantize`.
    sse : float
        Sum of squared differences between each clustered pixel and its centre in the
        image's own units (equal to ``compactness`` when clustering in RGB values):
        what MSE and PSNR are measured from.

    Examples
    --------
    >>> from skimage import data
    >>> result = quantize(data.coffee(), 3, seed=0)
    >>> result.k, result.centers.shape, int(result.counts.sum())
    (3, (3, 3), 240000)
    >>> [round(f, 2) for f in result.fractions.tolist()] == [
    ...     round(c / 240000, 2) for c in result.counts.tolist()]
    True
    """

    labels: np.ndarray
    centers: np.ndarray
    image: np.ndarray
    compactness: float
    counts: np.ndarray
    params: dict[str, Any] = field(default_factory=dict)
    elapsed: float = 0.0
    sse: float | None = None

    def __post_init__(self):
        if self.sse is None:  # clustered in the image's own values
            object.__setattr__(self, "sse", float(self.compactness))

    @property
    def k(self) -> int:
        """Number of clusters (per plane, for ``planes="each"``)."""
        return int(self.params.get("k", len(self.centers)))

    def apply(self, image, *, mask=None) -> Quantization:
        """Label another image (or frame, or region) with this result's palette.

        The same channels, colour space and channel scaling are used as in the fit;
        see :func:`apply_palette`.

        Examples
        --------
        >>> from skimage import data
        >>> fitted = quantize(data.astronaut(), 5, seed=0)
        >>> other = fitted.apply(data.coffee())
        >>> other.k, bool((other.centers == fitted.centers).all())
        (5, True)
        """
        if self.params.get("planes") == "each":
            raise ValueError(
                "this result holds one palette per plane: apply one plane's palette with "
                "apply_palette(image, result.centers[p * k:(p + 1) * k])"
            )
        scale = self.params.get("channel_scale")
        return apply_palette(
            image,
            self.centers,
            rgb=self.params.get("rgb"),
            channel_axis=self.params.get("channel_axis"),
            color_space=self.params.get("color_space", "rgb"),
            channel_scale=scale,
            mask=mask,
        )

    @property
    def fractions(self) -> np.ndarray:
        """Fraction of the clustered pixels in each label."""
        total = self.counts.sum()
        return self.counts / total if total else self.counts.astype(float)


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
    options = {name: value for name, value in locals().items() if name in QUANTIZE_OPTIONS}
    options.pop("sample_size"), options.pop("fit_level")
    from . import _lazy

    if _lazy.is_lazy(image) or _lazy.is_multiscale(image):
        return _lazy.quantize_lazy(
            image, k, sample_size=sample_size, fit_level=fit_level, **options
        )
    if sample_size is not None:
        return _lazy.quantize_sampled(np.asarray(image), k, sample_size=sample_size, **options)
    k = check_k(k)
    if check_choice("planes", planes, PLANES) == "each":
        return _quantize_planes(image, k, options, started)
    job = _Job.of(image, **options)
    job.check_k(k)
    return job.result(job.fit(k), started)


def _quantize_planes(image, k: int, options: dict, started: float) -> Quantization:
    """``planes="each"``: quantize every 2D plane of a stack on its own."""
    image = np.asarray(image)
    axis = options["channel_axis"]
    data = image if axis is None else np.moveaxis(image, check_axis(image, axis), -1)
    channels = axis is not None or check_image(data, options["rgb"])
    spatial = data.shape[:-1] if channels else data.shape
    options = {**options, "planes": "stack", "channel_axis": -1 if axis is not None else None}
    if len(spatial) <= 2:  # a single plane
        result = quantize(image, k, **{**options, "channel_axis": axis})
        return replace(result, params={**result.params, "planes": "each", "n_planes": 1})
    mask = None if options["mask"] is None else np.asarray(options["mask"])
    if mask is not None:
        check_mask_shape(mask, spatial)
    planes = list(np.ndindex(spatial[:-2]))
    dtype = _engines.label_dtype(k * len(planes))
    labels = np.zeros(spatial, dtype=dtype)
    out = np.empty_like(data)
    results = []
    for p, index in enumerate(planes):
        plane_mask = None if mask is None else mask[index]
        try:
            result = quantize(data[index], k, **{**options, "mask": plane_mask})
        except ValueError as exc:
            raise ValueError(f"plane {index}: {exc}") from None
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
        image=out if axis is None else np.moveaxis(out, -1, axis),
        compactness=float(sum(r.compactness for r in results)),
        sse=float(sum(r.sse for r in results)),
        counts=np.concatenate([r.counts for r in results]),
        params=params,
        elapsed=time.perf_counter() - started,
    )


def apply_palette(
    image,
    centers,
    *,
    rgb: bool | None = None,
    mask=None,
    channel_axis: int | None = None,
    color_space: str = "rgb",
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
    centers : (k, C) array_like
        The palette in the image's value units: C = 3 for RGB(A) images, 1 for gray,
        the number of features along ``channel_axis``.
    rgb, mask, channel_axis, color_space : optional
        As for :func:`quantize`; ``color_space="lab"`` picks the nearest centre in Lab.
    channel_scale : (C,) array_like, optional
        Divide each channel by this before measuring distances (a standardized fit's
        ``params["channel_scale"]``).

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
    started = time.perf_counter()
    if channel_scale is not None:
        channel_scale = np.asarray(channel_scale, dtype=np.float64).reshape(-1)
        if not (np.isfinite(channel_scale).all() and (channel_scale > 0).all()):
            raise ValueError(f"channel_scale must be finite and positive, got {channel_scale}")
    job = _Job.of(
        image,
        **{
            **QUANTIZE_DEFAULTS,
            "rgb": rgb,
            "mask": mask,
            "channel_axis": channel_axis,
            "color_space": color_space,
            "standardize": False if channel_scale is None else channel_scale,
        },
    )
    centers = np.asarray(centers, dtype=np.float64)
    n_channels = job.table.shape[1]
    if centers.ndim == 1 and n_channels == 1:
        centers = centers[:, None]
    if centers.ndim != 2 or centers.shape[1] != n_channels or len(centers) == 0:
        raise ValueError(
            f"centers must be a (k, {n_channels}) array for this image, got shape {centers.shape}"
        )
    if not np.isfinite(centers).all():
        raise ValueError("centers contain NaN or inf")
    if np.abs(centers).max() > MAX_FLOAT_MAGNITUDE:
        raise ValueError(
            f"centers up to {np.abs(centers).max():.3g} make squared distances overflow: "
            f"palette values must stay below {MAX_FLOAT_MAGNITUDE:.0e}"
        )
    fit = job.fast_engine().assign(job.space.forward(centers))
    return job.result(fit, started, centers=centers, method="palette")


# The keyword options of quantize() and their defaults (sweeps take the same).
QUANTIZE_DEFAULTS = {
    name: p.default
    for name, p in inspect.signature(quantize).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
}
QUANTIZE_OPTIONS = tuple(QUANTIZE_DEFAULTS)


@dataclass(frozen=True)
class FeatureSpace:
    """Where pixels are clustered: RGB or CIELAB, optionally z-scored per channel.

    ``forward`` takes an (N, C) table (or centres) in image units to that space,
    ``back`` takes centres back to image units.
    """

    color_space: str = "rgb"
    white: float = 1.0  # full intensity, for Lab
    offset: np.ndarray | None = None
    scale: np.ndarray | None = None

    @property
    def identity(self) -> bool:
        """Whether pixels are clustered in their own values."""
        return self.color_space == "rgb" and self.scale is None

    def forward(self, table: np.ndarray) -> np.ndarray:
        """Image units to the clustering space."""
        if self.color_space == "lab":
            table = rgb_to_lab(table, self.white)
        if self.scale is not None:
            table = (table - self.offset) / self.scale
        return table

    def back(self, centers: np.ndarray) -> np.ndarray:
        """Centres in the clustering space to image units."""
        if self.scale is not None:
            centers = centers * self.scale + self.offset
        if self.color_space == "lab":
            centers = lab_to_rgb(centers, self.white)
        return centers

    @classmethod
    def of(cls, table, color_space, standardize, dtype, rgb) -> tuple[FeatureSpace, np.ndarray]:
        """The space for these options and the table moved into it."""
        if color_space not in COLOR_SPACES:
            raise ValueError(f"color_space must be one of {COLOR_SPACES}, got {color_space!r}")
        white = 1.0
        if color_space == "lab":
            if not rgb:
                raise ValueError(
                    "color_space='lab' applies to RGB(A) images only: this image has no "
                    "colour axis (use color_space='rgb')"
                )
            if np.issubdtype(dtype, np.signedinteger):
                raise ValueError(
                    f"color_space='lab' needs unsigned integer or 0..1 float RGB, not {dtype}"
                )
            if np.issubdtype(dtype, np.integer):
                white = float(np.iinfo(dtype).max)
        space = cls(color_space, white)
        table = space.forward(table)
        if standardize is False or standardize is None:
            return space, table
        if standardize is True:
            # column by column on contiguous copies: the same figures whatever the
            # table's memory layout (eager and lazy paths then agree to the bit)
            columns = [
                np.ascontiguousarray(table[:, c], dtype=np.float64) for c in range(table.shape[1])
            ]
            offset = np.array([column.mean() for column in columns])
            scale = np.array([column.std() for column in columns])
            scale[~(scale > 0)] = 1.0
        else:  # a given scale (apply_palette): the offset does not change distances
            scale = np.asarray(standardize, dtype=np.float64).reshape(-1)
            if len(scale) != table.shape[1]:
                raise ValueError(
                    f"channel_scale has {len(scale)} values for {table.shape[1]} channels"
                )
            offset = np.zeros_like(scale)
        space = replace(space, offset=offset, scale=scale)
        return space, (table - offset) / scale


@dataclass(frozen=True)
class _Job:
    """Validated input and options, ready to quantize at one or several K."""

    image: np.ndarray
    table: np.ndarray
    rgb: bool
    method: str
    attempts: int
    max_iter: int
    epsilon: float | None
    criteria_type: int
    init: str
    seed: int
    keep: np.ndarray | None  # which pixels are clustered (None: all)
    channel_axis: int | None  # where the features were in the input (moved last here)
    space: FeatureSpace
    raw: np.ndarray  # the clustered pixels in image units (``table`` before the space)
    cache: dict = field(default_factory=dict, compare=False)

    @classmethod
    def of(
        cls,
        image,
        *,
        method,
        attempts,
        max_iter,
        epsilon,
        criteria,
        init,
        seed,
        rgb,
        mask,
        channel_axis=None,
        color_space="rgb",
        standardize=False,
        planes="stack",
        sample_size=None,
        fit_level=-1,
    ) -> _Job:
        if sample_size is not None:
            raise ValueError("sample_size applies to quantize() only")
        if planes != "stack":
            raise ValueError(
                f"planes={planes!r} is for quantize(): sweeps and palettes use the whole stack"
            )
        image = np.asarray(image)
        if channel_axis is not None:
            if rgb is not None and check_flag("rgb", rgb):
                raise ValueError("give rgb=True or channel_axis, not both")
            channel_axis = check_axis(image, channel_axis)
            image = np.moveaxis(image, channel_axis, -1)
            check_image(image, False)
            rgb = True  # below, rgb means "the last axis holds the channels"
        else:
            rgb = check_image(image, rgb)
        method = check_choice("method", method, METHODS)
        init = check_choice("init", init, INITS)
        attempts = check_count("attempts", attempts, MAX_ATTEMPTS)
        criteria_type, max_iter, epsilon = check_criteria(criteria, max_iter, epsilon)
        if method == "opencv":
            epsilon = check_epsilon(epsilon, OPENCV_MAX_MAGNITUDE)
        seed = check_seed(seed)
        color_space = check_choice("color_space", color_space, COLOR_SPACES)
        if not isinstance(standardize, np.ndarray):
            standardize = check_flag("standardize", standardize)
        n_channels = (
            (min(image.shape[-1], 3) if channel_axis is None else image.shape[-1]) if rgb else 1
        )
        # before any copy of the pixels: the estimate needs only the shape and dtype
        check_memory(
            image.shape,
            image.dtype,
            n_channels,
            method,
            contiguous=image.flags.c_contiguous and mask is None,
            transformed=color_space != "rgb" or standardize is not False,
        )
        table = image.reshape(-1, image.shape[-1])[:, :n_channels] if rgb else image.reshape(-1, 1)
        keep = _clustered_pixels(image, table, rgb, mask)
        if keep is not None:
            table = table[keep]
        table = working_table(table)
        floating = np.issubdtype(table.dtype, np.floating)
        if floating:
            low, high = float(table.min()), float(table.max())
            if max(abs(low), abs(high)) > MAX_FLOAT_MAGNITUDE:
                raise ValueError(
                    f"values up to {max(abs(low), abs(high)):.3g} make squared distances "
                    f"overflow: rescale the image below {MAX_FLOAT_MAGNITUDE:.0e}"
                )
        true_rgb = rgb and channel_axis is None
        raw = table
        if color_space == "lab" and floating and (low < 0 or high > 1):
            raise ValueError(
                f"color_space='lab' reads float RGB as 0..1, but this image spans "
                f"{low:.4g}..{high:.4g}: scale it to 0..1 (e.g. image / 255) or use 'rgb'"
            )
        space, table = FeatureSpace.of(table, color_space, standardize, image.dtype, true_rgb)
        if not space.identity and not np.isfinite(table).all():
            raise ValueError(
                "the values overflow when standardized: rescale the image or use standardize=False"
            )
        if method == "opencv":
            if not (floating and space.identity):  # the range of the values clustered
                low, high = float(table.min()), float(table.max())
            if max(abs(low), abs(high)) > OPENCV_MAX_MAGNITUDE:
                raise ValueError(
                    f"values up to {max(abs(low), abs(high)):.3g} are beyond what OpenCV's "
                    f"float32 k-means can measure (about {OPENCV_MAX_MAGNITUDE:.0e}): "
                    "use method='fast', or rescale the image"
                )
            if epsilon is None:
                epsilon = _engines.default_epsilon(low, high)
        return cls(
            image,
            table,
            rgb,
            method,
            attempts,
            max_iter,
            epsilon,
            criteria_type,
            init,
            seed,
            keep,
            channel_axis,
            space,
            raw,
        )

    def check_k(self, k_max: int) -> None:
        """Refuse a K the data cannot give."""
        _check_k_against_data(self.table, k_max)

    def fast_engine(self, sweep: bool = False) -> _engines.FastEngine:
        """The fast engine's summary of this image (shared by the K of a sweep)."""
        if sweep:
            return _engines.FastEngine(self.table, True, _engines.SWEEP_MID_POINTS)
        return _engines.FastEngine(self.table)

    def engine_options(self) -> tuple:
        """max_iter, epsilon, use_epsilon, attempts, init as the engines take them."""
        return (
            # a criterion that is off never stops the iterations
            self.max_iter if self.criteria_type & cv2.TERM_CRITERIA_MAX_ITER else 10_000,
            self.epsilon,
            bool(self.criteria_type & cv2.TERM_CRITERIA_EPS),
            self.attempts,
            self.init,
        )

    def fit(self, k) -> _engines.Fit:
        """Cluster at ``k`` with this job's engine."""
        if self.method == "opencv":
            criteria = (self.criteria_type, self.max_iter, self.epsilon)
            return _engines.opencv_kmeans(
                self.table,
                k,
                criteria=criteria,
                attempts=self.attempts,
                init=self.init,
                seed=self.seed,
            )
        engine = self.fast_engine()
        return engine.fit(k, *self.engine_options(), np.random.default_rng(self.seed))

    def fits(self, ks):
        """Yield a Fit per K of ``ks``; the fast engine shares work between them."""
        if self.method == "opencv" or len(ks) == 1:
            yield from (self.fit(k) for k in ks)
            return
        engine = self.fast_engine(sweep=True)
        yield from engine.sweep(ks, *self.engine_options(), np.random.default_rng(self.seed))

    def result(self, fit: _engines.Fit, started: float, centers=None, **params) -> Quantization:
        """The Quantization of one Fit (``params`` override the recorded parameters).

        ``centers``: the palette in image units when it was given (apply_palette);
        otherwise the fitted centres are taken back to image units and, when that
        changes their brightness order, relabelled darkest first.
        """
        k = len(fit.centers)
        spatial_shape = self.image.shape[:-1] if self.rgb else self.image.shape
        if centers is None:
            centers = fit.centers
            if not self.space.identity:
                centers, fit = self._back(fit)
        labels, counts = fit.labels, fit.counts
        sse = None if self.space.identity else _engines.pixel_figures(self.raw, labels, centers)[1]
        if self.keep is not None:
            labels = np.zeros(self.keep.shape, dtype=fit.labels.dtype)
            labels[self.keep] = fit.labels
        labels = labels.reshape(spatial_shape)
        params = {
            "k": k,
            "method": self.method,
            "attempts": self.attempts,
            "max_iter": self.max_iter,
            "epsilon": fit.epsilon,
            "criteria": criteria_name(self.criteria_type),
            "init": self.init,
            "seed": self.seed,
            "rgb": self.rgb and self.channel_axis is None,
            "channel_axis": self.channel_axis,
            "color_space": self.space.color_space,
            "standardize": self.space.scale is not None,
            "planes": "stack",
            **params,
        }
        if self.space.scale is not None:
            params["channel_scale"] = self.space.scale.tolist()
            params["channel_offset"] = self.space.offset.tolist()
        image = render(self.image, labels, centers, self.rgb)
        if self.channel_axis is not None:
            image = np.moveaxis(image, -1, self.channel_axis)
        return Quantization(
            labels=labels,
            centers=centers,
            image=image,
            compactness=fit.compactness,
            sse=sse,
            counts=counts,
            params=params,
            elapsed=time.perf_counter() - started,
        )

    def _back(self, fit: _engines.Fit) -> tuple[np.ndarray, _engines.Fit]:
        """Fitted centres in image units, darkest first, and every pixel's nearest of them.

        The pixels are labelled again with the reported centres taken into the
        clustering space, so that the labels are exactly what reapplying the palette
        (apply_palette, the lazy path) gives.
        """
        centers = self.space.back(fit.centers)
        if self.space.color_space == "lab":
            # Lab centres of in-gamut colours can map slightly outside the data: clip.
            raw = self.image.reshape(-1, self.image.shape[-1])[:, :3]
            raw = raw if self.keep is None else raw[self.keep]
            low = np.array([float(raw[:, c].min()) for c in range(3)])
            high = np.array([float(raw[:, c].max()) for c in range(3)])
            centers = np.clip(centers, low, high)
        centers = centers[darkest_first(centers)]
        if "engine" not in self.cache:  # one summary serves every K of a sweep
            self.cache["engine"] = self.fast_engine()
        return centers, self.cache["engine"].assign(self.space.forward(centers), fit.epsilon)


def render(image: np.ndarray, labels: np.ndarray, centers: np.ndarray, rgb: bool) -> np.ndarray:
    """The quantized image: each pixel with label ``i`` becomes ``centers[i - 1]``.

    Label 0 keeps the source value; integer dtypes are rounded and clipped; alpha
    (the 4th channel of RGBA) is carried over unchanged. Works in blocks, so the only
    large allocation is the output itself.
    """
    n_channels = centers.shape[1]
    # Row 0 of the palette serves label 0 and is overwritten by the source below.
    palette = np.zeros((len(centers) + 1, n_channels), dtype=image.dtype)
    palette[1:] = to_dtype(centers, image.dtype)
    flat_labels = labels.reshape(-1)
    n_pixels = flat_labels.size
    width = image.shape[-1] if rgb else 1
    # C order, so that the reshape below is a view of `out` (for an input whose
    # channel axis was moved last, np.empty_like would keep its strides and the
    # reshape would write into a copy)
    out = np.array(image, order="C") if width > n_channels else np.empty(image.shape, image.dtype)
    target = out.reshape(n_pixels, width)[:, :n_channels]
    source = image.reshape(n_pixels, width)[:, :n_channels]
    lut = None
    if image.dtype == np.uint8 and labels.dtype == np.uint8 and n_channels == 3:
        # OpenCV's LUT applies the palette per channel in one vectorised pass.
        lut = np.zeros((256, 1, 3), np.uint8)
        lut[: len(palette), 0] = palette
    for start in range(0, n_pixels, _engines.BLOCK):
        checkpoint()
        block = slice(start, start + _engines.BLOCK)
        lab = flat_labels[block]
        if lut is None:
            target[block] = np.take(palette, lab, axis=0)
        else:
            column = lab.reshape(-1, 1)
            target[block] = cv2.LUT(cv2.merge([column, column, column]), lut).reshape(-1, 3)
        unclustered = lab == 0
        if unclustered.any():
            target[block][unclustered] = source[block][unclustered]
    return out


def to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast centre values to ``dtype``: rounded and clipped for integers."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        high = float(info.max)
        if int(high) > info.max:  # 64-bit maxima round up as floats: stay below them
            high = float(np.nextafter(high, -np.inf))
        return np.clip(np.rint(values), float(info.min), high).astype(dtype)
    return np.asarray(values).astype(dtype)


def _clustered_pixels(image, table, rgb, mask) -> np.ndarray | None:
    """Flat boolean of the pixels to cluster (mask, finite values), None for all."""
    spatial = image.shape[:-1] if rgb else image.shape
    keep = None
    if mask is not None:
        mask = np.asarray(mask)
        check_mask_shape(mask, spatial)
        check_mask_dtype(mask)
        keep = mask.reshape(-1).astype(bool)
    if np.issubdtype(image.dtype, np.floating):
        finite = np.isfinite(table).all(axis=1)
        if not finite.all():
            keep = finite if keep is None else keep & finite
    if keep is None or keep.all():
        return None
    if not keep.any():
        raise ValueError(
            "no pixel to cluster: the mask selects none, or every selected pixel is NaN or inf"
        )
    return keep


def _check_k_against_data(table: np.ndarray, k: int) -> None:
    """K may not exceed the pixels, nor the distinct colours (found cheaply, blockwise)."""
    if k > len(table):
        raise ValueError(
            f"k={k} exceeds the number of pixels ({len(table)}): choose k <= {len(table)}"
        )
    rows = np.ascontiguousarray(table).view(
        np.dtype((np.void, table.dtype.itemsize * table.shape[1]))
    )
    size = 4096
    while True:
        distinct = len(np.unique(rows[:size]))
        if distinct >= k:
            return
        if size >= len(rows):
            raise ValueError(
                f"k={k} exceeds the {distinct} distinct colours in the image: "
                f"choose k <= {distinct}"
            )
        size *= 16
