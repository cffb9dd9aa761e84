"""Scientific images through the dock widget in a real viewer: stacks, features, masks, Lab,
reapplying a palette."""

import numpy as np
import pytest
from napari.layers import Image, Labels
from skimage import data

from napari_kquant import apply_palette, quantize
from napari_kquant._napari.layers import METADATA_KEY

WIDGET = ("napari-kquant", "K-means quantization")


@pytest.fixture(scope="module")
def frames():
    crop = data.astronaut()[100:228, 150:278].astype(np.float64)
    return np.stack([np.clip(crop * g, 0, 255).astype(np.uint8) for g in (0.6, 1.0, 1.4)])


def docked(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
    return viewer, widget


def run(qtbot, widget):
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)


def test_palette_per_plane(make_napari_viewer, qtbot, frames):
    viewer, widget = docked(make_napari_viewer)
    source = viewer.add_image(frames, name="frames", rgb=True)
    widget.image.value = source
    widget.planes.value = "each"
    widget.k.value = 4
    run(qtbot, widget)
    clusters = viewer.layers["frames clusters K=4 (per plane)"]
    quantized = viewer.layers["frames quantized K=4 (per plane)"]
    assert clusters.data.shape == frames.shape[:3]
    for t in range(3):
        assert set(np.unique(clusters.data[t])) == set(range(4 * t + 1, 4 * t + 5))
    table = clusters.features
    assert table["plane"].iloc[1:].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    # each label is coloured by its own plane's centre
    centers = np.asarray(clusters.metadata[METADATA_KEY]["centers"])
    assert centers.shape == (12, 3)
    colour = clusters.colormap.map(np.array([9]))[0][:3]
    np.testing.assert_allclose(colour, centers[8] / 255, atol=1e-6)
    expected = quantize(frames, 4, planes="each")
    np.testing.assert_array_equal(clusters.data, expected.labels)
    np.testing.assert_array_equal(quantized.data, expected.image)
    np.testing.assert_array_equal(source.data, frames)


def test_current_plane_only(make_napari_viewer, qtbot, frames):
    viewer, widget = docked(make_napari_viewer)
    viewer.add_image(frames, name="frames", rgb=True)
    viewer.dims.set_current_step(0, 2)
    widget.planes.value = "current"
    widget.k.value = 5
    run(qtbot, widget)
    clusters = viewer.layers["frames clusters K=5 (plane 2)"]
    assert clusters.data.shape == frames.shape[:3]
    assert not clusters.data[:2].any()
    np.testing.assert_array_equal(clusters.data[2], quantize(frames[2], 5).labels)
    assert clusters.metadata[METADATA_KEY]["plane"] == [2]
    np.testing.assert_array_equal(
        viewer.layers["frames quantized K=5 (plane 2)"].data[0], frames[0]
    )


def test_channel_layers_as_features(make_napari_viewer, qtbot):
    ihc = data.immunohistochemistry()
    channels = np.stack([ihc[..., 0].astype(np.uint16) * 200, 255 - ihc[..., 2].astype(np.uint16)])
    viewer, widget = docked(make_napari_viewer)
    first, second = viewer.add_image(
        channels, channel_axis=0, name=["hema", "dab"], colormap=["magenta", "green"]
    )
    before = first.data.copy(), second.data.copy()
    widget.image.value = first
    widget.features.value = [second]
    widget.standardize.value = True
    widget.k.value = 4
    run(qtbot, widget)
    clusters = viewer.layers["hema+dab clusters K=4 (z-scored)"]
    hema_q = viewer.layers["hema quantized K=4 (of hema+dab, z-scored)"]
    dab_q = viewer.layers["dab quantized K=4 (of hema+dab, z-scored)"]
    # the clusters of features get colours far apart (not mixes of magenta and green)
    colors = clusters.colormap.map(np.arange(1, 5))[:, :3]
    gaps = np.linalg.norm(colors[:, None] - colors[None], axis=-1)[np.triu_indices(4, 1)]
    assert gaps.min() > 0.3
    assert hema_q.colormap.name == "magenta" and dab_q.colormap.name == "green"
    assert hema_q.blending == first.blending
    expected = quantize(np.stack(channels, -1), 4, channel_axis=-1, standardize=True)
    np.testing.assert_array_equal(clusters.data, expected.labels)
    np.testing.assert_array_equal(hema_q.data, expected.image[..., 0])
    np.testing.assert_array_equal(dab_q.data, expected.image[..., 1])
    info = clusters.metadata[METADATA_KEY]
    assert info["feature_layers"] == ["hema", "dab"] and info["standardize"] is True
    assert list(clusters.features.columns[2:4]) == ["center_hema", "center_dab"]
    np.testing.assert_array_equal(first.data, before[0])
    np.testing.assert_array_equal(second.data, before[1])


