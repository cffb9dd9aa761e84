"""The Compare K dock widget and sweep_layer() in a real napari viewer."""

import numpy as np
import pytest
from napari.layers import Image, Labels

from napari_kquant._napari.layers import METADATA_KEY, grid, stack_k_at, sweep_layer, text_overlay

WIDGET = ("napari-kquant", "Compare K")


def dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
    return widget


def run_sweep(qtbot, widget, ks="2..6", display="layers"):
    widget.ks.value = ks
    widget.display.value = display
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)


def test_one_layer_pair_per_k(make_napari_viewer, qtbot, coffee):
    viewer = make_napari_viewer()
    source = viewer.add_image(coffee, name="coffee", scale=(2, 3))
    widget = dock(viewer)
    run_sweep(qtbot, widget)
    names = [layer.name for layer in viewer.layers]
    for k in range(2, 7):
        assert f"coffee quantized K={k}" in names and f"coffee clusters K={k}" in names
        clusters = viewer.layers[f"coffee clusters K={k}"]
        assert clusters.data.max() == k
        np.testing.assert_allclose(clusters.scale, source.scale)
    assert len(viewer.layers) == 11
    # the plot holds one point per K; when the sweep ends the elbow K is shown
    assert list(widget.plot.line.get_xdata()) == [2, 3, 4, 5, 6]
    assert widget.plot.elbow in range(2, 7)
    assert widget.shown_k == widget.plot.elbow == widget.k_choice.value
    assert len(widget.plot.palette.patches) == widget.shown_k
    # re-run updates in place
    run_sweep(qtbot, widget)
    assert len(viewer.layers) == 11
    # choosing K shows that K's pair only
    widget.k_choice.value = 4
    visible = {layer.name for layer in viewer.layers if layer.visible and layer is not source}
    assert visible == {"coffee quantized K=4", "coffee clusters K=4"}
    # grid view for side by side comparison
    widget.grid_button.native.click()
    assert grid(viewer).enabled
    widget.grid_button.native.click()
    assert not grid(viewer).enabled


def test_stacked_layer_with_a_k_axis(make_napari_viewer, qtbot, coffee):
    viewer = make_napari_viewer()
    viewer.add_image(coffee, name="coffee")
    widget = dock(viewer)
    run_sweep(qtbot, widget, "2..6", display="stack")
    image = viewer.layers["coffee quantized K sweep"]
    labels = viewer.layers["coffee clusters K sweep"]
    assert isinstance(image, Image) and isinstance(labels, Labels)
    assert image.data.shape == (5, *coffee.shape)
    assert labels.data.shape == (5, *coffee.shape[:2])
    # the slider's label reads the K it shows
    assert viewer.dims.axis_labels[0] == f"K={widget.shown_k}"
    assert image.axis_labels[0] == "K"
    meta = labels.metadata[METADATA_KEY]
    assert meta["ks"] == [2, 3, 4, 5, 6]
    # slider position <-> K, and each K keeps its own label values and colours
    for index, k in enumerate(meta["ks"]):
        viewer.dims.set_current_step(0, index)
        assert stack_k_at(labels, viewer) == k
        assert text_overlay(viewer).text.endswith(f"K={k}")
        offset = meta["offsets"][index]
        values = np.unique(labels.data[index])
        np.testing.assert_array_equal(values, np.arange(offset + 1, offset + k + 1))
        centers = np.asarray(meta["centers"][str(k)])
        np.testing.assert_allclose(labels.colormap.map(offset + 1)[:3], centers[0] / 255, atol=1e-6)
    rows = labels.features[labels.features["k"] == 4]
    assert rows["label"].tolist() == [1, 2, 3, 4]
    # choosing K in the widget moves the slider
    widget.k_choice.value = 3
    assert viewer.dims.current_step[0] == 1
    # re-run updates in place
    run_sweep(qtbot, widget, "2..6", display="stack")
    assert len(viewer.layers) == 3


def test_cancel_after_the_first_k_keeps_finished_layers(make_napari_viewer, qtbot, astronaut):
    viewer = make_napari_viewer()
    viewer.add_image(astronaut, name="astronaut")
    widget = dock(viewer)
    widget.method.value = "opencv"
    widget.ks.value = "2..12"
    first = []

    def cancel_after_first(result):
        first.append(result)
        if len(first) == 1:
            widget.run_button.native.click()  # the button reads "Cancel"

    widget.run_button.native.click()
    widget._worker.yielded.connect(cancel_after_first)
    qtbot.waitUntil(lambda: not widget.running, timeout=120_000)
    qtbot.wait(500)  # results already queued must not arrive after the cancel
    done = [r.k for r in widget.results]
    assert done == [2]
    assert widget.status.value == "cancelled" and widget.run_button.text == "Run sweep"
    names = [layer.name for layer in viewer.layers]
    for k in done:
        assert f"astronaut clusters K={k}" in names
    # no half-made layers: every result layer belongs to a finished K
    assert len(names) == 1 + 2 * len(done)
    assert list(widget.plot.line.get_xdata()) == done


