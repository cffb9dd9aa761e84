"""Quantize one image at several K, reusing work between them (core: numpy + cv2)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .cancel import keyboard_interrupts
from .fast.contract import Fit
from .kinds import takes_lazy_path
from .kmeans import Job, Quantization, count_fractions
from .options import Options, layout_keywords
from .validate import MAX_SWEEP_VALUES, InvalidInputError, check_k


def parse_ks(ks) -> tuple[int, ...]:
    """K values, sorted and unique, from an iterable of ints or a string like ``"2..16"``.

    A string may list values and ranges: ``"2..6"``, ``"2,4,8"``, ``"2..6,8,16"``.
    """
    if isinstance(ks, str):
        values: list[int] = []
        for part in filter(None, (p.strip() for p in ks.split(","))):
            match = re.fullmatch(r"(\d+)\s*\.\.\s*(\d+)", part)
            if match:
                low, high = int(match[1]), int(match[2])
                if low > high:
                    raise InvalidInputError(f"range {part!r} is empty: write low..high")
                # checked before the range is made: '2..1000000000' must not allocate
                check_k(low), check_k(high)
                values.extend(range(low, high + 1))
            elif part.isdigit():
                values.append(int(part))
            else:
                raise InvalidInputError(
                    f"cannot read K values from {part!r}: use e.g. '2..16' or '2,4,8'"
                )
        ks = values
    if not isinstance(ks, Iterable):
        raise InvalidInputError(f"ks must be K values (a list, a range or '2..16'), got {ks!r}")
    values = sorted({check_k(k) for k in ks})  # every K <= MAX_K: a finite set
    if not values:
        raise InvalidInputError("the K values are empty: write e.g. '2..16' or '2,4,8'")
    if len(values) > MAX_SWEEP_VALUES:
        raise InvalidInputError(
            f"{len(values)} K values are more than one sweep compares ({MAX_SWEEP_VALUES}): "
            "sweep fewer, e.g. '2..32' or '2,4,8,16,32,64'"
        )
    return tuple(values)


@dataclass(frozen=True)
class Sweep:
    """Results of :func:`sweep`: one :class:`Quantization` per K, ascending K.

    Attributes
    ----------
    ks : tuple of int
        The K values.
    results : sequence of Quantization
        ``results[i]`` is the quantization at ``ks[i]``. From :func:`sweep`, each
        K's labels and quantized image are made when that result is first taken
        (``s[k]``, ``s.results[i]``, iterating): the figures below need none of
        them, and a K nobody looks at costs no image-sized memory.
    peak : float
        The value range PSNR is measured against: the dtype's range for integer
        images, the data's range (max - min) for float images.
    elapsed : float
        Seconds for the whole sweep.

    Examples
    --------
    >>> from skimage import data
    >>> s = sweep(data.coffee(), [2, 4, 8], seed=0)
    >>> s.ks, len(s), s[4].k
    ((2, 4, 8), 3, 4)
    >>> bool(s.psnr[2] > s.psnr[0])
    True
    >>> sorted(s.table())
    ['compactness', 'k', 'mse', 'psnr']
    """

    ks: tuple[int, ...]
    results: Sequence[Quantization]
    peak: float
    elapsed: float = 0.0

    def _figures(self) -> Sequence:
        """Per K, what the figures are computed from (without making any result)."""
        results = self.results
        return results.figures() if isinstance(results, SweepResults) else results

    def __len__(self) -> int:
        return len(self.ks)

    def __iter__(self):
        return iter(self.results)

    def __getitem__(self, k: int) -> Quantization:
        """The result at K = ``k``."""
        if k not in self.ks:
            raise KeyError(f"K={k} is not in this sweep (K values: {list(self.ks)})")
        return self.results[self.ks.index(k)]

    @property
    def compactness(self) -> np.ndarray:
        """Compactness (sum of squared distances) per K."""
        return np.array([r.compactness for r in self._figures()])

    @property
    def mse(self) -> np.ndarray:
        """Mean squared error per pixel and channel against the source, per K.

        Measured to the centres (before the quantized image rounds them to its dtype).
        """
        return np.array([mean_squared_error(r) for r in self._figures()])

    @property
    def psnr(self) -> np.ndarray:
        """Peak signal-to-noise ratio in dB per K (inf where the error is 0)."""
        with np.errstate(divide="ignore"):
            return 10 * np.log10(self.peak**2 / self.mse)

    @property
    def fractions(self) -> list[np.ndarray]:
        """Fraction of the pixels in each cluster, per K."""
        return [r.fractions for r in self._figures()]

    def elbow(self) -> int | None:
        """The K where compactness stops falling fast (kneedle), None below 3 K values.

        The curve of compactness against K is scaled to the unit square and the K
        farthest below the straight line joining its ends is the elbow (Satopää et
        al., "Finding a 'Kneedle' in a Haystack", 2011).
        """
        return kneedle(self.ks, self.compactness)

    def table(self) -> dict[str, list]:
        """Per-K figures as columns: k, compactness, mse, psnr (for CSV or pandas)."""
        return {
            "k": list(self.ks),
            "compactness": self.compactness.tolist(),
            "mse": self.mse.tolist(),
            "psnr": self.psnr.tolist(),
        }


@dataclass(frozen=True)
class _Pending:
    """One K of a sweep whose labels and image are not made yet: its exact figures.

    Only made when clustering in the image's own values (so ``sse`` is the compactness).
    """

    job: Job
    fit: Fit
    elapsed: float

    k = property(lambda self: len(self.fit.centers))
    centers = property(lambda self: self.fit.centers)
    compactness = property(lambda self: self.fit.compactness)
    sse = compactness
    counts = property(lambda self: self.fit.counts)

    @property
    def fractions(self) -> np.ndarray:
        return count_fractions(self.counts)

    def make(self) -> Quantization:
        started = time.perf_counter() - self.elapsed  # the fit's time counts too
        return self.job.result(self.fit, started)


class SweepResults(Sequence):
    """A sweep's results in K order; each made into a :class:`Quantization` when first taken.

    Until then a K holds only its centres, figures and the labels of its summary
    (the summary and the image are shared by every K). Safe to read from several
    threads (one K is made once).
    """

    def __init__(self, entries):
        self._entries = list(entries)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        with self._lock:
            entry = self._entries[index]
            if isinstance(entry, _Pending):
                entry = self._entries[index] = entry.make()
            return entry

    def figures(self) -> list:
        """Each K's figures (k, centers, compactness, sse, counts, fractions), made or not."""
        return list(self._entries)

    def __reduce__(self):
        # pickled (for another process) as the made results: the pending ones carry
        # the image's summary and a lock
        return SweepResults, (tuple(self),)


