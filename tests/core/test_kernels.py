"""The compiled kernels' pruned searches give what a search over every centre gives.

k-means++ skips the picks a candidate cannot come nearer to, Lloyd's iterations and
the grid's labelling walk sorted neighbour rows: each is checked here against a
plain numpy search on real colours, at K where the pruning is in use.
"""

import numpy as np
import pytest
from skimage import data

from conftest import BruteForce
from napari_kquant import quantize
from napari_kquant._core.fast import kernels


def colour_summary(image):
    """Distinct colours of ``image`` as float64 points, weighted by their pixel counts."""
    colours, counts = np.unique(image.reshape(-1, 3), axis=0, return_counts=True)
    return colours.astype(np.float64), counts.astype(np.float64)


def numpy_kmeans_pp(points, weights, first, draws):
    """Greedy weighted k-means++ measuring every point against every candidate."""
    picks = [first]
    closest = ((points - points[first]) ** 2).sum(axis=1)
    for row in draws:
        cumulative = np.cumsum(closest * weights)
        total = cumulative[-1]
        best_cost, best_pick, best_closest = np.inf, 0, None
        for u in row:
            candidate = min(int(np.searchsorted(cumulative, u * total)), len(points) - 1)
            trial = np.minimum(closest, ((points - points[candidate]) ** 2).sum(axis=1))
            cost = float((trial * weights).sum())
            if cost < best_cost:
                best_cost, best_pick, best_closest = cost, candidate, trial
        picks.append(best_pick)
        closest = best_closest
    return np.array(picks)


@pytest.mark.parametrize("k", [2, 16, 64, 256])
def test_pruned_kmeans_pp_picks_what_the_full_search_picks(k):
    points, weights = colour_summary(data.astronaut()[::2, ::2])
    draws = np.random.default_rng(k).random((k - 1, 2 + int(np.log(k))))
    picks = kernels.kmeans_pp(points, weights, 7, draws)
    np.testing.assert_array_equal(picks, numpy_kmeans_pp(points, weights, 7, draws))


@pytest.mark.parametrize(("channels", "k"), [(8, 10), (64, 10), (256, 8), (32, 40)])
def test_kmeans_pp_on_wide_rows_picks_what_the_full_search_picks(channels, k):
    """Wide rows are seeded by ``kmeans_pp_direct``: the same picks as the reference."""
    from sklearn.datasets import make_blobs

    points, _ = make_blobs(2048, channels, centers=12, random_state=channels)
    weights = np.random.default_rng(k).integers(1, 4, len(points)).astype(np.float64)
    draws = np.random.default_rng(channels).random((k - 1, 2 + int(np.log(k))))
    expected = numpy_kmeans_pp(points, weights, 3, draws)
    np.testing.assert_array_equal(kernels.kmeans_pp_direct(points, weights, 3, draws), expected)
    np.testing.assert_array_equal(kernels.kmeans_pp(points, weights, 3, draws), expected)


def test_pruned_kmeans_pp_on_repeated_points():
    # few distinct values, many copies: ties and zero radii everywhere
    rng = np.random.default_rng(0)
    points = rng.integers(0, 4, (3000, 3)).astype(np.float64)
    weights = rng.integers(1, 5, 3000).astype(np.float64)
    draws = rng.random((63, 6))
    expected = numpy_kmeans_pp(points, weights, 0, draws)
    # where the points run out (every point on a pick) both repeat the first pick
    for seed in (kernels.kmeans_pp, kernels.kmeans_pp_direct):
        np.testing.assert_array_equal(points[seed(points, weights, 0, draws)], points[expected])