def test_bad_k_values_are_a_notification(make_napari_viewer, qtbot, coffee):
    from napari.utils.notifications import notification_manager

    seen = []
    notification_manager.notification_ready.connect(lambda e: seen.append(str(e.message)))
    viewer = make_napari_viewer()
    viewer.add_image(coffee, name="coffee")
    widget = dock(viewer)
    widget.ks.value = "8..2"
    widget.run_button.native.click()
    assert not widget.running
    assert any("empty" in message for message in seen)
    assert widget.status.value.startswith("refused")
    # huge ranges are refused at once, on the GUI thread, without freezing it
    import time

    for ks in ("2..30000000", "2..1000000000"):
        widget.ks.value = ks
        started = time.perf_counter()
        widget.run_button.native.click()
        assert time.perf_counter() - started < 1
        assert not widget.running
    assert sum("limit of 1024" in message for message in seen) == 2


@pytest.mark.parametrize("display", ["layers", "stack"])
def test_sweep_layer_from_a_script(make_napari_viewer, coffee, display):
    viewer = make_napari_viewer()
    viewer.add_image(coffee, name="coffee")
    shown = sweep_layer(viewer, "coffee", [2, 4], display=display, seed=1)
    if display == "layers":
        assert [layer.name for layer in shown] == [
            "coffee quantized K=2",
            "coffee clusters K=2",
            "coffee quantized K=4",
            "coffee clusters K=4",
        ]
    else:
        assert [layer.data.shape[0] for layer in shown] == [2, 2]


def test_two_channels_compared_over_k_then_one_k_kept_and_exported(
    make_napari_viewer, qtbot, tmp_path
):
    """Two fluorescence channels swept together in Compare K; the chosen K kept and
    exported from the quantization dock."""
    import zarr
    from skimage import data

    from napari_kquant import sweep

    # two channels of a stained tissue section, as (channel, y, x)
    cells = np.moveaxis(data.immunohistochemistry()[::3, ::3, ::2], -1, 0)
    viewer = make_napari_viewer()
    membrane, nuclei = viewer.add_image(cells, channel_axis=0, name=["membrane", "nuclei"])
    widget = dock(viewer)
    widget.image.value = membrane
    widget.features.value = [nuclei]
    widget.seed.value = 0
    run_sweep(qtbot, widget, "2..5", display="stack")
    assert [r.k for r in widget.results] == [2, 3, 4, 5]
    stacked = widget._stacked[-1]
    assert stacked.name == "membrane+nuclei clusters K sweep"
    assert {"center_membrane", "center_nuclei"} <= set(stacked.features.columns)
    widget.k_choice.value = 3
    widget.keep_button.native.click()
    kept = viewer.layers.selection.active
    assert kept.name == "membrane+nuclei clusters K=3"
    # the sweep's own K=3 (warm-started from K=2), as napari_kquant.sweep gives it
    swept = sweep(np.stack([cells[0], cells[1]], -1), [2, 3, 4, 5], channel_axis=-1, seed=0)
    np.testing.assert_array_equal(kept.data, swept[3].labels)
    # export it from the quantization dock: the selected layer's result
    _, quantizer = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    quantizer.export_path.value = tmp_path / "not-a-store"
    quantizer.export_button.native.click()
    assert "ending in .zarr" in quantizer.status.value
    quantizer.export_path.value = tmp_path / "k3.zarr"
    quantizer.export_button.native.click()
    qtbot.waitUntil(lambda: not quantizer.running, timeout=60_000)
    store = zarr.open_group(tmp_path / "k3.zarr", mode="r")
    np.testing.assert_array_equal(store["labels/clusters/0"][:], kept.data)


def test_palette_from_fixes_k(make_napari_viewer, qtbot, coffee):
    from napari_kquant import quantize_layer

    viewer = make_napari_viewer()
    viewer.add_image(coffee, name="coffee")
    _, clusters = quantize_layer(viewer, "coffee", k=5, seed=0)
    _, quantizer = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    quantizer.k.value = 12
    quantizer.palette_from.reset_choices()
    quantizer.palette_from.value = clusters
    assert not quantizer.k.enabled and quantizer.k.value == 5
    assert quantizer.k.label == "K (the palette's)"
    quantizer.palette_from.value = None
    assert quantizer.k.enabled and quantizer.k.label == "K"
