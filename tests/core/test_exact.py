"""Every label is the nearest centre at the numeric edges, checked by brute force.

Offsets far from zero (1e3..1e12 floats, 64-bit integers at their extremes), ties on
1-byte images, and wide feature tables: the fit's labels, the palette applied to
numpy and to dask, and the compactness against a plain numpy / exact-fraction
reference (``brute`` in conftest.py).
"""

import dask.array as da
import numpy as np
import pytest

from conftest import BruteForce
from napari_kquant import apply_palette, quantize, sweep

RNG_SEED = 20261204


def table_of(image, channels):
    return image.reshape(-1, image.shape[-1]) if channels else image.reshape(-1, 1)


def check_result(image, result, brute, channels=False):
    """Labels nearest, compactness the brute-force SSE, dask labels equal numpy's."""
    table = table_of(image, channels)
    sse = brute.check_nearest(table, result.labels, result.centers)
    assert result.compactness == pytest.approx(sse, rel=1e-9, abs=1e-12)
    layout = {"channel_axis": -1} if channels else {"rgb": False}
    eager = apply_palette(image, result.centers, **layout)
    assert np.array_equal(eager.labels, result.labels)
    chunks = (max(1, image.shape[0] // 3), *image.shape[1:])
    lazy = apply_palette(da.from_array(image, chunks=chunks), result.centers, **layout)
    assert np.array_equal(np.asarray(lazy.labels), result.labels)


@pytest.mark.parametrize("offset", [1e3, 1e6, 1e9, 1e12])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_far_from_zero_are_labelled_exactly(offset, dtype, brute):
    rng = np.random.default_rng(RNG_SEED)
    spread = 10.0 if dtype == np.float32 else 1.0  # float32 holds 1e12 to 1e5 steps
    spread *= max(1.0, offset * 2.0**-20) if dtype == np.float32 else 1.0
    image = (offset + spread * rng.random((60, 50))).astype(dtype)
    result = quantize(image, 8, seed=0)
    assert len(np.unique(result.centers)) == 8, "distinct values gave duplicate centres"
    check_result(image, result, brute)


@pytest.mark.parametrize(
    ("dtype", "base"),
    [
        (np.int64, 4_600_000_000_000_000_000),
        (np.int64, -(2**63)),
        (np.uint64, 2**63),
        (np.uint64, 2**64 - 10**7),
    ],
    ids=["int64-4.6e18", "int64-min", "uint64-2**63", "uint64-max"],
)
def test_64_bit_integers_at_their_extremes(dtype, base, brute):
    rng = np.random.default_rng(RNG_SEED)
    values = np.array([base + int(v) for v in rng.integers(0, 10**6, 40 * 30)], dtype=object)
    image = values.astype(dtype).reshape(40, 30)
    result = quantize(image, 4, seed=0)
    assert len(np.unique(result.centers)) == 4
    check_result(image, result, brute)
    assert result.image.dtype == dtype


def test_a_float32_tie_on_a_1_byte_image_goes_to_the_nearest():
    image = np.arange(256, dtype=np.uint8).reshape(16, 16)
    labels = apply_palette(image, [[150.000001], [50.0]]).labels.reshape(-1)
    assert labels[100] == 2  # 50 away from 50.0, 50.000001 from the other
    assert labels[99] == 2 and labels[101] == 1


def test_a_pixel_halfway_between_two_centres_takes_the_first_as_the_palette_does():
    """Lloyd kept the later centre for a tie (its history, the order before sorting)."""
    table = np.array([[0.0], [2.0], [0.0], [2.0], [3.0], [1.0]])
    result = quantize(table, 2, channel_axis=-1, seed=138)
    assert result.centers.ravel().tolist() == [0.0, 2.0]  # pixel 5 (1.0) is 1 from each
    assert result.labels.tolist() == [1, 2, 1, 2, 2, 1]
    assert np.array_equal(apply_palette(table, result.centers, channel_axis=-1).labels, [
        1, 2, 1, 2, 2, 1])  # fmt: skip


@pytest.mark.parametrize(
    "kind", ["gray uint8", "float64 column", "rgb uint8", "float64 rows", "sweep"]
)
def test_ties_on_small_integer_images_go_to_the_first_centre_everywhere(kind, brute):
    """Small integer values are full of exact ties; every path labels them as a palette does.

    Over 50 to 150 tiny images x K=2, 3 x 3 seeds: the fit's labels equal apply_palette's and
    the brute-force first nearest centre (numpy's argmin takes the first of equals).
    """
    rng = np.random.default_rng(RNG_SEED)
    for _ in range({"rgb uint8": 50, "sweep": 60}.get(kind, 150)):  # (rgb: 0.05 s a table)
        if kind == "gray uint8":
            image, layout = rng.integers(0, 5, (4, 5)).astype(np.uint8), {"rgb": False}
        elif kind == "float64 column":
            image, layout = rng.integers(0, 5, (12, 1)).astype(np.float64), {"channel_axis": -1}
        elif kind == "rgb uint8":
            image, layout = rng.integers(0, 3, (4, 4, 3)).astype(np.uint8), {"rgb": True}
        else:
            image, layout = rng.integers(0, 3, (16, 2)).astype(np.float64), {"channel_axis": -1}
        table = table_of(image, layout != {"rgb": False})
        distinct = len(np.unique(table, axis=0))
        for seed in range(3):
            if kind == "sweep":
                if distinct < 3:
                    continue
                swept = sweep(image, [2, 3], seed=seed, **layout)
                results = [swept[2], swept[3]]
            else:
                results = [quantize(image, k, seed=seed, **layout) for k in (2, 3) if k <= distinct]
            for result in results:
                applied = apply_palette(image, result.centers, **layout).labels
                assert np.array_equal(result.labels, applied), (image.tolist(), seed)
                first = brute.squared_distances(table, result.centers).argmin(axis=1) + 1
                assert np.array_equal(result.labels.reshape(-1), first)


@pytest.mark.parametrize("trial", range(4))
def test_random_palettes_on_every_rgb_colour_of_a_noise_image(trial, brute):
    rng = np.random.default_rng(RNG_SEED + trial)
    image = rng.integers(0, 256, (200, 150, 3), dtype=np.uint8)
    centers = rng.random((int(rng.integers(2, 80)), 3)) * 255
    result = apply_palette(image, centers)
    brute.check_nearest(table_of(image, True), result.labels, result.centers)
    lazy = apply_palette(da.from_array(image, chunks=(64, 64, 3)), centers)
    assert np.array_equal(np.asarray(lazy.labels), result.labels)


@pytest.mark.parametrize("k", [64, 200])
def test_sampled_fit_labels_match_between_numpy_and_dask(k, brute):
    rng = np.random.default_rng(RNG_SEED)
    image = rng.integers(0, 256, (330, 300, 3), dtype=np.uint8)
    eager = quantize(image, k, sample_size=20_000, seed=0)
    lazy = eager.palette.apply(da.from_array(image, chunks=(128, 128, 3)))
    assert np.array_equal(np.asarray(lazy.labels), eager.labels)
    brute.check_nearest(table_of(image, True), eager.labels, eager.centers)


@pytest.mark.parametrize("channels", [2, 8, 64, 256])
def test_wide_feature_tables_are_exact(channels, brute):
    rng = np.random.default_rng(RNG_SEED)
    image = rng.normal(size=(30, 20, channels)).astype(np.float32)
    image[..., 0] += 1e4  # one channel far from zero too
    result = quantize(image, 6, channel_axis=-1, seed=0, epsilon=0)
    check_result(image, result, brute, channels=True)
    # a Lloyd fixed point: each centre is the mean of its pixels
    table = table_of(image, True).astype(np.float64)
    labels = result.labels.reshape(-1)
    for j in range(6):
        np.testing.assert_allclose(
            result.centers[j], table[labels == j + 1].mean(axis=0), atol=1e-9
        )


def test_one_cluster_is_the_mean_of_a_wide_table():
    rng = np.random.default_rng(RNG_SEED)
    table = rng.normal(size=(1000, 50))
    result = quantize(table, 1, channel_axis=-1)
    np.testing.assert_allclose(result.centers[0], table.mean(axis=0), atol=1e-12)


def test_signed_zeros_are_one_colour():
    with pytest.raises(ValueError, match="exceeds the 1 distinct"):
        quantize(np.array([[0.0, -0.0], [0.0, -0.0]]), 2)


def test_uint64_beyond_2_63_with_a_narrow_span_in_every_entry_point(brute):
    from napari_kquant import sweep

    image = (np.uint64(2**63) + 100 * np.arange(64, dtype=np.uint64)).reshape(8, 8)
    check_result(image, quantize(image, 3, seed=0), brute)
    swept = sweep(image, [2, 3], seed=0)
    brute.check_nearest(image.reshape(-1, 1), swept[3].labels, swept[3].centers)
    applied = apply_palette(image, [[2.0**63], [2.0**63 + 4096]])  # 4096 apart as float64
    assert applied.labels.reshape(-1).tolist() == [1] * 21 + [2] * 43


def test_64_bit_integers_whose_centres_float64_cannot_tell_apart_are_refused(brute):
    """Digits' values 0..16 at 2**62: float64 numbers there are 1,024 apart.

    The clustering itself is exact (relative to an origin), but the reported centres
    would all be one number, and every pixel labelled 1: a clear error instead.
    """
    from sklearn.datasets import load_digits

    from napari_kquant import KMeansQuantizer, sweep

    digits = load_digits().data.astype(np.int64) + 2**62
    for run in (
        lambda: quantize(digits, 10, channel_axis=-1, seed=0),
        lambda: sweep(digits, [2, 10], channel_axis=-1, seed=0),
        lambda: quantize(da.from_array(digits, chunks=500), 10, channel_axis=-1),
        lambda: KMeansQuantizer(k=10, seed=0).fit(digits),
    ):
        with pytest.raises(ValueError, match="cannot be told apart as float64"):
            run()
    # spread wide enough for float64's steps there: distinct centres, nearest labels
    spread = (load_digits().data.astype(np.int64) * 10_000 + 2**62)[:, 20:28]
    result = quantize(spread, 6, channel_axis=-1, seed=0)
    assert len(np.unique(result.centers, axis=0)) == 6 and (result.counts > 0).all()
    brute.check_nearest(spread, result.labels, result.centers)


def test_a_sweep_describes_the_image_it_swept():
    from napari_kquant import sweep

    rng = np.random.default_rng(RNG_SEED)
    frame = rng.integers(0, 256, (80, 60, 3), dtype=np.uint8)
    before = frame.copy()
    swept = sweep(frame, [2, 4, 8], seed=0)
    frame[:] = rng.integers(0, 256, frame.shape, dtype=np.uint8)  # the next frame, same buffer
    result = swept[4]
    assert np.array_equal(result.counts, np.bincount(result.labels.ravel(), minlength=5)[1:])
    assert np.array_equal(result.labels, result.palette.apply(before).labels)
    assert np.array_equal(result.image, result.palette.apply(before).image)


def test_lazy_input_is_checked_as_numpy_input_is():
    image = np.arange(16.0).reshape(4, 4)
    with pytest.raises(ValueError, match="overflow"):
        apply_palette(da.from_array(image), [[2e200], [1e200]])
    unknown = da.from_array(np.arange(20.0))
    unknown = unknown[unknown > 3]  # chunk sizes unknown until computed
    with pytest.raises(ValueError, match="chunk sizes are unknown"):
        quantize(unknown, 2)


@pytest.mark.parametrize("features", [2, 8, 16, 32, 64, 128, 256])
def test_wide_tables_match_kmeans_quality(features):
    from sklearn.cluster import KMeans
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(3000, features, centers=8, random_state=0)
    ours = [quantize(X, 8, channel_axis=-1, seed=s).compactness for s in range(3)]
    theirs = [KMeans(8, n_init=1, random_state=s).fit(X).inertia_ for s in range(3)]
    assert np.median(ours) <= 1.005 * np.median(theirs)


def test_digits_match_kmeans_quality():
    from sklearn.cluster import KMeans
    from sklearn.datasets import load_digits

    X = load_digits().data
    ours = [quantize(X, 10, channel_axis=-1, seed=s).compactness for s in range(3)]
    theirs = [KMeans(10, n_init=1, random_state=s).fit(X).inertia_ for s in range(3)]
    assert np.median(ours) <= 1.005 * np.median(theirs)


def test_many_clusters_on_wide_rows_match_kmeans_with_nearest_labels():
    """K=40 on 32 channels: the row summary's large-K search and the full-search kernels."""
    from sklearn.cluster import KMeans
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(4000, 32, centers=40, cluster_std=4.0, random_state=5)
    results = [quantize(X, 40, channel_axis=-1, seed=s) for s in range(3)]
    theirs = [KMeans(40, n_init=1, random_state=s).fit(X).inertia_ for s in range(3)]
    assert np.median([r.compactness for r in results]) <= 1.005 * np.median(theirs)
    d = BruteForce.squared_distances(X, results[0].centers)
    chosen = d[np.arange(len(X)), results[0].labels - 1]
    assert np.all(chosen <= d.min(axis=1) * (1 + 1e-12))
    assert results[0].compactness == pytest.approx(float(chosen.sum()), rel=1e-12)
