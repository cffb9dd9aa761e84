"""Property-based tests: any input gives a valid result or a documented ValueError.

The default profile runs a quick sample for CI; `HYPOTHESIS_PROFILE=long python -m pytest
tests/core/test_fuzz.py` runs 10,000 examples per test.
"""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from conftest import METHODS
from napari_kquant import quantize
from napari_kquant._core.kmeans import to_dtype

# CI draws the same examples every run (reproducible); the long profile explores.
settings.register_profile(
    "ci",
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "long", max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

DTYPES = [np.uint8, np.uint16, np.int16, np.int32, np.int64, np.float32, np.float64]


@st.composite
def images(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    spatial = draw(hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=7))
    channels = draw(st.sampled_from([None, 3, 4]))
    shape = spatial if channels is None else (*spatial, channels)
    if np.issubdtype(dtype, np.floating):
        elements = st.floats(-1e6, 1e6, allow_nan=False, width=dtype.itemsize * 8)
    else:
        info = np.iinfo(dtype)
        elements = st.integers(int(info.min), int(info.max))
    # Few distinct values as often as many: k near the number of colours matters.
    palette = draw(hnp.arrays(dtype, draw(st.integers(1, 6)), elements=elements))
    index = draw(hnp.arrays(np.intp, shape, elements=st.integers(0, len(palette) - 1)))
    image = palette[index]
    if draw(st.booleans()):
        noise = draw(hnp.arrays(dtype, shape, elements=elements))
        mask = draw(hnp.arrays(bool, shape))
        image = np.where(mask, noise, image).astype(dtype)
    return image, channels is not None


OPTIONS = st.fixed_dictionaries(
    {
        "k": st.integers(1, 9),
        "method": st.sampled_from(METHODS),
        "init": st.sampled_from(["kmeans++", "random"]),
        "attempts": st.integers(1, 3),
        "max_iter": st.integers(1, 30),
        "criteria": st.sampled_from(["eps+max_iter", "eps", "max_iter"]),
        "seed": st.integers(0, 2**31 - 1),
    }
)


def check_invariants(image, rgb, result, options, mask=None):
    k = options["k"]
    spatial = image.shape[:-1] if rgb else image.shape
    n_channels = 3 if rgb else 1
    inside = np.ones(spatial, bool) if mask is None else mask
    assert result.labels.shape == spatial
    assert np.all(result.labels[~inside] == 0)
    assert result.labels[inside].min() >= 1 and result.labels.max() <= k
    assert result.centers.shape == (k, n_channels)
    assert result.image.shape == image.shape and result.image.dtype == image.dtype
    np.testing.assert_array_equal(result.image[~inside], image[~inside])
    table = (
        image[inside].reshape(-1, image.shape[-1])[:, :3] if rgb else image[inside].reshape(-1, 1)
    )
    table = table.astype(np.float64)
    # centres lie within the data's range (cv2.kmeans accumulates its sums in float32:
    # allow that rounding, seen up to 2e-5 of the values in the long fuzzing run)
    low, high = table.min(axis=0), table.max(axis=0)
    if options["method"] == "opencv":
        slack = 1e-3 * np.maximum(np.maximum(np.abs(low), np.abs(high)), 1.0)
    else:
        slack = 1e-6 * np.maximum(high - low, 1.0)
    assert np.all(result.centers >= low - slack)
    assert np.all(result.centers <= high + slack)
    # every pixel holds its centre; alpha is untouched
    labels = result.labels[inside].reshape(-1)
    palette = to_dtype(result.centers, image.dtype)
    got = result.image[inside]
    got = got.reshape(-1, image.shape[-1])[:, :3] if rgb else got.reshape(-1, 1)
    np.testing.assert_array_equal(got, palette[labels - 1])
    if rgb and image.shape[-1] == 4:
        np.testing.assert_array_equal(result.image[..., 3], image[..., 3])
    assert result.counts.sum() == len(table)
    d = ((table[:, None, :] - result.centers[None]) ** 2).sum(-1)
    chosen = d[np.arange(len(table)), labels - 1]
    scale = 1e-9 * max(1.0, float(np.abs(table).max()) ** 2) * n_channels
    assert result.compactness == pytest.approx(chosen.sum(), rel=1e-5, abs=scale * len(table))
    if options["method"] == "fast":
        assert np.all(chosen <= d.min(axis=1) + scale)


# Found by fuzzing: colours closer than a summary cell leave fewer summary points than k.
CLOSE_COLOURS = np.zeros((1, 12, 3), np.uint16)
CLOSE_COLOURS[0, :10, 0] = [510, 0, 1, 2, 3, 4, 5, 6, 7, 8]


@given(images(), OPTIONS)
@example(
    (CLOSE_COLOURS, True),
    {
        "k": 5,
        "method": "fast",
        "init": "random",
        "attempts": 1,
        "max_iter": 5,
        "criteria": "eps+max_iter",
        "seed": 0,
    },
)
@example(
    (np.full((1, 3), 16777217, np.int64), True),
    {
        "k": 1,
        "method": "fast",
        "init": "kmeans++",
        "attempts": 1,
        "max_iter": 1,
        "criteria": "eps+max_iter",
        "seed": 0,
    },
)
@example(
    (np.zeros((1, 3), np.uint8), True),
    {
        "k": 1,
        "method": "opencv",
        "init": "kmeans++",
        "attempts": 1,
        "max_iter": 1,
        "criteria": "eps+max_iter",
        "seed": 0,
    },
)
def test_any_image_gives_valid_result_or_value_error(drawn, options):
    image, rgb = drawn
    before = image.copy()
    spatial = image.shape[:-1] if rgb else image.shape
    # one in three examples clusters only part of the image
    mask = None
    if options["seed"] % 3 == 0:
        mask = np.random.default_rng(options["seed"]).random(spatial) < 0.6
    try:
        result = quantize(image, rgb=rgb, mask=mask, **options)
    except ValueError as exc:
        message = str(exc)
        documented = (
            "distinct colours",
            "number of pixels",
            "OpenCV's k-means failed",
            "beyond what OpenCV",
            "no pixel to cluster",
            "overflow",
        )
        assert any(reason in message for reason in documented), message
        return
    finally:
        np.testing.assert_array_equal(image, before)
    check_invariants(image, rgb, result, options, mask)


@given(
    st.sampled_from([np.bool_, np.complex64, np.object_]),
    hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=5),
)
def test_unsupported_dtypes_are_refused(dtype, shape):
    with pytest.raises(ValueError, match="not supported"):
        quantize(np.zeros(shape, dtype=dtype), 1)


