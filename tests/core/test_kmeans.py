"""The core without Qt or napari: quantize() on real images."""

import cv2
import numpy as np
import pytest
from skimage import data

from conftest import METHODS, BruteForce
from napari_kquant import Quantization, quantize
from napari_kquant._core.palette import brightness

DTYPES = [np.uint8, np.uint16, np.float32, np.float64]


def as_dtype(image, dtype):
    """Rescale a uint8 image into the natural range of ``dtype``."""
    if dtype == np.uint8:
        return image.copy()
    if dtype == np.uint16:
        return image.astype(np.uint16) * 257
    return (image / 255.0).astype(dtype)


def nearest_center_ok(table, labels, centers):
    """Each pixel's centre is (within rounding) the nearest one."""
    d = BruteForce.squared_distances(table, centers)
    chosen = d[np.arange(len(table)), labels.ravel() - 1]
    scale = max(1.0, float(np.abs(centers).max()) ** 2)
    return np.all(chosen <= d.min(axis=1) + 1e-6 * scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 4, 9])
@pytest.mark.parametrize("method", METHODS)
def test_rgb_dtypes(small_rgb, dtype, k, method):
    image = as_dtype(small_rgb, dtype)
    before = image.copy()
    result = quantize(image, k, method=method, seed=1)
    assert isinstance(result, Quantization)
    np.testing.assert_array_equal(image, before)  # source untouched
    assert result.image.shape == image.shape and result.image.dtype == image.dtype
    assert result.labels.shape == image.shape[:2]
    assert np.issubdtype(result.labels.dtype, np.integer)
    assert set(np.unique(result.labels)) == set(range(1, k + 1))
    assert result.centers.shape == (k, 3)
    assert result.counts.sum() == image.shape[0] * image.shape[1]
    np.testing.assert_array_equal(
        np.bincount(result.labels.ravel(), minlength=k + 1)[1:], result.counts
    )
    # every pixel holds its centre, in the image's units
    expected = result.centers[result.labels - 1]
    if np.issubdtype(dtype, np.integer):
        expected = np.clip(np.rint(expected), 0, np.iinfo(dtype).max)
        np.testing.assert_array_equal(result.image, expected.astype(dtype))
    else:
        np.testing.assert_allclose(result.image, expected, rtol=1e-6)
    # darkest first
    assert np.all(np.diff(brightness(result.centers)) >= 0)
    # compactness is the SSE of the pixels to their centres
    table = image.reshape(-1, 3).astype(np.float64)
    sse = ((table - result.centers[result.labels.ravel() - 1]) ** 2).sum()
    assert result.compactness == pytest.approx(sse, rel=1e-4)
    if method == "fast":
        # cv2.kmeans may stop (on epsilon) with labels from the step before its last
        # centre update, so only the fast engine promises nearest-centre labels.
        assert nearest_center_ok(table, result.labels, result.centers)


@pytest.mark.parametrize("dtype", DTYPES)
def test_gray(dtype):
    image = as_dtype(data.camera()[::4, ::4], dtype)
    result = quantize(image, 5, seed=0)
    assert result.labels.shape == image.shape
    assert result.centers.shape == (5, 1)
    assert np.all(np.diff(result.centers[:, 0]) > 0)  # label 1 is the darkest value
    assert len(np.unique(result.image)) == 5
    assert not result.params["rgb"]


def test_rgba_alpha_carried_unchanged(small_rgb):
    alpha = np.linspace(0, 255, small_rgb.shape[0] * small_rgb.shape[1]).astype(np.uint8)
    rgba = np.dstack([small_rgb, alpha.reshape(small_rgb.shape[:2])])
    result = quantize(rgba, 6)
    assert result.centers.shape == (6, 3)
    np.testing.assert_array_equal(result.image[..., 3], rgba[..., 3])
    plain = quantize(small_rgb, 6)
    np.testing.assert_array_equal(result.labels, plain.labels)


