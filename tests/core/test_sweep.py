"""sweep(): several K at once, consistent with single runs, reproducible."""

import numpy as np
import pytest
from skimage import data

from conftest import METHODS
from napari_kquant import iter_sweep, quantize, sweep
from napari_kquant._core.sweep import kneedle, parse_ks


@pytest.mark.parametrize("name", ["coffee", "astronaut"])
def test_compactness_never_increases_with_k(name):
    result = sweep(getattr(data, name)(), "2..10", seed=0)
    assert result.ks == tuple(range(2, 11))
    assert len(result.results) == 9
    c = result.compactness
    assert np.all(c[1:] <= c[:-1] * 1.001)


def test_figures_match_the_results(coffee):
    s = sweep(coffee, [3, 5, 8], seed=1)
    n_values = coffee.shape[0] * coffee.shape[1] * 3
    for k, r, mse, psnr, fractions in zip(s.ks, s.results, s.mse, s.psnr, s.fractions, strict=True):
        assert r.k == k
        assert mse == pytest.approx(r.compactness / n_values)
        assert psnr == pytest.approx(10 * np.log10(255**2 / mse))
        np.testing.assert_allclose(fractions, r.counts / r.counts.sum())
        # the actual quantized image's PSNR is within rounding of the figure
        actual = ((r.image.astype(float) - coffee) ** 2).mean()
        assert actual == pytest.approx(mse, rel=0.02, abs=0.1)
    assert s[5] is s.results[1]
    with pytest.raises(KeyError, match="K=4 is not in this sweep"):
        s[4]
    table = s.table()
    assert table["k"] == [3, 5, 8] and len(table["psnr"]) == 3


def test_sweep_is_as_good_as_single_runs(astronaut):
    s = sweep(astronaut, "2..12", seed=0)
    for k, r in zip(s.ks, s.results, strict=True):
        single = quantize(astronaut, k, seed=0)
        assert r.compactness <= single.compactness * 1.01
        assert r.labels.shape == astronaut.shape[:2] and r.image.dtype == np.uint8


@pytest.mark.parametrize("method", METHODS)
def test_sweep_is_deterministic(coffee, method):
    a = sweep(coffee, "2..5", seed=4, method=method)
    b = sweep(coffee, "2..5", seed=4, method=method)
    for ra, rb in zip(a, b, strict=True):
        np.testing.assert_array_equal(ra.labels, rb.labels)
        np.testing.assert_array_equal(ra.centers, rb.centers)


def test_iter_sweep_can_stop_between_k(coffee):
    seen = []
    for result in iter_sweep(coffee, "2..20"):
        seen.append(result.k)
        if result.k == 3:
            break
    assert seen == [2, 3]


def test_gray_and_uint16_sweeps():
    camera = data.camera()
    s = sweep(camera, [2, 4, 6])
    assert s.peak == 255 and s.results[0].centers.shape == (2, 1)
    wide = sweep(camera.astype(np.uint16) * 257, [2, 4, 6])
    assert wide.peak == 65535
    np.testing.assert_allclose(wide.psnr, s.psnr, atol=0.2)
    floats = sweep(camera / 255.0, [2, 4])
    assert floats.peak == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("ks", "expected"),
    [
        ("2..5", (2, 3, 4, 5)),
        ("2,4, 8", (2, 4, 8)),
        ("2..4,8,3", (2, 3, 4, 8)),
        (range(3, 5), (3, 4)),
    ],
)
def test_parse_ks(ks, expected):
    assert parse_ks(ks) == expected


@pytest.mark.parametrize(
    ("ks", "message"),
    [
        ("5..2", "empty"),
        ("two", "cannot read"),
        ([], "empty"),
        ("", "empty"),
        ([0, 2], "at least 1"),
        # bounded before anything is built: no freeze, no MemoryError
        ("2..30000000", "limit of 1024"),
        ("2..1000000000", "limit of 1024"),
        (range(2, 10**12), "limit of 1024"),
        ("1..400", "more than one sweep compares"),
    ],
)
def test_bad_ks_are_refused(ks, message):
    with pytest.raises(ValueError, match=message):
        parse_ks(ks)


def test_sweep_refuses_k_beyond_the_colours():
    two = np.zeros((4, 4, 3), np.uint8)
    two[:2] = 200
    with pytest.raises(ValueError, match="2 distinct colours"):
        sweep(two, "1..3")


