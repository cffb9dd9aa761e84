"""The npe2 palette writer: File > Save Selected Layers on a clusters layer."""

from pathlib import Path

import numpy as np
import pytest

from napari_kquant import apply_palette, load_palette, quantize_layer
from napari_kquant._napari.layers import METADATA_KEY


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


@pytest.mark.parametrize("suffix", [".json", ".csv", ".gpl"])
def test_a_saved_palette_opens_in_napari_for_palette_from(
    make_napari_viewer, tmp_path, coffee, suffix
):
    from napari_kquant import apply_layer_palette, quantize, save_palette

    fitted = quantize(coffee, 4, seed=0)
    path = save_palette(tmp_path / f"coffee{suffix}", fitted)
    viewer = make_napari_viewer()
    viewer.add_image(coffee, name="coffee")
    (layer,) = viewer.open(str(path), plugin="napari-kquant")
    assert layer.name == "coffee palette K=4"
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    widget.reset_choices()
    assert layer in widget.palette_from.choices
    _, clusters = apply_layer_palette(viewer, layer, "coffee")
    expected = fitted.labels
    if suffix == ".gpl":  # GIMP palettes hold rounded colours
        from napari_kquant import apply_palette

        expected = apply_palette(coffee, np.rint(fitted.centers)).labels
    np.testing.assert_array_equal(clusters.data, expected)


def test_the_palette_reader_declines_other_csv_files(tmp_path):
    from napari_kquant._napari.reader import get_reader

    points = tmp_path / "points.csv"
    points.write_text("index,axis-0,axis-1\n0,10.0,20.0\n")
    assert get_reader(str(points)) is None
    assert get_reader(str(tmp_path / "missing.json")) is None


def save_selected_as_the_dialog_proposes(viewer, folder, monkeypatch):
    """File > Save Selected Layers, accepting the dialog's proposed name and file type.

    napari's own dialog code runs; only the file dialog itself is answered: the
    layer's name in ``folder`` and the first (default) file type, as a user who
    presses Save does.
    """
    from napari._qt import qt_viewer

    proposed = {}

    def answer(dialog, parent, caption, directory, filter, options):
        proposed["name"] = Path(directory).name
        proposed["type"] = filter.split(";;")[0]
        return str(folder / proposed["name"]), proposed["type"]

    monkeypatch.setattr(qt_viewer.QFileDialog, "getSaveFileName", answer)
    monkeypatch.setattr(qt_viewer, "get_save_history", lambda: [str(folder)])
    viewer.window._qt_viewer._save_layers_dialog(selected=True)
    return proposed["name"], proposed["type"]


def test_save_selected_layers_with_the_proposed_name_and_type(
    make_napari_viewer, tmp_path, coffee, monkeypatch
):
    from skimage.io import imread

    viewer = make_napari_viewer()
    # napari names a layer opened from cells.ome.tif "cells.ome": a dot in the proposed
    # file name would read as an extension no writer knows
    viewer.add_image(coffee, name="cells.ome")
    image, clusters = quantize_layer(viewer, "cells.ome", k=4, seed=0)
    assert clusters.name == "cells_ome clusters K=4"
    for layer in (clusters, image):
        viewer.layers.selection = {layer}
        name, file_type = save_selected_as_the_dialog_proposes(viewer, tmp_path, monkeypatch)
        # the default type is the first writer npe2 lists, which depends on the install
        # order of the plugins: napari's TIFF, or (labels) our palette as CSV
        if file_type.startswith("napari-kquant"):
            saved = load_palette(tmp_path / f"{name}.csv")
            np.testing.assert_allclose(saved.centers, clusters.metadata[METADATA_KEY]["centers"])
        else:
            np.testing.assert_array_equal(imread(tmp_path / f"{name}.tif"), layer.data)


def test_the_writer_declines_a_labels_layer_without_a_palette(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.add_labels(np.array([[0, 1], [2, 2]], np.uint8), name="hand")
    with pytest.warns(UserWarning, match="'hand' holds no napari-kquant palette"):
        written = viewer.layers.save(str(tmp_path / "hand.csv"))
    assert written == [] and list(tmp_path.iterdir()) == []