def test_mask_from_a_labels_layer(make_napari_viewer, qtbot, coffee):
    viewer, widget = docked(make_napari_viewer)
    source = viewer.add_image(coffee, name="coffee")
    region = np.zeros(coffee.shape[:2], np.uint8)
    region[100:300, 150:450] = 3
    mask_layer = viewer.add_labels(region, name="cup")
    widget.image.value = source
    widget.mask.value = mask_layer
    widget.k.value = 4
    run(qtbot, widget)
    clusters = viewer.layers["coffee clusters K=4 (mask cup)"]
    quantized = viewer.layers["coffee quantized K=4 (mask cup)"]
    assert not clusters.data[region == 0].any()
    assert set(np.unique(clusters.data[region > 0])) == {1, 2, 3, 4}
    np.testing.assert_array_equal(quantized.data[region == 0], coffee[region == 0])
    np.testing.assert_array_equal(clusters.data, quantize(coffee, 4, mask=region).labels)
    assert clusters.metadata[METADATA_KEY]["mask_layer"] == "cup"
    np.testing.assert_array_equal(source.data, coffee)


def test_mask_from_a_shapes_layer(make_napari_viewer, qtbot, coffee):
    viewer, widget = docked(make_napari_viewer)
    source = viewer.add_image(coffee, name="coffee", scale=(2, 2))
    # a rectangle drawn in world coordinates: rows 100..300, columns 40..240 of pixels
    shapes = viewer.add_shapes([[[200, 80], [200, 480], [600, 480], [600, 80]]], name="roi")
    widget.image.value = source
    widget.mask.value = shapes
    widget.k.value = 3
    run(qtbot, widget)
    clusters = viewer.layers["coffee clusters K=3 (mask roi)"]
    inside = clusters.data > 0
    rows, cols = np.nonzero(inside)
    assert abs(rows.min() - 100) <= 1 and abs(rows.max() - 300) <= 1
    assert abs(cols.min() - 40) <= 1 and abs(cols.max() - 240) <= 1
    np.testing.assert_array_equal(clusters.data, quantize(coffee, 3, mask=inside).labels)


def test_lab_from_the_widget(make_napari_viewer, qtbot, astronaut):
    viewer, widget = docked(make_napari_viewer)
    viewer.add_image(astronaut, name="astronaut")
    widget.color_space.value = "lab"
    widget.k.value = 6
    run(qtbot, widget)
    clusters = viewer.layers["astronaut clusters K=6 (lab)"]
    assert clusters.metadata[METADATA_KEY]["color_space"] == "lab"
    np.testing.assert_array_equal(clusters.data, quantize(astronaut, 6, color_space="lab").labels)


def test_reapply_a_palette_to_another_layer(make_napari_viewer, qtbot, astronaut, coffee):
    viewer, widget = docked(make_napari_viewer)
    viewer.add_image(astronaut, name="astronaut")
    widget.k.value = 5
    run(qtbot, widget)
    fitted = viewer.layers["astronaut clusters K=5"]
    assert [c for c in widget.palette_from.choices if c is not None] == [fitted]
    target = viewer.add_image(coffee, name="coffee")
    widget.image.value = target
    widget.palette_from.value = fitted
    widget.k.value = 2  # ignored: the palette decides K
    run(qtbot, widget)
    applied = viewer.layers["coffee clusters K=5 (palette of astronaut)"]
    centers = np.asarray(fitted.metadata[METADATA_KEY]["centers"])
    expected = apply_palette(coffee, centers)
    np.testing.assert_array_equal(applied.data, expected.labels)
    np.testing.assert_allclose(applied.metadata[METADATA_KEY]["centers"], centers)
    assert isinstance(viewer.layers["coffee quantized K=5 (palette of astronaut)"], Image)
    assert isinstance(applied, Labels)
    np.testing.assert_array_equal(target.data, coffee)


