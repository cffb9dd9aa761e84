"""An exported result opens in napari through napari-ome-zarr, its labels coloured."""

import numpy as np
import pytest

from napari_kquant import export_zarr, quantize


def test_napari_ome_zarr_opens_the_export_coloured(make_napari_viewer, tmp_path, coffee):
    pytest.importorskip("napari_ome_zarr")
    result = quantize(coffee, 5, seed=0)
    path = export_zarr(result, tmp_path / "coffee-k5.ome.zarr")
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-ome-zarr")
    images = [layer for layer in layers if layer._type_string == "image"]
    labels = next(layer for layer in layers if layer._type_string == "labels")
    data = labels.data[0] if labels.multiscale else labels.data
    np.testing.assert_array_equal(np.asarray(data), result.labels)
    for value in range(1, 6):
        np.testing.assert_allclose(
            labels.colormap.map(value)[:3], np.rint(result.centers[value - 1]) / 255, atol=1e-6
        )
    # the colour axis is OME-Zarr's channel axis: napari-ome-zarr shows a layer per channel
    channels = [np.asarray(i.data[0] if i.multiscale else i.data) for i in images]
    np.testing.assert_array_equal(np.stack(channels, axis=-1), result.image)
