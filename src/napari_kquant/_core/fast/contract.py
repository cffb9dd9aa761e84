"""The fast engine's contract and shared figures (core: numpy only).

What every engine returns (:class:`Fit`), what every summary offers
(:class:`Summary`), and the sizes the engine's stages and memory estimate share.

Glossary of the engine's words:

* **summary**: what k-means runs on instead of the pixels: weighted points that
  stand for them (exact colour codes, grid cells, coded cells, or the rows).
* **exact** summary: each point is one distinct value, so k-means on it is k-means
  on the pixels; an inexact one merges close values into a cell.
* **figures**: pixels per label and the sum of squared distances (compactness).
* **sure cell**: a grid cell whose every colour has the same nearest centre: its
  pixels are labelled at once; the others' pixels are measured one by one.
* **regrid** / **reduce**: fewer, heavier points standing for the summary (coarse
  and middle stages); **polish** / **finish**: Lloyd updates on the full summary
  (or the pixels) after them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import cv2
import numpy as np

from ..palette import darkest_first

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


# Lloyd's arrays per point of a RowSummary: weight, label, two bounds, the labels out,
# whether the bounds leave its label in doubt
ROW_BYTES_PER_POINT = 41


@dataclass(frozen=True)
class Settings:
    """How a fit searches and when it stops: the validated options as the engines read them.

    ``max_iter``: Lloyd iterations at most (a criterion that is off: 10,000);
    ``epsilon``: the centre movement that stops a run (None: the default, 0.001 of the
    range); ``use_epsilon``: whether movement stops it at all; ``attempts`` and
    ``init``: the starts (k-means++ or random).
    """

    max_iter: int
    epsilon: float | None
    use_epsilon: bool
    attempts: int
    init: str


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
    stand_in: bool = False  # made by the numpy stand-in while the kernels were prepared
    make_labels: Callable[[], np.ndarray] | None = field(default=None, repr=False)

    def label_array(self) -> np.ndarray:
        """The labels, made now if they were left for later."""
        labels = self.labelled().labels
        assert labels is not None
        return labels

    def labelled(self) -> Fit:
        """The same fit with its labels made."""
        if self.labels is not None:
            return self
        assert self.make_labels is not None, "a fit without labels makes them on demand"
        return replace(self, labels=self.make_labels(), make_labels=None)


@dataclass(frozen=True)
class Search:
    """How the engine searches one kind of summary: its stages' sizes and counts.

    Coarse k-means++ starts on a small regrid, the most compact refined on a middle
    regrid (with k-means++ starts of their own there at large K), the best polished
    on the full summary. The defaults are the colour summaries'.
    """

    coarse_points: int = COARSE_POINTS  # points of the coarse regrid (at least 32 per k)
    starts_per_attempt: int = CANDIDATES_PER_ATTEMPT  # coarse k-means++ starts per attempt
    mid_points: int = MID_POINTS  # at most this many points on the middle regrid
    mid_candidates: int = MID_CANDIDATES  # the most compact coarse results refined there
    # From FINE_START_K, this many k-means++ starts on the middle regrid compete with
    # the refined ones (one more where the middle regrid is the summary itself)
    fine_starts: int = FINE_STARTS
    # Lloyd updates on the full summary after the middle stage (None: to convergence)
    finish_iterations: int | None = FINISH_ITERATIONS
    # The candidates refined are distinct clusterings: a coarse result whose centres
    # all lie within the tolerance of a better one's is passed over (it would refine
    # to the same result), and the next distinct one is refined instead, if any
    distinct_candidates: bool = False

    def coarse_starts(self, k: int, attempts: int) -> int:
        """k-means++ starts on the coarse regrid: ``starts_per_attempt`` each, fewer above K=64.

        A run costs about K times more at large K, while the middle stage (the best
        starts refined, and starts of its own from K=32) decides the result there.
        """
        return max(attempts, self.starts_per_attempt * attempts * min(64, k) // max(k, 1))

    def fine(self, k: int, mid_is_summary: bool) -> int:
        """k-means++ starts on the middle regrid for ``k`` clusters."""
        if k < FINE_START_K or not self.fine_starts:
            return 0
        return self.fine_starts + int(mid_is_summary)


class Summary(Protocol):
    """What the fast engine clusters in place of the pixels: one class per kind.

    :class:`~.codes.CodedSummary` (pixels coded on a value grid: exact for uint8 RGB
    and integer gray, cells for uint16 RGB and floats), :class:`~.grid.GridSummary`
    (large uint8 RGB on a bounded colour grid) and :class:`~.rows.RowSummary` (the
    rows themselves: feature tables, weighted samples).
    """

    table: np.ndarray  # the pixels summarised (N, C)
    points: np.ndarray  # (P, C) float64 (a RowSummary's float32 rows stay float32)
    weights: np.ndarray  # (P,) pixels (or sample weight) per point
    value_range: tuple[np.ndarray, np.ndarray]  # per-channel min and max
    exact: bool  # each point is one value: the summary's figures are the pixels'
    search: Search  # the sizes and counts of the engine's stages on this summary
    blocked: bool  # the finish and the figures run in row blocks on worker threads

    def reduce(self, points, weights, target, low, high) -> tuple[np.ndarray, np.ndarray]:
        """About ``target`` weighted points standing for ``points`` (coarse, middle stages)."""

    def point_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel min and max of ``points``."""

    def too_coarse(self, k: int) -> bool:
        """Whether ``k`` clusters need a finer, exact summary (:meth:`exact_summary`)."""

    def working_bytes(self, k: int) -> int:
        """Peak bytes of the summary's own allocations for ``k`` (the memory estimate)."""


