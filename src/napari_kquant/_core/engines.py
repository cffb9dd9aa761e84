"""How centres are found (core: numpy + cv2 only).

Two engines share one contract: given an ``(N, C)`` pixel table they return the
centres darkest first, a label 1..k per pixel, the pixels per label and the
compactness (sum of squared distances from each pixel to its centre, OpenCV's figure).

* ``opencv``: ``cv2.kmeans`` on every pixel as float32 - the seed recipe, exactly.
* ``fast``: k-means on a weighted summary of the colours, then exact labelling.

  The summary codes every pixel on a regular colour grid and counts the occupied
  codes (one ``cv2.calcHist`` pass for three channels). For uint8 RGB(A) and integer
  gray the grid step is 1, so the codes are the distinct colours: k-means on them,
  weighted by their counts, minimises the very same objective as on the pixels. For
  other images (uint16 RGB, float) a code is a small cell of colours (1/255 of the
  range per channel for RGB, 1/65535 for gray).

  k-means runs coarse to fine on the summary: ``4 * attempts`` k-means++ starts on a
  coarse regrid (about 2,000 points), the best ``attempts`` of them refined on a
  middle regrid (about 32,000 points), the best of those polished by two Lloyd
  updates on the full summary. That matches the quality of several k-means runs on
  all pixels at a small fraction of the cost.

  A lookup table from code to label then labels every pixel in one gather. On
  inexact grids, cells that straddle the boundary between two centres are marked
  and their pixels get their nearest centre computed exactly, so every pixel's label
  is its nearest centre; counts and compactness are then summed over the pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

import cv2
import numpy as np

from .cancel import ChildError, active, checkpoint, in_child_process, on_threads
from .palette import darkest_first
from .validate import FLOAT32_SAFE, MAX_FLOAT_MAGNITUDE, InvalidInputError

BLOCK = 1 << 18  # pixels per block in full-data passes: bounds the working memory
SCORE_BLOCK = 1 << 21  # entries of one block of the (points, centres) score matrix
FINE_START_K = 32  # from this K, FINE_STARTS k-means++ starts on the middle regrid compete
FINE_STARTS = 2
MID_CANDIDATES = 3  # the most compact coarse results refined on the middle regrid
MID_POINTS = 1 << 15  # about this many points on the middle regrid
SWEEP_MID_POINTS = 1 << 13  # the same for sweeps
COARSE_POINTS = 1 << 11  # about this many points on the coarse regrid (at least 32 per k)
CANDIDATES_PER_ATTEMPT = 4  # coarse starts per attempt
MAX_HIST_PIXELS = 1 << 24  # calcHist counts in float32: exact below 2**24 per colour
MAX_LEVELS = 1 << 10  # finest regrid per channel
PIXEL_ITERATIONS = 1  # Lloyd updates on the pixels after the grid summary's (large uint8 RGB)
FINISH_ITERATIONS = 2  # Lloyd updates on the full summary, after the middle stage converged
CV_DEPTHS = tuple(np.dtype(t) for t in ("u1", "i1", "u2", "i2", "i4", "f4", "f8"))
SMALL_IMAGE = 1 << 20  # up to here distinct colours come from a sort, not 2**24 tables
CELLS_PER_CLUSTER = 4  # fewer occupied cells than this per cluster: summarise exactly
# What the engines allocate, for the memory estimate (benchmarks/memory_peak.py checks it)
MIB = 1 << 20
SCORE_BYTES = 16 * MIB  # one block of the (points, centres) score matrix
LUT_ENTRIES = {3: 1 << 24, 1: 1 << 16}  # code -> label lookup table, by channels coded
HIST_BYTES = (1 << 24) * 4  # calcHist's float32 colour histogram (large RGB images)
SORT_BYTES_PER_PIXEL = 6  # small RGB images: the codes, their sort and its mask
FIXED_BYTES = 1 * MIB  # buffers and allocator slack of any run
GRID_BYTES_PER_CELL = 24  # the grid's counts and sums, and the labelling's cell slots
# Weighted Lloyd on the colour summary keeps, per distinct colour: its point and
# weight, its code, the point cast for the distance products, the weighted point,
# its norm and its label (float64 mostly): about this many bytes.
BYTES_PER_SUMMARY_POINT = 64
# Lloyd's arrays per point of a RowSummary: weight, label, two bounds, the labels out
ROW_BYTES_PER_POINT = 40


@dataclass(frozen=True)
class Fit:
    """Engine output, darkest centre first.

    Centres (k, C) float64, labels 1..k (N,), pixels per label, compactness, the
    ``epsilon`` the run used, and the Lloyd iterations that gave the centres (None
    where the engine does not say).

    A sweep's fits may leave ``labels`` None and say how to make them
    (``make_labels``): their figures are exact already, and the labels of a K
    nobody looks at are never written (:meth:`labelled` makes them).
    """

    centers: np.ndarray
    labels: np.ndarray | None
    compactness: float
    counts: np.ndarray
    epsilon: float
    n_iter: int | None = None
    make_labels: Callable[[], np.ndarray] | None = field(default=None, repr=False)

    def labelled(self) -> Fit:
        """The same fit with its labels made."""
        if self.labels is not None:
            return self
        return replace(self, labels=self.make_labels(), make_labels=None)


def default_epsilon(low, high) -> float:
    """0.1 % of the value range [low, high] (0.001 for a constant image)."""
    span = float(np.max(high)) - float(np.min(low))
    return 1e-3 * span if span > 0 else 1e-3


def darkest_first_ranks(centers):
    """Centres sorted darkest first, and ``rank[old index]`` = new label (1..k)."""
    order = darkest_first(centers)
    rank = np.empty(len(centers), dtype=label_dtype(len(centers)))
    rank[order] = np.arange(1, len(centers) + 1)
    return centers[order], rank


def label_dtype(k: int) -> np.dtype:
    """Smallest unsigned dtype that holds labels 0..k."""
    return np.dtype(np.uint8 if k < 2**8 else np.uint16 if k < 2**16 else np.uint32)


def opencv_kmeans(table, k, *, criteria, attempts, init, seed) -> Fit:
    """``cv2.kmeans`` on every pixel, exactly as the OpenCV tutorial recipe calls it."""
    samples = np.ascontiguousarray(table, dtype=np.float32)
    if len(samples) == 1:  # OpenCV reads a single row as that many 1-D points
        samples = samples.reshape(1, 1, -1)
    flags = cv2.KMEANS_PP_CENTERS if init == "kmeans++" else cv2.KMEANS_RANDOM_CENTERS
    # cv2's RNG is per thread: seeding here, on the thread that clusters, makes runs
    # in napari's worker threads reproducible too.
    try:
        if active() and len(samples) * k >= IN_PROCESS_WORK:
            # a cancel must not wait for a call that cannot stop: run it where it can be ended
            compactness, labels, centers = in_child_process(
                _opencv_attempts, samples, k, criteria, attempts, flags, seed
            )
        else:
            compactness, labels, centers = _opencv_attempts(
                samples, k, criteria, attempts, flags, seed
            )
    except (cv2.error, ChildError) as exc:
        # e.g. values so large that squared distances overflow OpenCV's float32
        reason = str(exc).strip().splitlines()[-1]
        raise InvalidInputError(
            f"OpenCV's k-means failed on this image ({reason}); its float32 arithmetic cannot "
            f"hold these values (up to {float(np.abs(samples).max()):.3g}): use method='fast'"
        ) from exc
    centers, rank = darkest_first_ranks(centers.astype(np.float64))
    counts = np.bincount(labels.ravel(), minlength=k)[np.argsort(rank)]
    return Fit(centers, rank[labels.ravel()], float(compactness), counts, criteria[2])


# Pixels x K from which a cancellable OpenCV fit runs in a worker process (starting
# one costs about half a second; a call this size takes seconds).
IN_PROCESS_WORK = 1 << 21


def _opencv_attempts(samples, k, criteria, attempts, flags, seed):
    """``attempts`` calls of one attempt each, keeping the first most compact.

    That is what cv2.kmeans does with ``attempts`` (the RNG runs on between calls):
    the same result, bit for bit, with a chance to stop between attempts. cv2's RNG
    is per thread: seeding here, on the thread (or process) that clusters, makes runs
    in napari's worker threads reproducible too.
    """
    cv2.setRNGSeed(int(seed))
    best = None
    for _ in range(attempts):
        checkpoint()
        run = cv2.kmeans(samples, k, None, criteria, 1, flags)
        if best is None or run[0] < best[0]:
            best = run
    return best


def uses_grid(table: np.ndarray) -> bool:
    """Whether the fast engine summarises ``table`` on the bounded grid (large uint8 RGB)."""
    return table.dtype == np.uint8 and table.shape[1] == 3 and len(table) > SMALL_IMAGE


class FastEngine:
    """The fast engine's state for one image, reusable across K: summary and regrids.

    With ``keep_codes`` every pixel's code is kept after the first labelling, so
    labelling again (another K) is a single gather. ``mid_points`` sizes the middle
    regrid (sweeps use a smaller one: their warm starts need fewer corrections).
    With ``defer_labels`` (sweeps) the fits of exact and grid summaries come with
    exact figures and make their labels on demand (:class:`Fit`).
    """

    def __init__(
        self,
        table: np.ndarray,
        keep_codes: bool = False,
        mid_points: int = MID_POINTS,
        defer_labels: bool = False,
        weights: np.ndarray | None = None,
        rows: bool = False,
    ):
        self.table = table
        self.mid_points = mid_points
        self.keep_codes = keep_codes
        self.defer_labels = defer_labels
        # a sweep labels the pixels once per K: no extra Lloyd passes over them
        self.pixel_iterations = 0 if keep_codes else PIXEL_ITERATIONS
        if rows or weights is not None or table.shape[1] not in (1, 3):
            # feature tables (and weighted samples) are clustered on their rows: exact
            self._use(RowSummary.of(table, weights))
        elif uses_grid(table):
            # (a colour's pixels are counted in int32)
            self._use(GridSummary.of(table, for_figures=defer_labels and len(table) < 2**31))
        else:
            self._use(CodedSummary.of(table, keep_codes))

    def _use(self, summary: CodedSummary) -> None:
        self.summary = summary
        points, weights = summary.points, summary.weights
        self.low, self.high = points.min(axis=0), points.max(axis=0)
        self.mid = summary.reduce(points, weights, self.mid_points, self.low, self.high)
        self._coarse = {}

    def working_bytes(self, k: int) -> int:
        """Peak bytes of this engine's own allocations for ``k``, now its summary is known.

        The second, tighter memory estimate (the first, from the shape alone, must
        assume every pixel a distinct colour): per path, what building the summary
        took (still held, or released before k-means), the summary's per-point
        arrays, the lookup tables and the labelling's blocks.
        """
        summary, n = self.summary, len(self.table)
        if isinstance(summary, RowSummary):
            return summary.working_bytes(k)
        points = len(summary.points)
        per_point = points * BYTES_PER_SUMMARY_POINT
        if isinstance(summary, GridSummary):
            if points < max(GRID_MIN_CELLS, GRID_CELLS_PER_CLUSTER * k):  # goes exact
                return FIXED_BYTES + HIST_BYTES + LUT_ENTRIES[3] + 64 * per_point
            # the grid's tables and the cells' points (the labelling passes' memory is
            # freed before the quantized image is made)
            cells = 1 << (3 * (8 - summary.shift))
            colours = 0
            if summary.colours is not None:  # a sweep's: the cells' squares and colour lists
                colours = 8 * cells + sum(part.nbytes for part in summary.colours)
            return FIXED_BYTES + GRID_BYTES_PER_CELL * cells + points * 16 + colours
        if summary.searched:  # small RGB: a sort of the codes, then per-point arrays
            kept = summary.coded.nbytes if summary.coded.ndim == 1 else 0
            return FIXED_BYTES + kept + max(SORT_BYTES_PER_PIXEL * n, per_point)
        if summary.table.shape[1] == 3:  # large RGB: the 2**24 histogram and table
            kept = summary.coded.nbytes if summary.coded.base is not summary.table else 0
            return FIXED_BYTES + HIST_BYTES + LUT_ENTRIES[3] + kept + per_point
        copied = not np.shares_memory(summary.coded, summary.table)
        inexact = 0 if summary.exact else BLOCK * 8 * 4  # float blocks: coding, figures
        counts = (1 << 16) * 8  # the count of each code
        return FIXED_BYTES + summary.coded.nbytes * copied + counts + inexact + per_point

    def resolve(self, k: int) -> None:
        """Summarise the distinct colours exactly when the grid is too coarse for ``k``.

        A grid cell can merge distinct colours (floats closer than 1/65535 of the
        range): with too few occupied cells, K clusters could not all be filled.
        """
        summary = self.summary
        if isinstance(summary, GridSummary):
            # Colours that fill few cells (a photo's, even at 4K) are summarised
            # exactly: the 24-bit codes are their distinct colours.
            if len(summary.points) < max(GRID_MIN_CELLS, GRID_CELLS_PER_CLUSTER * k):
                self._use(CodedSummary.of(self.table, self.keep_codes))
        elif not summary.exact and len(summary.points) < CELLS_PER_CLUSTER * k:
            self._use(RowSummary.of(self.table))

    def coarse(self, k: int):
        """The coarse regrid for ``k`` clusters (at least 32 points per cluster)."""
        target = max(COARSE_POINTS, 32 * k)
        if target not in self._coarse:
            self._coarse[target] = self.summary.reduce(*self.mid, target, self.low, self.high)
        return self._coarse[target]

    def fit(self, k, max_iter, epsilon, use_epsilon, attempts, init, rng) -> Fit:
        """Cluster into ``k`` from scratch.

        ``epsilon`` None means the default; with ``use_epsilon`` False it never stops
        a run.
        """
        self.resolve(k)
        tol, epsilon = self._tolerance(epsilon, use_epsilon)
        (mid, mid_w), (coarse, coarse_w) = self.mid, self.coarse(k)
        draws = [
            _init_draws(coarse, coarse_w, k, init, rng) for _ in range(coarse_starts(k, attempts))
        ]
        checkpoint()
        candidates = lloyd_runs(coarse, coarse_w, draws, max_iter, tol, seeded=True)
        candidates.sort(key=lambda fit: fit[1])
        # At large K the coarse regrid has too few points per cluster to place every
        # centre well: k-means++ starts on the middle regrid take the place of the
        # lesser coarse results there.
        fine = FINE_STARTS if k >= FINE_START_K else 0
        if fine and len(mid) == len(self.summary.points):
            # no smaller middle regrid (a summary of few colours): the middle stage
            # works on the data itself, and one more start there pays
            fine += 1
        if mid is not coarse:
            checkpoint()
            refine = [c for c, *_ in candidates[: max(MID_CANDIDATES - fine, 1)]]
            candidates = lloyd_runs(mid, mid_w, refine, max_iter, tol)
        if fine:
            checkpoint()
            starts = [_init_draws(mid, mid_w, k, init, rng) for _ in range(fine)]
            candidates += lloyd_runs(mid, mid_w, starts, max_iter, tol, seeded=True)
        best = min(candidates, key=lambda fit: fit[1])
        return self.finish(best[0], max_iter, tol, epsilon, best[3])

    def fit_from(self, start, max_iter, epsilon, use_epsilon) -> Fit:
        """Lloyd from the given centres ``start`` (k, C) in the space clustered."""
        tol, epsilon = self._tolerance(epsilon, use_epsilon)
        return self.finish(np.asarray(start, dtype=np.float64), max_iter, tol, epsilon)

    def sweep(self, ks, max_iter, epsilon, use_epsilon, attempts, init, rng):
        """Yield a Fit per K of ``ks`` (ascending), sharing work between them.

        The first K is searched from scratch. For each later K two kinds of start
        compete on the coarse regrid: the previous K's centres completed with
        k-means++ picks (a warm start, which keeps neighbouring K alike), and the
        first K picks of ``attempts`` k-means++ sequences drawn once for the largest K
        (a k-means++ sequence cut after K picks is a k-means++ start for K). The most
        compact is refined on the middle regrid and finished as a single run is.
        """
        self.resolve(ks[-1])
        tol, epsilon = self._tolerance(epsilon, use_epsilon)
        mid, mid_w = self.mid
        coarse, coarse_w = self.coarse(ks[-1])
        sequences = [init_centers(coarse, coarse_w, ks[-1], init, rng) for _ in range(attempts)]
        fit = self.fit(ks[0], max_iter, epsilon, use_epsilon, attempts, init, rng)
        yield fit
        for k in ks[1:]:
            warm = extend_centers(coarse, coarse_w, fit.centers, k, rng)
            starts = [warm, *(sequence[:k] for sequence in sequences)]
            checkpoint()
            candidates = lloyd_runs(coarse, coarse_w, starts, max_iter, tol)
            best = min(candidates, key=lambda fit: fit[1])
            if mid is not coarse:
                best = weighted_lloyd(mid, mid_w, best[0], max_iter, tol)
            fit = self.finish(best[0], max_iter, tol, epsilon, best[3])
            yield fit

    def _tolerance(self, epsilon, use_epsilon):
        """The centre-shift tolerance to stop at, and the epsilon to report."""
        if epsilon is None:
            epsilon = default_epsilon(self.low, self.high)
        return (epsilon if use_epsilon else 0.0), epsilon

    def finish(self, centers, max_iter, tol, epsilon, n_iter=0) -> Fit:
        """Polish ``centers`` on the full summary, order them and label every pixel.

        ``n_iter``: the Lloyd iterations that found ``centers`` (reported with these).
        """
        summary = self.summary
        centers, _, code_labels, polish = weighted_lloyd(
            summary.points,
            summary.weights,
            centers,
            min(max_iter, summary.finish_iterations or max_iter),
            tol,
        )
        if isinstance(summary, GridSummary):
            centers = summary.polish(centers, self.pixel_iterations, tol)
        # Cell points may sit up to half a cell outside the data, and weighted means of
        # huge values round: keep the centres inside the data's range (which only
        # brings them nearer to every pixel).
        clipped = np.clip(centers, *summary.value_range)
        if not summary.exact or (clipped != centers).any():
            centers = clipped
            code_labels = None  # the clipped centres need their own labelling
        centers, rank = darkest_first_ranks(centers)
        fit = self.assign(centers, epsilon, None if code_labels is None else rank[code_labels])
        # each stage stops at max_iter: the total is reported within it too
        return replace(fit, n_iter=min(n_iter + polish, max_iter))

    def assign(self, centers, epsilon=0.0, code_labels=None) -> Fit:
        """Label every pixel with its nearest of ``centers`` (label i = row i - 1).

        ``code_labels`` (1-based, per summary point) may be passed when known already.
        """
        points, weights, summary = self.summary.points, self.summary.weights, self.summary
        k = len(centers)
        if isinstance(summary, GridSummary):
            if self.defer_labels and summary.colours is not None:
                counts, compactness = summary.figures(centers)
                later = partial(summary.label_pixels, centers)
                return Fit(centers, None, compactness, counts, epsilon, make_labels=later)
            labels, counts, compactness = summary.assign_pixels(centers)
            return Fit(centers, labels, compactness, counts, epsilon)
        if code_labels is None:
            code_labels = nearest(points, centers, distances=False)[0]
            code_labels = code_labels.astype(label_dtype(k)) + label_dtype(k).type(1)
        if summary.exact:
            # Each code is one colour: the summary's figures are the pixels' figures.
            from . import kernels

            counts, compactness = kernels.summary_figures(
                np.ascontiguousarray(points, dtype=np.float64),
                np.ascontiguousarray(weights, dtype=np.float64),
                np.ascontiguousarray(centers, dtype=np.float64),
                code_labels,
            )
            counts, compactness = counts.astype(np.int64), float(compactness)
            if self.defer_labels:
                later = partial(summary.label_pixels, code_labels)
                return Fit(centers, None, compactness, counts, epsilon, make_labels=later)
            labels = summary.label_pixels(code_labels)
            return Fit(centers, labels, compactness, counts, epsilon)
        labels = summary.label_pixels(code_labels, centers)
        counts, compactness = pixel_figures(self.table, labels, centers)
        return Fit(centers, labels, compactness, counts, epsilon)


GRID_SHIFT = 2  # large uint8 RGB images: cells of 4 x 4 x 4 colours (64**3 cells)
# The grid summary is used where the colours fill at least this many cells, and this
# many per cluster (noise, sensor images); otherwise the exact 24-bit summary.
GRID_MIN_CELLS = 1 << 15
GRID_CELLS_PER_CLUSTER = 256


@dataclass(frozen=True)
class GridSummary:
    """A large uint8 RGB image summarised on a bounded grid of colour cells.

    One compiled pass counts the pixels of each cell and sums their values: the
    points are the cells' exact centroids, weighted by their pixel counts, at most
    64**3 of them however many distinct colours the image has (a noisy 4K image has
    millions). k-means on the centroids minimises the pixels' squared error over
    assignments of whole cells; the finish then runs Lloyd updates on the pixels
    themselves (:meth:`polish`), and the labels are exact per pixel: a cell whose
    every colour has the same nearest centre labels its pixels at once, the pixels
    of the others are measured against the few centres that can be nearest (see
    :func:`napari_kquant._core.kernels.grid_candidates`).
    """

    table: np.ndarray
    shift: int
    cells: np.ndarray  # the occupied cells' numbers
    points: np.ndarray
    weights: np.ndarray
    value_range: tuple[np.ndarray, np.ndarray]
    slot: np.ndarray  # slot[cell number] = the cell's row (its pixels find their cell by it)
    scatter: np.ndarray | None = None  # each cell's squared distances to its own centroid
    colours: tuple | None = None  # each cell's distinct colours and their pixels (CSR)
    exact: bool = False
    small_values: bool = True

    @classmethod
    def of(cls, table: np.ndarray, shift: int = GRID_SHIFT, for_figures=False) -> GridSummary:
        """Summarise an (N, 3) uint8 table (``for_figures``: ready for :meth:`figures`)."""
        from . import kernels

        table = np.ascontiguousarray(table)
        counts, sums, squares = kernels.grid_histogram(table, shift, for_figures)
        checkpoint()
        cells = np.flatnonzero(counts)
        weights = counts[cells].astype(np.float64)
        points = sums[cells] / weights[:, None]
        slot = np.zeros(len(counts), np.int32)
        slot[cells] = np.arange(len(cells))
        value_range = (np.zeros(3), np.full(3, 255.0))
        scatter = colours = None
        if for_figures:  # sum |x|^2 - n |mean|^2, from exact integer sums
            scatter = np.maximum(squares[cells] - weights * (points * points).sum(axis=1), 0.0)
            colours = kernels.grid_colours(table, shift, slot, len(cells))
            checkpoint()
        return cls(table, shift, cells, points, weights, value_range, slot, scatter, colours)

    finish_iterations = FINISH_ITERATIONS

    def reduce(self, points, weights, target, low, high):
        """About ``target`` weighted points standing for ``points`` (a coarser grid)."""
        return regrid(points, weights, low, high, target)

    def assign_pixels(self, centers: np.ndarray):
        """Every pixel's nearest centre (labels 1..k), the pixels per label, the exact SSE."""
        labels, counts, _, sse = self._label(centers)
        return labels, counts, sse

    def label_pixels(self, centers: np.ndarray) -> np.ndarray:
        """Every pixel's nearest centre (labels 1..k), with no figures."""
        return self._label(centers, figures=False)[0]

    def figures(self, centers: np.ndarray):
        """The pixels per label and the exact SSE of :meth:`assign_pixels`, with no labels.

        A cell whose colours all have the same nearest centre contributes its pixel
        count and ``scatter + count * |centroid - centre|^2`` (its pixels' squared
        distances, summed exactly); the colours of the other cells are measured one
        by one, weighted by their pixel counts. No pass over the image.
        """
        from . import kernels

        k = len(centers)
        centers = np.ascontiguousarray(centers, dtype=np.float64)
        sure, start, index = kernels.grid_candidates(self.cells, self.shift, centers)
        counts = np.zeros(k + 1, np.int64)
        sse = kernels.grid_unsure_figures(
            self.cells, self.shift, self.colours, sure, start, index, centers, counts
        )
        whole = np.flatnonzero(sure)
        label = sure[whole] - 1
        counts[1:] += np.bincount(label, weights=self.weights[whole], minlength=k).astype(np.int64)
        offset = ((self.points[whole] - centers[label]) ** 2).sum(axis=1)
        sse += float((self.scatter[whole] + self.weights[whole] * offset).sum())
        return counts[1:], sse

    def polish(self, centers: np.ndarray, iterations: int, tol: float):
        """Lloyd updates on the pixels themselves (exact labels, exact means): new centres.

        Each update is one compiled pass. Stops after ``iterations`` or when no centre
        moves by more than ``tol``; a centre that loses every pixel stays where it is.
        """
        for _ in range(iterations):
            _, counts, sums, _ = self._label(centers)
            filled = counts > 0
            new = centers.copy()
            new[filled] = sums[filled] / counts[filled, None]
            shift = float(np.sqrt(((new - centers) ** 2).sum(axis=1)).max())
            centers = new
            if shift <= tol:
                break
        return centers

    def _label(self, centers: np.ndarray, figures: bool = True):
        """Label the pixels in one compiled pass, in blocks on one thread per core.

        Returns the labels and, with ``figures``, the counts and sums by label and
        the squared distances summed (:func:`kernels.grid_label_pixels`).
        """
        from . import kernels

        k = len(centers)
        centers = np.ascontiguousarray(centers, dtype=np.float64)
        labels = np.empty(len(self.table), dtype=label_dtype(k))
        sure, start, index = kernels.grid_candidates(self.cells, self.shift, centers)
        by_cell = np.zeros(len(self.slot), label_dtype(k))  # sure labels by cell number
        by_cell[self.cells] = sure
        threads = worker_threads(2)
        counts = np.zeros((threads, k + 1), np.int64)
        sums = np.zeros((threads, k + 1, 3))
        blocks = [slice(begin, begin + BLOCK * 8) for begin in range(0, len(self.table), BLOCK * 8)]
        common = (self.shift, self.slot, by_cell, start, index, centers)

        def run(part):  # the blocks of one thread, with its own counts and sums
            sse = 0.0
            for block in blocks[part::threads]:
                sse += kernels.grid_label_pixels(
                    self.table[block], *common, labels[block], counts[part], sums[part], figures
                )
            return sse

        checkpoint()
        sse = sum(on_threads(run, range(threads), threads))
        checkpoint()
        return labels, counts.sum(axis=0)[1:], sums.sum(axis=0)[1:], sse


