"""Colour quantization of napari image layers with OpenCV k-means.

Importing this package loads neither napari nor Qt: the core API works in scripts
and batch jobs. :func:`quantize_layer` imports napari when it is first used.
"""

from ._estimator import KMeansQuantizer, NotFittedError
from ._kmeans import Quantization
from ._lazy import export_zarr
from ._palette import Palette, load_palette, save_palette
from ._quantize import apply_palette, quantize
from ._sweep import Sweep, iter_sweep, sweep
from ._validate import InvalidInputError

# The napari adapter is imported on first use so that `import napari_kquant` stays headless.
_ADAPTER = ("apply_layer_palette", "palette_of", "quantize_layer", "sweep_layer")

__all__ = [
    "InvalidInputError",
    "KMeansQuantizer",
    "NotFittedError",
    "Palette",
    "Quantization",
    "Sweep",
    "apply_layer_palette",
    "apply_palette",
    "export_zarr",
    "iter_sweep",
    "load_palette",
    "palette_of",
    "quantize",
    "quantize_layer",
    "save_palette",
    "sweep",
    "sweep_layer",
]


def __getattr__(name: str):
    if name in _ADAPTER:
        from . import _layers

        return getattr(_layers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
