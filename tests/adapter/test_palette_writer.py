"""The npe2 palette writer: File > Save Selected Layers on a clusters layer."""

import numpy as np
import pytest

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


def test_the_writer_replaces_a_file_only_after_napaaris_confirmation(make_napari_viewer, tmp_path):
    import os

    from skimage import data

    viewer = make_napari_viewer()
    viewer.add_image(data.coffee()[::4, ::4], name="coffee")
    _, clusters = quantize_layer(viewer, "coffee", k=3)
    viewer.layers.selection.active = clusters
    thesis = tmp_path / "thesis.txt"
    thesis.write_text("precious")
    os.symlink("thesis.txt", tmp_path / "link.json")
    # a link is never written through: napari reports the writer's refusal, saves nothing
    with pytest.warns(UserWarning, match="not a valid writer"):
        written = viewer.layers.save(
            str(tmp_path / "link.json"), selected=True, plugin="napari-kquant"
        )
    assert written == [] and thesis.read_text() == "precious"
    assert (tmp_path / "link.json").is_symlink()
    (tmp_path / "old.json").write_text("{}")  # napari's dialog asked before this save
    viewer.layers.save(str(tmp_path / "old.json"), selected=True, plugin="napari-kquant")
    assert load_palette(tmp_path / "old.json").k == 3