def extend_centers(points, weights, centers, k, rng):
    """Add k-means++ picks to ``centers`` until there are ``k`` (a warm start)."""
    out = np.empty((k, points.shape[1]))
    out[: len(centers)] = centers
    closest = nearest(points, centers)[1]
    for i in range(len(centers), k):
        potential = closest * weights
        total = potential.sum()
        pick = (
            int(np.searchsorted(np.cumsum(potential), rng.random() * total))
            if total > 0
            else int(rng.integers(len(points)))
        )
        out[i] = points[min(pick, len(points) - 1)]
        closest = np.minimum(closest, ((points - out[i]) ** 2).sum(axis=1))
    return out


@dataclass(frozen=True)
class CodedSummary:
    """Pixels coded on a regular grid of colours, the occupied codes and their counts.

    Three channels are coded to 256 levels each over the image's value range (for
    uint8 the codes are the values themselves) and a code is the 24-bit number
    ``c0 + 256 c1 + 65536 c2``; one channel is coded to 65536 levels (for integer
    images spanning fewer values, the values minus the minimum). ``points`` are the
    occupied codes' colours in image units and ``weights`` their pixel counts.
    Where the grid step is 1 on integers (``exact``) each code is one colour, so
    k-means on the summary is k-means on the pixels; otherwise a code is a small
    cell of colours.
    """

    table: np.ndarray
    coded: np.ndarray  # (N, 3) uint8 channel codes, or (N,) combined codes, per pixel
    step: float | np.ndarray  # grid step (per channel for 2 or 4+ channels)
    codes: np.ndarray
    points: np.ndarray
    weights: np.ndarray
    exact: bool
    small_values: bool
    value_range: tuple[np.ndarray, np.ndarray]  # per-channel min and max of the pixels
    searched: bool = False  # ``codes`` are sorted: a pixel's is found by binary search
    luts: dict = field(default_factory=dict)  # lookup-table buffers, reused across K

    @classmethod
    def of(cls, table: np.ndarray, keep_codes: bool = False) -> CodedSummary:
        """Code ``table`` ((N, 1) or (N, 3)) and count the codes.

        With ``keep_codes`` the per-pixel codes are combined once and kept, so
        labelling again (another K of a sweep) is a single gather.
        """
        n_channels = table.shape[1]
        if table.dtype == np.uint8 and n_channels == 3:
            low, step, coded = 0.0, 1.0, table
            value_range = (np.zeros(3), np.full(3, 255.0))  # used on inexact grids only
        else:
            # One 1-D pass per channel: far faster than numpy's reduction over axis 0.
            columns = [table[:, c] for c in range(n_channels)]
            value_range = (
                np.array([float(col.min()) for col in columns]),
                np.array([float(col.max()) for col in columns]),
            )
            low, high = float(value_range[0].min()), float(value_range[1].max())
            levels = 256 if n_channels == 3 else 1 << 16
            integer = np.issubdtype(table.dtype, np.integer)
            span = high - low
            if integer and span < levels:
                step = 1.0
            else:
                # divided first so that spans near the float maximum do not overflow
                step = high / (levels - 1) - low / (levels - 1)
                if not step > 0:  # a constant image, or a span too small to divide
                    step = 1.0
            if n_channels == 3:
                coded = _code_rgb(table, low, high, step)
            elif integer and step == 1.0 and table.dtype.kind == "u" and table.itemsize <= 2:
                coded, low = table[:, 0], 0.0  # uint8/uint16 values are their own codes
            elif integer and step == 1.0:
                coded = _offset_codes(table[:, 0], int(low))
            else:
                coded = np.empty(len(table), dtype=np.uint16)
                for start in range(0, len(table), BLOCK):  # float temporaries per block
                    block = table[start : start + BLOCK, 0].astype(np.float64)
                    # in float64 and from the minimum: float32 would place a value
                    # far from zero several levels off
                    coded[start : start + BLOCK] = np.rint((block - low) / step)
        searched = False
        if n_channels == 3 and len(coded) <= SMALL_IMAGE:
            # A sort is cheap here and needs no 2**24 tables; pixels find their code
            # by a binary search among the sorted codes when they are labelled.
            codes, counts = np.unique(_rgb_codes(coded), return_counts=True)
            points = np.column_stack([codes & 255, (codes >> 8) & 255, codes >> 16])
            searched = True
        elif n_channels == 3:
            codes, counts = _count_rgb_codes(coded)
            points = np.column_stack([codes & 255, (codes >> 8) & 255, codes >> 16])
        else:
            from . import kernels

            counts = kernels.count_codes(coded, 1 << 16)  # no int64 copy of the codes
            codes = np.flatnonzero(counts)
            counts = counts[codes]
            points = codes[:, None]
        points = low + step * points.astype(np.float64)
        exact = step == 1.0 and np.issubdtype(table.dtype, np.integer)
        small = table.dtype.itemsize == 1
        if keep_codes and n_channels == 3:
            coded = _rgb_codes(coded)  # combined once, not once per K
        weights = counts.astype(np.float64)
        return cls(
            table, coded, step, codes, points, weights, exact, small, value_range, searched=searched
        )

    finish_iterations = FINISH_ITERATIONS

    def reduce(self, points, weights, target, low, high):
        """About ``target`` weighted points standing for ``points`` (a coarser grid)."""
        return regrid(points, weights, low, high, target)

    def label_pixels(self, code_labels: np.ndarray, centers: np.ndarray | None = None):
        """Label of every pixel through a lookup table from code to label.

        With ``centers`` (inexact grids), codes whose cell straddles the boundary
        between two centres are marked, and their pixels get their nearest centre
        computed exactly.
        """
        if centers is not None:
            code_labels = code_labels.copy()
            code_labels[self._straddling(centers)] = 0
        if self.searched:  # sorted codes: the labels are the lookup table
            lut, codes = code_labels, self.codes
        else:
            # Pixels only ever carry occupied codes, so the table needs no zeroing.
            n_channels = self.table.shape[1]
            size = 1 << 24 if n_channels == 3 else 1 << 16
            if code_labels.dtype not in self.luts:
                self.luts[code_labels.dtype] = np.empty(size, code_labels.dtype)
            lut = self.luts[code_labels.dtype]
            lut[self.codes] = code_labels
        out = np.empty(len(self.table), dtype=code_labels.dtype)
        from . import kernels

        direct = centers is None and self.coded.ndim == 1 and not self.searched
        hashed = self.searched and self.coded.ndim == 2 and self.coded.dtype == np.uint8
        if hashed:  # small uint8 RGB: a hash table from code to row, one compiled pass
            if "index" not in self.luts:
                self.luts["index"] = kernels.code_index(self.codes.astype(np.uint32))
            slots, positions = self.luts["index"]
            if centers is not None:
                hashed = False  # unsure pixels need the exact measure below
        for start in range(0, len(self.table), BLOCK):
            checkpoint()
            block = slice(start, start + BLOCK)
            if direct:  # kept codes: one compiled gather
                kernels.gather(lut, self.coded[block], out[block])
                continue
            if hashed:
                coded = np.ascontiguousarray(self.coded[block])
                kernels.label_rgb(coded, slots, positions, lut, out[block])
                continue
            pixel_codes = self._pixel_codes(self.coded[block])
            if self.searched:
                pixel_codes = np.searchsorted(codes, pixel_codes)
            labels = lut[pixel_codes]
            if centers is not None:
                unsure = np.flatnonzero(labels == 0)
                if len(unsure):
                    x = self.table[block][unsure].astype(np.float64)
                    labels[unsure] = nearest(x, centers, distances=False)[0] + 1
            out[block] = labels
        return out

    def _straddling(self, centers):
        """Occupied codes whose cell may hold colours nearer to different centres."""
        if len(centers) == 1:
            return np.zeros(len(self.codes), dtype=bool)
        # Every colour of a cell lies within half a cell diagonal of the cell's point,
        # so a cell is on one side when its two nearest centres differ by more than
        # a diagonal (with a margin for rounding).
        diagonal = float(np.sqrt(np.sum(np.broadcast_to(self.step, centers.shape[1:]) ** 2)))
        _, best, second = nearest(self.points, centers, second=True)
        return np.sqrt(second) - np.sqrt(best) <= diagonal * (1 + 1e-2)

    def _pixel_codes(self, coded_block: np.ndarray) -> np.ndarray:
        if coded_block.ndim == 2:  # (n, 3) uint8 channel codes, not yet combined
            return _rgb_codes(coded_block)
        return coded_block