def test_nd_stack_shares_one_palette(small_rgb):
    stack = np.stack([small_rgb, small_rgb // 2, small_rgb[::-1]])
    result = quantize(stack, 6)
    assert result.labels.shape == stack.shape[:3]
    assert result.image.shape == stack.shape
    assert result.params["rgb"]


def test_rgb_guess_follows_napari():
    gray_3d = np.random.default_rng(0).integers(0, 255, (4, 10, 10), dtype=np.uint8)
    assert not quantize(gray_3d, 3).params["rgb"]
    rgb = np.random.default_rng(0).integers(0, 255, (10, 10, 3), dtype=np.uint8)
    assert quantize(rgb, 3).params["rgb"]
    # a 3-plane gray stack, when the caller says so
    assert quantize(rgb, 3, rgb=False).centers.shape == (3, 1)


def test_seed_recipe_reproduced_exactly(astronaut):
    """The OpenCV tutorial recipe gives the same partition, centres and compactness."""
    img = astronaut
    Z = img.reshape((-1, 3)).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    cv2.setRNGSeed(7)
    ret, label, center = cv2.kmeans(Z, 8, None, criteria, 10, cv2.KMEANS_RANDOM_CENTERS)
    seed_image = np.uint8(center)[label.flatten()].reshape(img.shape)

    result = quantize(
        img, 8, method="opencv", init="random", attempts=10, max_iter=10, epsilon=1.0, seed=7
    )
    assert result.compactness == ret
    # same centres, renumbered darkest first
    order = [
        np.flatnonzero((center == c).all(axis=1))[0] for c in result.centers.astype(np.float32)
    ]
    np.testing.assert_array_equal(center[order], result.centers.astype(np.float32))
    # same partition: label i+1 of ours is exactly cluster order[i] of the recipe
    np.testing.assert_array_equal(np.asarray(order)[result.labels.ravel() - 1], label.ravel())
    # the image differs only by rounding instead of truncation
    assert np.abs(result.image.astype(int) - seed_image.astype(int)).max() <= 1
    # the tuple form of criteria is accepted too
    again = quantize(img, 8, method="opencv", init="random", attempts=10, criteria=criteria, seed=7)
    assert again.compactness == ret


@pytest.mark.parametrize("method", METHODS)
def test_deterministic_with_seed(coffee, method):
    a = quantize(coffee, 6, method=method, seed=3)
    b = quantize(coffee, 6, method=method, seed=3)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centers, b.centers)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
@pytest.mark.parametrize("k", [4, 16])
def test_fast_matches_opencv_quality(name, k):
    image = getattr(data, name)()
    fast = quantize(image, k)
    exact = quantize(image, k, method="opencv", attempts=3, init="kmeans++")
    assert fast.compactness <= 1.01 * exact.compactness


def test_single_colour_and_k_limits():
    flat = np.full((8, 8, 3), 40, np.uint8)
    result = quantize(flat, 1)
    np.testing.assert_array_equal(result.image, flat)
    assert result.compactness == 0
    with pytest.raises(ValueError, match="distinct colours"):
        quantize(flat, 2)
    two = flat.copy()
    two[:4] = 200
    assert quantize(two, 2).counts.tolist() == [32, 32]
    with pytest.raises(ValueError, match="number of pixels"):
        quantize(np.zeros((1, 1, 3), np.uint8), 2)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "at least 1"),
        ({"k": 2.5}, "integer"),
        ({"method": "sklearn"}, "method"),
        ({"init": "grid"}, "init"),
        ({"attempts": 0}, "attempts"),
        ({"max_iter": -1}, "max_iter"),
        ({"epsilon": -1.0}, "epsilon"),
        ({"criteria": "sometimes"}, "criteria"),
    ],
)
def test_bad_options_raise_clear_errors(small_rgb, kwargs, message):
    with pytest.raises(ValueError, match=message):
        quantize(small_rgb, **{"k": 4, **kwargs})


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((0, 5, 3), np.uint8), "empty"),
        (np.full((3, 3), np.nan), "no pixel to cluster"),
        (np.array([[np.inf, -np.inf], [np.nan, np.nan]]), "NaN or inf"),
        (np.array([[-1e308, 1e308], [0.0, 1.0]]), "overflow"),
        (np.ones((4, 4), bool), "dtype bool"),
        (np.ones((4, 4), complex), "dtype complex"),
    ],
)
def test_bad_images_raise_clear_errors(image, message):
    with pytest.raises(ValueError, match=message):
        quantize(image, 1)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int64, np.uint64])
def test_centres_are_clipped_into_the_dtype_without_overflow(dtype):
    import warnings

    from napari_kquant._core.kmeans import to_dtype

    info = np.iinfo(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = to_dtype(np.array([1e30, -1e30, 2.6]), dtype)
    assert out.dtype == dtype
    assert out[0] > info.max // 2 and out[1] == info.min and out[2] == 3


@pytest.mark.parametrize("method", METHODS)
def test_mask_clusters_only_the_pixels_inside(small_rgb, method):
    mask = np.zeros(small_rgb.shape[:2], bool)
    mask[10:40, 5:50] = True
    result = quantize(small_rgb, 4, mask=mask, method=method, seed=1)
    assert np.all(result.labels[~mask] == 0) and np.all(result.labels[mask] >= 1)
    np.testing.assert_array_equal(result.image[~mask], small_rgb[~mask])
    assert result.counts.sum() == mask.sum()
    # the centres are those of the masked pixels alone
    inside = quantize(small_rgb[mask].reshape(-1, 1, 3), 4, method=method, seed=1)
    np.testing.assert_allclose(result.centers, inside.centers)
    # integer masks (a labels layer's data) work as non-zero = inside
    again = quantize(small_rgb, 4, mask=mask.astype(np.uint16) * 7, method=method, seed=1)
    np.testing.assert_array_equal(again.labels, result.labels)


def test_nan_pixels_are_outside_and_never_centres(astronaut):
    image = (astronaut / 255.0).astype(np.float32)
    image[:50] = np.nan
    image[60, 60, 1] = np.inf
    result = quantize(image, 5, seed=0)
    assert np.isfinite(result.centers).all()
    assert np.all(result.labels[:50] == 0) and result.labels[60, 60] == 0
    assert np.isnan(result.image[:50]).all()
    assert result.counts.sum() == 512 * 512 - 50 * 512 - 1


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (np.zeros((64, 64), bool), "no pixel to cluster"),
        (np.ones((64, 63), bool), "mask has shape"),
        (np.ones((64, 64), float), "must be boolean"),
    ],
)
def test_bad_masks_are_refused(small_rgb, mask, message):
    with pytest.raises(ValueError, match=message):
        quantize(small_rgb, 2, mask=mask)
