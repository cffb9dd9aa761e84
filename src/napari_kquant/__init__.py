"""Colour quantization of napari image layers with k-means (a fast engine, or OpenCV's recipe).

Importing this package loads neither napari nor Qt: the core API works in scripts
and batch jobs. :func:`quantize_layer` imports napari when it is first used.
"""

from ._core import warmup as _warmup
from ._core.fast import prepare as _prepare
from ._core.kmeans import Quantization
from ._core.palette import Palette
from ._core.quantize import apply_palette, quantize
from ._core.sweep import Sweep, iter_sweep, sweep
from ._core.validate import InvalidInputError
from ._io.palette_files import load_palette, save_palette
from ._io.zarr_export import export_zarr
from ._version import __version__ as __version__  # (the build reads _version.py)

# The napari adapter and the scikit-learn estimator are imported on first use, so that
# `import napari_kquant` loads neither napari, Qt nor scikit-learn.
_ESTIMATOR = ("KMeansQuantizer", "NotFittedError")
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
    if name in _ESTIMATOR:
        from . import _estimator

        return getattr(_estimator, name)
    if name in _ADAPTER:
        from ._napari import layers

        return getattr(layers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


# The fast engine's kernels: loaded (or, on a computer's first run, compiled in a
# background process) while the caller goes on; see _core/fast/prepare.py.
_prepare.start(_warmup.exercise, _warmup.warm)
