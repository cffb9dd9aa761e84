"""How centres are found (core: numpy + cv2 only).

Two engines share one contract: given an ``(N, C)`` pixel table they return the
centres, a 0-based label per pixel and the compactness (sum of squared distances
from each pixel to its centre, OpenCV's definition).

* ``opencv``: ``cv2.kmeans`` on every pixel as float32 - the seed recipe, exactly.
* ``fast``: k-means on a weighted colour summary (a histogram of the pixel values
  with the exact mean of each bin), then exact nearest-centre labelling of every
  pixel and one exact mean update. Each bin's pixels sit within a small cube, so
  the summary's objective differs from the full one only through pixels near a
  cluster boundary; the final full-data pass removes most of that difference.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CHUNK = 1 << 18  # pixels per block in full-data passes: bounds the working memory
SUMMARY_BINS = 1 << 18  # bins of the fine colour summary
COARSE_BINS = 1 << 12  # bins of the coarse summary the attempts run on
CANDIDATES_PER_ATTEMPT = 4  # coarse starts per attempt refined on the fine summary


@dataclass(frozen=True)
class Fit:
    """Raw engine output: centres (k, C) float64, 0-based labels (N,), compactness."""

    centers: np.ndarray
    labels: np.ndarray
    compactness: float
    counts: np.ndarray


def label_dtype(k: int) -> np.dtype:
    """Smallest unsigned dtype that holds labels 0..k."""
    return np.dtype(np.uint8 if k < 2**8 else np.uint16 if k < 2**16 else np.uint32)


def opencv_kmeans(table, k, *, criteria, attempts, init, seed) -> Fit:
    """``cv2.kmeans`` on every pixel, exactly as the OpenCV tutorial recipe calls it."""
    samples = np.ascontiguousarray(table, dtype=np.float32)
    flags = cv2.KMEANS_PP_CENTERS if init == "kmeans++" else cv2.KMEANS_RANDOM_CENTERS
    # cv2's RNG is per thread: seeding here, on the thread that clusters, makes runs
    # in napari's worker threads reproducible too.
    cv2.setRNGSeed(int(seed))
    compactness, labels, centers = cv2.kmeans(samples, k, None, criteria, attempts, flags)
    labels = labels.ravel()
    counts = np.bincount(labels, minlength=k)
    return Fit(centers.astype(np.float64), labels, float(compactness), counts)


def fast_kmeans(table, k, *, max_iter, epsilon, use_eps, use_iter, attempts, init, seed) -> Fit:
    """k-means on a weighted colour summary, finished with exact passes over all pixels."""
    rng = np.random.default_rng(seed)
    low = table.min(axis=0).astype(np.float64)
    high = table.max(axis=0).astype(np.float64)
    points, weights = _summary(table, low, high, SUMMARY_BINS)
    iters = max_iter if use_iter else 10_000
    tol = epsilon if use_eps else 0.0
    coarse, coarse_w = _coarse_summary(points, weights, low, high, max(COARSE_BINS, 64 * k))
    # Many cheap starts on the coarse summary; the best few are refined on the fine one.
    candidates = []
    for _ in range(CANDIDATES_PER_ATTEMPT * attempts):
        start = _init_centers(coarse, coarse_w, k, init, rng)
        candidates.append(weighted_lloyd(coarse, coarse_w, start, iters, tol))
    candidates.sort(key=lambda fit: fit[1])
    if coarse is not points:
        candidates = [
            weighted_lloyd(points, weights, c, iters, tol) for c, _ in candidates[:attempts]
        ]
    best = min(candidates, key=lambda fit: fit[1])[0]
    # One exact Lloyd step on all pixels, then the final exact labelling.
    labels, sums, counts, _ = assign(table, best)
    filled = counts > 0
    best = best.copy()
    best[filled] = sums[filled] / counts[filled, None]
    labels, _, counts, compactness = assign(table, best)
    return Fit(best, labels, compactness, counts)


def _summary(table, low, high, n_bins):
    """Weighted summary of the pixel table: exact mean and count of each occupied bin."""
    n_channels = table.shape[1]
    levels = _levels(n_channels, n_bins)
    exact = np.issubdtype(table.dtype, np.integer) and np.all(high - low < levels)
    n_keys = levels**n_channels
    counts = np.zeros(n_keys)
    sums = np.zeros((n_keys, n_channels))
    for start in range(0, len(table), CHUNK):
        block = table[start : start + CHUNK]
        keys = _bin_keys(block, low, high, levels, exact)
        counts += np.bincount(keys, minlength=n_keys)
        for c in range(n_channels):
            sums[:, c] += np.bincount(keys, weights=block[:, c], minlength=n_keys)
    occupied = np.flatnonzero(counts)
    return sums[occupied] / counts[occupied, None], counts[occupied]


def _coarse_summary(points, weights, low, high, target):
    """The coarsest regrid of the summary that still has about ``target`` occupied bins."""
    if len(points) <= target:
        return points, weights
    n_bins = target
    while True:
        coarse, coarse_w = _rebin(points, weights, low, high, n_bins)
        if len(coarse) >= target or n_bins >= SUMMARY_BINS:
            return coarse, coarse_w
        n_bins *= 4


def _rebin(points, weights, low, high, n_bins):
    """Merge a weighted summary into coarser bins (weighted means)."""
    n_channels = points.shape[1]
    levels = _levels(n_channels, n_bins)
    keys = _bin_keys(points, low, high, levels, exact=False)
    _, inverse = np.unique(keys, return_inverse=True)
    w = np.bincount(inverse, weights=weights)
    sums = np.column_stack(
        [np.bincount(inverse, weights=points[:, c] * weights) for c in range(n_channels)]
    )
    return sums / w[:, None], w


def _levels(n_channels: int, n_bins: int) -> int:
    return max(2, round(n_bins ** (1.0 / n_channels)))


def _bin_keys(block, low, high, levels, exact):
    """One integer key per row: the row's bin in a levels**C grid over [low, high]."""
    keys = np.zeros(len(block), dtype=np.int64)
    for c in range(block.shape[1]):
        if exact:
            code = block[:, c].astype(np.int64) - int(low[c])
        else:
            span = high[c] - low[c]
            scale = levels / span if span > 0 else 0.0
            code = ((block[:, c] - low[c]) * scale).astype(np.int64)
            np.clip(code, 0, levels - 1, out=code)
        keys *= levels
        keys += code
    return keys