ROW_KEY_BYTES = 16  # tables with rows this narrow are summarised by their distinct rows


@dataclass(frozen=True)
class RowSummary:
    """A table clustered on its rows themselves: feature tables, weighted samples.

    Exact for any number of channels: the points are the distinct rows (narrow rows,
    found by a sort) or every row, weighted by their count (or the caller's sample
    weights). Coarse and middle stages run on random subsets of the rows
    (:meth:`reduce`); the finish runs Lloyd on every row to convergence, so the
    centres are a Lloyd fixed point of the data (K=1 gives the mean).
    """

    table: np.ndarray
    points: np.ndarray  # float64 (P, C)
    weights: np.ndarray
    inverse: np.ndarray | None  # each row's point (None: point i is row i)
    value_range: tuple[np.ndarray, np.ndarray]
    exact: bool = True
    finish_iterations = None  # to convergence (or max_iter)

    @classmethod
    def of(cls, table: np.ndarray, weights: np.ndarray | None = None) -> RowSummary:
        """Summarise ``table`` (N, C); ``weights`` (N,) are the rows' sample weights."""
        inverse = None
        row_bytes = table.dtype.itemsize * table.shape[1]
        if weights is None and row_bytes <= ROW_KEY_BYTES:
            rows = table + 0.0 if table.dtype.kind == "f" else table  # -0.0 is 0.0
            rows = np.ascontiguousarray(rows)
            keys = rows.view(np.dtype((np.void, row_bytes))).reshape(-1)
            _, first, inverse, counts = np.unique(
                keys, return_index=True, return_inverse=True, return_counts=True
            )
            points = rows[first].astype(np.float64)
            weights = counts.astype(np.float64)
            inverse = inverse.reshape(-1)
        else:
            points = np.ascontiguousarray(table, dtype=np.float64)
            if weights is None:
                weights = np.ones(len(table))
            weights = np.ascontiguousarray(weights, dtype=np.float64)
        value_range = (points.min(axis=0), points.max(axis=0))
        return cls(table, points, weights, inverse, value_range)

    def reduce(self, points, weights, target, low=None, high=None):
        """A uniform random subset of about ``target`` points, weighted to the same total.

        Drawn from a fixed stream: the same data gives the same subsets.
        """
        if len(points) <= 2 * target:
            return points, weights
        pick = np.sort(np.random.default_rng(0).choice(len(points), target, replace=False))
        kept = weights[pick]
        return points[pick], kept * (weights.sum() / kept.sum())

    def label_pixels(self, code_labels: np.ndarray) -> np.ndarray:
        """Each row's label from its point's."""
        return code_labels if self.inverse is None else code_labels[self.inverse]

    def working_bytes(self, k: int) -> int:
        """Peak bytes of its own allocations (the points and Lloyd's per-point arrays)."""
        n, points = len(self.table), len(self.points)
        per_point = points * (8 * self.points.shape[1] + ROW_BYTES_PER_POINT)
        if self.inverse is None:
            return FIXED_BYTES + per_point + SCORE_BYTES
        # the sort's temporaries are freed before Lloyd runs; each row's point is kept
        sort = n * (8 * 2 + 1 + self.table.itemsize * self.table.shape[1])
        return FIXED_BYTES + max(sort, per_point) + 8 * n + SCORE_BYTES


