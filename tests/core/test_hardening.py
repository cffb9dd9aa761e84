"""Regressions of the adversarial pass: inputs and options that crashed or gave wrong results.

Each test names the item of the "Nothing lost, nothing crashes" issue it guards.
"""

import numpy as np
import pytest
from skimage import data

from conftest import METHODS
from napari_kquant import apply_palette, quantize, sweep


def test_opencv_refuses_values_beyond_float32_instead_of_crashing():  # item 7
    image = np.linspace(0, 1e30, 300).reshape(10, 30)
    with pytest.raises(ValueError, match="beyond what OpenCV"):
        quantize(image, 3, method="opencv")
    # the fast engine computes in float64 and takes them
    assert quantize(image, 3).k == 3


def test_opencv_refuses_a_huge_epsilon_instead_of_crashing(small_rgb):  # item 7
    with pytest.raises(ValueError, match="epsilon"):
        quantize(small_rgb, 3, method="opencv", epsilon=1e300)


def test_k1_on_large_values_gives_a_real_centre():  # item 7
    image = np.linspace(0, 1e17, 100).reshape(10, 10)
    result = quantize(image, 1, method="opencv")
    assert np.isfinite(result.compactness)
    assert result.centers[0, 0] == pytest.approx(image.mean(), rel=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_float16_gray_keeps_the_brightest_in_the_brightest_label(method):  # item 8
    image = np.linspace(0, 60000, 100 * 100).astype(np.float16).reshape(100, 100)
    result = quantize(image, 4, method=method)
    assert result.labels.ravel()[np.argmax(image)] == 4
    assert result.labels.ravel()[np.argmin(image)] == 1
    again = apply_palette(image, result.centers)  # the same coding: the same fix
    assert again.labels.ravel()[np.argmax(image)] == 4
    if method == "fast":  # OpenCV's own float32 labels may differ at exact ties
        np.testing.assert_array_equal(again.labels, result.labels)


@pytest.mark.parametrize("order", ["<", ">"])
def test_float64_beyond_float32_range_and_byte_order(order):  # item 8
    rgb = data.astronaut()[::8, ::8]
    image = rgb.astype(f"{order}f8") * 1e39
    result = quantize(image, 4)
    assert (result.counts > 0).all() and len(result.counts) == 4
    native = quantize(rgb.astype("<f8") * 1e39, 4)
    np.testing.assert_array_equal(result.labels, native.labels)


def test_big_endian_integers_match_native(small_rgb):  # item 8
    swapped = small_rgb.astype(">u2")
    np.testing.assert_array_equal(
        quantize(swapped, 5).labels, quantize(small_rgb.astype("<u2"), 5).labels
    )


def test_lab_refuses_float_rgb_outside_0_1():  # item 9
    image = data.astronaut()[::8, ::8].astype(np.float64)
    with pytest.raises(ValueError, match=r"0\.\.1.*image / 255"):
        quantize(image, 3, color_space="lab")
    result = quantize(image / 255, 3, color_space="lab")
    assert result.image.max() > 0.2  # not all black


@pytest.mark.parametrize("options", [{"color_space": "lab"}, {"standardize": True}])
def test_sweep_mse_is_in_image_units(options):  # item 10
    image = data.astronaut()[::4, ::4]
    result = sweep(image, [3, 6], **options)
    for k, mse in zip(result.ks, result.mse, strict=True):
        quantized = result[k]
        table = image.reshape(-1, 3).astype(np.float64)
        centers = quantized.centers[quantized.labels.reshape(-1) - 1]
        assert mse == pytest.approx(((table - centers) ** 2).mean(), rel=1e-6)


def test_a_huge_palette_centre_does_not_take_every_pixel(small_rgb):  # item 12
    centers = [[0, 0, 0], [255, 255, 255], [1e37, 0, 0]]
    result = apply_palette(small_rgb, centers)
    assert result.counts[2] == 0 and result.counts[:2].sum() == small_rgb.shape[0] ** 2
    with pytest.raises(ValueError, match="overflow"):
        apply_palette(small_rgb, [[0, 0, 0], [1e200, 0, 0]])


@pytest.mark.parametrize("flag", [np.True_, True])
def test_standardize_accepts_numpy_booleans_and_applies(flag):  # item 12
    image = np.random.default_rng(0).integers(0, 1000, (50, 50)).astype(np.uint16)
    result = quantize(image, 3, standardize=flag)
    assert result.params["standardize"] is True
    assert result.params["channel_scale"][0] == pytest.approx(image.std(), rel=1e-6)


@pytest.mark.parametrize("flag", [1, "yes", 1.0, None])
def test_standardize_refuses_non_booleans(flag):  # item 12
    with pytest.raises(ValueError, match="standardize must be True or False"):
        quantize(np.zeros((4, 4), np.uint8) + np.arange(4, dtype=np.uint8), 2, standardize=flag)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_close_distinct_floats_each_get_their_label(dtype):  # item 12
    values = np.array([0, 1e-7, 2e-7, 0.5, 0.5 + 1e-7, 1, 1 + 1e-7, 2, 3, 1e3])
    image = values.astype(dtype).repeat(5).reshape(10, 5)
    for method in METHODS:
        assert len(np.unique(quantize(image, 10, method=method).labels)) == 10


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", [-1, 2**32, 2**70, 1.5, "0", True])
def test_bad_seeds_are_refused_alike_by_both_methods(small_rgb, method, seed):  # item 17
    with pytest.raises(ValueError, match="seed must be an integer"):
        quantize(small_rgb, 3, seed=seed, method=method)


@pytest.mark.parametrize("method", METHODS)
def test_seed_none_draws_one_and_records_it(small_rgb, method):  # item 17
    result = quantize(small_rgb, 3, seed=None, method=method)
    seed = result.params["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**31
    again = quantize(small_rgb, 3, seed=seed, method=method)
    np.testing.assert_array_equal(again.labels, result.labels)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda img: quantize(img, 3, epsilon="1"), "epsilon must be a number"),
        (lambda img: quantize(img, 3, criteria=["eps"]), "criteria must be one of"),
        (lambda img: quantize(img, 3, method=["fast"]), "method must be one of"),
        (lambda img: quantize(img, 3, attempts=2.0), "attempts must be a positive integer"),
        (lambda img: quantize(img, 2000), "limit of 1024"),
        (
            lambda img: quantize(np.arange(100).astype("m8[s]").reshape(10, 10), 3),
            "timedelta64.*not supported",
        ),
        (
            lambda img: quantize(np.zeros((0, 5, 2)), 3, channel_axis=-1, sample_size=10),
            "empty",
        ),
    ],
)
def test_unclear_messages_now_name_the_problem(small_rgb, call, message):  # item 18
    with pytest.raises(ValueError, match=message):
        call(small_rgb)


@pytest.mark.parametrize(
    "content", ["[1, 2, 3]", "[" * 50_000 + "]" * 50_000, '{"centers": "abc"}', "{}"]
)
def test_malformed_json_palettes_are_refused_clearly(tmp_path, content):  # item 18
    from napari_kquant import load_palette

    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="palette"):
        load_palette(path)
