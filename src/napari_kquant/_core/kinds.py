"""Which path an input takes: eager (numpy) or lazy (dask, zarr, multiscale) (core).

The one place that decides it: ``quantize()``, ``sweep()`` and ``Palette.apply``
(``apply_palette``) all ask :func:`takes_lazy_path`.
"""

from __future__ import annotations

import numpy as np


def is_lazy(image) -> bool:
    """Whether ``image`` is an array other than numpy's (dask, zarr, ...)."""
    return not isinstance(image, np.ndarray) and hasattr(image, "shape") and hasattr(image, "dtype")


def is_multiscale(image) -> bool:
    """Whether ``image`` is a list of arrays, largest first (a napari pyramid)."""
    return (
        isinstance(image, (list, tuple))
        and len(image) > 0
        and all(hasattr(level, "shape") and hasattr(level, "dtype") for level in image)
    )


def takes_lazy_path(image) -> bool:
    """Whether ``image`` is quantized and labelled lazily (chunk by chunk) or eagerly."""
    return is_lazy(image) or is_multiscale(image)
