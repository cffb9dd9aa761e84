"""The fast engine's stand-in while its kernels are prepared (core: numpy only).

On a computer's first run numba compiles the fast engine's kernels, which takes
tens of seconds (:mod:`.prepare` does it in a background process). Until they are
cached, results come from here, in plain numpy:

* ``attempts`` k-means++ starts (the same greedy weighted picks as the kernels,
  from the same random draws), each run to convergence with Lloyd, on a sample of
  at most :data:`SAMPLE` rows; the most compact is kept;
* :data:`POLISH` Lloyd updates on every row (none when the sample is every row);
* every row labelled with its nearest centre, measured in float64 in the direct
  form, sum over channels of (x - c)^2, so that no offset in the values cancels.

That is about the OpenCV recipe's quality in a fraction of its time; the labels are
exact either way. No BLAS products: on these small vectors OpenBLAS's threads cost
more than they give (a 2-3x slower stand-in, measured). Results made here say so
(``params["kernels"]``).
"""

from __future__ import annotations

import numpy as np

from ..cancel import checkpoint
from .contract import (
    SCORE_BLOCK,
    Fit,
    Settings,
    darkest_first_ranks,
    default_epsilon,
    init_draws,
    label_dtype,
)

SAMPLE = 1 << 14  # rows the starts and their Lloyd runs work on
STARTS_PER_ATTEMPT = 2  # k-means++ starts on the sample per attempt (a sample's runs are cheap)
POLISH = 2  # Lloyd updates on every row after the sample's runs