@pytest.mark.parametrize("k", [kernels.ROWS_FROM_K, 64, 200])
def test_lloyd_with_neighbour_rows_ends_at_a_fixed_point_with_nearest_labels(k):
    points, weights = colour_summary(data.coffee()[::2, ::2])
    assert k >= kernels.ROWS_FROM_K  # the neighbour rows are in use
    start = points[np.random.default_rng(k).choice(len(points), k, replace=False)]
    centers, inertia, labels, n_iter, _ = kernels.lloyd(points, weights, start, 500, 0.0, True)
    assert n_iter < 500  # converged: no centre moved
    d = BruteForce.squared_distances(points, centers)
    chosen = d[np.arange(len(points)), labels]
    assert np.all(chosen <= d.min(axis=1) * (1 + 1e-12) + 1e-9)
    assert inertia == pytest.approx(float((chosen * weights).sum()), rel=1e-12)
    for j in range(k):  # every centre is the weighted mean of its points
        mine = labels == j
        if mine.any():
            mean = (points[mine] * weights[mine, None]).sum(axis=0) / weights[mine].sum()
            np.testing.assert_allclose(centers[j], mean, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize(("channels", "k"), [(8, 40), (64, 100)])
def test_lloyd_on_wide_rows_at_large_k_ends_at_a_fixed_point_with_nearest_labels(channels, k):
    # wide rows measure every centre (no neighbour rows there): the same fixed point
    from sklearn.datasets import make_blobs

    points, _ = make_blobs(3000, channels, centers=k // 2, cluster_std=3.0, random_state=k)
    weights = np.random.default_rng(k).integers(1, 4, len(points)).astype(np.float64)
    start = points[np.random.default_rng(channels).choice(len(points), k, replace=False)]
    centers, inertia, labels, n_iter, _ = kernels.lloyd(points, weights, start, 500, 0.0, True)
    assert n_iter < 500
    d = BruteForce.squared_distances(points, centers)
    chosen = d[np.arange(len(points)), labels]
    assert np.all(chosen <= d.min(axis=1) * (1 + 1e-12))
    assert inertia == pytest.approx(float((chosen * weights).sum()), rel=1e-12)
    nearest, best = np.empty(len(points), np.int64), np.empty(len(points))
    kernels.nearest_rows(points, centers, nearest, best, np.empty(len(points)))
    np.testing.assert_array_equal(nearest, d.argmin(axis=1))
    np.testing.assert_allclose(best, d.min(axis=1), rtol=1e-12)


@pytest.mark.parametrize("k", [3, 40])
def test_lloyd_marks_every_tied_point_unsure_and_little_else(k):
    """Points exactly as near to two centres are marked (their label is Lloyd's history's
    choice); a point whose bounds prove its nearest centre is not."""
    rng = np.random.default_rng(k)
    points = rng.integers(0, 12, (4000, 2)).astype(np.float64)  # integers: ties abound
    weights = np.ones(len(points))
    start = points[rng.choice(len(points), k, replace=False)] + 0.5
    ties = 0
    for max_iter in (0, 1, 100):
        centers, _, labels, _, unsure = kernels.lloyd(points, weights, start, max_iter, 0.0, True)
        d = BruteForce.squared_distances(points, centers)
        assert np.array_equal(d[np.arange(len(points)), labels], d.min(axis=1))
        order = np.sort(d, axis=1)
        tied = order[:, 0] == order[:, 1]
        assert unsure[tied].all()
        assert unsure.sum() <= tied.sum() + 0.01 * len(points)
        ties += int(tied.sum())
    assert ties > 100  # (centres on half-integers: 118 ties at K=3, 1,876 at K=40)


def test_lloyd_with_duplicate_centres_still_labels_every_point_nearest():
    points, weights = colour_summary(data.chelsea()[::4, ::4])
    start = np.repeat(points[:20], 2, axis=0)  # 40 centres, each one twice
    centers, _, labels, _, _ = kernels.lloyd(points, weights, start, 50, 0.0, True)
    d = BruteForce.squared_distances(points, centers)
    assert np.all(d[np.arange(len(points)), labels] <= d.min(axis=1) * (1 + 1e-12) + 1e-9)


@pytest.mark.slow
def test_grid_labels_at_large_k_are_every_pixels_nearest_centre(monkeypatch):
    # a noisy gradient over 1 Mpx takes the grid summary; at K=256 many cells straddle
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:1000, 0:1200].astype(np.float32)
    image = np.stack([x * 255 / 1200, y * 255 / 1000, (x / 1200 + y / 1000) * 127], axis=-1)
    image = np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8)
    searched = []  # the grid's candidate search ran (a spy: the kernel itself runs)
    candidates = kernels.grid_candidates

    def spy(*args):
        searched.append(len(args[0]))
        return candidates(*args)

    monkeypatch.setattr(kernels, "grid_candidates", spy)
    result = quantize(image, 256, seed=0)
    assert searched and searched[0] >= 256 * 256  # cells, not the exact summary
    table = image.reshape(-1, 3).astype(np.float64)
    labels = result.labels.ravel()
    sse = 0.0
    for begin in range(0, len(table), 4096):
        block = table[begin : begin + 4096]
        d = BruteForce.squared_distances(block, result.centers)
        chosen = d[np.arange(len(block)), labels[begin : begin + 4096] - 1]
        assert np.all(chosen <= d.min(axis=1) + 1e-9)
        sse += float(chosen.sum())
    assert result.compactness == pytest.approx(sse, rel=1e-9)
    np.testing.assert_array_equal(result.counts, np.bincount(labels, minlength=257)[1:])