def _code_rgb(table, low, high, step):
    """round((x - low) / step) as uint8, in blocks.

    OpenCV's ``convertScaleAbs`` does it in one vectorised pass but computes in
    float32: it is used where that stays exact to well under a cell, numpy elsewhere
    (huge magnitudes, or dtypes OpenCV cannot read such as int64 or float16).
    """
    magnitude = max(abs(low), abs(high))
    direct = table.dtype in CV_DEPTHS and magnitude / step <= 2**16 and magnitude < FLOAT32_SAFE
    coded = np.empty(table.shape, dtype=np.uint8)
    for start in range(0, len(table), BLOCK):
        block = table[start : start + BLOCK]
        if direct:
            scaled = cv2.convertScaleAbs(_as_image(block), alpha=1 / step, beta=-low / step)
            coded[start : start + BLOCK] = scaled.reshape(-1, 3)
        else:
            scaled = np.rint((block.astype(np.float64) - low) / step)
            coded[start : start + BLOCK] = np.clip(scaled, 0, 255)
    return coded


def pixel_figures(table, labels, centers):
    """Pixels per label and the exact sum of squared distances, in blocks (direct form)."""
    k, n_channels = centers.shape
    counts = np.zeros(k + 1, dtype=np.int64)
    padded = np.vstack([np.zeros((1, n_channels)), np.asarray(centers, dtype=np.float64)])
    sse = 0.0
    for start in range(0, len(table), BLOCK):
        checkpoint()
        lab = labels[start : start + BLOCK]
        counts += np.bincount(lab, minlength=k + 1)
        difference = table[start : start + BLOCK].astype(np.float64) - padded[lab]
        sse += float(np.einsum("ij,ij->", difference, difference))
    return counts[1:], sse


