"""Make docs/compare.png: the Compare K widget after a sweep K=2..10 on the coffee photo.

Run under a display (or `xvfb-run -a python docs/screenshot_compare.py`).
"""

from pathlib import Path

import napari
from qtpy.QtWidgets import QApplication

viewer = napari.Viewer(show=True)
viewer.window.resize(1500, 820)
viewer.open_sample("napari-kquant", "coffee")
_, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "Compare K")
widget.ks.value = "2..10"
widget.display.value = "stack"
widget.run_button.native.click()
while widget.running:
    QApplication.processEvents()
widget.k_choice.value = 5
viewer.layers["coffee clusters K sweep"].visible = False
viewer.reset_view()
for _ in range(20):
    QApplication.processEvents()
out = Path(__file__).with_name("compare.png")
viewer.screenshot(str(out), canvas_only=False)
viewer.close()
print(out, out.stat().st_size)
