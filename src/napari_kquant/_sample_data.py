"""Sample images bundled with scikit-image (no network)."""

from __future__ import annotations


def astronaut() -> list[tuple]:
    """RGB photo, 512x512 uint8."""
    from skimage import data

    return [(data.astronaut(), {"name": "astronaut", "rgb": True})]


def coffee() -> list[tuple]:
    """RGB photo, 400x600 uint8."""
    from skimage import data

    return [(data.coffee(), {"name": "coffee", "rgb": True})]