def test_kneedle_finds_the_bend():
    ks = np.arange(1, 11)
    curve = np.where(ks <= 4, 100 - 22 * (ks - 1), 34 - (ks - 4))  # steep, then flat
    assert kneedle(ks, curve) == 4
    assert kneedle([1, 2], [3, 1]) is None
    assert sweep(data.coffee(), "2..8").elbow() in range(3, 8)


def noisy_gradient(height, width, sigma=20.0):
    """Millions of colours: over 1 Mpx a sweep takes the grid summary."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    image = np.stack([x * 255 / width, y * 255 / height, (x / width + y / height) * 127], -1)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", ["grid", "exact", "gray"])
def test_a_sweeps_results_made_on_access_equal_the_eager_ones(kind, astronaut):
    image = {
        "grid": noisy_gradient(1000, 1100),
        "exact": np.tile(astronaut, (2, 3, 1)),  # 1.5 Mpx of a photo: the 24-bit summary
        "gray": data.camera(),
    }[kind]
    lazy = sweep(image, "2..7", seed=3)
    eager = list(iter_sweep(image, "2..7", seed=3))  # labelled as each K is found
    figures = lazy.compactness, lazy.mse, lazy.fractions, lazy.elbow()
    for k, made in zip(lazy.ks, eager, strict=True):
        taken = lazy[k]
        np.testing.assert_array_equal(taken.labels, made.labels)
        np.testing.assert_array_equal(taken.image, made.image)
        np.testing.assert_array_equal(taken.counts, made.counts)
        np.testing.assert_array_equal(taken.centers, made.centers)
        assert taken.compactness == pytest.approx(made.compactness, rel=1e-12)
        # (the memory estimate differs: a lazy sweep on the grid keeps the colour lists)
        drop = {"memory_estimate_bytes"}
        assert {n: v for n, v in taken.params.items() if n not in drop} == {
            n: v for n, v in made.params.items() if n not in drop
        }
        assert taken.elapsed > 0
        # the figures given before any result was made are the results' own
        table = image.reshape(len(taken.labels.ravel()), -1).astype(np.float64)
        sse = float(((table - taken.centers[taken.labels.ravel() - 1]) ** 2).sum())
        assert taken.compactness == pytest.approx(sse, rel=1e-12)
        np.testing.assert_array_equal(taken.counts, np.bincount(taken.labels.ravel())[1:])
    np.testing.assert_allclose(lazy.compactness, figures[0], rtol=0)
    np.testing.assert_allclose(lazy.mse, figures[1], rtol=0)
    assert lazy.elbow() == figures[3]


def test_a_sweep_holds_no_image_sized_memory_until_a_k_is_taken():
    import tracemalloc

    image = noisy_gradient(1000, 1100)  # the grid summary
    one_k = image.nbytes + image.shape[0] * image.shape[1]  # a quantized image + labels
    tracemalloc.start()
    try:
        held = []
        for ks in ("2..3", "2..9"):
            s = sweep(image, ks, seed=0)
            s.table(), s.fractions, s.elbow()  # the figures make no result
            held.append(tracemalloc.get_traced_memory()[0])
            if ks == "2..3":
                del s
        # six more K hold less than one K's outputs (they held six images and labels)
        assert held[1] - held[0] < one_k / 4
        taken = s[5]
        assert tracemalloc.get_traced_memory()[0] - held[1] >= one_k
    finally:
        tracemalloc.stop()
    assert s[5] is taken  # made once, then kept


def test_threads_taking_the_same_k_get_the_same_result(coffee):
    from concurrent.futures import ThreadPoolExecutor

    s = sweep(coffee, "2..5", seed=0)
    with ThreadPoolExecutor(4) as pool:
        taken = list(pool.map(lambda _: s[4], range(8)))
    assert all(t is taken[0] for t in taken)
    assert [r.k for r in s] == [2, 3, 4, 5] and s.results[1:3] == (s[3], s[4])


def test_a_sweep_pickles_with_its_results_made(coffee):
    import pickle

    s = sweep(coffee, "2..4", seed=0)
    again = pickle.loads(pickle.dumps(s))
    assert again.ks == s.ks and again.elbow() == s.elbow()
    np.testing.assert_array_equal(again.compactness, s.compactness)
    np.testing.assert_array_equal(again[3].labels, s[3].labels)
    np.testing.assert_array_equal(again[3].image, s[3].image)