@given(
    hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=6),
        elements=st.floats(-1e6, 1e6) | st.sampled_from([np.nan, np.inf, -np.inf]),
    ),
)
def test_non_finite_pixels_are_left_out(image):
    finite = np.isfinite(image)
    if finite.all():
        image = image.copy()
        image.flat[0] = np.nan
        finite = np.isfinite(image)
    try:
        result = quantize(image, 1, rgb=False)
    except ValueError as exc:
        assert "no pixel to cluster" in str(exc)
        assert not finite.any()
        return
    np.testing.assert_array_equal(result.labels == 0, ~finite)
    assert np.isfinite(result.centers).all()
    np.testing.assert_array_equal(np.isnan(result.image), np.isnan(image))


@st.composite
def feature_images(draw):
    """Images with a feature axis anywhere (2, 3 or 5 channels), or RGB for Lab."""
    dtype = np.dtype(draw(st.sampled_from([np.uint8, np.uint16, np.int32, np.float32])))
    spatial = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6))
    n_channels = draw(st.sampled_from([2, 3, 5]))
    if np.issubdtype(dtype, np.floating):
        elements = st.floats(0, 1, width=32)
    else:
        info = np.iinfo(dtype)
        elements = st.integers(0, int(info.max))
    palette = draw(hnp.arrays(dtype, (draw(st.integers(1, 6)), n_channels), elements=elements))
    index = draw(hnp.arrays(np.intp, spatial, elements=st.integers(0, len(palette) - 1)))
    image = palette[index]
    lab = n_channels == 3 and not np.issubdtype(dtype, np.signedinteger) and draw(st.booleans())
    axis = None if lab else draw(st.integers(0, len(spatial)))
    if axis is not None:
        image = np.moveaxis(image, -1, axis)
    return np.ascontiguousarray(image), axis, lab


