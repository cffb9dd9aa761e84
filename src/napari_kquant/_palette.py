"""Label ordering and palette colours (core: numpy only)."""

from __future__ import annotations

import numpy as np

# ITU-R BT.601 luma weights, the ones OpenCV's RGB->gray conversion uses.
_LUMA = np.array([0.299, 0.587, 0.114])


def brightness(centers: np.ndarray) -> np.ndarray:
    """Brightness of each centre: luma for colour (3+ channels), the value for gray."""
    centers = np.asarray(centers, dtype=np.float64)
    if centers.shape[1] >= 3:
        return centers[:, :3] @ _LUMA
    return centers.mean(axis=1)


def darkest_first(centers: np.ndarray) -> np.ndarray:
    """Permutation that sorts centres by brightness, ties broken by channel values."""
    centers = np.asarray(centers, dtype=np.float64)
    keys = [centers[:, c] for c in range(centers.shape[1] - 1, -1, -1)]
    return np.lexsort([*keys, brightness(centers)])


def display_colors(centers: np.ndarray, low: float, high: float) -> np.ndarray:
    """RGBA colours in 0..1 for showing each centre (gray centres become gray colours)."""
    centers = np.asarray(centers, dtype=np.float64)
    span = high - low if high > low else 1.0
    unit = np.clip((centers - low) / span, 0.0, 1.0)
    rgb = unit[:, :3] if unit.shape[1] >= 3 else np.repeat(unit[:, :1], 3, axis=1)
    return np.column_stack([rgb, np.ones(len(rgb))])
