"""Colour quantization with k-means (core: numpy + cv2 only, no napari, no Qt)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

import cv2
import numpy as np

from .cancel import checkpoint, on_threads
from .engines import ENGINES
from .fast import contract, lloyd, prepare
from .fast.engine import labeller
from .layout import Layout
from .memory import Footprint
from .options import DEFAULTS, Options, choices
from .palette import Palette, darkest_first, register_applier
from .spaces import COLOR_SPACES, FeatureSpace, palette_origin, scaling
from .validate import (
    CRITERIA,
    MAX_FLOAT_MAGNITUDE,
    InvalidInputError,
    NothingToCluster,
    check_choice,
    check_count,
    check_criteria,
    check_epsilon,
    check_flag,
    check_mask_dtype,
    check_mask_shape,
    check_seed,
    criteria_name,
    guess_rgb,
    working_dtype,
    working_table,
)

METHODS = choices("method")
INITS = choices("init")
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
        the space clustered (Lab or z-scored units when those were asked for). For
        lazy input: over the sample the centres were fitted on.
    counts : (k,) ndarray of int64
        Pixels per label (for lazy input: in the sample the centres were fitted on).
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
    >>> from napari_kquant import quantize
    >>> result = quantize(data.coffee(), 3, seed=0)
    >>> result.k, result.centers.shape, int(result.counts.sum())
    (3, (3, 3), 240000)
    >>> [round(f, 2) for f in result.fractions.tolist()] == [
    ...     round(c / 240000, 2) for c in result.counts.tolist()]
    True
    """

    labels: Any  # ndarray; a dask array (lazy), or a list of them (multiscale)
    centers: np.ndarray
    image: Any  # as labels
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

    @property
    def palette(self) -> Palette:
        """The fitted palette: centres, the space they were fitted in, provenance.

        Save it with :func:`napari_kquant.save_palette`, apply it with
        :meth:`Palette.apply`. A result with one palette per plane has none.
        """
        if self.params.get("planes") == "each":
            raise InvalidInputError(
                "this result holds one palette per plane: fit one palette "
                "(planes='stack') to save or reapply it"
            )
        params = self.params
        layout = ("rgb", "channel_axis", "color_space", "channel_scale", "channel_offset")
        return Palette(
            self.centers,
            color_space=params.get("color_space", "rgb"),
            channel_scale=params.get("channel_scale"),
            channel_offset=params.get("channel_offset"),
            rgb=params.get("rgb"),
            channel_axis=params.get("channel_axis"),
            counts=self.counts,
            params={key: v for key, v in params.items() if key not in layout},
        )

    def apply(self, image, *, mask=None) -> Quantization:
        """Label another image (or frame, or region) with this result's palette.

        The same channels, colour space and channel scaling are used as in the fit;
        see :meth:`Palette.apply`.

        Examples
        --------
        >>> from skimage import data
        >>> from napari_kquant import quantize
        >>> fitted = quantize(data.astronaut(), 5, seed=0)
        >>> other = fitted.apply(data.coffee())
        >>> other.k, bool((other.centers == fitted.centers).all())
        (5, True)
        """
        return self.palette.apply(image, mask=mask)

    @property
    def fractions(self) -> np.ndarray:
        """Fraction of the clustered pixels in each label."""
        return count_fractions(self.counts)


def count_fractions(counts: np.ndarray) -> np.ndarray:
    """Fraction of the clustered pixels in each label (zeros when none is clustered)."""
    total = counts.sum()
    return counts / total if total else counts.astype(float)


def apply_eager(image, palette: Palette, *, mask=None, rgb=None, channel_axis=None):
    """Label an in-memory image with ``palette`` (the eager apply strategy)."""
    started = time.perf_counter()
    job = palette_job(image, palette, mask=mask, rgb=rgb, channel_axis=channel_axis)
    fit = job.labeller().assign(job.space.forward(palette.centers))
    return job.result(fit, started, centers=palette.centers, method="palette")


def label_eager(image, palette: Palette, *, mask=None, rgb=None, channel_axis=None):
    """The labels alone of :func:`apply_eager`, laid out as the image (0: not clustered).

    The lazy path labels each block with it, so lazy and eager labels are the same
    passes' and byte-identical. Raises :class:`NothingToCluster` where no pixel is.
    """
    job = palette_job(image, palette, mask=mask, rgb=rgb, channel_axis=channel_axis)
    fit = job.labeller().assign(job.space.forward(palette.centers), figures=False)
    return job.spatial_labels(fit.label_array())


