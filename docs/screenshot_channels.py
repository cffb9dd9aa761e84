"""Make docs/channels.png: two stain channels as layers, clustered together (z-scored).

Run under a display (or `xvfb-run -a python docs/screenshot_channels.py`).
"""

import napari
import numpy as np
from _shots import run_and_wait, save
from skimage import data
from superqt import QCollapsible

from napari_kquant._napari.layers import grid

ihc = data.immunohistochemistry()
channels = np.stack([255 - ihc[..., 0], 255 - ihc[..., 2]])  # two stains, bright = stained
viewer = napari.Viewer(show=True)
viewer.window.resize(1366, 768)  # a small laptop screen
first, second = viewer.add_image(
    channels, channel_axis=0, name=["stain A", "stain B"], colormap=["magenta", "green"]
)
_, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
widget.image.value = first
widget.features.value = [second]
widget.standardize.value = True
widget.k.value = 5
run_and_wait(widget)
widget.native.findChildren(QCollapsible)[0].expand(animate=False)  # show "with layers"
for name in (
    "stain A quantized K=5 (of stain A+stain B, z-scored)",
    "stain B quantized K=5 (of stain A+stain B, z-scored)",
):
    viewer.layers[name].visible = False
grid(viewer).enabled = True
grid(viewer).shape = (1, 2)
grid(viewer).stride = 2  # the two source channels together, the clusters beside them
viewer.reset_view()
save(viewer, "channels.png")
