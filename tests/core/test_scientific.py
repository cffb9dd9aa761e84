"""Scientific images in the core: nD stacks, features, z-scoring, Lab, reapplying (no Qt)."""

import cv2
import numpy as np
import pytest
from skimage import data

from conftest import BruteForce
from napari_kquant import apply_palette, quantize, sweep
from napari_kquant._core.spaces import rgb_to_lab


@pytest.fixture(scope="module")
def frames(astronaut):
    """A T=3 stack of astronaut crops, dimmer to brighter (the same scene, changing light)."""
    crop = astronaut[100:228, 150:278].astype(np.float64)
    return np.stack([np.clip(crop * g, 0, 255).astype(np.uint8) for g in (0.6, 1.0, 1.4)])


@pytest.fixture(scope="module")
def channels():
    """Two 'fluorescence' channels of very different ranges, as two layers would hold them."""
    ihc = data.immunohistochemistry()
    bright = ihc[..., 0].astype(np.uint16) * 200  # 0..51,000
    dim = 255 - ihc[..., 2].astype(np.uint16)  # 0..255
    return bright, dim


def nearest_ok(features, labels, centers):
    d = BruteForce.squared_distances(features, centers)
    chosen = d[np.arange(len(features)), labels - 1]
    return bool(np.all(chosen <= d.min(axis=1) * (1 + 1e-9) + 1e-9))


def test_stack_shares_one_palette(frames):
    before = frames.copy()
    result = quantize(frames, 6, seed=0)
    np.testing.assert_array_equal(frames, before)
    assert result.labels.shape == frames.shape[:3]
    assert result.centers.shape == (6, 3) and result.params["planes"] == "stack"
    # one palette: equal colours get the same label in every frame
    table = frames.reshape(-1, 3)
    labels = result.labels.reshape(-1)
    codes = table[:, 0].astype(np.int64) << 16 | table[:, 1].astype(np.int64) << 8 | table[:, 2]
    order = np.argsort(codes, kind="stable")
    same_colour = np.diff(codes[order]) == 0
    assert same_colour.sum() > 1000
    np.testing.assert_array_equal(labels[order][1:][same_colour], labels[order][:-1][same_colour])
    # brighter frames use brighter clusters
    means = [result.labels[t].mean() for t in range(3)]
    assert means[0] < means[1] < means[2]


def test_each_plane_gets_its_own_palette(frames):
    before = frames.copy()
    result = quantize(frames, 4, seed=0, planes="each")
    np.testing.assert_array_equal(frames, before)
    assert result.k == 4 and result.centers.shape == (12, 3)
    assert result.params["planes"] == "each" and result.params["n_planes"] == 3
    assert result.labels.shape == frames.shape[:3]
    for t in range(3):
        alone = quantize(frames[t], 4, seed=0)
        plane_labels = result.labels[t]
        # plane t owns labels 4t+1 .. 4t+4, and matches quantizing that frame alone
        np.testing.assert_array_equal(plane_labels, alone.labels + 4 * t)
        np.testing.assert_allclose(result.centers[4 * t : 4 * t + 4], alone.centers)
        np.testing.assert_array_equal(result.image[t], alone.image)
    # the palettes follow the light: the brightest frame's centres are the brightest
    assert result.centers[8:].mean() > result.centers[4:8].mean() > result.centers[:4].mean()
    assert result.compactness == pytest.approx(sum(result.params["plane_compactness"]))


def test_each_plane_of_a_2d_image_is_the_image():
    gray = data.camera()
    each = quantize(gray, 5, planes="each")
    np.testing.assert_array_equal(each.labels, quantize(gray, 5).labels)


def test_each_plane_reports_the_plane_that_fails(frames):
    mask = np.ones(frames.shape[:3], bool)
    mask[1] = False
    with pytest.raises(ValueError, match=r"plane \(1,\): no pixel to cluster"):
        quantize(frames, 4, planes="each", mask=mask)
    with pytest.raises(ValueError, match="planes must be one of"):
        quantize(frames, 4, planes="every")
    with pytest.raises(ValueError, match="planes='each' is for quantize"):
        sweep(frames, [2, 3], planes="each")


