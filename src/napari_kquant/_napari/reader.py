"""npe2 reader for palette files: a saved palette opens as a layer "palette from" can use.

``viewer.open("p.json")`` (File > Open, drag and drop) gives a small labels layer: a
swatch of the palette's K colours, label i in centre i's colour, carrying the palette
in its metadata as a result layer does, so the K-means dock's **palette from** offers
it and :func:`napari_kquant.apply_layer_palette` takes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._core.palette import display_colors, distinct_colors
from .._io.palette_files import is_palette_file, load_palette
from .layers import METADATA_KEY, colormap_for

SWATCH = 32  # pixels per colour in the swatch


def get_reader(path):
    """The reader for a palette file (None for other paths: napari asks other readers)."""
    if not isinstance(path, (str, Path)) or not is_palette_file(path):
        return None  # not a palette (napari's points CSV, say): other readers take it
    return read_palette


def read_palette(path) -> list[tuple]:
    """The palette at ``path`` as a labels layer (a swatch) carrying the palette."""
    palette = load_palette(path)
    k = palette.k
    swatch = np.repeat(np.arange(1, k + 1, dtype=np.uint16), SWATCH)[None, :]
    swatch = np.repeat(swatch, SWATCH, axis=0)
    info = {
        "centers": palette.centers.tolist(),
        "palette": palette.to_dict(),
        "source": Path(path).name,
        "k": k,
    }
    kwargs = {
        "name": f"{Path(path).stem} palette K={k}",
        "metadata": {METADATA_KEY: info},
        "colormap": colormap_for(swatch_colors(palette.centers)),
    }
    return [(swatch, kwargs, "labels")]


def swatch_colors(centers: np.ndarray) -> np.ndarray:
    """RGBA of each centre: RGB centres in their colour (0..255 when they fit), gray as greys."""
    centers = np.asarray(centers, dtype=np.float64)
    if centers.shape[1] not in (1, 3):
        return distinct_colors(len(centers))
    low, high = float(centers.min()), float(centers.max())
    if low >= 0 and high <= 255 and centers.shape[1] == 3:
        low, high = 0.0, 255.0
    return display_colors(centers, low, high)