# Found by fuzzing: a channel axis moved last made render() write into a copy.
@example((np.zeros((2, 2, 2), np.uint8), 1, False), 1, "fast", False, "stack")
@given(
    feature_images(),
    st.integers(1, 6),
    st.sampled_from(METHODS),
    st.booleans(),
    st.sampled_from(["stack", "each"]),
)
def test_features_lab_zscore_and_planes_give_valid_results(drawn, k, method, standardize, planes):
    image, axis, lab = drawn
    before = image.copy()
    options = {"method": method, "standardize": standardize, "planes": planes, "seed": 0}
    if lab:
        options.update(color_space="lab", rgb=True)
    else:
        options["channel_axis"] = axis
    try:
        result = quantize(image, k, **options)
    except ValueError as exc:
        assert "distinct colours" in str(exc) or "number of pixels" in str(exc), str(exc)
        return
    finally:
        np.testing.assert_array_equal(image, before)
    data = image if lab else np.moveaxis(image, axis, -1)
    spatial = data.shape[:-1]
    n_planes = int(np.prod(spatial[:-2])) if planes == "each" and len(spatial) > 2 else 1
    assert result.labels.shape == spatial
    assert result.centers.shape == (k * n_planes, data.shape[-1])
    assert result.labels.min() >= 1 and result.labels.max() <= k * n_planes
    out = result.image if lab else np.moveaxis(result.image, axis, -1)
    assert out.shape == data.shape and out.dtype == data.dtype
    np.testing.assert_array_equal(out, to_dtype(result.centers, data.dtype)[result.labels - 1])
    table = data.reshape(-1, data.shape[-1]).astype(np.float64)
    low, high = table.min(axis=0), table.max(axis=0)
    slack = 1e-3 * np.maximum(np.maximum(np.abs(low), np.abs(high)), 1.0)
    assert np.all(result.centers >= low - slack) and np.all(result.centers <= high + slack)
    if method == "fast" and not lab and n_planes == 1:
        scale = np.asarray(result.params.get("channel_scale", np.ones(data.shape[-1])))
        x, c = table / scale, result.centers / scale
        d = ((x[:, None, :] - c[None]) ** 2).sum(-1)
        chosen = d[np.arange(len(x)), result.labels.reshape(-1) - 1]
        assert np.all(chosen <= d.min(axis=1) + 1e-9 * max(1.0, float(d.max())))


# --- memory layouts, byte orders, magnitudes and option types (the adversarial pass) ---

LAYOUTS = ["c", "fortran", "reversed", "strided", "readonly", "big-endian", "memmap"]


def laid_out(image: np.ndarray, layout: str, tmp_dir) -> np.ndarray:
    """``image``'s values in another memory layout (the values are the same)."""
    if layout == "fortran":
        return np.asfortranarray(image)
    if layout == "reversed":  # negative strides
        return np.ascontiguousarray(image[::-1, ...])[::-1, ...]
    if layout == "strided":
        wide = np.repeat(image, 2, axis=0)
        return wide[::2]
    if layout == "readonly":
        out = image.copy()
        out.flags.writeable = False
        return out
    if layout == "big-endian":
        return image.astype(image.dtype.newbyteorder(">"))
    if layout == "memmap":
        path = os.path.join(tmp_dir, f"fuzz-{os.getpid()}.raw")
        out = np.memmap(path, dtype=image.dtype, mode="w+", shape=image.shape)
        out[...] = image
        out.flush()
        return np.memmap(path, dtype=image.dtype, mode="r", shape=image.shape)
    return image


@given(images(), st.sampled_from(LAYOUTS), st.integers(1, 5), st.sampled_from(METHODS))
def test_every_memory_layout_gives_the_same_result(tmp_path_factory, drawn, layout, k, method):
    image, rgb = drawn
    try:
        expected = quantize(image, k, rgb=rgb, method=method, seed=1)
    except ValueError:
        return  # refused the same way below
    other = laid_out(image, layout, tmp_path_factory.getbasetemp())
    before = np.array(other)
    result = quantize(other, k, rgb=rgb, method=method, seed=1)
    np.testing.assert_array_equal(np.asarray(other), before)  # never written to
    np.testing.assert_array_equal(result.labels, expected.labels)
    np.testing.assert_array_equal(result.centers, expected.centers)
    np.testing.assert_array_equal(result.image, expected.image.astype(other.dtype))


