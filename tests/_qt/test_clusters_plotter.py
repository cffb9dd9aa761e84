"""napari-clusters-plotter, the main consumer of labels features, on our result layers."""

import numpy as np
import pytest

from napari_kquant import quantize_layer


@pytest.fixture
def plotted(make_napari_viewer, coffee):
    """A K=4 clusters layer of coffee, selected in a docked plotter with two centre axes."""
    pytest.importorskip("napari_clusters_plotter")
    from napari_clusters_plotter._new_plotter_widget import PlotterWidget

    viewer = make_napari_viewer()
    viewer.add_image(coffee, name="coffee")
    widget = PlotterWidget(viewer)
    viewer.window.add_dock_widget(widget)
    _, clusters = quantize_layer(viewer, "coffee", k=4, seed=0)
    viewer.layers.selection.active = clusters
    widget.x_axis = "center_r"
    widget.y_axis = "center_g"
    return viewer, widget, clusters


def test_the_plotter_plots_our_rows_and_selects_a_cluster(plotted):
    _, widget, clusters = plotted
    plotted_points = widget.plotting_widget.active_artist.data
    table = clusters.features
    np.testing.assert_allclose(
        plotted_points[1:], table[["center_r", "center_g"]].iloc[1:].to_numpy(float)
    )
    # picking label K on the canvas marks row K: the row of label K (no IndexError)
    for label in (4, 1):
        clusters.selected_label = label
        chosen = np.asarray(clusters.features["SELECTED_LAYER_CLUSTER_ID"]).astype(int)
        assert chosen.tolist() == [int(v == label) for v in range(5)]


def test_a_rerun_with_the_plotter_open_updates_the_layer_whole(plotted):
    viewer, widget, clusters = plotted
    widget.y_axis = "count"
    _, again = quantize_layer(viewer, "coffee", k=4, seed=5, init="random", attempts=1)
    assert again is clusters
    palette = np.asarray(again.metadata["napari_kquant"]["centers"])
    # the centre as the uint8 quantized image holds it
    np.testing.assert_array_equal(
        again.features[["center_r", "center_g", "center_b"]].iloc[1:], np.rint(palette)
    )
    assert again.features["count"].iloc[1:].tolist() == [
        int((again.data == v).sum()) for v in range(1, 5)
    ]