def nearest(points, centers, second=False):
    """Nearest centre (0-based) of each row, its squared distance, and the second's.

    numpy's twin of the compiled ``nearest_rows``: float64, direct form, in blocks of
    at most :data:`SCORE_BLOCK` (row, centre) pairs. The third value is None unless
    ``second``.
    """
    centers = np.asarray(centers, dtype=np.float64)
    n, k = len(points), len(centers)
    labels = np.empty(n, dtype=np.intp)
    best = np.empty(n)
    runner_up = np.full(n, np.inf) if second else None
    step = max(1 << 10, SCORE_BLOCK // max(k, 1))
    for start in range(0, n, step):
        checkpoint()
        rows = np.asarray(points[start : start + step], dtype=np.float64)
        scores = np.zeros((len(rows), k))
        for c in range(rows.shape[1]):
            difference = np.subtract.outer(rows[:, c], centers[:, c])
            scores += difference * difference
        near = scores.argmin(axis=1)
        at = np.arange(len(rows))
        labels[start : start + len(rows)] = near
        best[start : start + len(rows)] = scores[at, near]
        if runner_up is not None and k > 1:
            scores[at, near] = np.inf
            runner_up[start : start + len(rows)] = scores.min(axis=1)
    return labels, best, runner_up


def _figures(weights, labels, best, k):
    """Weight per cluster and the weighted sum of squared distances."""
    mass = np.bincount(labels, weights=weights, minlength=k)
    sse = float(best.sum() if weights is None else np.einsum("i,i->", best, weights))
    return mass, sse


def _means(points, weights, labels, k):
    """Weighted means of each cluster's rows (rows where a cluster is empty: NaN)."""
    n_channels = points.shape[1]
    mass = np.bincount(labels, weights=weights, minlength=k).astype(np.float64)
    sums = np.empty((k, n_channels))
    for c in range(n_channels):
        column = np.asarray(points[:, c], dtype=np.float64)
        sums[:, c] = np.bincount(
            labels, weights=column if weights is None else column * weights, minlength=k
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / mass[:, None], mass


def lloyd(points, weights, centers, max_iter, tol):
    """Weighted Lloyd from ``centers``: (centres, inertia, labels, iterations).

    Stops as the kernel's does: after ``max_iter`` updates or when no centre moved
    by more than ``tol``. An empty cluster takes the row that costs most where it
    is (the costliest first). Labels and inertia are those of the final centres.
    """
    k = len(centers)
    centers = np.array(centers, dtype=np.float64)
    labels, best, _ = nearest(points, centers)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (reported)
        new, mass = _means(points, weights, labels, k)
        empty = np.flatnonzero(mass <= 0)
        if len(empty):
            cost = best if weights is None else best * weights
            far = np.argsort(cost, kind="stable")[::-1][: len(empty)]
            new[empty] = np.asarray(points[far], dtype=np.float64)
        shift = float(np.sqrt(((new - centers) ** 2).sum(axis=1)).max())
        centers = new
        labels, best, _ = nearest(points, centers)
        if shift <= tol:
            break
    return centers, _figures(weights, labels, best, k)[1], labels, n_iter


def kmeans_pp(points, weights, first, draws):
    """Greedy weighted k-means++ from the kernel's draws: the indices picked.

    The picks of the compiled ``kmeans_pp`` for the same ``first`` and ``draws``
    (up to rounding in the distances): of ``n_trials`` candidates drawn with
    probability proportional to weight x squared distance to the nearest pick, the
    one that lowers the weighted potential most is kept.
    """
    points = np.asarray(points, dtype=np.float64)
    k = len(draws) + 1
    picks = np.full(k, first, dtype=np.int64)
    closest = ((points - points[first]) ** 2).sum(axis=1)
    for step in range(1, k):
        checkpoint()
        cumulative = np.cumsum(closest * weights)
        total = cumulative[-1]
        if total <= 0:
            break  # every point is a pick: the rest repeat the first
        drawn = np.searchsorted(cumulative, draws[step - 1] * total)
        candidates = np.minimum(drawn, len(points) - 1)
        gains = []  # how much the weighted potential falls with each candidate
        for c in candidates:
            fall = np.maximum(closest - ((points - points[c]) ** 2).sum(axis=1), 0)
            gains.append(float(np.einsum("i,i->", fall, weights)))
        picks[step] = candidates[int(np.argmax(gains))]
        closest = np.minimum(closest, ((points - points[picks[step]]) ** 2).sum(axis=1))
    return picks


def _start(points, weights, k, init, rng):
    kind, numbers = init_draws(points, weights, k, init, rng)
    if kind == "random":
        return np.asarray(points[numbers], dtype=np.float64)
    first, trials = numbers
    return np.asarray(points[kmeans_pp(points, weights, first, trials)], dtype=np.float64)


class PlainEngine:
    """Labels, figures and fits for one table, in numpy (the kernels' stand-in).

    Offers what :class:`~napari_kquant._core.fast.engine.FastEngine` offers the
    rest of the core: :meth:`assign` (label every row for given centres) and
    :meth:`fit` / :meth:`fit_from`.
    """

    def __init__(self, table: np.ndarray, weights: np.ndarray | None = None):
        self.table = table
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)

    def assign(self, centers, epsilon=0.0, figures=True) -> Fit:
        """Label every row with its nearest of ``centers`` (label i = row i - 1)."""
        labels, best, _ = nearest(self.table, centers)
        return self._fit(np.asarray(centers, dtype=np.float64), labels, best, epsilon)

    def _fit(self, centers, labels, best, epsilon, n_iter=None) -> Fit:
        k = len(centers)
        mass, sse = _figures(self.weights, labels, best, k)
        dtype = label_dtype(k)
        return Fit(
            centers,
            labels.astype(dtype) + dtype.type(1),
            sse,
            np.rint(mass).astype(np.int64),
            epsilon,
            n_iter,
            stand_in=True,
        )

    def _tolerance(self, epsilon, use_epsilon):
        if epsilon is None:
            epsilon = default_epsilon(self.table.min(axis=0), self.table.max(axis=0))
        return (epsilon if use_epsilon else 0.0), epsilon

    def fit(self, k, settings: Settings, rng) -> Fit:
        """Cluster into ``k``: starts on a sample, Lloyd updates on every row."""
        max_iter, attempts, init = settings.max_iter, settings.attempts, settings.init
        tol, epsilon = self._tolerance(settings.epsilon, settings.use_epsilon)
        table, weights = self.table, self.weights
        sampled = len(table) > 2 * SAMPLE
        if sampled:
            rows = np.sort(rng.integers(0, len(table), SAMPLE))
            sample = np.asarray(table[rows], dtype=np.float64)
            sample_weights = np.ones(SAMPLE) if weights is None else weights[rows]
        else:
            sample = np.asarray(table, dtype=np.float64)
            sample_weights = np.ones(len(table)) if weights is None else weights
        best = None
        for _ in range(STARTS_PER_ATTEMPT * attempts):
            start = _start(sample, sample_weights, k, init, rng)
            run = lloyd(sample, sample_weights, start, max_iter, tol)
            if best is None or run[1] < best[1]:
                best = run
        polish = min(POLISH, max_iter) if sampled else 0
        assert best is not None  # (attempts >= 1)
        return self._finish(best[0], polish, tol, epsilon, best[3], max_iter)

    def fit_from(self, start, settings: Settings) -> Fit:
        """Lloyd on every row from the given centres."""
        max_iter = settings.max_iter
        tol, epsilon = self._tolerance(settings.epsilon, settings.use_epsilon)
        return self._finish(
            np.asarray(start, dtype=np.float64), max_iter, tol, epsilon, 0, max_iter
        )

    def _finish(self, centers, iterations, tol, epsilon, n_iter, max_iter) -> Fit:
        """Lloyd updates on every row, centres kept in the data's range, darkest first."""
        polished = 0
        if iterations:
            centers, _, _, polished = lloyd(self.table, self.weights, centers, iterations, tol)
        low = np.asarray(self.table.min(axis=0), dtype=np.float64)
        high = np.asarray(self.table.max(axis=0), dtype=np.float64)
        centers, _ = darkest_first_ranks(np.clip(centers, low, high))
        labels, best, _ = nearest(self.table, centers)
        return self._fit(centers, labels, best, epsilon, min(n_iter + polished, max_iter))


class PlainKMeans:
    """The fast engine's ``fits`` in numpy (see the module's docstring)."""

    def fits(self, job, ks, defer_labels=False):
        """Yield a Fit per K of ``ks``, each K on its own (labelled)."""
        rng = np.random.default_rng(job.fitting.seed)
        engine = PlainEngine(job.table, job.weights)
        if job.start is not None:
            yield engine.fit_from(job.start, job.fitting.settings())
            return
        for k in ks:
            yield engine.fit(k, job.fitting.settings(), rng)
