"""How centres are found (core: numpy + cv2 only).

Two engines share one contract: given an ``(N, C)`` pixel table they return the
centres, a 0-based label per pixel, the pixels per label and the compactness (sum of
squared distances from each pixel to its centre, OpenCV's definition).

* ``opencv``: ``cv2.kmeans`` on every pixel as float32 - the seed recipe, exactly.
* ``fast``: k-means on a weighted summary of the colours, then exact finishing.

  For uint8 RGB(A) and integer gray images the summary is exact: the distinct
  colours and their counts (one ``cv2.calcHist`` pass). k-means on distinct colours
  weighted by their counts minimises the very same objective as on the pixels, and
  a lookup table indexed by colour then labels every pixel in one gather. Other
  images are summarised by a fine histogram grid (2**18 bins over the data range)
  holding the exact mean and count of each bin; two blockwise passes over the
  pixels then give exact labels and exact centres.

  On the summary, many cheap k-means++ starts run on a coarse regrid; the best
  ``attempts`` of them are refined on a middle regrid and the best one is finished
  on the full summary. That keeps the quality of several full k-means runs at a
  fraction of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ._palette import darkest_first

BLOCK = 1 << 18  # pixels per block in full-data passes: bounds the working memory
GRID_BINS = 1 << 18  # bins of the fine grid summary (images without an exact summary)
MID_POINTS = 1 << 15  # about this many points on the middle regrid
COARSE_POINTS = 1 << 11  # about this many points on the coarse regrid (at least 32 per k)
CANDIDATES_PER_ATTEMPT = 2  # coarse starts per attempt
MAX_EXACT_PIXELS = 1 << 24  # calcHist counts in float32: exact below 2**24 pixels
MAX_LEVELS = 1 << 10  # finest regrid per channel
FINISH_ITERATIONS = 1000  # cap on the Lloyd iterations on the full summary
SMALL_IMAGE = 1 << 20  # up to here distinct colours come from a sort, not 2**24 tables


@dataclass(frozen=True)
class Fit:
    """Engine output, darkest centre first: centres (k, C) float64, labels 1..k (N,),
    pixels per label, compactness, and the ``epsilon`` the run used.
    """

    centers: np.ndarray
    labels: np.ndarray
    compactness: float
    counts: np.ndarray
    epsilon: float


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
    flags = cv2.KMEANS_PP_CENTERS if init == "kmeans++" else cv2.KMEANS_RANDOM_CENTERS
    # cv2's RNG is per thread: seeding here, on the thread that clusters, makes runs
    # in napari's worker threads reproducible too.
    cv2.setRNGSeed(int(seed))
    compactness, labels, centers = cv2.kmeans(samples, k, None, criteria, attempts, flags)
    centers, rank = darkest_first_ranks(centers.astype(np.float64))
    counts = np.bincount(labels.ravel(), minlength=k)[np.argsort(rank)]
    return Fit(centers, rank[labels.ravel()], float(compactness), counts, criteria[2])


def fast_kmeans(table, k, *, max_iter, epsilon, use_epsilon, attempts, init, seed) -> Fit:
    """k-means on a weighted colour summary, finished exactly on every pixel.

    ``epsilon`` None means the default; with ``use_epsilon`` False it never stops a run.
    """
    rng = np.random.default_rng(seed)
    summary = ExactSummary.of(table)
    if summary is None:
        low = table.min(axis=0).astype(np.float64)
        high = table.max(axis=0).astype(np.float64)
        points, weights = grid_summary(table, low, high)
    else:
        points, weights = summary.points, summary.weights
        low, high = points.min(axis=0), points.max(axis=0)
    work = np.float32 if summary is not None and summary.small_values else np.float64
    if epsilon is None:
        epsilon = default_epsilon(low, high)
    tol = epsilon if use_epsilon else 0.0

    mid, mid_w = regrid(points, weights, low, high, MID_POINTS)
    coarse, coarse_w = regrid(mid, mid_w, low, high, max(COARSE_POINTS, 32 * k))
    candidates = []
    for _ in range(CANDIDATES_PER_ATTEMPT * attempts):
        start = init_centers(coarse, coarse_w, k, init, rng)
        candidates.append(weighted_lloyd(coarse, coarse_w, start, max_iter, tol, work))
    candidates.sort(key=lambda fit: fit[1])
    if mid is not coarse:
        candidates = [
            weighted_lloyd(mid, mid_w, c, max_iter, tol, work) for c, *_ in candidates[:attempts]
        ]
    centers = min(candidates, key=lambda fit: fit[1])[0]

    if summary is not None:
        centers, compactness, point_labels = weighted_lloyd(
            points, weights, centers, min(max_iter, FINISH_ITERATIONS), tol, work
        )
        centers, rank = darkest_first_ranks(centers)
        counts = np.bincount(rank[point_labels], weights=weights, minlength=k + 1)[1:]
        labels = summary.label_pixels(rank[point_labels], k)
        return Fit(centers, labels, compactness, counts.astype(np.int64), epsilon)

    # Grid summary: one exact Lloyd step on all pixels, then the final exact labelling.
    if mid is not points:
        centers, *_ = weighted_lloyd(points, weights, centers, max_iter, tol)
    labels, sums, counts, _ = assign(table, centers)
    filled = counts > 0
    centers = centers.copy()
    centers[filled] = sums[filled] / counts[filled, None]
    centers, _ = darkest_first_ranks(centers)
    labels, _, counts, compactness = assign(table, centers)
    labels += 1
    return Fit(centers, labels, compactness, counts.astype(np.int64), epsilon)


@dataclass(frozen=True)
class ExactSummary:
    """The distinct colours of an integer image, their counts, and how to label pixels.

    ``codes`` index a lookup table: for uint8 RGB(A) the 24-bit colour ``r + 256 g +
    65536 b``; for integer gray the value minus the minimum.
    """

    table: np.ndarray
    points: np.ndarray
    weights: np.ndarray
    codes: np.ndarray
    n_codes: int
    small_values: bool
    inverse: np.ndarray | None = None  # pixel -> point index, where already known

    @classmethod
    def of(cls, table: np.ndarray) -> ExactSummary | None:
        """The exact summary of ``table``, or None where none is cheap to build."""
        n, n_channels = table.shape
        if n >= MAX_EXACT_PIXELS:
            return None
        if table.dtype == np.uint8 and n_channels == 3:
            if n <= SMALL_IMAGE:
                # np.unique's sort is cheap here and needs no 2**24 tables.
                codes, inverse, counts = np.unique(
                    _rgb_codes(table), return_inverse=True, return_counts=True
                )
                weights = counts.astype(np.float64)
            else:
                hist = cv2.calcHist([_as_image(table)], [2, 1, 0], None, [256] * 3, [0, 256] * 3)
                codes = np.flatnonzero(hist.ravel() > 0)
                weights = hist.ravel()[codes].astype(np.float64)
                del hist
                inverse = None
            points = np.column_stack([codes & 255, (codes >> 8) & 255, codes >> 16])
            return cls(table, points.astype(np.float64), weights, codes, 1 << 24, True, inverse)
        if n_channels == 1 and table.dtype in (np.uint8, np.int8, np.uint16, np.int16):
            low = int(table.min())
            counts = np.bincount((table[:, 0].astype(np.int64) - low), minlength=1)
            codes = np.flatnonzero(counts)
            points = (codes + low).astype(np.float64)[:, None]
            small = table.dtype.itemsize == 1
            return cls(table, points, counts[codes].astype(np.float64), codes, len(counts), small)
        return None

    def label_pixels(self, point_labels: np.ndarray, k: int) -> np.ndarray:
        """Label of every pixel through a lookup table from colour code to label."""
        if self.inverse is not None:
            return point_labels[self.inverse]
        lut = np.zeros(self.n_codes, dtype=point_labels.dtype)
        lut[self.codes] = point_labels
        out = np.empty(len(self.table), dtype=lut.dtype)
        for start in range(0, len(self.table), BLOCK):
            block = self.table[start : start + BLOCK]
            out[start : start + len(block)] = lut[self._pixel_codes(block)]
        return out

    def _pixel_codes(self, block: np.ndarray) -> np.ndarray:
        if self.table.shape[1] == 3:
            return _rgb_codes(block)
        return block[:, 0].astype(np.int64) - int(self.points[0, 0] - self.codes[0])


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


def grid_summary(table, low, high):
    """Weighted summary on a 2**18-bin grid over [low, high]: exact bin means and counts."""
    n_channels = table.shape[1]
    levels = _levels(n_channels, GRID_BINS)
    n_keys = levels**n_channels
    counts = np.zeros(n_keys)
    sums = np.zeros((n_keys, n_channels))
    for start in range(0, len(table), BLOCK):
        block = table[start : start + BLOCK]
        keys = _bin_keys(block, low, high, levels)
        counts += np.bincount(keys, minlength=n_keys)
        for c in range(n_channels):
            sums[:, c] += np.bincount(keys, weights=block[:, c], minlength=n_keys)
    occupied = np.flatnonzero(counts)
    return sums[occupied] / counts[occupied, None], counts[occupied]


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
        keys = _bin_keys(points, low, high, levels)
        _, inverse = np.unique(keys, return_inverse=True)
        mass = np.bincount(inverse, weights=weights)
        if 2 * len(mass) <= len(points):
            sums = np.column_stack(
                [np.bincount(inverse, weights=points[:, c] * weights) for c in range(n_channels)]
            )
            merged = sums / mass[:, None], mass
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


def nearest(points, centers, work=np.float64, norms=None, distances=True):
    """Nearest centre of each point and the squared distance to it (float64).

    ``norms`` (the points' squared norms) may be passed when calling repeatedly;
    with ``distances=False`` only the labels are computed (the distances are None).
    """
    p = points.astype(work, copy=False)
    c = centers.astype(work)
    scores = p @ (-2.0 * c.T)
    scores += (c * c).sum(axis=1)
    labels = scores.argmin(axis=1)
    if not distances:
        return labels, None
    d = np.take_along_axis(scores, labels[:, None], axis=1)[:, 0].astype(np.float64)
    d += (points * points).sum(axis=1) if norms is None else norms
    return labels, np.maximum(d, 0.0, out=d)


def init_centers(points, weights, k, init, rng):
    """Initial centres: weighted k-means++ (greedy, as scikit-learn) or random pixels."""
    p = weights / weights.sum()
    if init == "random":
        return points[rng.choice(len(points), size=k, replace=False, p=p)].copy()
    n_trials = 2 + int(np.log(k))
    centers = np.empty((k, points.shape[1]))
    centers[0] = points[rng.choice(len(points), p=p)]
    closest = ((points - centers[0]) ** 2).sum(axis=1)
    for i in range(1, k):
        potential = closest * weights
        total = potential.sum()
        if total <= 0:  # every remaining point coincides with a centre
            centers[i:] = centers[0]
            break
        picks = np.searchsorted(np.cumsum(potential), rng.random(n_trials) * total)
        picks = np.minimum(picks, len(points) - 1)
        trial = ((points[None, :, :] - points[picks][:, None, :]) ** 2).sum(axis=2)
        np.minimum(trial, closest, out=trial)
        best = np.argmin(trial @ weights)
        centers[i] = points[picks[best]]
        closest = trial[best]
    return centers


def weighted_lloyd(points, weights, centers, max_iter, epsilon, work=np.float64):
    """Lloyd iterations on weighted points; returns centres, weighted inertia, labels.

    Stops after ``max_iter`` updates or when no centre moves by more than ``epsilon``
    (OpenCV's rule). An empty cluster takes the point that costs most where it is.
    """
    centers = centers.copy()
    k = len(centers)
    norms = (points * points).sum(axis=1)
    weighted = points * weights[:, None]
    points = points.astype(work)  # cast once, not in every iteration
    for _ in range(max_iter):
        labels, _ = nearest(points, centers, work, distances=False)
        mass = np.bincount(labels, weights=weights, minlength=k)
        new = np.column_stack(
            [
                np.bincount(labels, weights=weighted[:, c], minlength=k)
                for c in range(points.shape[1])
            ]
        )
        filled = mass > 0
        new[filled] /= mass[filled, None]
        new[~filled] = centers[~filled]
        if not filled.all():
            cost = nearest(points, centers, work, norms)[1] * weights
            for j in np.flatnonzero(~filled):
                far = int(np.argmax(cost))
                new[j] = points[far]
                cost[far] = 0.0
        shift = np.sqrt(((new - centers) ** 2).sum(axis=1)).max()
        centers = new
        if shift <= epsilon:
            break
    labels, d = nearest(points, centers, work, norms)
    return centers, float(np.dot(d, weights)), labels


def assign(table, centers):
    """Nearest centre (0-based) for every pixel, in blocks; also per-label sums, counts, SSE."""
    k, n_channels = centers.shape
    labels = np.empty(len(table), dtype=label_dtype(k))
    sums = np.zeros((k, n_channels))
    counts = np.zeros(k)
    sse = 0.0
    for start in range(0, len(table), BLOCK):
        x = table[start : start + BLOCK].astype(np.float64)
        lab, d = nearest(x, centers)
        labels[start : start + len(x)] = lab
        sse += float(d.sum())
        counts += np.bincount(lab, minlength=k)
        for ch in range(n_channels):
            sums[:, ch] += np.bincount(lab, weights=x[:, ch], minlength=k)
    return labels, sums, counts, sse