def value_span(low, high) -> float:
    """The width of the value range: the largest high less the smallest low."""
    return float(np.max(high)) - float(np.min(low))


def default_epsilon(low, high) -> float:
    """0.1 % of the value range [low, high] (0.001 for a constant image)."""
    span = value_span(low, high)
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


# Independent Lloyd runs (several starts) go to this many threads at most; the
# compiled runs release the GIL. Below PARALLEL_WORK values x runs the runs are too
# short for threads to pay.
MAX_THREADS = 4


PARALLEL_WORK = 1 << 16  # values (points x channels) x runs

# Rows of more channels than this are "wide": k-means++ measures every point there
WIDE_ROWS = 4

# Passes over a large table's rows go in fixed blocks of about this many values
# (rows x channels), at least ROW_BLOCK_MIN rows, on worker threads. (Handing a pass
# to a worker thread took 0.1 to 0.3 ms on a VM: blocks of 2**18 values made a
# 20,000 x 16 table's finish slower on two threads than on one.)
ROW_BLOCK_VALUES = 1 << 20
ROW_BLOCK_MIN = 1 << 10


# Hamerly's steps after the first pass measure few rows: on tables of fewer values
# than this they run block after block on the calling thread (the same sums, in the
# same order), where each step's hand-over cost more than the step
STEP_THREAD_VALUES = 1 << 21


# (asked once: ``os.cpu_count()`` took 20 us a call, seven calls a fit)
CORES = os.cpu_count() or 1


def worker_threads(tasks: int) -> int:
    """Threads for ``tasks`` independent compiled tasks: one per core, at most MAX_THREADS.

    Never more than OpenCV may use: ``cv2.setNumThreads(1)`` makes napari-kquant
    single-threaded too.
    """
    return max(1, min(tasks, MAX_THREADS, CORES, cv2.getNumThreads()))


def init_draws(points, weights, k, init, rng):
    """The random numbers one start takes from ``rng`` (drawn in order, used anywhere)."""
    p = weights / weights.sum()
    if init == "random":
        # A coarse summary may hold fewer points than k (colours closer than a cell):
        # then some centres repeat, and their clusters stay empty.
        enough = len(points) >= k
        return "random", rng.choice(len(points), size=k, replace=not enough, p=p)
    n_trials = 2 + int(np.log(k))
    return "kmeans++", (rng.choice(len(points), p=p), rng.random((k - 1, n_trials)))
