"""The napari adapter in a real viewer: quantize_layer() and the npe2 command."""

import numpy as np
import pytest
from napari.layers import Image, Labels
from skimage import data

from napari_kquant import quantize, quantize_layer
from napari_kquant._napari.layers import METADATA_KEY


def test_quantize_layer_adds_two_overlaid_layers(make_napari_viewer, astronaut):
    viewer = make_napari_viewer()
    source = viewer.add_image(
        astronaut, name="astronaut", scale=(0.5, 2.0), translate=(10, -4), rotate=15
    )
    before = source.data.copy()
    image_layer, labels_layer = quantize_layer(viewer, source, k=5, seed=2)
    np.testing.assert_array_equal(source.data, before)
    assert isinstance(image_layer, Image) and image_layer.rgb
    assert isinstance(labels_layer, Labels)
    assert image_layer.name == "astronaut quantized K=5"
    assert labels_layer.name == "astronaut clusters K=5"
    for layer in (image_layer, labels_layer):
        np.testing.assert_allclose(layer.scale, source.scale)
        np.testing.assert_allclose(layer.translate, source.translate)
        np.testing.assert_allclose(layer.rotate, source.rotate)
        np.testing.assert_allclose(layer.affine.affine_matrix, source.affine.affine_matrix)
    assert image_layer.data.dtype == np.uint8
    assert len(np.unique(image_layer.data.reshape(-1, 3), axis=0)) == 5
    meta = labels_layer.metadata[METADATA_KEY]
    assert meta["k"] == 5 and meta["seed"] == 2 and meta["source"] == "astronaut"
    assert meta["method"] == "fast" and meta["compactness"] > 0 and meta["elapsed_s"] > 0
    # label colour i is centre i, as the source displays it (uint8: centre / 255)
    centers = np.asarray(meta["centers"])
    for label in range(1, 6):
        np.testing.assert_allclose(
            labels_layer.colormap.map(label)[:3], centers[label - 1] / 255, atol=1e-6
        )
    assert labels_layer.colormap.map(0)[3] == 0  # unclustered pixels stay transparent
    features = labels_layer.features
    # napari's convention: row v is label v, row 0 the background
    assert features["label"].tolist() == [0, 1, 2, 3, 4, 5]
    assert features["count"].iloc[0] == 0  # nothing left unclustered
    assert features[["center_r", "center_g", "center_b"]].iloc[0].isna().all()
    assert features["count"].sum() == astronaut.shape[0] * astronaut.shape[1]
    assert features["fraction"].sum() == pytest.approx(1.0)
    # uint8: a centre reads as the value the quantized image holds (napari's status bar)
    np.testing.assert_allclose(
        features[["center_r", "center_g", "center_b"]].iloc[1:].to_numpy(float), centers, atol=0.5
    )
    for label in range(1, 6):
        pixel = image_layer.data[labels_layer.data == label][0]
        row = features.iloc[label][["center_r", "center_g", "center_b"]].to_numpy(dtype=np.uint8)
        np.testing.assert_array_equal(row, pixel)


def test_rerun_updates_in_place(make_napari_viewer, coffee):
    viewer = make_napari_viewer()
    viewer.add_image(coffee, name="coffee")
    first = quantize_layer(viewer, "coffee", k=4, seed=0)
    second = quantize_layer(viewer, "coffee", k=4, seed=5, method="opencv")
    assert len(viewer.layers) == 3
    assert first[0] is second[0] and first[1] is second[1]
    assert second[1].metadata[METADATA_KEY]["method"] == "opencv"
    quantize_layer(viewer, "coffee", k=6)
    assert [layer.name for layer in viewer.layers][-2:] == [
        "coffee quantized K=6",
        "coffee clusters K=6",
    ]


def test_gray_layer_keeps_colormap_and_colours_labels(make_napari_viewer):
    viewer = make_napari_viewer()
    camera = data.camera()[::2, ::2]
    source = viewer.add_image(camera, colormap="viridis", name="camera")
    image_layer, labels_layer = quantize_layer(viewer, source, k=3)
    assert not image_layer.rgb
    assert image_layer.colormap.name == "viridis"
    centers = np.asarray(labels_layer.metadata[METADATA_KEY]["centers"])
    low, high = source.contrast_limits
    expected = source.colormap.map((centers[:, 0] - low) / (high - low))
    for label in range(1, 4):
        np.testing.assert_allclose(labels_layer.colormap.map(label), expected[label - 1], atol=1e-6)