def _offset_codes(column: np.ndarray, low: int) -> np.ndarray:
    """``column - low`` as uint16 codes (signed or wide integers spanning < 65536 values)."""
    return (column.astype(np.int64) - low).astype(np.uint16)


def _count_rgb_codes(coded: np.ndarray):
    """Occupied 24-bit codes of an (N, 3) uint8 table and their pixel counts.

    One ``calcHist`` pass at any size: its float32 counts are exact below 2**24, so
    only a colour held by 2**24 pixels or more (a 16-Mpx single-colour area) is
    counted again, exactly, in a second pass over its pixels.
    """
    hist = cv2.calcHist([_as_image(coded)], [2, 1, 0], None, [256] * 3, [0, 256] * 3)
    hist = hist.ravel()
    codes = _occupied(hist)
    counts = hist[codes].astype(np.int64)
    large = np.flatnonzero(counts >= MAX_HIST_PIXELS)
    if len(large):
        exact = np.zeros(len(large), dtype=np.int64)
        for start in range(0, len(coded), BLOCK):
            checkpoint()
            block = _rgb_codes(coded[start : start + BLOCK])
            for i, code in enumerate(codes[large]):
                exact[i] += np.count_nonzero(block == code)
        counts[large] = exact
    return codes, counts


def _occupied(counts: np.ndarray) -> np.ndarray:
    """Indices of the non-zero counts, in slices (no full-size boolean temporary)."""
    step = len(counts) // 16 or len(counts)
    return np.concatenate(
        [np.flatnonzero(counts[i : i + step] > 0) + i for i in range(0, len(counts), step)]
    )


