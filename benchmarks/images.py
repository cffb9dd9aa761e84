"""Benchmark images: real photos from skimage.data and a 3840x2160 mosaic of them."""

from __future__ import annotations

import numpy as np
from skimage import data


def mosaic(height: int = 2160, width: int = 3840) -> np.ndarray:
    """A height x width RGB uint8 mosaic tiled from several skimage.data photos."""
    tiles = [
        data.astronaut(),
        data.coffee(),
        data.chelsea(),
        data.rocket(),
        data.retina()[::2, ::2],
    ]
    out = np.zeros((height, width, 3), np.uint8)
    y, i = 0, 0
    while y < height:
        x, row_height = 0, 0
        while x < width:
            tile = tiles[i % len(tiles)]
            i += 1
            h, w = min(tile.shape[0], height - y), min(tile.shape[1], width - x)
            out[y : y + h, x : x + w] = tile[:h, :w]
            x += w
            row_height = max(row_height, h)
        y += row_height
    return out


def benchmark_images() -> dict[str, np.ndarray]:
    """Name -> RGB uint8 image, smallest first."""
    return {
        "astronaut 512x512": data.astronaut(),
        "coffee 400x600": data.coffee(),
        "retina 1411x1411": data.retina(),
        "mosaic 3840x2160": mosaic(),
    }
