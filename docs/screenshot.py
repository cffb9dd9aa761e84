"""Make docs/screenshot.png: a real napari window with the plugin's widget and results.

Run under a display (or `xvfb-run -a python docs/screenshot.py`).
"""

from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

from napari_kquant._cli import open_demo
from napari_kquant._layers import grid

viewer = napari.Viewer(show=True)
viewer.window.resize(1500, 640)
widget = open_demo(viewer, "astronaut", k=6)
widget.run_button.native.click()
while widget.running:
    QApplication.processEvents()
QApplication.processEvents()
grid(viewer).enabled = True
grid(viewer).shape = (1, 3)  # source, quantized, clusters side by side
viewer.reset_view()
viewer.layers.selection.active = viewer.layers["astronaut"]
for _ in range(20):
    QApplication.processEvents()
out = Path(__file__).with_name("screenshot.png")
viewer.screenshot(str(out), canvas_only=False)
viewer.close()
print(out, out.stat().st_size)
