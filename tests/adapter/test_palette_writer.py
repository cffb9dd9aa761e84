"""The npe2 palette writer: File > Save Selected Layers on a clusters layer."""

import numpy as np

from napari_kquant import apply_palette, load_palette, quantize_layer


def test_napari_writer_saves_the_clusters_palette(make_napari_viewer, tmp_path, coffee):
    viewer = make_napari_viewer()
    viewer.add_image(coffee, name="coffee")
    _, clusters = quantize_layer(viewer, "coffee", k=4)
    viewer.layers.selection.active = clusters
    written = viewer.layers.save(str(tmp_path / "pal.json"), selected=True, plugin="napari-kquant")
    assert written == [str(tmp_path / "pal.json")]
    centers = np.asarray(clusters.metadata["napari_kquant"]["centers"])
    np.testing.assert_allclose(load_palette(tmp_path / "pal.json"), centers)
    # and the palette survives in the layer's metadata for scripts
    again = apply_palette(coffee, clusters.metadata["napari_kquant"]["centers"])
    np.testing.assert_array_equal(again.labels, clusters.data)
