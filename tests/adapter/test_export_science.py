"""Exports that keep the science: NGFF 0.5 stores validated by a tool that did not write them.

ome-zarr-models (pydantic models of the NGFF 0.5 schemas) validates every export; the
source's calibration (scale, translation, units) and axis meanings survive, from the
API and from the dock with a real viewer.
"""

import numpy as np
import pytest
import zarr
from ome_zarr_models import open_ome_zarr
from ome_zarr_models.v05.image import Image as NgffImage
from ome_zarr_models.v05.image_label import ImageLabel
from ome_zarr_models.v05.labels import Labels
from skimage import data

from napari_kquant import export_zarr, quantize

RNG = np.random.default_rng(0)
CASES = {
    "rgb": lambda: quantize(data.coffee()[::2, ::2], 4, seed=0),
    "gray-12-bit": lambda: quantize(data.camera().astype(np.uint16) * 16, 5, seed=0),
    "features-cyx": lambda: quantize(RNG.random((2, 64, 64)), 4, channel_axis=0, seed=0),
    "tcyx": lambda: quantize(RNG.random((3, 2, 32, 32)), 4, channel_axis=1, seed=0),
    "t-yx-rgb": lambda: quantize(RNG.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8), 4, seed=0),
    "masked": lambda: quantize(
        data.coffee()[::4, ::4], 3, mask=data.coffee()[::4, ::4, 0] > 100, seed=0
    ),
    "lazy-multiscale": lambda: quantize(
        [data.astronaut(), data.astronaut()[::2, ::2], data.astronaut()[::4, ::4]], 4, seed=0
    ),
}
TIME_SERIES = {"tcyx", "t-yx-rgb"}


def run_and_export(qtbot, widget, path):
    """Click Run, wait, then export to ``path`` from the dock and wait for the store."""
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=30_000)
    widget.export_path.value = path
    widget.export_button.native.click()
    qtbot.waitUntil(lambda: path.exists() and not widget.running, timeout=30_000)


def validated(path):
    """The store's image, labels group and label image, as ome-zarr-models reads them."""
    image = open_ome_zarr(zarr.open_group(str(path), mode="r"))
    labels = open_ome_zarr(zarr.open_group(str(path / "labels"), mode="r"))
    label = open_ome_zarr(zarr.open_group(str(path / "labels" / "clusters"), mode="r"))
    assert isinstance(image, NgffImage)
    assert isinstance(labels, Labels)
    assert isinstance(label, ImageLabel)
    return image, label


@pytest.mark.parametrize("case", CASES)
def test_every_export_is_valid_ngff_0_5(tmp_path, case):
    result = CASES[case]()
    names = ("t", "y", "x") if case in TIME_SERIES else None
    path = export_zarr(result, tmp_path / f"{case}.ome.zarr", axis_names=names)
    image, _ = validated(path)
    group = zarr.open_group(str(path), mode="r")
    axes = [axis.name for axis in image.attributes.ome.multiscales[0].axes]
    for level in image.attributes.ome.multiscales[0].datasets:
        assert group[level.path].metadata.dimension_names == tuple(axes)
    if case in TIME_SERIES:  # time first, then channels, then space
        assert axes == ["t", "c", "y", "x"]
        assert image.attributes.ome.multiscales[0].axes[0].type == "time"
    labels0 = np.asarray(group["labels/clusters/0"])
    first = result.labels[0] if isinstance(result.labels, list) else result.labels
    np.testing.assert_array_equal(labels0, np.asarray(first))


def test_the_calibration_survives_an_export(tmp_path):
    result = quantize(data.coffee(), 3, seed=0)
    path = export_zarr(
        result, tmp_path / "c.ome.zarr", scale=(0.5, 0.25), translate=(10, 20), units=("µm", "µm")
    )
    image, label = validated(path)
    for model in (image, label):
        multiscale = model.attributes.ome.multiscales[0]
        spatial = [axis for axis in multiscale.axes if axis.type == "space"]
        assert [axis.unit for axis in spatial] == ["micrometer", "micrometer"]
        scale, translation = multiscale.datasets[0].coordinateTransformations
        assert list(scale.scale)[-2:] == [0.5, 0.25]
        assert list(translation.translation)[-2:] == [10.0, 20.0]