@given(
    st.sampled_from([np.float16, np.float32, np.float64]),
    st.floats(-300, 300),
    st.integers(1, 4),
    st.sampled_from(METHODS),
)
def test_extreme_magnitudes_give_a_result_or_a_clear_refusal(dtype, exponent, k, method):
    base = np.linspace(-1, 1, 48).reshape(4, 4, 3)
    with np.errstate(over="ignore"):
        image = (base * 10.0**exponent).astype(dtype)
    try:
        result = quantize(image, k, method=method, rgb=True)
    except ValueError as exc:
        message = str(exc)
        reasons = (
            "overflow",
            "beyond what OpenCV",
            "distinct colours",
            "number of pixels",  # float32 overflows to inf: those pixels are left out
            "no pixel to cluster",
        )
        assert any(reason in message for reason in reasons), message
        return
    assert np.isfinite(result.centers).all() and np.isfinite(result.compactness)
    assert result.labels.min() >= 0 and result.labels.max() <= k
    clustered = result.labels > 0
    assert (result.counts > 0).sum() >= 1 and result.counts.sum() == clustered.sum()


WEIRD = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True),
    st.integers(-(2**80), 2**80),
    st.text(max_size=4),
    st.lists(st.integers(0, 3), max_size=2),
    st.just(np.True_),
    st.just(np.float32(2)),
)


@given(
    st.sampled_from(
        [
            *("k", "method", "attempts", "max_iter", "epsilon", "criteria", "init", "seed"),
            *("rgb", "color_space", "standardize", "planes", "sample_size"),
        ]
    ),
    WEIRD,
)
def test_weird_option_values_give_a_result_or_a_value_error(small_rgb, name, value):
    options = {"k": 3, name: value}
    try:
        result = quantize(small_rgb, **options)
    except ValueError as exc:
        assert str(exc), "a refusal says why"
        return
    assert result.labels.max() <= result.k


@st.composite
def edge_tables(draw):
    """Tables at the numeric edges: far from zero, 64-bit extremes, 1-byte ties, wide."""
    kind = draw(st.sampled_from(["offset-float", "int64", "uint64", "uint8", "wide"]))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    rows = draw(st.integers(8, 300))
    if kind == "offset-float":
        dtype = draw(st.sampled_from([np.float32, np.float64]))
        offset = 10.0 ** draw(st.integers(3, 12)) * draw(st.sampled_from([1, -1]))
        spread = max(1.0, abs(offset) * 2.0**-20) if dtype == np.float32 else 1.0
        table = (offset + spread * rng.random((rows, draw(st.sampled_from([1, 3]))))).astype(dtype)
    elif kind in ("int64", "uint64"):
        info = np.iinfo(kind)
        base = draw(st.sampled_from([info.min, info.max - 10**6, 2**63 if kind == "uint64" else 0]))
        values = [base + int(v) for v in rng.integers(0, 10**6, rows)]
        table = np.array(values, dtype=object).astype(kind)[:, None]
    elif kind == "uint8":
        table = rng.integers(0, 256, (rows, draw(st.sampled_from([1, 3]))), dtype=np.uint8)
    else:
        channels = draw(st.sampled_from([2, 5, 8, 33, 64, 256]))
        table = rng.normal(size=(rows, channels)) * 10.0 ** draw(st.integers(-3, 6))
    return table, draw(st.integers(1, 6))


@given(edge_tables())
def test_every_label_is_the_nearest_centre_at_the_edges(brute, drawn):
    """Labels against a brute force, the compactness its SSE, dask equal to numpy."""
    import dask.array as da

    from napari_kquant import apply_palette

    table, k = drawn
    layout = {"channel_axis": -1} if table.shape[1] != 3 else {"rgb": True}
    try:
        result = quantize(table, k, seed=0, **layout)
    except ValueError as exc:
        assert "distinct colours" in str(exc)  # duplicates drawn: fewer colours than k
        return
    sse = brute.check_nearest(table, result.labels, result.centers)
    assert result.compactness == pytest.approx(sse, rel=1e-9, abs=1e-9)
    lazy = apply_palette(da.from_array(table, chunks=(max(1, len(table) // 3), -1)), result.palette)
    assert np.array_equal(np.asarray(lazy.labels), result.labels)