def _sq_distances(points, centers):
    """Squared distances (M, k) in float64, clipped at 0 against rounding."""
    d = (points * points).sum(axis=1)[:, None] - 2.0 * points @ centers.T
    d += (centers * centers).sum(axis=1)
    return np.maximum(d, 0.0, out=d)


def _init_centers(points, weights, k, init, rng):
    """Initial centres: weighted k-means++ (greedy, as scikit-learn) or random pixels."""
    p = weights / weights.sum()
    if init == "random":
        return points[rng.choice(len(points), size=k, replace=False, p=p)].copy()
    n_trials = 2 + int(np.log(k))
    centers = np.empty((k, points.shape[1]))
    centers[0] = points[rng.choice(len(points), p=p)]
    closest = _sq_distances(points, centers[:1])[:, 0]
    for i in range(1, k):
        potential = closest * weights
        total = potential.sum()
        if total <= 0:  # every remaining point coincides with a centre
            centers[i:] = centers[0]
            break
        cumulative = np.cumsum(potential)
        picks = np.searchsorted(cumulative, rng.random(n_trials) * total)
        picks = np.minimum(picks, len(points) - 1)
        trial = np.minimum(closest, _sq_distances(points, points[picks]).T)
        best = np.argmin((trial * weights).sum(axis=1))
        centers[i] = points[picks[best]]
        closest = trial[best]
    return centers


def weighted_lloyd(points, weights, centers, max_iter, epsilon):
    """Lloyd iterations on weighted points; returns centres and weighted inertia.

    Stops after ``max_iter`` updates or when no centre moves by more than ``epsilon``
    (OpenCV's rule). An empty cluster takes the point that costs most where it is.
    """
    centers = centers.copy()
    k = len(centers)
    for _ in range(max_iter):
        d = _sq_distances(points, centers)
        labels = d.argmin(axis=1)
        mass = np.bincount(labels, weights=weights, minlength=k)
        new = np.column_stack(
            [
                np.bincount(labels, weights=points[:, c] * weights, minlength=k)
                for c in range(points.shape[1])
            ]
        )
        filled = mass > 0
        new[filled] /= mass[filled, None]
        if not filled.all():
            cost = d[np.arange(len(points)), labels] * weights
            for j in np.flatnonzero(~filled):
                far = int(np.argmax(cost))
                new[j] = points[far]
                cost[far] = 0.0
        shift = np.sqrt(((new - centers) ** 2).sum(axis=1)).max()
        centers = new
        if shift <= epsilon:
            break
    d = _sq_distances(points, centers)
    return centers, float((d.min(axis=1) * weights).sum())


def assign(table, centers):
    """Nearest centre for every pixel, in blocks; also per-label sums, counts and SSE."""
    k, n_channels = centers.shape
    work = np.float32 if table.dtype == np.uint8 else np.float64
    c = centers.astype(work)
    c_norm = (c * c).sum(axis=1)
    labels = np.empty(len(table), dtype=label_dtype(k))
    sums = np.zeros((k, n_channels))
    counts = np.zeros(k)
    sse = 0.0
    for start in range(0, len(table), CHUNK):
        x = table[start : start + CHUNK].astype(work)
        d = x @ (-2.0 * c.T)
        d += c_norm
        lab = d.argmin(axis=1)
        labels[start : start + len(x)] = lab
        diff = x - c[lab]
        sse += float(np.einsum("ij,ij->", diff, diff, dtype=np.float64))
        counts += np.bincount(lab, minlength=k)
        for ch in range(n_channels):
            sums[:, ch] += np.bincount(lab, weights=x[:, ch], minlength=k)
    return labels, sums, counts, sse