def test_current_plane_only_via_a_mask(frames):
    """What the widget's "current plane" does: a mask of that plane, the rest untouched."""
    mask = np.zeros(frames.shape[:3], bool)
    mask[2] = True
    result = quantize(frames, 5, mask=mask, seed=0)
    alone = quantize(frames[2], 5, seed=0)
    np.testing.assert_array_equal(result.labels[2], alone.labels)
    assert not result.labels[:2].any()
    np.testing.assert_array_equal(result.image[:2], frames[:2])
    np.testing.assert_allclose(result.centers, alone.centers)


def test_two_layers_as_features_equal_the_stacked_array(channels):
    bright, dim = channels
    before = bright.copy(), dim.copy()
    stacked = np.stack([bright, dim], axis=-1)
    last = quantize(stacked, 4, channel_axis=-1, seed=0)
    first = quantize(np.stack([bright, dim]), 4, channel_axis=0, seed=0)
    np.testing.assert_array_equal(bright, before[0])
    np.testing.assert_array_equal(dim, before[1])
    np.testing.assert_array_equal(last.labels, first.labels)
    np.testing.assert_allclose(last.centers, first.centers)
    assert first.image.shape == (2, *bright.shape) and first.image.dtype == np.uint16
    assert last.labels.shape == bright.shape and last.centers.shape == (4, 2)
    assert first.params["channel_axis"] == 0 and first.params["rgb"] is False
    # exact path (integer channels): every pixel is at its nearest centre
    table = stacked.reshape(-1, 2).astype(np.float64)
    assert nearest_ok(table, last.labels.reshape(-1), last.centers)
    np.testing.assert_array_equal(
        first.image[0], np.rint(last.centers[last.labels - 1, 0]).astype(np.uint16)
    )


def test_zscore_changes_the_result_on_channels_of_different_ranges(channels):
    stacked = np.stack(channels, axis=-1)
    raw = quantize(stacked, 4, channel_axis=-1, seed=0)
    z = quantize(stacked, 4, channel_axis=-1, seed=0, standardize=True)
    assert z.params["standardize"] is True
    scale = np.asarray(z.params["channel_scale"])
    np.testing.assert_allclose(scale, stacked.reshape(-1, 2).std(axis=0))
    # unscaled, the bright channel decides nearly everything; z-scored, both count
    assert (raw.labels != z.labels).mean() > 0.1
    table = stacked.reshape(-1, 2).astype(np.float64)

    def explained(result):  # share of each channel's variance the clusters explain
        residual = table - result.centers[result.labels.reshape(-1) - 1]
        return 1 - (residual**2).sum(axis=0) / ((table - table.mean(axis=0)) ** 2).sum(axis=0)

    assert explained(z)[1] > explained(raw)[1] + 0.1  # the dim channel counts now
    assert explained(raw)[0] > explained(z)[0]  # at some cost to the bright one
    # labels are nearest centres in the z-scored space; centres come back in image units
    features = stacked.reshape(-1, 2) / scale
    assert nearest_ok(features, z.labels.reshape(-1), z.centers / scale)
    assert z.centers[:, 0].max() <= stacked[..., 0].max()