def _rgb_codes(block: np.ndarray) -> np.ndarray:
    """24-bit code ``r + 256 g + 65536 b`` of each uint8 RGB row."""
    # R, G, B, 0 bytes read as one little-endian uint32.
    rgba = cv2.cvtColor(_as_image(np.ascontiguousarray(block)), cv2.COLOR_RGB2RGBA)
    keys = rgba.view("<u4").ravel()
    keys &= 0xFFFFFF
    return keys


def _as_image(table: np.ndarray) -> np.ndarray:
    """View an (N, C) pixel table as an (N, 1, C) image for OpenCV."""
    return table.reshape(len(table), 1, table.shape[1])


def regrid(points, weights, low, high, target):
    """Merge weighted points into grid bins (weighted means), keeping about ``target``.

    The grid is refined until at least ``target`` bins are occupied. Colours fill a
    thin part of the colour cube, about a surface, so the occupied bins grow about as
    the square of the levels per channel: that guides each refinement. The finest
    grid tried is kept if it at least halves the points.
    """
    n_channels = points.shape[1]
    levels = _levels(n_channels, target)
    merged = points, weights
    while len(points) > 2 * target and levels <= MAX_LEVELS:
        if n_channels <= 4:  # compiled: a dense table or a sort of the bin keys
            from . import kernels

            means, mass = kernels.bin_merge(
                np.ascontiguousarray(points, dtype=np.float64),
                np.ascontiguousarray(weights, dtype=np.float64),
                np.asarray(low, dtype=np.float64),
                np.asarray(high, dtype=np.float64),
                levels,
            )
        else:
            _, keys = np.unique(_bin_keys(points, low, high, levels), return_inverse=True)
            mass = np.bincount(keys, weights=weights)
            sums = np.column_stack(
                [np.bincount(keys, weights=points[:, c] * weights) for c in range(n_channels)]
            )
            means = sums / mass[:, None]
        if 2 * len(mass) <= len(points):
            merged = means, mass
        if len(mass) >= target:
            break
        levels = max(levels + 1, int(levels * 1.1 * np.sqrt(target / len(mass))))
    return merged


