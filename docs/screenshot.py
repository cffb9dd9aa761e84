"""Make docs/screenshot.png: a real napari window with the plugin's widget and results.

Run under a display (or `xvfb-run -a python docs/screenshot.py`).
"""

import napari
from _shots import run_and_wait, save

from napari_kquant._cli import open_demo
from napari_kquant._napari.layers import grid

viewer = napari.Viewer(show=True)
viewer.window.resize(1366, 768)  # a small laptop screen
widget = open_demo(viewer, "astronaut", k=6)
run_and_wait(widget)
grid(viewer).enabled = True
grid(viewer).shape = (1, 3)  # source, quantized, clusters side by side
viewer.reset_view()
viewer.layers.selection.active = viewer.layers["astronaut"]
save(viewer, "screenshot.png")