def test_the_dock_exports_the_layers_calibration(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    frames = np.stack([np.roll(data.camera()[::4, ::4], 5 * i, axis=1) for i in range(3)])
    viewer.add_image(
        frames,
        name="frames",
        scale=(2.0, 0.5, 0.25),
        translate=(0, 10, 20),
        units=("s", "µm", "µm"),
        axis_labels=("t", "y", "x"),
    )
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    widget.image.value = viewer.layers["frames"]
    widget.k.value = 3
    run_and_export(qtbot, widget, tmp_path / "frames.ome.zarr")
    _, label = validated(tmp_path / "frames.ome.zarr")
    multiscale = label.attributes.ome.multiscales[0]
    assert [(a.name, a.type, a.unit) for a in multiscale.axes] == [
        ("t", "time", "second"),
        ("y", "space", "micrometer"),
        ("x", "space", "micrometer"),
    ]
    scale, translation = multiscale.datasets[0].coordinateTransformations
    assert list(scale.scale) == [2.0, 0.5, 0.25]
    assert list(translation.translation) == [0.0, 10.0, 20.0]


def _written_colors(path) -> dict:
    attrs = zarr.open_group(str(path / "labels" / "clusters"), mode="r").attrs["ome"]
    return {c["label-value"]: c["rgba"] for c in attrs["image-label"]["colors"]}


def test_gray_and_feature_labels_are_written_in_visible_distinct_colours(tmp_path):
    gray = quantize(data.camera().astype(np.uint16) * 16, 5, seed=0)  # 12-bit in uint16
    colours = _written_colors(export_zarr(gray, tmp_path / "g.ome.zarr"))
    brightness = sorted(rgba[0] for rgba in colours.values())
    assert brightness[0] == 0 and brightness[-1] == 255  # the full grey ramp, not 0..16
    assert len(set(brightness)) == 5
    features = quantize(RNG.random((2, 64, 64)), 4, channel_axis=0, seed=0)
    colours = _written_colors(export_zarr(features, tmp_path / "f.ome.zarr"))
    assert len({tuple(rgba) for rgba in colours.values()}) == 4
    assert not any(rgba[0] == rgba[1] == rgba[2] for rgba in colours.values())  # not greys


def test_the_dock_writes_the_colours_napari_shows(make_napari_viewer, qtbot, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_image(data.camera().astype(np.uint16) * 16, name="cam", colormap="magma")
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    widget.image.value = viewer.layers["cam"]
    widget.k.value = 4
    run_and_export(qtbot, widget, tmp_path / "cam.ome.zarr")
    clusters = viewer.layers["cam clusters K=4"]
    written = _written_colors(tmp_path / "cam.ome.zarr")
    for label in range(1, 5):
        shown = np.asarray(clusters.colormap.map(label)).reshape(-1)[:4]
        np.testing.assert_allclose(np.asarray(written[label]) / 255, shown, atol=1 / 255)


def test_a_dock_export_reopens_over_its_source_in_napari_ome_zarr(
    make_napari_viewer, qtbot, tmp_path
):
    """Calibrated (t, y, x) source -> dock -> export -> napari-ome-zarr: scale, labels, colours."""
    viewer = make_napari_viewer()
    frames = np.stack([np.roll(data.camera()[::4, ::4], 5 * i, axis=1) for i in range(3)])
    placement = {
        "scale": (2.0, 0.5, 0.25),
        "translate": (0.0, 10.0, 20.0),
        "units": ("s", "µm", "µm"),
        "axis_labels": ("t", "y", "x"),
    }
    source = viewer.add_image(frames.astype(np.uint16) * 16, name="frames", **placement)
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    widget.image.value = source
    widget.k.value = 4
    run_and_export(qtbot, widget, tmp_path / "frames.ome.zarr")
    reopened = viewer.open(str(tmp_path / "frames.ome.zarr"), plugin="napari-ome-zarr")
    labels = next(layer for layer in reopened if layer._type_string == "labels")
    np.testing.assert_allclose(labels.scale, source.scale)
    # napari-ome-zarr 0.10 reads only the scale: the translation and units are in the
    # store (checked against the NGFF models above), not passed on by that reader
    _, label = validated(tmp_path / "frames.ome.zarr")
    transforms = label.attributes.ome.multiscales[0].datasets[0].coordinateTransformations
    assert list(transforms[1].translation) == list(source.translate)
    ours = viewer.layers["frames clusters K=4"]
    data0 = labels.data[0] if labels.multiscale else labels.data
    np.testing.assert_array_equal(np.asarray(data0), ours.data)
    for label in range(1, 5):  # visible, and the colours napari showed before
        colour = np.asarray(labels.colormap.map(label)).reshape(-1)
        np.testing.assert_allclose(
            colour, np.asarray(ours.colormap.map(label)).reshape(-1), atol=1 / 255
        )
    assert max(np.asarray(labels.colormap.map(4)).reshape(-1)[:3]) > 0.5


def test_an_rgb_export_reopens_as_red_green_and_blue(make_napari_viewer, tmp_path, coffee):
    path = export_zarr(quantize(coffee, 5, seed=0), tmp_path / "c.ome.zarr")
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-ome-zarr")
    images = [layer for layer in layers if layer._type_string == "image"]
    assert [layer.colormap.name for layer in images] == ["red", "green", "blue"]
    assert [layer.blending for layer in images][1:] == ["additive", "additive"]


def test_a_labels_only_export_opens_in_napari_ome_zarr(make_napari_viewer, tmp_path, coffee):
    result = quantize(coffee, 4, seed=0)
    path = export_zarr(result, tmp_path / "only.ome.zarr", image=False)
    validated(path)
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-ome-zarr")
    labels = next(layer for layer in layers if layer._type_string == "labels")
    data0 = labels.data[0] if labels.multiscale else labels.data
    np.testing.assert_array_equal(np.asarray(data0), result.labels)