def _levels(n_channels: int, n_bins: int) -> int:
    return max(2, round(n_bins ** (1.0 / n_channels)))


def _bin_keys(block, low, high, levels):
    """One integer key per row: the row's bin in a levels**C grid over [low, high]."""
    keys = np.zeros(len(block), dtype=np.int64)
    for c in range(block.shape[1]):
        span = high[c] - low[c]
        scale = levels / span if span > 0 else 0.0
        code = ((block[:, c] - low[c]) * scale).astype(np.int64)
        np.clip(code, 0, levels - 1, out=code)
        keys *= levels
        keys += code
    return keys


def nearest(points, centers, distances=True, second=False):
    """Nearest centre (0-based) of each point and the squared distance to it (float64).

    One compiled direct-form pass (:func:`napari_kquant._core.kernels.nearest_rows`):
    every pixel, summary point, lazy block and palette application is labelled by it,
    so they all agree to the bit. With ``distances=False`` the distances are None;
    with ``second`` the squared distance to the second-nearest centre comes third.
    Points are converted to float64 block by block.
    """
    from . import kernels

    centers = np.ascontiguousarray(centers, dtype=np.float64)
    n = len(points)
    labels = np.empty(n, dtype=np.intp)
    best = np.empty(n)
    runner_up = np.empty(n)
    step = max(1 << 10, (BLOCK * 4) // max(points.shape[1], 1))  # float64 blocks of ~8 MB
    for start in range(0, n, step):
        block = slice(start, start + step)
        rows = np.ascontiguousarray(points[block], dtype=np.float64)
        kernels.nearest_rows(rows, centers, labels[block], best[block], runner_up[block])
    if second:
        return labels, best, runner_up
    return labels, (best if distances else None)


def init_centers(points, weights, k, init, rng):
    """Initial centres: weighted k-means++ (greedy, as scikit-learn) or random pixels."""
    return _seeded(points, weights, _init_draws(points, weights, k, init, rng))


def _init_draws(points, weights, k, init, rng):
    """The random numbers one start takes from ``rng`` (drawn in order, used anywhere)."""
    p = weights / weights.sum()
    if init == "random":
        # A coarse summary may hold fewer points than k (colours closer than a cell):
        # then some centres repeat, and their clusters stay empty.
        enough = len(points) >= k
        return "random", rng.choice(len(points), size=k, replace=not enough, p=p)
    n_trials = 2 + int(np.log(k))
    return "kmeans++", (rng.choice(len(points), p=p), rng.random((k - 1, n_trials)))


def _seeded(points, weights, draws):
    """The start that ``draws`` (from :func:`_init_draws`) picks."""
    kind, numbers = draws
    if kind == "random":
        return points[numbers].copy()
    from . import kernels

    points = np.ascontiguousarray(points, dtype=np.float64)
    first, trials = numbers
    picks = kernels.kmeans_pp(points, np.asarray(weights, dtype=np.float64), first, trials)
    return points[picks].copy()


# Independent Lloyd runs (several starts) go to this many threads at most; the
# compiled runs release the GIL. Below PARALLEL_WORK points x runs the runs are too
# short for threads to pay.
MAX_THREADS = 4
PARALLEL_WORK = 1 << 14


def coarse_starts(k: int, attempts: int) -> int:
    """k-means++ starts tried on the coarse regrid: 4 per attempt up to K=64, fewer above.

    A run costs about K times more at large K, while the middle stage (the best
    starts refined, and a start of its own from K=32) decides the result there.
    """
    return max(attempts, CANDIDATES_PER_ATTEMPT * attempts * min(64, k) // max(k, 1))


def worker_threads(tasks: int) -> int:
    """Threads for ``tasks`` independent compiled tasks: one per core, at most MAX_THREADS.

    Never more than OpenCV may use: ``cv2.setNumThreads(1)`` makes napari-kquant
    single-threaded too.
    """
    return max(1, min(tasks, MAX_THREADS, os.cpu_count() or 1, cv2.getNumThreads()))


def lloyd_runs(points, weights, starts, max_iter, epsilon, seeded=False):
    """:func:`weighted_lloyd` from each of ``starts``, in order, on parallel threads.

    One thread per core at most (never more threads than runs), and no more than
    OpenCV may use (``cv2.setNumThreads(1)`` makes napari-kquant single-threaded
    too): each run is one compiled loop on its own data, so the cores work without
    contending; on a busy machine the runs queue. The results are the same as one
    after another. With ``seeded`` the starts are :func:`_init_draws` and each run
    makes its own start first.
    """
    points = np.ascontiguousarray(points, dtype=np.float64)
    weights = np.ascontiguousarray(weights, dtype=np.float64)

    def run(start):
        if seeded:
            start = _seeded(points, weights, start)
        return weighted_lloyd(points, weights, start, max_iter, epsilon)

    threads = worker_threads(len(starts))
    if len(points) * len(starts) < PARALLEL_WORK:
        threads = 1
    return on_threads(run, starts, threads)


def weighted_lloyd(points, weights, centers, max_iter, epsilon):
    """Lloyd iterations on weighted points: centres, weighted inertia, labels, iterations.

    Stops after ``max_iter`` updates or when no centre moves by more than ``epsilon``
    (OpenCV's rule). An empty cluster takes the point that costs most where it is.
    One compiled pass per iteration, skipping the points Hamerly's bounds settle
    (:func:`napari_kquant._core.kernels.lloyd`), in float64.
    """
    from . import kernels

    centers, inertia, labels, n_iter = kernels.lloyd(
        np.ascontiguousarray(points, dtype=np.float64),
        np.ascontiguousarray(weights, dtype=np.float64),
        np.ascontiguousarray(centers, dtype=np.float64),
        int(max_iter),
        float(epsilon),
    )
    return centers, float(inertia), labels, int(n_iter)


class FastKMeans:
    """The default engine: k-means on a weighted colour summary, exact labels (above)."""

    name = "fast"
    label = "the fast engine"
    max_magnitude = MAX_FLOAT_MAGNITUDE  # computes in float64

    def fits(self, job, ks, defer_labels=False):
        """Yield a Fit per K of ``ks``; a sweep shares the summary and warm starts.

        ``defer_labels``: a sweep's fits may leave their labels to be made on demand.
        """
        rng = np.random.default_rng(job.seed)
        if job.start is not None or job.weights is not None:  # the estimator's tables
            engine = FastEngine(job.table, weights=job.weights, rows=True)
            job.check_summary_memory(engine.working_bytes(ks[0]), ks[0])
            max_iter, epsilon, use_epsilon, attempts, init = job.engine_options()
            if job.start is not None:
                yield engine.fit_from(job.start, max_iter, epsilon, use_epsilon)
            else:
                yield engine.fit(ks[0], max_iter, epsilon, use_epsilon, attempts, init, rng)
            return
        if len(ks) == 1:
            engine = FastEngine(job.table)
            job.check_summary_memory(engine.working_bytes(ks[0]), ks[0])
            yield engine.fit(ks[0], *job.engine_options(), rng)
            return
        engine = FastEngine(job.table, True, SWEEP_MID_POINTS, defer_labels)
        job.check_summary_memory(engine.working_bytes(max(ks)), max(ks))
        yield from engine.sweep(ks, *job.engine_options(), rng)

    @staticmethod
    def working_bytes(n_pixels: int, n_channels: int, table_itemsize: int) -> int:
        """Bytes it allocates for ``n_pixels`` pixels besides the outputs."""
        total = 0
        if n_channels == 3:
            if table_itemsize != 1:
                total += 3 * n_pixels  # uint8 channel codes
            # codes counted by a sort (small images) or a 2**24 histogram
            total += 16 * n_pixels if n_pixels <= SMALL_IMAGE else HIST_BYTES
            distinct = min(n_pixels, LUT_ENTRIES[3])
            lut = LUT_ENTRIES[3] * 2
        elif n_channels == 1:
            total += 2 * 8 * n_pixels + 2 * n_pixels  # float64 scaling temporaries, codes
            distinct = min(n_pixels, LUT_ENTRIES[1])
            lut = LUT_ENTRIES[1] * 8 * 2  # the bincount of codes and the lookup table
        else:  # every row as float64 points, Lloyd's per-row arrays (RowSummary)
            return n_pixels * (8 * n_channels + ROW_BYTES_PER_POINT) + SCORE_BYTES
        return total + lut + distinct * BYTES_PER_SUMMARY_POINT + SCORE_BYTES


class OpenCVKMeans:
    """``cv2.kmeans`` on every pixel as float32: the OpenCV recipe, bit for bit."""

    name = "opencv"
    label = "OpenCV's float32 k-means"
    max_magnitude = FLOAT32_SAFE  # squared distances in float32

    def fits(self, job, ks, defer_labels=False):
        """Yield a Fit per K of ``ks`` (each K on its own, as the recipe runs; labelled)."""
        if job.start is not None or job.weights is not None:
            raise InvalidInputError(
                "sample weights and initial centres need method='fast' (cv2.kmeans takes neither)"
            )
        epsilon = job.epsilon
        if epsilon is None:
            epsilon = default_epsilon(*job.value_range())
        criteria = (job.criteria_type, job.max_iter, epsilon)
        for k in ks:
            yield opencv_kmeans(
                job.table, k, criteria=criteria, attempts=job.attempts, init=job.init, seed=job.seed
            )

    @staticmethod
    def working_bytes(n_pixels: int, n_channels: int, table_itemsize: int) -> int:
        """Bytes it allocates for ``n_pixels`` pixels besides the outputs.

        Float32 samples; OpenCV's int32 labels, float distances and best labels; our
        relabelling; a block of the quantized image.
        """
        return n_pixels * (4 * n_channels + 32) + SCORE_BYTES


# method -> engine: a new engine is one class above and one entry here (a test checks
# the keys are Options' method choices)
ENGINES = {engine.name: engine for engine in (FastKMeans(), OpenCVKMeans())}
