"""Working-memory estimate and guard for eager runs (core: numpy, psutil).

The estimate reads only the image's shape, dtype and memory layout, so a run that
cannot fit is refused before a single pixel is copied. ``benchmarks/memory_peak.py``
and ``tests/core/test_memory.py`` measure real peaks against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .engines import ENGINES
from .validate import InvalidInputError, working_dtype


def available_bytes() -> int | None:
    """Memory the process can still get (psutil: Linux, macOS, Windows; None where unknown)."""
    try:
        import psutil
    except ImportError:
        return None
    try:
        return int(psutil.virtual_memory().available)
    except (OSError, RuntimeError, AttributeError):
        return None


def working_bytes(
    shape: tuple[int, ...],
    dtype,
    n_channels: int,
    method: str,
    *,
    contiguous: bool = True,
    transformed: bool = False,
    engine_bytes: int | None = None,
    k: int | None = None,
) -> int:
    """Upper estimate of the bytes a quantize() run allocates besides its input.

    Parameters
    ----------
    shape, dtype
        The image's (channels last when it has channels).
    n_channels : int
        Channels clustered (3 for RGB(A), 1 for gray, the features otherwise).
    method : str
        The engine (a key of ``ENGINES``): it adds what it allocates itself.
    contiguous : bool
        Whether the pixels can be read as a table without a copy.
    transformed : bool
        Whether the pixels are moved to another space first (Lab, z-score).
    engine_bytes : int, optional
        What the engine allocates, when known better than from the shape (the fast
        engine's second estimate, once its summary is built).
    k : int, optional
        The number of clusters, when known: the labels' width follows it (else the
        widest, 2 bytes, is assumed).

    Notes
    -----
    The fast engine's largest cost is per distinct colour of its summary, which is
    not known before the pixels are read; its estimate assumes every pixel may be a
    distinct colour (up to the summary's 2**24 codes for RGB, 2**16 for gray), so it
    is tight for noisy, many-colour images and generous for photos.
    """
    dtype = np.dtype(dtype)
    n_values = int(np.prod(shape, dtype=np.float64))
    width = shape[-1] if len(shape) > 1 and n_channels > 1 else 1
    n_pixels = n_values // max(width, 1)
    # both engines: the labels (up to 2 bytes a pixel) and the quantized image
    label_bytes = 2 if k is None else (1 if k < 256 else 2)
    total = label_bytes * n_pixels
    image_bytes = n_values * dtype.itemsize
    if not contiguous:
        total += n_values * dtype.itemsize  # the pixel table is a copy
    table_itemsize = working_dtype(dtype).itemsize
    if table_itemsize != dtype.itemsize:  # computed in a wider dtype (half floats)
        total += n_pixels * n_channels * table_itemsize
    if transformed:
        total += 3 * n_pixels * n_channels * 8  # the table in the new space, temporaries
        total += 2 * n_pixels  # the relabelling with the reported centres
        table_itemsize = 8
    if engine_bytes is None:
        engine_bytes = ENGINES[method].working_bytes(n_pixels, n_channels, table_itemsize)
    # The engine's memory is freed before the image is made, but the allocator keeps
    # most of it (the process does not shrink): the peak is about the sum.
    return total + image_bytes + engine_bytes


def check_memory(
    shape: tuple[int, ...],
    dtype,
    n_channels: int,
    method: str,
    *,
    decoded: bool = False,
    **layout,
) -> None:
    """Refuse a run whose working memory would exceed what the machine has free.

    Needs only the image's shape and dtype (an array's, or a file's header).
    ``decoded``: the pixels are still to be read into memory (a file), so they count
    too. ``layout``: as for :func:`working_bytes`.
    """
    needed = working_bytes(shape, dtype, n_channels, method, **layout)
    if decoded:
        needed += int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
    _refuse_beyond_free(needed, shape, dtype)


def _refuse_beyond_free(needed: int, shape: tuple[int, ...], dtype) -> None:
    free = available_bytes()
    if free is not None and needed > free:
        raise InvalidInputError(
            f"quantizing this {'x'.join(map(str, shape))} {np.dtype(dtype)} image needs about "
            f"{needed / 2**30:.1f} GiB of working memory but only {free / 2**30:.1f} GiB is "
            "available: open it lazily instead (a dask or zarr array, e.g. "
            "dask.array.from_array(image, chunks=1024)): napari-kquant then fits on a sample "
            "and labels chunk by chunk; or crop or downsample it, or free memory"
        )


@dataclass(frozen=True)
class Footprint:
    """What the memory guard reads of a run, before a pixel is copied.

    The image's ``shape`` and ``dtype`` (channels last), the channels clustered, the
    engine, and how its pixels are stored (see :func:`working_bytes`).
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    n_channels: int
    method: str
    contiguous: bool = True
    transformed: bool = False

    def bytes(self, **known) -> int:
        """:func:`working_bytes`; ``known``: its ``engine_bytes`` and ``k``."""
        return working_bytes(
            self.shape,
            self.dtype,
            self.n_channels,
            self.method,
            contiguous=self.contiguous,
            transformed=self.transformed,
            **known,
        )

    def check(self, **known) -> None:
        """Refuse the run when :meth:`bytes` exceeds the memory available (as check_memory)."""
        self.refuse_beyond_free(self.bytes(**known))

    def refuse_beyond_free(self, needed: int) -> None:
        """Refuse the run when ``needed`` bytes (an estimate made already) are not free."""
        _refuse_beyond_free(needed, self.shape, self.dtype)