def test_features_of_many_channels_match_opencv_quality(channels):
    rng = np.random.default_rng(0)
    bright, dim = channels
    table = np.stack([bright, dim, dim // 2, bright // 300, rng.integers(0, 9, bright.shape)], -1)
    table = table[:200, :200].astype(np.uint16)
    fast = quantize(table, 5, channel_axis=-1, seed=0)
    ref = quantize(table, 5, channel_axis=-1, seed=0, method="opencv", attempts=3)
    assert fast.centers.shape == (5, 5)
    assert fast.compactness <= 1.02 * ref.compactness


def test_lab_gives_a_different_valid_result(astronaut):
    before = astronaut.copy()
    rgb = quantize(astronaut, 8, seed=0)
    lab = quantize(astronaut, 8, seed=0, color_space="lab")
    np.testing.assert_array_equal(astronaut, before)
    assert lab.params["color_space"] == "lab"
    assert lab.image.dtype == np.uint8 and lab.image.shape == astronaut.shape
    assert set(np.unique(lab.labels)) == set(range(1, 9))
    assert (lab.labels != rgb.labels).mean() > 0.05
    # centres are RGB in the image's range, and the image holds them
    assert lab.centers.min() >= 0 and lab.centers.max() <= 255
    np.testing.assert_array_equal(lab.image, np.rint(lab.centers[lab.labels - 1]).astype(np.uint8))
    # Lab clustering is more compact, measured in Lab, than the RGB partition
    features = rgb_to_lab(astronaut.reshape(-1, 3), 255.0).astype(np.float64)
    rgb_labels = rgb.labels.reshape(-1) - 1
    means = np.array([features[rgb_labels == i].mean(axis=0) for i in range(8)])
    rgb_sse_in_lab = ((features - means[rgb_labels]) ** 2).sum()
    assert lab.compactness < 0.97 * rgb_sse_in_lab
    # and every pixel's label is its nearest centre in Lab (up to float32 conversion)
    centers_lab = rgb_to_lab(lab.centers, 255.0).astype(np.float64)
    d = ((features[:, None] - centers_lab[None]) ** 2).sum(-1)
    assert (d.argmin(axis=1) == lab.labels.reshape(-1) - 1).mean() > 0.99


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_lab_on_other_dtypes_matches_uint8(astronaut, dtype):
    image = astronaut.astype(np.uint16) * 257 if dtype == np.uint16 else astronaut / 255.0
    image = image.astype(dtype)
    eight = quantize(astronaut, 6, seed=0, color_space="lab")
    other = quantize(image, 6, seed=0, color_space="lab")
    scale = 257 if dtype == np.uint16 else 1 / 255
    np.testing.assert_allclose(other.centers, eight.centers * scale, rtol=0.05, atol=2 * scale)


def test_lab_needs_rgb():
    with pytest.raises(ValueError, match="RGB"):
        quantize(data.camera(), 4, color_space="lab")
    with pytest.raises(ValueError, match="unsigned integer"):
        quantize(data.astronaut().astype(np.int16), 4, color_space="lab")
    with pytest.raises(ValueError, match="color_space must be one of"):
        quantize(data.astronaut(), 4, color_space="hsv")


def test_lab_matches_scikit_image():
    from skimage.color import rgb2lab

    image = data.coffee()[::8, ::8]
    ours = rgb_to_lab(image.reshape(-1, 3), 255.0)
    theirs = rgb2lab(image).reshape(-1, 3)
    np.testing.assert_allclose(ours, theirs, atol=0.5)
    np.testing.assert_allclose(cv2.cvtColor(image, cv2.COLOR_RGB2Lab).shape, image.shape)


def test_reapply_gives_nearest_labels_and_the_same_centres(frames):
    fitted = quantize(frames[1], 6, seed=0)
    again = fitted.apply(frames)  # one frame's palette on the whole stack
    np.testing.assert_array_equal(again.centers, fitted.centers)
    np.testing.assert_array_equal(again.labels[1], fitted.labels)
    table = frames.reshape(-1, 3).astype(np.float64)
    assert nearest_ok(table, again.labels.reshape(-1), fitted.centers)
    assert again.params["method"] == "palette"
    via_function = apply_palette(frames, fitted.centers)
    np.testing.assert_array_equal(via_function.labels, again.labels)


def test_reapply_keeps_the_fit_space(channels):
    stacked = np.stack(channels, axis=-1)
    z = quantize(stacked[:256], 4, channel_axis=-1, seed=0, standardize=True)
    again = z.apply(stacked)
    scale = np.asarray(z.params["channel_scale"])
    assert nearest_ok(stacked.reshape(-1, 2) / scale, again.labels.reshape(-1), z.centers / scale)
    np.testing.assert_array_equal(again.labels[:256], z.labels)
    lab = quantize(data.astronaut(), 5, seed=0, color_space="lab")
    assert (lab.apply(data.astronaut()).labels == lab.labels).mean() > 0.99
    with pytest.raises(ValueError, match="one palette per plane"):
        quantize(np.stack([data.camera()] * 2), 3, planes="each").apply(data.camera())


def test_channel_axis_errors(channels):
    bright, _ = channels
    with pytest.raises(ValueError, match="not both"):
        quantize(np.stack([bright] * 3, -1), 2, channel_axis=-1, rgb=True)
    with pytest.raises(ValueError, match="channel_axis=3 is not an axis"):
        quantize(np.stack([bright] * 2, -1), 2, channel_axis=3)
    with pytest.raises(ValueError, match="channel_axis must be an integer"):
        quantize(np.stack([bright] * 2, -1), 2, channel_axis="last")
    with pytest.raises(ValueError, match=r"centers must be a \(k, 2\) array"):
        apply_palette(np.stack([bright] * 2, -1), [[1, 2, 3]], channel_axis=-1)
