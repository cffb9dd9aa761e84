"""Compare K names one K everywhere, driven with real key presses and mouse clicks.

The K slider is napari's own slider widget, moved with the keyboard; the plot is
clicked and hovered with QTest at the pixel of a point, as a person would.
"""

import pytest
from qtpy.QtCore import QPoint, Qt
from qtpy.QtTest import QTest

from napari_kquant._napari.layers import METADATA_KEY as KEY
from napari_kquant._napari.layers import stack_k_at, text_overlay

WIDGET = ("napari-kquant", "Compare K")
KS = [2, 3, 4, 5, 6]


@pytest.fixture
def swept(make_napari_viewer, qtbot, coffee, request):
    """A shown viewer with Compare K docked after a sweep 2..6 (display: the param)."""
    viewer = make_napari_viewer(show=True)
    viewer.add_image(coffee[::2, ::2], name="coffee")
    _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
    widget.ks.value = "2..6"
    widget.display.value = request.param
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    qtbot.wait(50)
    return viewer, widget


def stated_ks(viewer, widget) -> set:
    """Every K the viewer and the panel state (one element when they agree)."""
    plot = widget.plot
    marker_k = int(plot.marker.get_xdata()[0])
    palette_k = int(plot.palette.get_title().split("K=")[1].split()[0])
    stated = {widget.shown_k, widget.k_choice.value, marker_k, palette_k, len(plot.palette.patches)}
    if widget.display.value == "stack":
        stacked = next(layer for layer in viewer.layers if "ks" in layer.metadata.get(KEY, {}))
        stated.add(stack_k_at(stacked, viewer))
        stated.add(int(text_overlay(viewer).text.rsplit("K=", 1)[1]))
        axis = viewer.dims.ndim - stacked.ndim
        stated.add(int(viewer.dims.axis_labels[axis].split("K=")[1]))  # the slider's label
    else:
        visible = [
            layer.metadata[KEY]["k"]
            for layer in viewer.layers
            if layer.visible and "k" in layer.metadata.get(KEY, {})
        ]
        stated.update(visible)
        assert len(visible) == 2  # the quantized image and the clusters of one K
    return stated


def click_point(qtbot, widget, k):
    """A real left click at the pixel where the curve's point of ``k`` is drawn."""
    canvas = widget.plot.canvas
    canvas.draw()
    x, y = widget.plot.point_of(k)
    ratio = canvas.devicePixelRatioF()
    position = QPoint(round(x / ratio), round(canvas.height() - y / ratio))
    QTest.mouseClick(canvas, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, position)
    qtbot.wait(10)
    return position


@pytest.mark.parametrize("swept", ["stack", "layers"], indirect=True)
def test_after_a_sweep_everything_names_the_elbow_k(swept):
    viewer, widget = swept
    assert stated_ks(viewer, widget) == {widget.plot.elbow}


@pytest.mark.parametrize("swept", ["stack"], indirect=True)
def test_moving_the_k_slider_moves_the_panel(swept, qtbot):
    viewer, widget = swept
    slider = viewer.window._qt_viewer.dims.slider_widgets[0].slider
    slider.setFocus()
    # to the first K with the keyboard, then one K at a time to the last (a Qt scroll
    # bar's arrow keys may be inverted: find the one that steps forward)
    QTest.keyClick(slider, Qt.Key.Key_Home)
    assert stated_ks(viewer, widget) == {2}
    forward = Qt.Key.Key_Right
    QTest.keyClick(slider, forward)
    if slider.value() == 0:
        forward = Qt.Key.Key_Left
        QTest.keyClick(slider, forward)
    assert stated_ks(viewer, widget) == {3}
    for k in KS[2:]:
        QTest.keyClick(slider, forward)
        assert stated_ks(viewer, widget) == {k}
    QTest.keyClick(slider, Qt.Key.Key_Home)
    assert stated_ks(viewer, widget) == {2}


@pytest.mark.parametrize("swept", ["stack", "layers"], indirect=True)
def test_a_click_on_a_point_shows_that_k(swept, qtbot):
    viewer, widget = swept
    for k in (KS[-1], KS[0], 4):
        click_point(qtbot, widget, k)
        assert stated_ks(viewer, widget) == {k}
    if widget.display.value == "stack":
        assert viewer.dims.current_step[0] == KS.index(4)


@pytest.mark.parametrize("swept", ["stack"], indirect=True)
def test_choosing_k_in_the_list_moves_the_slider(swept):
    viewer, widget = swept
    combo = widget.k_choice.native
    combo.setCurrentIndex(combo.findText("3"))  # what a choice in the drop-down does
    assert stated_ks(viewer, widget) == {3}
    assert viewer.dims.current_step[0] == 1


