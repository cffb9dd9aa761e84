"""Colour quantization of napari image layers with OpenCV k-means.

Importing this package loads neither napari nor Qt: the core API works in scripts
and batch jobs. :func:`quantize_layer` imports napari when it is first used.
"""

from ._estimator import KMeansQuantizer, NotFittedError
from ._kmeans import Quantization, apply_palette, quantize
from ._lazy import export_zarr
from ._palette import load_palette, save_palette
from ._sweep import Sweep, iter_sweep, sweep

__all__ = [
    "KMeansQuantizer",
    "NotFittedError",
    "Quantization",
    "Sweep",
    "apply_palette",
    "export_zarr",
    "iter_sweep",
    "load_palette",
    "quantize",
    "quantize_layer",
    "save_palette",
    "sweep",
]


def __getattr__(name: str):
    # The napari adapter is imported on first use so that `import napari_kquant` stays headless.
    if name == "quantize_layer":
        from ._layers import quantize_layer

        return quantize_layer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
