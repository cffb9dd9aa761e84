"""Working-memory estimate and guard for eager runs (core: standard library + numpy)."""

from __future__ import annotations

import os

import numpy as np

# Tables of fixed size the fast engine may allocate: the float32 colour histogram
# (2**24 bins) while counting, then the 2**24-entry code -> label lookup table.
FAST_FIXED_BYTES = (1 << 24) * 4 + (1 << 24) * 2


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


def working_bytes(image: np.ndarray, n_pixels: int, n_channels: int, method: str) -> int:
    """Upper estimate of the bytes a quantize() run allocates besides its input.

    Both engines write the quantized image and the labels (up to 2 bytes a pixel).
    ``opencv`` adds its float32 copy of the pixels and two int32 label arrays; ``fast`` adds
    per-pixel codes, its fixed-size tables and one block of float64 work.
    """
    outputs = image.nbytes + 2 * n_pixels
    if method == "opencv":
        return outputs + n_pixels * (4 * n_channels + 16)
    return outputs + 4 * n_pixels + FAST_FIXED_BYTES + (1 << 18) * 8 * (n_channels + 2)


def check_memory(image: np.ndarray, n_pixels: int, n_channels: int, method: str) -> None:
    """Refuse a run whose working memory would exceed what the machine has free."""
    needed = working_bytes(image, n_pixels, n_channels, method)
    free = available_bytes()
    if free is not None and needed > free:
        raise ValueError(
            f"quantizing this {'x'.join(map(str, image.shape))} {image.dtype} image needs about "
            f"{needed / 2**30:.1f} GiB of working memory but only {free / 2**30:.1f} GiB is "
            "available: open it lazily instead (a dask or zarr array, e.g. "
            "dask.array.from_array(image, chunks=1024)): napari-kquant then fits on a sample "
            "and labels chunk by chunk; or crop or downsample it, or free memory"
        )