def test_bad_inputs_are_notified(make_napari_viewer, qtbot, notifications, coffee):
    viewer, widget = docked(make_napari_viewer)
    gray = viewer.add_image(data.camera(), name="camera")
    other = viewer.add_image(data.camera()[:100], name="small")
    widget.image.value = gray
    widget.features.value = [other]
    widget.run_button.native.click()
    assert any("differ in shape" in m for m in notifications)
    widget.features.value = []
    widget.color_space.value = "lab"
    run(qtbot, widget)
    assert any("RGB" in m for m in notifications)
    widget.color_space.value = "rgb"
    widget.mask.value = viewer.add_labels(np.ones((10, 10), np.uint8), name="wrong")
    widget.run_button.native.click()
    assert any("draw the mask on the image's grid" in m for m in notifications)
    widget.mask.value = viewer.add_labels(np.zeros((512, 512), np.uint8), name="empty")
    run(qtbot, widget)
    assert any("no pixel to cluster" in m for m in notifications)
    assert not widget.running and [lyr.name for lyr in viewer.layers][:2] == ["camera", "small"]
    assert len(viewer.layers) == 4  # nothing half-built


def test_lazy_layer_gives_lazy_layers_and_exports(make_napari_viewer, qtbot, tmp_path, coffee):
    import dask.array as da
    import zarr

    viewer, widget = docked(make_napari_viewer)
    lazy = da.from_array(coffee, chunks=(100, 150, 3))
    source = viewer.add_image(lazy, name="slide", rgb=True)
    widget.image.value = source
    widget.k.value = 6
    run(qtbot, widget)
    clusters = viewer.layers["slide clusters K=6"]
    quantized = viewer.layers["slide quantized K=6"]
    assert isinstance(clusters.data, da.Array) and isinstance(quantized.data, da.Array)
    info = clusters.metadata[METADATA_KEY]
    assert info["lazy"] is True and info["sample_size"] == 1_000_000
    assert "lazy" in widget.status.value
    np.testing.assert_array_equal(clusters.data.compute(), quantize(coffee, 6).labels)
    assert source.data is lazy  # the source is untouched
    widget.export_path.value = tmp_path / "slide.zarr"
    widget.export_button.native.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    group = zarr.open_group(str(tmp_path / "slide.zarr"), mode="r")
    np.testing.assert_array_equal(group["labels/clusters/0"][:], clusters.data.compute())
    assert group.attrs["napari_kquant"]["params"]["k"] == 6
    assert widget.status.value.startswith("exported to")


def test_multiscale_layer_gives_multiscale_layers(make_napari_viewer, qtbot, astronaut):
    import dask.array as da

    viewer, widget = docked(make_napari_viewer)
    big = np.tile(astronaut, (2, 2, 1))
    levels = [da.from_array(big[:: 2**i, :: 2**i], chunks=(256, 256, 3)) for i in range(3)]
    source = viewer.add_image(levels, name="pyramid", multiscale=True, rgb=True)
    widget.image.value = source
    widget.k.value = 5
    run(qtbot, widget)
    clusters = viewer.layers["pyramid clusters K=5"]
    quantized = viewer.layers["pyramid quantized K=5"]
    assert clusters.multiscale and quantized.multiscale
    assert [lvl.shape for lvl in clusters.data] == [(1024, 1024), (512, 512), (256, 256)]
    assert [lvl.shape for lvl in quantized.data] == [lvl.shape for lvl in levels]
    assert clusters.metadata[METADATA_KEY]["fit_level"] == 2
    viewer.reset_view()
    viewer.screenshot(canvas_only=True)  # draws from the pyramid without loading level 0
