"""Lloyd, k-means++ and nearest-centre passes on weighted points (core: numpy + numba)."""

from __future__ import annotations

import numpy as np

from ..cancel import checkpoint, on_threads
from .contract import (
    BLOCK,
    MAX_LEVELS,
    PARALLEL_WORK,
    ROW_BLOCK_MIN,
    ROW_BLOCK_VALUES,
    STEP_THREAD_VALUES,
    WIDE_ROWS,
    Search,
    init_draws,
    worker_threads,
)


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


class Regridded:
    """Summaries whose coarse and middle stages merge points on a coarser grid."""

    points: np.ndarray  # (the summary's, declared by each subclass)
    search = Search()  # the colour summaries' stages (the defaults)
    blocked = False  # the finish runs on one thread (summaries are small)

    def reduce(self, points, weights, target, low, high):
        """About ``target`` weighted points standing for ``points`` (a coarser grid)."""
        return regrid(points, weights, low, high, target)

    def point_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel min and max of the points (cell points may pass the values)."""
        return self.points.min(axis=0), self.points.max(axis=0)


def nearest(points, centers, distances=True, second=False):
    """Nearest centre (0-based) of each point and the squared distance to it (float64).

    One compiled direct-form pass (:func:`napari_kquant._core.kernels.nearest_rows`):
    every pixel, summary point, lazy block and palette application is labelled by it,
    so they all agree to the bit. With ``distances=False`` the distances are None;
    with ``second`` the squared distance to the second-nearest centre comes third.
    Points are converted to float64 block by block. While the kernels are prepared
    (:mod:`.prepare`) numpy's twin measures the same way.
    """
    from . import kernels, plain, prepare

    if not prepare.ready():
        labels, best, runner_up = plain.nearest(points, centers, second)
        return (labels, best, runner_up) if second else (labels, best if distances else None)

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


def settle_ties(points, centers, labels, unsure):
    """``labels`` (1-based, per point, changed in place) with ties given to the first centre.

    Lloyd's labels are nearest centres, but where a point is exactly as near to two
    (integer values: a pixel halfway between two centres), which one it keeps
    depends on its history and on the order the centres had before they were
    sorted. :func:`nearest`, which labels every palette application, gives the
    first. The points Lloyd's bounds leave ``unsure`` (a handful: the test is on
    bounds it keeps anyway) are measured by it again, so a fit's labels are those its
    palette gives (apply_palette, the lazy path, the estimator's predict).
    """
    where = np.flatnonzero(unsure)
    if len(where):
        first = nearest(np.take(points, where, axis=0), centers, distances=False)[0]
        labels[where] = first + 1
    return labels


def init_centers(points, weights, k, init, rng):
    """Initial centres: weighted k-means++ (greedy, as scikit-learn) or random pixels."""
    return _seeded(points, weights, init_draws(points, weights, k, init, rng))


def _seeded(points, weights, draws):
    """The start that ``draws`` (from :func:`init_draws`) picks."""
    kind, numbers = draws
    if kind == "random":
        return points[numbers].copy()
    from . import kernels

    points = np.ascontiguousarray(points, dtype=np.float64)
    first, trials = numbers
    # colours (up to 4 channels): grouped by nearest pick, pruned by the triangle
    # inequality; wide rows: every point measured (pruning rarely pays there)
    seed = kernels.kmeans_pp if points.shape[1] <= WIDE_ROWS else kernels.kmeans_pp_direct
    picks = seed(points, np.asarray(weights, dtype=np.float64), first, trials)
    return points[picks].copy()


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


def lloyd_runs(points, weights, starts, max_iter, epsilon, seeded=False):
    """:func:`weighted_lloyd` from each of ``starts``, in order, on parallel threads.

    One thread per core at most (never more threads than runs), and no more than
    OpenCV may use (``cv2.setNumThreads(1)`` makes napari-kquant single-threaded
    too): each run is one compiled loop on its own data, so the cores work without
    contending; on a busy machine the runs queue. The results are the same as one
    after another. With ``seeded`` the starts are :func:`init_draws` and each run
    makes its own start first.
    """
    points = np.ascontiguousarray(points, dtype=np.float64)
    weights = np.ascontiguousarray(weights, dtype=np.float64)

    def run(start):
        if seeded:
            start = _seeded(points, weights, start)
        return weighted_lloyd(points, weights, start, max_iter, epsilon)

    threads = worker_threads(len(starts))
    if points.size * len(starts) < PARALLEL_WORK:
        threads = 1
    return on_threads(run, starts, threads)


def distinct_results(results, count, tolerance):
    """The first ``count`` of ``results`` (Lloyd's, best first) that are distinct clusterings.

    A result is passed over when each of its centres lies within ``tolerance`` of a
    different centre of a result kept before it (the same clustering, in any order).
    """
    kept: list = []
    for result in results:
        if len(kept) == count:
            break
        if not any(_same_centres(result[0], other[0], tolerance) for other in kept):
            kept.append(result)
    return kept


def _same_centres(a, b, tolerance) -> bool:
    labels, squared = nearest(a, b)
    return len(np.unique(labels)) == len(a) and float(np.sqrt(squared.max())) <= tolerance


def weighted_lloyd(points, weights, centers, max_iter, epsilon, inertia=True):
    """Lloyd on weighted points: centres, weighted inertia, labels, iterations, unsure.

    Stops after ``max_iter`` updates or when no centre moves by more than ``epsilon``
    (OpenCV's rule). An empty cluster takes the point that costs most where it is.
    One compiled pass per iteration, skipping the points Hamerly's bounds settle
    (:func:`napari_kquant._core.kernels.lloyd`), in float64. ``inertia=False``: the
    caller measures the result itself, the inertia is NaN (one pass saved).
    ``unsure``: the points whose labels may be tied (:func:`settle_ties`).
    """
    from . import kernels

    centers, inertia, labels, n_iter, unsure = kernels.lloyd(
        np.ascontiguousarray(points, dtype=np.float64),
        np.ascontiguousarray(weights, dtype=np.float64),
        np.ascontiguousarray(centers, dtype=np.float64),
        int(max_iter),
        float(epsilon),
        bool(inertia),
    )
    return centers, float(inertia), labels, int(n_iter), unsure


def row_blocks(n_rows: int, n_channels: int) -> list[slice]:
    """Fixed blocks of rows for passes split over worker threads.

    Set by the table's shape alone, never by the number of cores: the blocks' sums
    are added in block order, so a result is the same on any computer. Blocks of
    about ROW_BLOCK_VALUES values, of equal size and an even number of them (a
    20,000 x 16 table was one block of 16,384 rows and one of 3,616: the pass took
    the larger block's time on two cores).
    """
    most = max(ROW_BLOCK_MIN, ROW_BLOCK_VALUES // max(n_channels, 1))
    count = -(-n_rows // most)
    count += count % 2 if count > 1 else 0
    step = max(1, -(-n_rows // max(count, 1)))
    return [slice(start, min(start + step, n_rows)) for start in range(0, n_rows, step)]


def _on_blocks(function, blocks, threads=None):
    threads = worker_threads(len(blocks)) if threads is None else threads
    return on_threads(function, range(len(blocks)), threads)


def blocked_lloyd(points, weights, centers, max_iter, epsilon, inertia=True):
    """:func:`weighted_lloyd` with every pass split into :func:`row_blocks` on worker threads.

    For the finish on large tables clustered on their rows (``RowSummary.blocked``):
    the same bounded steps (:func:`napari_kquant._core.kernels.assign_all` and
    ``reassign``) run on each block with its own bounds and cluster sums, and the
    centres are updated from the blocks' sums in block order between steps. Points
    may be float32 (a table's own rows, not copied) or float64; the arithmetic is
    float64. A single block is :func:`weighted_lloyd` itself. ``inertia=False``: the
    caller measures the result itself (the finish's figures), so the inertia is NaN
    and its pass over every row is saved.
    """
    from . import kernels

    n, n_channels = points.shape
    blocks = row_blocks(n, n_channels)
    if len(blocks) < 2:
        return weighted_lloyd(points, weights, centers, max_iter, epsilon, inertia)
    k = len(centers)
    centers = np.array(centers, dtype=np.float64)
    labels = np.empty(n, np.int64)
    upper, lower = np.empty(n), np.empty(n)
    mass = np.zeros((len(blocks), k))
    sums = np.zeros((len(blocks), k, n_channels))
    big = kernels.walks(k, n_channels)  # neighbour rows, one set per block (see lloyd)
    rows = [
        (np.empty((k if big else 1, k), np.int64), np.empty((k if big else 1, k))) for _ in blocks
    ]
    built = np.zeros((len(blocks), k))
    gaps = np.empty((len(blocks), k))
    moved = np.empty(k)

    def measure(b):  # every point of block b against the centres
        part = blocks[b]
        kernels.assign_all(
            points[part], weights[part], centers, labels[part], upper[part], lower[part],
            mass[b], sums[b], rows[b],
        )  # fmt: skip

    def step(b):  # Hamerly's step on block b after the centres moved
        part = blocks[b]
        kernels.reassign(
            points[part], weights[part], centers, moved, labels[part], upper[part],
            lower[part], mass[b], sums[b], gaps[b], rows[b], built[b], drift,
        )  # fmt: skip

    def measure_costs(b):  # each point's weighted squared distance to its centre
        part = blocks[b]
        kernels.point_costs(points[part], weights[part], centers, labels[part], cost[part])

    _on_blocks(measure, blocks)
    step_threads = None if n * n_channels >= STEP_THREAD_VALUES else 1
    cost = np.empty(0)  # (made when a cluster empties)
    drift, n_iter = 0.0, 0
    for iteration in range(max_iter):
        checkpoint()
        n_iter = iteration + 1
        total_mass, total_sums = mass.sum(axis=0), sums.sum(axis=0)
        filled = total_mass > 0
        new = centers.copy()
        new[filled] = total_sums[filled] / total_mass[filled, None]
        empty = not filled.all()
        if empty:  # as kernels.lloyd: the costliest point, each once, costliest first
            cost = np.empty(n)
            _on_blocks(measure_costs, blocks)
            for j in np.flatnonzero(~filled):
                far = int(np.argmax(cost))
                new[j] = points[far]
                cost[far] = 0.0
        shift = kernels.centre_moves(new, centers, moved)
        centers = new
        drift += shift
        if empty:  # a centre jumped: measure everything again
            _on_blocks(measure, blocks)
            built[:] = drift
        else:
            _on_blocks(step, blocks, step_threads)
        if shift <= epsilon:
            break

    # the labels are every point's nearest final centre: one distance each, block by block
    def block_inertia(b):
        part = blocks[b]
        cost = np.empty(part.stop - part.start)
        kernels.point_costs(points[part], weights[part], centers, labels[part], cost)
        return float(cost.sum())

    total = sum(_on_blocks(block_inertia, blocks)) if inertia else float("nan")
    unsure = np.empty(n, np.bool_)
    kernels.unsure_points(centers, labels, upper, lower, unsure)
    return centers, total, labels, n_iter, unsure


def summary_figures(points, weights, centers, labels, blocked=False):
    """Weight per label (1-based ``labels``) and the weighted sum of squared distances.

    One compiled pass; with ``blocked``, in :func:`row_blocks` on worker threads.
    """
    from . import kernels

    centers = np.ascontiguousarray(centers, dtype=np.float64)
    if not blocked:
        return kernels.summary_figures(
            np.ascontiguousarray(points, dtype=np.float64),
            np.ascontiguousarray(weights, dtype=np.float64),
            centers,
            labels,
        )
    blocks = row_blocks(*points.shape)
    parts = _on_blocks(
        lambda b: kernels.summary_figures(
            points[blocks[b]], weights[blocks[b]], centers, labels[blocks[b]]
        ),
        blocks,
    )
    return sum(part[0] for part in parts), sum(part[1] for part in parts)