def test_non_image_layer_is_refused(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.add_points(np.zeros((3, 2)), name="points")
    with pytest.raises(ValueError, match="not an image layer"):
        quantize_layer(viewer, "points")
    with pytest.raises(ValueError, match="no layer named"):
        quantize_layer(viewer, "nope")


def test_npe2_command_runs_in_a_viewer(make_napari_viewer, astronaut):
    from npe2 import PluginManager

    viewer = make_napari_viewer()
    viewer.add_image(astronaut, name="astronaut")
    PluginManager.instance().commands.execute(
        "napari-kquant.quantize_layer", args=(viewer,), kwargs={"layer": "astronaut", "k": 3}
    )
    assert "astronaut clusters K=3" in viewer.layers
    assert viewer.layers["astronaut clusters K=3"].data.max() == 3


def test_quantize_layer_with_features_mask_and_current_plane(make_napari_viewer):
    from napari_kquant._napari.layers import apply_layer_palette

    viewer = make_napari_viewer()
    rng = np.random.default_rng(0)
    stack = rng.integers(0, 200, (2, 3, 40, 50)).astype(np.uint16)
    a, _ = viewer.add_image(stack, channel_axis=0, name=["a", "b"])
    region = np.zeros((40, 50), np.uint8)
    region[10:30, 5:45] = 1
    viewer.add_labels(region, name="region")
    viewer.dims.set_current_step(0, 1)
    image_layer, labels_layer = quantize_layer(
        viewer, "a", k=3, features=["b"], mask="region", planes="current"
    )
    assert labels_layer.name == "a+b clusters K=3 (mask region, plane 1)"
    assert image_layer.name == "a quantized K=3 (of a+b, mask region, plane 1)"
    assert "b quantized K=3 (of a+b, mask region, plane 1)" in viewer.layers
    keep = np.zeros((3, 40, 50), bool)
    keep[1] = region > 0
    expected = quantize(np.stack([stack[0], stack[1]], -1), 3, channel_axis=-1, mask=keep)
    np.testing.assert_array_equal(labels_layer.data, expected.labels)
    # the same palette applied to the whole stack
    _, applied = apply_layer_palette(viewer, labels_layer, "a", features=["b"])
    assert applied.name == "a+b clusters K=3 (palette of a+b)"
    assert set(np.unique(applied.data)) == {1, 2, 3}
    np.testing.assert_array_equal(applied.data[keep], expected.labels[keep])
    np.testing.assert_array_equal(a.data, stack[0])


def check_row_convention(layer):
    """features.iloc[v] describes label v, for every value in the layer."""
    table = layer.features
    assert table["index"].tolist() == list(range(len(table)))
    assert table["label"].iloc[0] == 0
    data = layer.data if not isinstance(layer.data, list) else layer.data[0]
    values = np.unique(np.asarray(data))
    assert values.max() < len(table)
    present = values[values > 0]
    assert (table["count"].iloc[present] > 0).all() or table["count"].isna().all()


def test_every_result_layer_follows_the_row_convention(make_napari_viewer, astronaut):
    import dask.array as da

    from napari_kquant import sweep_layer

    viewer = make_napari_viewer()
    viewer.add_image(astronaut, name="a")
    viewer.add_image(np.stack([astronaut[::4, ::4]] * 3), name="stack", rgb=True)
    viewer.add_image(da.from_array(astronaut, chunks=(128, 128, 3)), name="lazy", rgb=True)
    region = np.zeros(astronaut.shape[:2], np.uint8)
    region[100:300, 100:300] = 1
    viewer.add_labels(region, name="region")
    layers = [
        quantize_layer(viewer, "a", k=4)[1],
        quantize_layer(viewer, "a", k=3, mask="region")[1],
        quantize_layer(viewer, "stack", k=3, planes="each")[1],
        quantize_layer(viewer, "lazy", k=5)[1],
        sweep_layer(viewer, "a", "2..4", display="stack")[-1],
    ]
    for layer in layers:
        check_row_convention(layer)
    masked = layers[1].features
    assert masked["count"].iloc[0] == astronaut.shape[0] * astronaut.shape[1] - 200 * 200
    stacked = layers[-1].features
    assert stacked["k"].iloc[1:].tolist() == [2, 2, 3, 3, 3, 4, 4, 4, 4]


def test_a_failing_update_leaves_the_layer_as_it_was(make_napari_viewer, coffee):
    viewer = make_napari_viewer()
    viewer.add_image(coffee, name="coffee")
    _, clusters = quantize_layer(viewer, "coffee", k=3)
    before_data, before_features = clusters.data.copy(), clusters.features.copy()

    def refuse(event):  # another plugin's listener that breaks on the new data
        raise RuntimeError("listener failed")

    clusters.events.data.connect(refuse)
    with pytest.raises(RuntimeError, match="listener failed"):
        quantize_layer(viewer, "coffee", k=3, seed=7, attempts=1, init="random")
    clusters.events.data.disconnect(refuse)
    np.testing.assert_array_equal(clusters.data, before_data)
    pd_testing = pytest.importorskip("pandas").testing
    pd_testing.assert_frame_equal(clusters.features, before_features)


def test_per_plane_fractions_are_shares_of_their_plane(make_napari_viewer):
    from skimage import data

    viewer = make_napari_viewer()
    frames = np.stack([data.camera()[::4, ::4], data.moon()[::4, ::4], data.coins()[:128, :128]])
    viewer.add_image(frames, name="frames")
    _, labels_layer = quantize_layer(viewer, "frames", k=3, planes="each")
    table = labels_layer.features.iloc[1:]
    for plane in range(3):
        rows = table[table["plane"] == plane]
        assert rows["fraction"].sum() == pytest.approx(1.0)
        expected = [(labels_layer.data[plane] == v).mean() for v in rows["label"]]
        np.testing.assert_allclose(rows["fraction"], expected)


def test_uint16_centres_read_as_the_image_values_in_the_status_bar(make_napari_viewer):
    from napari.utils.status_messages import format_feature_value

    viewer = make_napari_viewer()
    gray = (np.linspace(0, 4095, 64 * 64).reshape(64, 64) * 2).astype(np.uint16)
    viewer.add_image(gray, name="gray")
    quantized, labels_layer = quantize_layer(viewer, "gray", k=4)
    column = labels_layer.features["center_value"]
    for label in range(1, 5):
        shown = format_feature_value(column.iloc[label])
        assert shown == str(quantized.data[labels_layer.data == label][0])  # "7190", not 7.19e+03