def mean_squared_error(result: Quantization) -> float:
    """Squared error per clustered pixel and channel, in the image's units.

    Measured from ``result.sse``, not the compactness: under Lab or z-scoring the
    compactness is in the clustering space's units.
    """
    n_values = result.counts.sum() * result.centers.shape[1]
    return result.sse / n_values if n_values else 0.0


def kneedle(xs, ys) -> int | None:
    """Elbow of a decreasing curve: the x farthest below the chord of the scaled curve."""
    xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    if len(xs) < 3 or ys[0] == ys[-1]:
        return None
    x = (xs - xs[0]) / (xs[-1] - xs[0])
    y = (ys - ys.min()) / (ys.max() - ys.min())
    gap = (1 - x) - y  # chord from (0, 1) to (1, 0) minus the curve
    return int(xs[int(np.argmax(gap))])


def iter_sweep(image, ks, **options) -> Iterator[Quantization]:
    """Yield the quantization of ``image`` at each K of ``ks``, ascending.

    ``options`` are those of :func:`napari_kquant.quantize` (method, attempts,
    max_iter, epsilon, criteria, init, seed, rgb). The fast engine summarises the
    colours once for all K, and each K also starts from the centres of the K before
    it (plus k-means++ picks), keeping whichever start ends more compact. Stopping
    the iteration stops the sweep between two K values.

    Examples
    --------
    >>> from skimage import data
    >>> [r.k for r in iter_sweep(data.coffee(), "2..4")]
    [2, 3, 4]
    """
    ks, job = _sweep_job(image, ks, options)
    started = time.perf_counter()
    for fit in job.fits(ks):
        yield job.result(fit, started)
        started = time.perf_counter()


@keyboard_interrupts
def sweep(image, ks, **options) -> Sweep:
    """Quantize ``image`` at each K of ``ks`` and gather the figures to compare them.

    Parameters
    ----------
    image : (..., C) or (...) ndarray
        As for :func:`napari_kquant.quantize`.
    ks : iterable of int or str
        K values: a list, a ``range``, or a string such as ``"2..16"`` or ``"2,4,8"``.
    **options
        The options of :func:`napari_kquant.quantize` (method, attempts, max_iter,
        epsilon, criteria, init, seed, rgb).

    Returns
    -------
    Sweep
        One result per K (ascending) and the per-K compactness, MSE, PSNR, cluster
        fractions and the suggested elbow.

    Raises
    ------
    ValueError
        If a K is not a positive integer or exceeds the pixels or distinct colours,
        or for any reason :func:`napari_kquant.quantize` would refuse.

    Examples
    --------
    >>> from skimage import data
    >>> s = sweep(data.astronaut(), range(2, 9), seed=0)
    >>> s.ks
    (2, 3, 4, 5, 6, 7, 8)
    >>> bool(all(s.compactness[1:] <= s.compactness[:-1]))
    True
    >>> s[4].centers.shape
    (4, 3)
    """
    started = time.perf_counter()
    _refuse_lazy(image)
    image = np.asarray(image)
    ks, job = _sweep_job(image, ks, options)
    # Clustering in the image's own values, the fast engine's figures are exact
    # without labels: each K's labels and image wait until that result is taken.
    entries: list[Quantization | _Pending] = []
    began = time.perf_counter()
    for fit in job.fits(ks, defer_labels=job.space.identity):
        if fit.labels is None:
            entries.append(_Pending(job, fit, time.perf_counter() - began))
        else:
            entries.append(job.result(fit, began))
        began = time.perf_counter()
    return Sweep(
        ks=ks,
        results=SweepResults(entries),
        peak=psnr_peak(image),
        elapsed=time.perf_counter() - started,
    )


def _sweep_job(image, ks, options) -> tuple[tuple[int, ...], Job]:
    """The K values and the checked job of a sweep (the image in memory)."""
    ks = parse_ks(ks)
    _refuse_lazy(image)
    # Results are made when first taken, maybe after the caller has changed the array
    # (the next frame into the same buffer): they must describe the image swept.
    image = np.array(image, copy=True)
    image.flags.writeable = False
    job = Job.of(image, Options.picked(options), **layout_keywords(options))
    job.check_k(ks[-1])
    return ks, job


def _refuse_lazy(image) -> None:
    if takes_lazy_path(image):
        raise InvalidInputError(
            "a K sweep needs the image in memory: quantize lazy or multiscale data one K at "
            "a time (quantize(image, k)), or sweep a plane or a crop (np.asarray(data[...]))"
        )


def psnr_peak(image: np.ndarray) -> float:
    """The dtype's range for integer images, the data's range for float images."""
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return float(info.max) - float(info.min)
    span = float(image.max()) - float(image.min())
    return span if span > 0 else 1.0