def palette_job(image, palette: Palette, *, mask=None, rgb=None, channel_axis=None) -> Job:
    """The job that labels ``image`` with ``palette`` (its space, scaling and origin)."""
    image = np.asarray(image)
    job = Job.of(
        image,
        Options.picked({"color_space": palette.color_space}),
        rgb=rgb,
        mask=mask,
        channel_axis=channel_axis,
        scaling=scaling(palette),
        origin=palette_origin(palette.centers, working_dtype(image.dtype)),
    )
    centers = palette.centers
    n_channels = job.table.shape[1]
    if centers.shape[1] != n_channels:
        raise InvalidInputError(
            f"centers must be a (k, {n_channels}) array for this image, got shape {centers.shape}"
        )
    return job


register_applier("eager", apply_eager)  # numpy, and anything numpy can read


@dataclass(frozen=True)
class Fitting:
    """How a fit searches and when it stops: :class:`.Options`' fit options, checked."""

    method: str
    attempts: int
    max_iter: int
    epsilon: float | None
    criteria_type: int  # OpenCV's TERM_CRITERIA_* bits
    init: str
    seed: int

    @classmethod
    def of(cls, options: Options) -> Fitting:
        """Check the fit options (a ValueError naming the first bad one)."""
        method = check_choice("method", options.method, METHODS)
        init = check_choice("init", options.init, INITS)
        attempts = check_count("attempts", options.attempts)
        criteria_type, max_iter, epsilon = check_criteria(
            options.criteria, options.max_iter, options.epsilon
        )
        return cls(
            method=method,
            attempts=attempts,
            max_iter=max_iter,
            epsilon=check_epsilon(epsilon, ENGINES[method].max_magnitude),
            criteria_type=criteria_type,
            init=init,
            seed=check_seed(options.seed),
        )

    @property
    def engine(self):
        """The engine that fits (an entry of ``ENGINES``)."""
        return ENGINES[self.method]

    def settings(self) -> contract.Settings:
        """The search and stopping options as the engines read them."""
        return contract.Settings(
            # a criterion that is off never stops the iterations
            max_iter=self.max_iter if self.criteria_type & cv2.TERM_CRITERIA_MAX_ITER else 10_000,
            epsilon=self.epsilon,
            use_epsilon=bool(self.criteria_type & cv2.TERM_CRITERIA_EPS),
            attempts=self.attempts,
            init=self.init,
        )

    def params(self) -> dict[str, Any]:
        """The recorded parameters (the epsilon used is the fit's own)."""
        return {
            "method": self.method,
            "attempts": self.attempts,
            "max_iter": self.max_iter,
            "criteria": criteria_name(self.criteria_type),
            "init": self.init,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class Job:
    """Validated input and options, ready to quantize at one or several K.

    ``image`` has its channels last (``layout`` knows where they were); ``table`` is
    the clustered pixels in the space clustered, ``raw`` the same pixels in image
    units, ``keep`` which pixels they are (None: all).
    """

    image: np.ndarray
    table: np.ndarray
    layout: Layout
    fitting: Fitting
    keep: np.ndarray | None
    space: FeatureSpace
    raw: np.ndarray
    footprint: Footprint  # what the memory guard reads
    cache: dict = field(default_factory=dict, compare=False)
    weights: np.ndarray | None = None  # the clustered pixels' sample weights
    start: np.ndarray | None = None  # initial centres in the space clustered

    def with_samples(self, weights=None, start=None) -> Job:
        """The job with sample weights (one per pixel) and/or initial centres (image units)."""
        if weights is not None:
            weights = np.asarray(weights, dtype=np.float64).reshape(-1)
            if len(weights) != (len(self.keep) if self.keep is not None else len(self.table)):
                raise InvalidInputError("sample_weight must hold one weight per sample")
            if not (np.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0):
                raise InvalidInputError("sample_weight must be finite, >= 0 and not all 0")
            if self.keep is not None:
                weights = weights[self.keep]
        if start is not None:
            start = np.asarray(start, dtype=np.float64)
            if start.ndim != 2 or start.shape[1] != self.raw.shape[1]:
                raise InvalidInputError(
                    f"initial centres must be a (k, {self.raw.shape[1]}) array, got {start.shape}"
                )
            start = np.asarray(self.space.forward(start), dtype=np.float64)
        return replace(self, weights=weights, start=start)

    @classmethod
    def of(
        cls,
        image,
        options: Options = DEFAULTS,
        *,
        rgb=None,
        mask=None,
        channel_axis=None,
        scaling: tuple | bool | None = None,
        origin="data",
    ) -> Job:
        """Check ``image`` and ``options`` and read the pixels to cluster.

        ``rgb``, ``mask``, ``channel_axis``: as quantize()'s; ``scaling``: a palette's
        (scale, offset) instead of ``options.standardize``; ``origin``: see FeatureSpace.
        """
        if options.sample_size is not None:
            raise InvalidInputError("sample_size applies to quantize() only")
        if options.planes != "stack":
            raise InvalidInputError(
                f"planes={options.planes!r} is for quantize(): sweeps and palettes use the "
                "whole stack"
            )
        image = np.asarray(image)
        layout = Layout.of(image, rgb, channel_axis)
        image = layout.arrange(image)  # the channels last (a view)
        fitting = Fitting.of(options)
        color_space = check_choice("color_space", options.color_space, COLOR_SPACES)
        standardize = scaling
        if standardize is None:
            standardize = check_flag("standardize", options.standardize)
        n_channels = layout.clustered(image.shape[-1])
        # before any copy of the pixels: the estimate needs only the shape and dtype
        footprint = Footprint(
            image.shape,
            image.dtype,
            n_channels,
            fitting.method,
            contiguous=image.flags.c_contiguous and mask is None,
            transformed=color_space != "rgb" or standardize is not False,
        )
        footprint.check()
        table = layout_table = layout.table(image)
        column_range = _column_range(table)  # wide float tables: one pass for all checks
        keep = _clustered_pixels(image, table, layout.channels, mask, column_range is not None)
        if keep is not None:
            table = table[keep]
        table = working_table(table)
        if table is not layout_table:  # masked or converted: the range of what is clustered
            column_range = _column_range(table)
        floating = np.issubdtype(table.dtype, np.floating)
        if column_range is not None:
            low, high = float(column_range[0].min()), float(column_range[1].max())
        elif floating:
            low, high = float(table.min()), float(table.max())
        if floating and max(abs(low), abs(high)) > MAX_FLOAT_MAGNITUDE:
            raise InvalidInputError(
                f"values up to {max(abs(low), abs(high)):.3g} make squared distances "
                f"overflow: rescale the image below {MAX_FLOAT_MAGNITUDE:.0e}"
            )
        raw = table
        value_range = (low, high) if floating else None
        space, table = FeatureSpace.of(
            table,
            color_space,
            standardize,
            image.dtype,
            layout.rgb,
            value_range,
            origin,
            column_range,
        )
        if space.origin is not None:  # the pixels shifted: a float64 or int64 copy
            footprint = replace(footprint, transformed=True)  # (and the result reports it)
            footprint.check()
        if not space.isometric and not np.isfinite(table).all():
            raise InvalidInputError(
                "the values overflow when standardized: rescale the image or use standardize=False"
            )
        engine = fitting.engine
        table_range = value_range if space.identity else None  # of the values clustered
        if engine.max_magnitude < MAX_FLOAT_MAGNITUDE:  # check what it will measure
            if table_range is None:
                table_range = (float(table.min()), float(table.max()))
            low, high = table_range
            if max(abs(low), abs(high)) > engine.max_magnitude:
                raise InvalidInputError(
                    f"values up to {max(abs(low), abs(high)):.3g} are beyond what "
                    f"{engine.label} can measure (about {engine.max_magnitude:.0e}): "
                    "use method='fast', or rescale the image"
                )
        return cls(
            image=image,
            table=table,
            layout=layout,
            fitting=fitting,
            keep=keep,
            space=space,
            raw=raw,
            footprint=footprint,
            cache={
                **({} if table_range is None else {"value_range": table_range}),
                # the clustered table's per-channel range (the fast engine's rows reuse it)
                **({"column_range": column_range} if space.identity and column_range else {}),
            },
        )

    def check_summary_memory(self, engine_bytes: int, k: int) -> None:
        """The second memory check, once the engine knows what it will allocate.

        Refuses the run (as the first check does) when that does not fit, and keeps
        the estimate: the result reports it as ``params["memory_estimate_bytes"]``.
        The free memory is read again only when this estimate exceeds the first one
        (what fitted a moment ago still fits).
        """
        needed = self.footprint.bytes(engine_bytes=engine_bytes, k=k)
        if needed > self.footprint.bytes():  # more than the first check let through
            self.footprint.refuse_beyond_free(needed)
        self.cache["working_bytes"] = needed

    def check_k(self, k_max: int) -> None:
        """Refuse a K the data cannot give."""
        _check_k_against_data(self.table, k_max)

    def labeller(self):
        """What labels this job's pixels for given centres (:func:`.fast.engine.labeller`)."""
        return labeller(self.table)

    def value_range(self) -> tuple[float, float]:
        """Smallest and largest value clustered (computed once)."""
        if "value_range" not in self.cache:
            self.cache["value_range"] = (float(self.table.min()), float(self.table.max()))
        return self.cache["value_range"]

    def fit(self, k) -> contract.Fit:
        """Cluster at ``k`` with this job's engine."""
        return next(self.fits([k]))

    def fits(self, ks, defer_labels=False):
        """Yield a Fit per K of ``ks`` from this job's engine (see FastKMeans.fits)."""
        return self.fitting.engine.fits(self, ks, defer_labels)

    def spatial_labels(self, labels: np.ndarray) -> np.ndarray:
        """The clustered pixels' labels laid out as the image (0 where not clustered)."""
        if self.keep is not None:
            full = np.zeros(self.keep.shape, dtype=labels.dtype)
            full[self.keep] = labels
            labels = full
        return labels.reshape(self.image.shape[:-1] if self.layout.channels else self.image.shape)

    def result(
        self, fit: contract.Fit, started: float, centers=None, image=True, **params
    ) -> Quantization:
        """The Quantization of one Fit (``params`` override the recorded parameters).

        ``centers``: the palette in image units when it was given (apply_palette);
        otherwise the fitted centres are taken back to image units and, when that
        changes their brightness order, relabelled darkest first. ``image=False``:
        no quantized image is rendered (its ``image`` is None), for callers that keep
        only the palette and labels (the estimator).
        """
        k = len(fit.centers)
        if centers is None:
            centers = fit.centers
            if not self.space.identity:
                centers, fit = self._back(fit)
        fit = fit.labelled()  # a sweep's fit may have left them to now
        counts = fit.counts
        sse = (
            None
            if self.space.isometric
            else lloyd.pixel_figures(self.raw, fit.label_array(), centers)[1]
        )
        labels = self.spatial_labels(fit.label_array())
        params = {
            "k": k,
            **self.fitting.params(),
            "epsilon": fit.epsilon,
            "rgb": self.layout.rgb,
            "channel_axis": self.layout.channel_axis,
            "color_space": self.space.color_space,
            "standardize": self.space.scale is not None,
            "planes": "stack",
            **({} if fit.n_iter is None else {"n_iter": fit.n_iter}),
            **({"kernels": "numpy stand-in (first run on this computer)"} if fit.stand_in else {}),
            **(
                {"memory_estimate_bytes": self.cache["working_bytes"]}
                if "working_bytes" in self.cache
                else {}
            ),
            **params,
        }
        if self.space.scale is not None and self.space.offset is not None:
            params["channel_scale"] = self.space.scale.tolist()
            params["channel_offset"] = self.space.offset.tolist()
        rendered = None
        if image:
            rendered = self.layout.restore(
                render(self.image, labels, centers, self.layout.channels)
            )
        return Quantization(
            labels=labels,
            centers=centers,
            image=rendered,
            compactness=fit.compactness,
            sse=sse,
            counts=counts,
            params=params,
            elapsed=time.perf_counter() - started,
        )

    def _back(self, fit: contract.Fit) -> tuple[np.ndarray, contract.Fit]:
        """Fitted centres in image units, darkest first, and every pixel's nearest of them.

        The pixels are labelled again with the reported centres taken into the
        clustering space, so that the labels are exactly what reapplying the palette
        (apply_palette, the lazy path) gives.
        """
        centers = self.space.back(fit.centers)
        if self.space.origin is not None:
            _check_centres_apart(centers, self.raw.dtype)
        if self.space.colours.clips_centres:
            # e.g. Lab centres of in-gamut colours can map slightly outside the data
            low = np.array([float(self.raw[:, c].min()) for c in range(self.raw.shape[1])])
            high = np.array([float(self.raw[:, c].max()) for c in range(self.raw.shape[1])])
            centers = np.clip(centers, low, high)
        centers = centers[darkest_first(centers)]
        space = self.space
        if space.isometric:  # labelled as the palette applies: relative to its own origin
            space = replace(space, origin=palette_origin(centers, self.raw.dtype))
        key = ("engine", space.origin)  # one summary serves every K of a sweep
        if key not in self.cache:
            same = space.origin == self.space.origin
            self.cache[key] = self.labeller() if same else labeller(space.forward(self.raw))
        relabelled = self.cache[key].assign(space.forward(centers), fit.epsilon)
        return centers, replace(relabelled, n_iter=fit.n_iter)  # (the search's iterations)


def _check_centres_apart(centers: np.ndarray, dtype: np.dtype) -> None:
    """Refuse centres that float64 cannot tell apart in image units.

    64-bit integers far from zero are clustered exactly relative to an origin, but
    the centres are reported as float64 numbers: near 4.6e18 those are 1,024 apart,
    so the centres of values spread over less collapse into one, and every pixel
    would be labelled again with the first.
    """
    if len(np.unique(centers, axis=0)) == len(centers):
        return
    magnitude = float(np.abs(centers).max())
    raise InvalidInputError(
        f"the {len(centers)} centres of these {np.dtype(dtype)} values (about "
        f"{magnitude:.3g}) cannot be told apart as float64 numbers, which are "
        f"{np.spacing(magnitude):.3g} apart there: subtract an offset first (e.g. "
        "image - image.min()) and add it back to the centres"
    )


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
    target = out.reshape(n_pixels, width)
    source = image.reshape(n_pixels, width)
    if width > n_channels:
        target, source = target[:, :n_channels], source[:, :n_channels]
    blocks = lloyd.row_blocks(n_pixels, n_channels)  # (wide tables: on threads too)
    if image.dtype.isnative and image.dtype != np.float16 and prepare.ready():  # numba reads
        from .fast import kernels

        def paint(part):  # one compiled pass per block; the threads' blocks interleave
            for block in blocks[part::threads]:
                checkpoint()
                kernels.paint(flat_labels[block], palette, source[block], target[block])

        threads = contract.worker_threads(len(blocks))
        on_threads(paint, range(threads), threads)
        return out
    for block in blocks:
        checkpoint()
        lab = flat_labels[block]
        target[block] = np.take(palette, lab, axis=0)
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


def _column_range(table: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Per-channel lows and highs of a wide float table, where every value is finite.

    One compiled pass (:func:`.fast.kernels.column_ranges`) stands for the finite
    check, the value range, the origin's and the fast engine's per-channel ranges,
    four passes otherwise. None for other tables, for any NaN or infinity, and while
    the kernels are prepared.
    """
    if table.dtype not in (np.float32, np.float64) or table.shape[1] <= 4 or not prepare.ready():
        return None
    from .fast.kernels import column_ranges

    low, high = column_ranges(table)
    # (a column holding a NaN has a NaN range; one holding an infinity an infinite one)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        return None
    return low, high


def _clustered_pixels(image, table, rgb, mask, finite=False) -> np.ndarray | None:
    """Flat boolean of the pixels to cluster (mask, finite values), None for all.

    ``finite``: every value is known to be finite already.
    """
    spatial = image.shape[:-1] if rgb else image.shape
    keep = None
    if mask is not None:
        mask = np.asarray(mask)
        check_mask_shape(mask, spatial)
        check_mask_dtype(mask)
        keep = mask.reshape(-1).astype(bool)
    # one cheap pass first: most float images hold no NaN or inf at all
    if not finite and np.issubdtype(image.dtype, np.floating) and not np.isfinite(table).all():
        finite = np.isfinite(table).all(axis=1)
        keep = finite if keep is None else keep & finite
    if keep is None or keep.all():
        return None
    if not keep.any():
        raise NothingToCluster(
            "no pixel to cluster: the mask selects none, or every selected pixel is NaN or inf"
        )
    return keep


def distinct_rows(table: np.ndarray, enough: int) -> int:
    """The distinct rows (colours) of ``table``, counted until ``enough`` are found.

    Counted blockwise on growing prefixes, so a large image with many colours stops
    early; -0.0 and 0.0 are one colour (not two bit patterns).
    """
    row_type = np.dtype((np.void, table.dtype.itemsize * table.shape[1]))
    signed_zeros = table.dtype.kind == "f"
    size = max(256, 8 * enough)  # most tables have K distinct rows among their first few
    while True:
        rows = table[:size] + 0.0 if signed_zeros else table[:size]
        distinct = len(np.unique(np.ascontiguousarray(rows).view(row_type)))
        if distinct >= enough or size >= len(table):
            return distinct
        size *= 16


def _check_k_against_data(table: np.ndarray, k: int) -> None:
    """K may not exceed the pixels, nor the distinct colours."""
    if k > len(table):
        raise InvalidInputError(
            f"k={k} exceeds the number of pixels ({len(table)}): choose k <= {len(table)}"
        )
    distinct = distinct_rows(table, k)
    if distinct < k:
        raise InvalidInputError(
            f"k={k} exceeds the {distinct} distinct colours in the image: choose k <= {distinct}"
        )
