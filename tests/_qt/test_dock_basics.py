"""GUI basics of both docks: they fit a small screen, explain every field, cancel at once."""

import threading
import time

import numpy as np
import pytest
from magicgui.widgets import Container
from qtpy.QtCore import QThreadPool

from napari_kquant._napari.layers import METADATA_KEY

QUANTIZE = ("napari-kquant", "K-means quantization")
COMPARE = ("napari-kquant", "Compare K")
SMALL_SCREEN_DOCK_PX = 700  # 1366x768 minus napari's title, menu and status bars


def fields(container: Container):
    """Every input widget of a dock, those in its folded sections too."""
    for widget in [*container, *(w for s in container._sections for w in s)]:
        if isinstance(widget, Container):
            yield from fields(widget)
        elif widget is not getattr(container, "status", None):
            yield widget


@pytest.mark.parametrize("name", [QUANTIZE, COMPARE])
def test_each_dock_fits_a_1366x768_screen(make_napari_viewer, coffee, name):
    viewer = make_napari_viewer(show=True)
    viewer.add_image(coffee, name="coffee")
    dock, widget = viewer.window.add_plugin_dock_widget(*name)
    assert dock.minimumSizeHint().height() <= SMALL_SCREEN_DOCK_PX
    # the essential fields come first: image, K (and live), Run
    essentials = [widget.image, getattr(widget, "k", None) or widget.ks]
    if name == COMPARE:
        essentials.append(widget.display)
    else:
        essentials.append(widget.live.toggle)
    assert list(widget)[: len(essentials) + 1] == [*essentials, widget.run_button]


@pytest.mark.parametrize("unfolded", [False, True])
def test_both_docks_fit_together(make_napari_viewer, qtbot, coffee, unfolded):
    """Both docks open, every section folded or unfolded: napari's window may stay
    740 px tall (a 1366 x 768 laptop); long content scrolls inside each dock."""
    from superqt import QCollapsible

    viewer = make_napari_viewer(show=True)
    viewer.add_image(coffee, name="coffee")
    _, quantizer = viewer.window.add_plugin_dock_widget(*QUANTIZE)
    _, compare = viewer.window.add_plugin_dock_widget(*COMPARE)
    if unfolded:
        for widget in (quantizer, compare):
            for section in widget.native.findChildren(QCollapsible):
                section.expand(animate=False)
                assert section.isExpanded()
    qtbot.wait(20)
    window = viewer.window._qt_window
    assert window.minimumSizeHint().height() <= 740
    window.resize(1366, 740)
    qtbot.wait(20)
    assert window.height() <= 740
    # nothing is squashed: each dock's content keeps its full height and scrolls
    for widget in (quantizer, compare):
        content = widget.native.widget()
        assert content.height() >= content.minimumSizeHint().height()


def test_a_long_status_wraps_instead_of_widening_the_dock(make_napari_viewer, coffee):
    viewer = make_napari_viewer(show=True)
    viewer.add_image(coffee, name="coffee")
    dock, widget = viewer.window.add_plugin_dock_widget(*QUANTIZE)
    before = dock.minimumSizeHint().width()
    widget.status.value = "a very long message " * 30
    assert dock.minimumSizeHint().width() <= before


@pytest.mark.parametrize("name", [QUANTIZE, COMPARE])
def test_every_field_has_a_tooltip(make_napari_viewer, coffee, name):
    viewer = make_napari_viewer()
    viewer.add_image(coffee, name="coffee")
    _, widget = viewer.window.add_plugin_dock_widget(*name)
    missing = [w.name for w in fields(widget) if not (w.tooltip or "").strip()]
    assert missing == []
    # the automatic epsilon says so, and what it is
    assert widget.epsilon.native.text() == "auto"
    assert "0.001 of the value range" in widget.epsilon.tooltip


def test_with_layers_never_lists_the_chosen_image(make_napari_viewer):
    viewer = make_napari_viewer()
    a = viewer.add_image(np.zeros((20, 20), np.uint8), name="a")
    b = viewer.add_image(np.ones((20, 20), np.uint8), name="b")
    _, widget = viewer.window.add_plugin_dock_widget(*QUANTIZE)
    widget.image.value = a
    assert list(widget.features.choices) == [b]
    widget.image.value = b
    assert list(widget.features.choices) == [a]


def test_a_refusal_replaces_the_last_success_in_the_status(make_napari_viewer, qtbot, coffee):
    viewer = make_napari_viewer()
    viewer.add_image(coffee, name="coffee")
    _, widget = viewer.window.add_plugin_dock_widget(*QUANTIZE)
    widget.k.value = 3
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=30_000)
    assert widget.status.value.startswith("K=3")
    widget.k.value = 1000  # more colours than coffee's pixels have... refused by the core
    widget.image.value = viewer.add_image(coffee[:10, :10], name="tiny")
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=30_000)
    assert widget.status.value.startswith("refused:")
    assert "K=3" not in widget.status.value


def test_another_experiment_keeps_the_earlier_layers(make_napari_viewer, qtbot, coffee):
    viewer = make_napari_viewer()
    viewer.add_image(coffee, name="coffee")
    _, widget = viewer.window.add_plugin_dock_widget(*QUANTIZE)
    widget.k.value = 4
    for space in ("rgb", "lab", "rgb"):
        widget.color_space.value = space
        widget.run_button.native.click()
        qtbot.waitUntil(lambda: not widget.running, timeout=30_000)
    names = [layer.name for layer in viewer.layers]
    assert names == [
        "coffee",
        "coffee quantized K=4",
        "coffee clusters K=4",
        "coffee quantized K=4 (lab)",
        "coffee clusters K=4 (lab)",
    ]
    lab = viewer.layers["coffee clusters K=4 (lab)"].metadata[METADATA_KEY]
    assert lab["color_space"] == "lab"


def opencv_run_in_flight(make_napari_viewer, qtbot):
    """A viewer whose dock runs OpenCV's k-means on a 2048² noise image at K=16, 1.5 s in.

    That is inside the first ``cv2.kmeans`` call, which takes tens of seconds.
    """
    viewer = make_napari_viewer()
    noise = np.random.default_rng(0).integers(0, 256, (2048, 2048, 3), dtype=np.uint8)
    viewer.add_image(noise, name="noise")
    _, widget = viewer.window.add_plugin_dock_widget(*QUANTIZE)
    widget.method.value = "opencv"
    widget.k.value = 16
    widget.run_button.native.click()
    qtbot.wait(1_500)
    assert widget.running and widget.run_button.text == "Cancel"
    return viewer, widget


def test_cancel_stops_an_opencv_run_within_3_s(make_napari_viewer, qtbot):
    viewer, widget = opencv_run_in_flight(make_napari_viewer, qtbot)
    started = time.perf_counter()
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: widget.run_button.text == "Run", timeout=10_000)
    took = time.perf_counter() - started
    assert took < 3, f"Cancel took {took:.2f} s"
    assert widget.status.value == "cancelled"
    assert [layer.name for layer in viewer.layers] == ["noise"]
    assert QThreadPool.globalInstance().waitForDone(1_000)


def test_closing_the_viewer_mid_opencv_run_returns_within_3_s(make_napari_viewer, qtbot):
    threads_before = threading.active_count()
    viewer, _ = opencv_run_in_flight(make_napari_viewer, qtbot)
    started = time.perf_counter()
    viewer.close()
    took = time.perf_counter() - started
    assert took < 3, f"closing took {took:.2f} s"
    assert QThreadPool.globalInstance().activeThreadCount() == 0
    assert threading.active_count() <= threads_before
