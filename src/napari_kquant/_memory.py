"""Working-memory estimate and guard for eager runs (core: standard library + numpy).

The estimate reads only the image's shape, dtype and memory layout, so a run that
cannot fit is refused before a single pixel is copied. ``benchmarks/bench_memory.py``
and ``tests/test_memory.py`` measure real peaks against it.
"""

from __future__ import annotations

import os

import numpy as np

MIB = 1 << 20
# Tables of fixed size the fast engine may allocate: the float32 colour histogram
# (2**24 bins) while counting, then the 2**24-entry code -> label lookup table.
FAST_RGB_TABLES = (1 << 24) * 4 + (1 << 24) * 2
BLOCK_BYTES = 48 * MIB  # blockwise passes (render, figures, Lab): one block's temporaries


def available_bytes() -> int | None:
    """Memory the process can still get, from /proc/meminfo (None where unknown)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def working_bytes(
    shape: tuple[int, ...],
    dtype,
    n_channels: int,
    method: str,
    *,
    contiguous: bool = True,
    transformed: bool = False,
) -> int:
    """Upper estimate of the bytes a quantize() run allocates besides its input.

    Parameters
    ----------
    shape, dtype
        The image's (channels last when it has channels).
    n_channels : int
        Channels clustered (3 for RGB(A), 1 for gray, the features otherwise).
    method : {"fast", "opencv"}
        The engine.
    contiguous : bool
        Whether the pixels can be read as a table without a copy.
    transformed : bool
        Whether the pixels are moved to another space first (Lab, z-score).
    """
    dtype = np.dtype(dtype)
    n_values = int(np.prod(shape, dtype=np.float64))
    width = shape[-1] if len(shape) > 1 and n_channels > 1 else 1
    n_pixels = n_values // max(width, 1)
    itemsize = max(dtype.itemsize, 4 if dtype == np.float16 else 1)
    # both engines: the quantized image, labels (up to 2 bytes) and a label per pixel
    total = n_values * dtype.itemsize + 4 * n_pixels
    if not contiguous:
        total += n_values * dtype.itemsize  # the pixel table is a copy
    if transformed:
        total += 3 * n_pixels * n_channels * 8  # the table in the new space, temporaries
        total += 4 * n_pixels  # the relabelling with the reported centres
    if method == "opencv":
        # float32 samples, OpenCV's int32 labels and float distances, our relabelling
        return total + n_pixels * (4 * n_channels + 16)
    if n_channels == 3:
        # channel codes, combined codes, the 2**24 tables
        return total + n_pixels * 8 + FAST_RGB_TABLES + BLOCK_BYTES
    if n_channels == 1:
        # float64 scaling temporaries, uint16 codes, 2**16 tables
        return total + n_pixels * (8 * 2 + 2) + BLOCK_BYTES
    # several features: int64 keys, their sort and inverse
    return total + n_pixels * (8 * 4 + 8 * n_channels) + BLOCK_BYTES


def check_memory(image: np.ndarray, n_channels: int, method: str, **layout) -> None:
    """Refuse a run whose working memory would exceed what the machine has free."""
    needed = working_bytes(image.shape, image.dtype, n_channels, method, **layout)
    free = available_bytes()
    if free is not None and needed > free:
        raise ValueError(
            f"quantizing this {'x'.join(map(str, image.shape))} {image.dtype} image needs about "
            f"{needed / 2**30:.1f} GiB of working memory but only {free / 2**30:.1f} GiB is "
            "available: open it lazily instead (a dask or zarr array, e.g. "
            "dask.array.from_array(image, chunks=1024)): napari-kquant then fits on a sample "
            "and labels chunk by chunk; or crop or downsample it, or free memory"
        )
