"""Make docs/compare.png: the Compare K widget after a sweep K=2..10 on the coffee photo.

Run under a display (or `xvfb-run -a python docs/screenshot_compare.py`).
"""

import napari
from _shots import run_and_wait, save

viewer = napari.Viewer(show=True)
viewer.theme = "dark"
viewer.window.resize(1366, 768)  # a small laptop screen
viewer.open_sample("napari-kquant", "coffee")
_, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "Compare K")
widget.ks.value = "2..10"
widget.display.value = "stack"
run_and_wait(widget)
widget.k_choice.value = 5  # the slider, plot ring and palette follow
viewer.layers["coffee clusters K sweep"].visible = False
viewer.reset_view()
save(viewer, "compare.png")
