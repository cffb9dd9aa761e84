"""Make docs/export.png: an OME-Zarr export reopened with napari-ome-zarr beside its source.

A calibrated image (0.5 µm pixels) is quantized and exported with its calibration; the
store is reopened with napari-ome-zarr: its labels (in the colours napari gave them)
and its quantized image, red, green and blue blended back, sit on the source.
Run under a display (or `xvfb-run -a python docs/screenshot_export.py`).
"""

import tempfile
from pathlib import Path

import napari
from _shots import save
from skimage import data

from napari_kquant import export_zarr, quantize

coffee = data.coffee()
store = Path(tempfile.mkdtemp()) / "coffee-k6.ome.zarr"
export_zarr(quantize(coffee, 6, seed=0), store, scale=(0.5, 0.5), units=("µm", "µm"))

viewer = napari.Viewer(show=True)
viewer.window.resize(1366, 768)
source = viewer.add_image(coffee, name="coffee (source)", scale=(0.5, 0.5), units=("µm", "µm"))
source.visible = False  # under the reopened export, which covers it exactly
for layer in viewer.open(str(store), plugin="napari-ome-zarr"):
    layer.name = f"reopened {layer.name}"
    if layer._type_string == "labels":
        layer.visible, layer.opacity = True, 0.6
viewer.reset_view()
save(viewer, "export.png")
