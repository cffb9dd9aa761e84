"""Make docs/live.png: the K-means dock with **live** on, K turned 3 -> 6 -> 12.

Three real screenshots of one napari window, side by side: each after a change of K
in the dock (the live layers updated in place; no Run clicked). Run under a display
(or `xvfb-run -a python docs/screenshot_live.py`).
"""

import time
from pathlib import Path

import imageio.v3 as iio
import napari
import numpy as np
from qtpy.QtWidgets import QApplication
from skimage import data

from napari_kquant._core.fast import prepare


def settle(live):
    """Let Qt work until the live run for the latest change has been shown."""
    for _ in range(5):
        QApplication.processEvents()
        time.sleep(0.05)
    while live.running or live._debounce.isActive() or live._settle.isActive():
        QApplication.processEvents()
        time.sleep(0.01)
    for _ in range(20):
        QApplication.processEvents()


prepare.wait()
viewer = napari.Viewer(show=True)
viewer.window.resize(1100, 700)
viewer.add_image(data.astronaut(), name="astronaut")
_, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
widget.live.toggle.value = True
frames = []
for k in (3, 6, 12):
    widget.k.value = k
    settle(widget.live)
    viewer.layers["astronaut clusters live"].visible = False  # show the quantized photo
    settle(widget.live)
    frames.append(viewer.screenshot(canvas_only=False, flash=False))
    viewer.layers["astronaut clusters live"].visible = True
viewer.close()
height = min(frame.shape[0] for frame in frames)
gap = np.full((height, 12, 4), 255, np.uint8)
strip = np.concatenate([part for frame in frames for part in (frame[:height], gap)][:-1], axis=1)
out = Path(__file__).with_name("live.png")
iio.imwrite(out, strip[::2, ::2])  # half size: three windows side by side
print(out, out.stat().st_size)
