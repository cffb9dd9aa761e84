"""The fast engine: k-means on a weighted summary of the pixels, then exact labels (core).

Given an ``(N, C)`` pixel table it returns what every engine returns (:class:`.Fit`):
the centres darkest first, a label 1..k per pixel, the pixels per label and the
compactness. The path is chosen by the kind of summary, one class each
(:class:`.contract.Summary`):

* :class:`.codes.CodedSummary`: every pixel coded on a value grid and the codes
  counted: uint8 RGB(A) under 1 Mpx (the 24-bit codes, sorted) and integer gray (the
  values) are exact; uint16 RGB and floats are coded to cells (1/255 of the range per
  channel for RGB, 1/65535 for gray).
* :class:`.grid.GridSummary`: large uint8 RGB, counted in 64**3 cells of 4x4x4
  colours in one compiled pass; photos (few occupied cells) go on to the exact
  24-bit codes counted with ``cv2.calcHist``.
* :class:`.rows.RowSummary`: feature tables and weighted samples, clustered on the
  rows themselves (exact at any width).

k-means runs coarse to fine: k-means++ starts on a coarse regrid, the best refined
on a middle regrid, the best of those polished on the full summary (and, on the
grid, on the pixels). Labels: a lookup from code to label, with the pixels of
cells that straddle two centres measured exactly; applying a palette to uint8 RGB
uses :class:`.grid.PaletteGrid` (no summary at all).

Glossary:

* **summary**: the weighted points k-means runs on in place of the pixels.
* **figures**: the pixels per label and the compactness, exact without labels.
* **regrid**: a coarser set of weighted points standing for the summary.
* **sure cell**: a grid cell whose every colour has the same nearest centre.
* **polish**: Lloyd updates on the full summary or the pixels after the search.
* **stand-in**: the numpy engine (:mod:`.plain`) that answers while the compiled
  kernels are prepared on a computer's first run (:mod:`.prepare`).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial

import numpy as np

from ..cancel import checkpoint
from ..validate import MAX_FLOAT_MAGNITUDE
from . import prepare
from .codes import CodedSummary
from .contract import (
    BYTES_PER_SUMMARY_POINT,
    HIST_BYTES,
    LUT_ENTRIES,
    MID_POINTS,
    PIXEL_ITERATIONS,
    ROW_BYTES_PER_POINT,
    SCORE_BYTES,
    SMALL_IMAGE,
    SWEEP_MID_POINTS,
    Fit,
    Settings,
    darkest_first_ranks,
    default_epsilon,
    init_draws,
    label_dtype,
    value_span,
)
from .grid import GridLabeller, GridSummary
from .lloyd import (
    blocked_lloyd,
    distinct_results,
    extend_centers,
    init_centers,
    lloyd_runs,
    nearest,
    pixel_figures,
    settle_ties,
    summary_figures,
    weighted_lloyd,
)
from .plain import PlainEngine, PlainKMeans
from .rows import RowSummary


def labeller(table: np.ndarray) -> FastEngine | PlainEngine | GridLabeller:
    """What labels ``table``'s pixels for given centres (``assign``), the one place deciding.

    uint8 RGB: the centres' grid (:class:`.grid.GridLabeller`, no summary of the
    image); others: the fast engine's summary; on a computer's first run: the stand-in.
    """
    if not prepare.ready():
        return PlainEngine(table)
    if table.dtype == np.uint8 and table.ndim == 2 and table.shape[1] == 3:
        return GridLabeller(table)
    return FastEngine(table)


def uses_grid(table: np.ndarray) -> bool:
    """Whether the fast engine summarises ``table`` on the bounded grid (large uint8 RGB)."""
    return table.dtype == np.uint8 and table.shape[1] == 3 and len(table) > SMALL_IMAGE


class FastEngine:
    """The fast engine's state for one image, reusable across K: summary and regrids.

    With ``keep_codes`` every pixel's code is kept after the first labelling, so
    labelling again (another K) is a single gather. ``mid_points`` sizes the middle
    regrid (sweeps use a smaller one: their warm starts need fewer corrections).
    With ``defer_labels`` (sweeps) the fits of exact and grid summaries come with
    exact figures and make their labels on demand (:class:`Fit`). ``column_range``:
    the table's per-channel lows and highs, where the job measured them already.
    """

    def __init__(
        self,
        table: np.ndarray,
        keep_codes: bool = False,
        mid_points: int = MID_POINTS,
        defer_labels: bool = False,
        weights: np.ndarray | None = None,
        rows: bool = False,
        column_range: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        self.table = table
        self.mid_points = mid_points
        self.keep_codes = keep_codes
        self.defer_labels = defer_labels
        # a sweep labels the pixels once per K: no extra Lloyd passes over them
        self.pixel_iterations = 0 if keep_codes else PIXEL_ITERATIONS
        if rows or weights is not None or table.shape[1] not in (1, 3):
            # feature tables (and weighted samples) are clustered on their rows: exact
            self._use(RowSummary.of(table, weights, column_range))
        elif uses_grid(table):
            # (a colour's pixels are counted in int32)
            self._use(GridSummary.of(table, for_figures=defer_labels and len(table) < 2**31))
        else:
            self._use(CodedSummary.of(table, keep_codes))

    def _use(self, summary: CodedSummary | GridSummary | RowSummary) -> None:
        self.summary = summary
        points, weights = summary.points, summary.weights
        self.low, self.high = summary.point_range()
        target = min(self.mid_points, summary.search.mid_points)
        self.mid = summary.reduce(points, weights, target, self.low, self.high)
        self._coarse: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def working_bytes(self, k: int) -> int:
        """Peak bytes of this engine's own allocations for ``k``, now its summary is known.

        The second, tighter memory estimate (the first, from the shape alone, must
        assume every pixel a distinct colour): per path, what building the summary
        took (still held, or released before k-means), the summary's per-point
        arrays, the lookup tables and the labelling's blocks.
        """
        return self.summary.working_bytes(k)

    def resolve(self, k: int) -> None:
        """Summarise the distinct colours exactly when the grid is too coarse for ``k``.

        A grid cell can merge distinct colours (floats closer than 1/65535 of the
        range): with too few occupied cells, K clusters could not all be filled.
        """
        if self.summary.too_coarse(k):
            self._use(self.summary.exact_summary(self.keep_codes))

    def coarse(self, k: int):
        """The coarse regrid for ``k`` clusters (the summary's size, >= 32 points a cluster)."""
        target = max(self.summary.search.coarse_points, 32 * k)
        if target not in self._coarse:
            points, weights = self.mid
            self._coarse[target] = self.summary.reduce(points, weights, target, self.low, self.high)
        return self._coarse[target]

    def fit(self, k, settings: Settings, rng) -> Fit:
        """Cluster into ``k`` from scratch (``settings``: the starts and when to stop)."""
        max_iter, attempts, init = settings.max_iter, settings.attempts, settings.init
        self.resolve(k)
        tol, epsilon = self._tolerance(settings.epsilon, settings.use_epsilon)
        (mid, mid_w), (coarse, coarse_w) = self.mid, self.coarse(k)
        search = self.summary.search
        draws = [
            init_draws(coarse, coarse_w, k, init, rng)
            for _ in range(search.coarse_starts(k, attempts))
        ]
        checkpoint()
        candidates = lloyd_runs(coarse, coarse_w, draws, max_iter, tol, seeded=True)
        candidates.sort(key=lambda fit: fit[1])
        # At large K the coarse regrid has too few points per cluster to place every
        # centre well: k-means++ starts on the middle regrid may take the place of the
        # lesser coarse results there.
        fine = search.fine(k, mid_is_summary=len(mid) == len(self.summary.points))
        if mid is not coarse:
            checkpoint()
            count = max(search.mid_candidates - fine, 1)
            if search.distinct_candidates:  # (the tolerance: at least 1e-9 of the range)
                same = max(tol, 1e-9 * value_span(self.low, self.high))
                candidates = distinct_results(candidates, count, same)
            refine = [c for c, *_ in candidates[:count]]
            candidates = lloyd_runs(mid, mid_w, refine, max_iter, tol)
        if fine:
            checkpoint()
            starts = [init_draws(mid, mid_w, k, init, rng) for _ in range(fine)]
            candidates += lloyd_runs(mid, mid_w, starts, max_iter, tol, seeded=True)
        best = min(candidates, key=lambda fit: fit[1])
        # Runs on the summary itself (a small table's middle stage) are already what a
        # finish to convergence gives: their labels are kept, and no pass repeated
        done = mid is self.summary.points and search.finish_iterations is None
        return self.finish(best[0], max_iter, tol, epsilon, best[3], best if done else None)

    def fit_from(self, start, settings: Settings) -> Fit:
        """Lloyd from the given centres ``start`` (k, C) in the space clustered."""
        tol, epsilon = self._tolerance(settings.epsilon, settings.use_epsilon)
        start = np.asarray(start, dtype=np.float64)
        return self.finish(start, settings.max_iter, tol, epsilon)

    def sweep(self, ks, settings: Settings, rng):
        """Yield a Fit per K of ``ks`` (ascending), sharing work between them.

        The first K is searched from scratch. For each later K two kinds of start
        compete on the coarse regrid: the previous K's centres completed with
        k-means++ picks (a warm start, which keeps neighbouring K alike), and the
        first K picks of ``attempts`` k-means++ sequences drawn once for the largest K
        (a k-means++ sequence cut after K picks is a k-means++ start for K). The most
        compact is refined on the middle regrid and finished as a single run is.
        """
        max_iter, attempts, init = settings.max_iter, settings.attempts, settings.init
        self.resolve(ks[-1])
        tol, epsilon = self._tolerance(settings.epsilon, settings.use_epsilon)
        mid, mid_w = self.mid
        coarse, coarse_w = self.coarse(ks[-1])
        sequences = [init_centers(coarse, coarse_w, ks[-1], init, rng) for _ in range(attempts)]
        fit = self.fit(ks[0], settings, rng)
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

    def finish(self, centers, max_iter, tol, epsilon, n_iter=0, converged=None) -> Fit:
        """Polish ``centers`` on the full summary, order them and label every pixel.

        ``n_iter``: the Lloyd iterations that found ``centers`` (reported with these).
        ``converged``: the Lloyd result ``centers`` come from when it ran to
        convergence on the summary itself (its labels are kept: nothing is left to
        polish).
        """
        summary = self.summary
        if converged is not None:
            code_labels, unsure, polish = converged[2], converged[4], 0
        else:
            # (the figures are measured below, with the final centres: no inertia needed)
            polish_lloyd = partial(
                blocked_lloyd if summary.blocked else weighted_lloyd, inertia=False
            )
            centers, _, code_labels, polish, unsure = polish_lloyd(
                summary.points,
                summary.weights,
                centers,
                min(max_iter, summary.search.finish_iterations or max_iter),
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
        # (Lloyd's labels, with the points whose ties assign() settles)
        fit = self.assign(
            centers, epsilon, None if code_labels is None else rank[code_labels], unsure
        )
        # each stage stops at max_iter: the total is reported within it too
        return replace(fit, n_iter=min(n_iter + polish, max_iter))

    def assign(self, centers, epsilon=0.0, code_labels=None, unsure=None, figures=True) -> Fit:
        """Label every pixel with its nearest of ``centers`` (label i = row i - 1).

        ``code_labels`` (1-based, per summary point) may be passed when known already,
        from Lloyd, with the points its bounds leave ``unsure`` (:func:`.lloyd.settle_ties`).
        The counts and compactness come with the labels here (``figures`` is for
        :class:`.grid.GridLabeller`, where leaving them out saves work).
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
        elif summary.exact:
            code_labels = settle_ties(points, centers, code_labels, unsure)
        if summary.exact:
            # Each code is one colour: the summary's figures are the pixels' figures.
            counts, compactness = summary_figures(
                points, weights, centers, code_labels, summary.blocked
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


class FastKMeans:
    """The default engine: k-means on a weighted colour summary, exact labels (above)."""

    name = "fast"
    label = "the fast engine"
    max_magnitude = MAX_FLOAT_MAGNITUDE  # computes in float64
    nearest_labels = True  # exact labels (the numpy stand-in's too)

    def fits(self, job, ks, defer_labels=False):
        """Yield a Fit per K of ``ks``; a sweep shares the summary and warm starts.

        ``defer_labels``: a sweep's fits may leave their labels to be made on demand.
        """
        if not prepare.ready():  # first run on this computer: the numpy stand-in
            yield from PlainKMeans().fits(job, ks, defer_labels)
            return
        rng = np.random.default_rng(job.fitting.seed)
        known = job.cache.get("column_range")  # measured when the job read the pixels
        if job.start is not None or job.weights is not None:  # the estimator's tables
            engine = FastEngine(job.table, weights=job.weights, rows=True, column_range=known)
            job.check_summary_memory(engine.working_bytes(ks[0]), ks[0])
            if job.start is not None:
                yield engine.fit_from(job.start, job.fitting.settings())
            else:
                yield engine.fit(ks[0], job.fitting.settings(), rng)
            return
        if len(ks) == 1:
            engine = FastEngine(job.table, column_range=known)
            job.check_summary_memory(engine.working_bytes(ks[0]), ks[0])
            yield engine.fit(ks[0], job.fitting.settings(), rng)
            return
        engine = FastEngine(job.table, True, SWEEP_MID_POINTS, defer_labels, column_range=known)
        job.check_summary_memory(engine.working_bytes(max(ks)), max(ks))
        yield from engine.sweep(ks, job.fitting.settings(), rng)

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