def move_mouse(canvas, position: QPoint):
    """A mouse-move event delivered to the canvas by Qt, as moving the pointer sends.

    (QTest.mouseMove maps through the screen and lands elsewhere in a docked widget
    under Xvfb; the event itself is the one Qt sends a widget under the pointer.)
    """
    from qtpy.QtCore import QEvent, QPointF
    from qtpy.QtGui import QMouseEvent
    from qtpy.QtWidgets import QApplication

    local = QPointF(position)
    event = QMouseEvent(
        QEvent.Type.MouseMove,
        local,
        QPointF(canvas.mapToGlobal(position)),
        Qt.MouseButton.NoButton,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    QApplication.sendEvent(canvas, event)


@pytest.mark.parametrize("swept", ["layers"], indirect=True)
def test_hovering_a_point_shows_its_figures(swept, qtbot):
    viewer, widget = swept
    canvas = widget.plot.canvas
    canvas.draw()
    x, y = widget.plot.point_of(5)
    ratio = canvas.devicePixelRatioF()
    move_mouse(canvas, QPoint(round(x / ratio), round(canvas.height() - y / ratio)))
    assert widget.plot.hover.get_visible()
    assert widget.plot.hover.get_text().startswith("K=5\ncompactness")
    assert canvas.cursor().shape() == Qt.CursorShape.PointingHandCursor
    # away from every point, the tip goes
    move_mouse(canvas, QPoint(2, 2))
    assert not widget.plot.hover.get_visible()
    assert stated_ks(viewer, widget) == {widget.plot.elbow}  # hovering chooses nothing


@pytest.mark.parametrize("swept", ["stack"], indirect=True)
def test_the_k_overlay_shows_only_with_its_layers(swept, coffee):
    viewer, widget = swept
    overlay = text_overlay(viewer)
    assert overlay.visible and overlay.text.endswith(f"K={widget.shown_k}")
    stacked = ["coffee quantized K sweep", "coffee clusters K sweep"]
    viewer.layers["coffee clusters K sweep"].visible = False
    assert overlay.visible and overlay.text.startswith("coffee quantized K sweep")
    viewer.layers["coffee quantized K sweep"].visible = False
    assert not overlay.visible  # only the source is visible: nothing to label
    viewer.layers["coffee clusters K sweep"].visible = True
    assert overlay.visible
    for name in stacked:
        viewer.layers.remove(name)
    assert not overlay.visible


def press_slider(viewer, key, axis=0):
    slider = viewer.window._qt_viewer.dims.slider_widgets[axis].slider
    slider.setFocus()
    QTest.keyClick(slider, key)


@pytest.mark.parametrize("swept", ["stack", "layers"], indirect=True)
def test_compare_k_holds_through_a_session(swept, qtbot, coffee):
    """Other layers come and go, the other dock runs, layers are renamed, the theme
    switches: the list keeps its Ks and every view names the same K."""
    viewer, widget = swept
    stack = widget.display.value == "stack"

    def move_to(k):
        if stack:
            press_slider(viewer, Qt.Key.Key_Home)
            forward = Qt.Key.Key_Right
            for _ in range(KS.index(k)):
                press_slider(viewer, forward)
            if stack_k_at(widget._stacked[-1], viewer) != k:  # an inverted scroll bar
                press_slider(viewer, Qt.Key.Key_Home)
                for _ in range(KS.index(k)):
                    press_slider(viewer, Qt.Key.Key_Left)
        else:
            click_point(qtbot, widget, k)
        assert stated_ks(viewer, widget) == {k}

    shown = widget.shown_k
    points = viewer.add_points([[10, 10]])  # napari resets every dock's choices
    assert list(widget.k_choice.choices) == KS
    assert stated_ks(viewer, widget) == {shown}  # the slider's label too
    move_to(3)
    viewer.layers.remove(points)
    assert list(widget.k_choice.choices) == KS
    assert stated_ks(viewer, widget) == {3}
    click_point(qtbot, widget, 5)
    assert stated_ks(viewer, widget) == {5}
    # the other dock runs on the same image
    _, quantizer = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    quantizer.image.value = viewer.layers["coffee"]
    quantizer.k.value = 3
    quantizer.run_button.native.click()
    qtbot.waitUntil(lambda: not quantizer.running, timeout=60_000)
    assert list(widget.k_choice.choices) == KS
    move_to(6)
    # renamed result layers stay the dock's
    for layer in list(viewer.layers):
        if "ks" in layer.metadata.get(KEY, {}) or layer.metadata.get(KEY, {}).get("k") == 4:
            layer.name = f"renamed {layer.name}"
    move_to(4)
    widget.k_choice.value = 2
    assert stated_ks(viewer, widget) == {2}
    # the plot follows napari's theme
    for theme in ("light", "dark"):
        viewer.theme = theme
        from napari.utils.theme import get_theme

        expected = get_theme(theme).background.as_rgb_tuple()
        face = widget.plot.figure.get_facecolor()[:3]
        assert tuple(round(255 * c) for c in face) == expected
    move_to(3)


@pytest.mark.parametrize("swept", ["stack"], indirect=True)
def test_stacked_fractions_are_per_k(swept):
    _, widget = swept
    table = widget._stacked[-1].features
    clustered = table[table["label"] > 0]
    sums = clustered.groupby("k")["fraction"].sum()
    assert sums.index.tolist() == KS
    assert sums.to_numpy() == pytest.approx(1.0)
    for result in widget.results:
        rows = clustered[clustered["k"] == result.k]
        assert rows["fraction"].to_numpy() == pytest.approx(result.fractions)
