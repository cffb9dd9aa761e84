"""Live preview in a real viewer: real key presses, the real dims slider, a timer on the loop."""

import time

import numpy as np
from qtpy.QtCore import Qt, QThreadPool, QTimer
from skimage import data

from napari_kquant._napari.layers import METADATA_KEY, live_names

WIDGET = ("napari-kquant", "K-means quantization")


def live_dock(make_napari_viewer, image, name, **kwargs):
    viewer = make_napari_viewer()
    viewer.add_image(image, name=name, **kwargs)
    _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
    return viewer, widget


class LoopWatch:
    """A 10 ms timer on the GUI thread: the longest gap between its ticks is the worst stall."""

    def __init__(self):
        self.ticks = [time.perf_counter()]
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))
        self.timer.start()

    def worst_ms(self) -> float:
        self.timer.stop()
        return 1000 * float(np.diff(self.ticks).max())


def type_k(qtbot, widget, text):
    """Select the K field's text and type ``text``, as a person does."""
    line = widget.k.native.lineEdit()
    line.setFocus()
    qtbot.keyClick(line, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClicks(line, text)


def settled(qtbot, widget):
    """Wait until a live result is shown and no live run is in flight."""
    qtbot.waitUntil(lambda: bool(widget.live.shown) and not widget.live.running, timeout=30_000)


def live_on_a_stack(make_napari_viewer, qtbot, k=3):
    """Two photos stacked ("pair"), live on at ``k``, its first result shown."""
    stack = np.stack([data.astronaut(), data.astronaut()[::-1, ::-1] // 2])
    viewer, widget = live_dock(make_napari_viewer, stack, "pair", rgb=True)
    widget.k.value = k
    widget.live.toggle.value = True
    settled(qtbot, widget)
    return viewer, widget


def live_clusters(viewer, name):
    return viewer.layers[live_names(name)[1]]


def test_typing_k_live_shows_only_the_latest_k(make_napari_viewer, qtbot):
    """Live on, K typed 4 -> 5 -> 6 within 300 ms: K=6 within 1 s, nothing older after it."""
    photo = data.retina()  # 1411 x 1411 RGB: 2 Mpx
    viewer, widget = live_dock(make_napari_viewer, photo, "retina")
    widget.live.toggle.native.click()  # live on: runs the current K (8)
    qtbot.waitUntil(lambda: bool(widget.live.shown), timeout=30_000)
    qtbot.waitUntil(lambda: not widget.live.running, timeout=30_000)
    layers_before = len(viewer.layers)
    clusters = live_clusters(viewer, "retina")
    watch = LoopWatch()
    started = time.perf_counter()
    for text in ("4", "5", "6"):
        type_k(qtbot, widget, text)
        qtbot.wait(60)
    typed = time.perf_counter() - started
    print(f"typed in {typed:.3f} s")
    assert typed < 0.3
    qtbot.waitUntil(lambda: widget.live.shown[-1][1] == 6, timeout=1_000)
    qtbot.waitUntil(lambda: not widget.live.running, timeout=5_000)
    qtbot.wait(300)  # anything still on its way would arrive now
    worst = watch.worst_ms()
    print(f"worst stall {worst:.0f} ms; shown {widget.live.shown}; latency {widget.live.latency}")
    shown_ks = [k for _, k, _ in widget.live.shown]
    assert shown_ks[-1] == 6 and 6 not in shown_ks[:-1]  # K=6 shown once, last
    assert widget.k.value == 6
    # the same two layers, updated in place
    assert len(viewer.layers) == layers_before
    assert live_clusters(viewer, "retina") is clusters
    assert clusters.metadata[METADATA_KEY]["k"] == 6
    assert len(np.unique(clusters.data)) == 6
    assert worst < 100, f"the event loop stalled {worst:.0f} ms"
    assert QThreadPool.globalInstance().waitForDone(5_000)  # no run left behind


def test_live_follows_the_dims_slider_on_a_stack(make_napari_viewer, qtbot):
    """On a stack live quantizes the plane shown; moving the slider re-runs on the new one."""
    viewer, _ = live_on_a_stack(make_napari_viewer, qtbot)
    clusters = live_clusters(viewer, "pair")
    assert clusters.data[0].any() and not clusters.data[1].any()  # only the plane shown
    viewer.dims.set_current_step(0, 1)  # the slider to the second photo
    qtbot.waitUntil(lambda: bool(clusters.data[1].any()), timeout=30_000)
    assert not clusters.data[0].any()
    assert clusters.metadata[METADATA_KEY]["plane"] == [1]


def test_a_large_image_shows_a_preview_then_the_full_result(make_napari_viewer, qtbot):
    """Above 4 Mpx: a preview fitted on the visible region first, then the full fit."""
    big = np.tile(data.astronaut(), (5, 4, 1))  # 2560 x 2048: 5.2 Mpx
    viewer, widget = live_dock(make_napari_viewer, big, "big")
    widget.k.value = 5
    widget.live.toggle.value = True
    qtbot.waitUntil(lambda: len(widget.live.shown) >= 2, timeout=30_000)
    (_, k1, preview1), (_, k2, preview2) = widget.live.shown[:2]
    assert (k1, preview1) == (5, True) and (k2, preview2) == (5, False)
    clusters = live_clusters(viewer, "big")
    assert clusters.data.shape == big.shape[:2]  # the same layer, full size, both times
    assert "preview" not in clusters.metadata[METADATA_KEY]


def test_live_is_off_for_lazy_layers(make_napari_viewer):
    import dask.array as da

    viewer, widget = live_dock(
        make_napari_viewer, da.from_array(data.astronaut(), chunks=256), "lazy", rgb=True
    )
    assert not widget.live.toggle.enabled
    assert "lazy" in widget.live.toggle.tooltip
    viewer.add_image(data.coffee(), name="photo")
    widget.image.value = viewer.layers["photo"]
    assert widget.live.toggle.enabled


def test_choosing_another_layer_gives_it_its_own_live_layers(make_napari_viewer, qtbot):
    """Live on an RGB photo, then a gray image chosen: its own live layers, the photo's kept."""
    viewer, widget = live_dock(make_napari_viewer, data.astronaut(), "astronaut")
    widget.k.value = 4
    widget.live.toggle.value = True
    settled(qtbot, widget)
    photo_clusters = live_clusters(viewer, "astronaut")
    before = photo_clusters.data.copy()
    viewer.add_image(data.camera(), name="camera")
    widget.image.value = viewer.layers["camera"]
    qtbot.waitUntil(lambda: live_names("camera")[1] in viewer.layers, timeout=30_000)
    qtbot.waitUntil(lambda: not widget.live.running, timeout=30_000)
    gray = live_clusters(viewer, "camera")
    assert gray.data.shape == data.camera().shape and gray.metadata[METADATA_KEY]["k"] == 4
    assert not viewer.layers[live_names("camera")[0]].rgb
    np.testing.assert_array_equal(photo_clusters.data, before)  # untouched


def test_removing_the_dock_stops_live(make_napari_viewer, qtbot):
    viewer, widget = live_on_a_stack(make_napari_viewer, qtbot)
    shown = len(widget.live.shown)
    viewer.window.remove_dock_widget(widget.native)
    viewer.dims.set_current_step(0, 1)
    qtbot.wait(500)
    assert len(widget.live.shown) == shown and not widget.live.running


def test_live_through_a_session(make_napari_viewer, qtbot):
    """Layers added and removed, the source renamed, Compare K run, the theme switched:
    live goes on updating the same two live layers."""
    viewer, widget = live_on_a_stack(make_napari_viewer, qtbot)
    clusters = live_clusters(viewer, "pair")
    viewer.add_image(data.camera(), name="other")
    viewer.add_labels(np.zeros((512, 512), np.uint8), name="scratch")
    viewer.layers.remove("scratch")
    viewer.layers["pair"].name = "renamed pair"
    widget.image.value = viewer.layers["renamed pair"]
    _, compare = viewer.window.add_plugin_dock_widget("napari-kquant", "Compare K")
    compare.image.value = viewer.layers["other"]
    compare.ks.value = "2..3"
    compare.run_button.native.click()
    qtbot.waitUntil(lambda: not compare.running, timeout=60_000)
    viewer.theme = "light" if viewer.theme == "dark" else "dark"
    type_k(qtbot, widget, "5")
    qtbot.waitUntil(lambda: widget.live.shown[-1][1] == 5, timeout=30_000)
    settled(qtbot, widget)
    shown = viewer.layers[live_names("renamed pair")[1]]
    assert shown.metadata[METADATA_KEY]["k"] == 5
    assert set(np.unique(shown.data).tolist()) - {0} == {1, 2, 3, 4, 5}
    assert clusters in viewer.layers  # the earlier name's live layers stay, untouched
