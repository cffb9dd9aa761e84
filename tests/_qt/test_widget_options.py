"""The dock widgets are built from Options: fields, choices, tooltips."""

import pytest

from napari_kquant._core.options import choices


@pytest.mark.parametrize("dock", ["K-means quantization", "Compare K"])
def test_the_widgets_are_built_from_the_options(make_napari_viewer, dock):
    from napari_kquant._qt.base import WIDGET_OPTIONS

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", dock)
    for name in WIDGET_OPTIONS:
        field = getattr(widget, name)
        assert field.tooltip, f"{name} has no tooltip"
        if hasattr(field, "choices") and name in ("method", "init", "criteria", "color_space"):
            assert tuple(field.choices) == choices(name)
    assert set(widget.options()) == set(WIDGET_OPTIONS)
