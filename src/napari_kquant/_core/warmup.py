"""The fast engine's warm-up: its common paths run once, so that numba compiles them (core).

:func:`exercise` runs every common path of the engine on small synthetic images;
:func:`main` is the background process that :mod:`.fast.prepare` starts on a
computer's first run (``python -m napari_kquant._core.warmup``): it runs the
warm-up under the kernels, which fills numba's on-disk cache, and then writes the
stamp that tells every later process the cache is filled. It sits above the
engine (it calls the public entry points); :mod:`.fast.prepare` is given
:func:`exercise` by the package, and names this module only as a command.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys

import numpy as np

from .fast import prepare


def exercise() -> None:
    """Run the engine's common paths on small images, so that their kernels compile.

    RGB uint8 (sorted codes, and the colour grid above :data:`SMALL_IMAGE`), RGB
    uint16 and float, gray uint8/uint16/float, feature tables, sweeps, palettes,
    masks and the estimator's weighted tables: each with the dtypes the kernels see.
    """
    from .fast.contract import ROW_BLOCK_VALUES, SMALL_IMAGE
    from .fast.rows import SUBSET_OF, RowSummary
    from .kmeans import Job
    from .quantize import apply_palette, quantize
    from .sweep import sweep

    rng = np.random.default_rng(0)
    side = int(SMALL_IMAGE**0.5) + 2
    photo = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    small = photo[:300, :300]
    images = [photo, np.dstack([photo, photo[..., :1]])]  # the colour grid; RGBA
    for dtype, scale in ((np.uint8, 1), (np.uint16, 257), (np.float32, 1 / 255), (np.float64, 1)):
        colour = small.astype(dtype) * np.asarray(scale, dtype=dtype)
        images += [colour, np.ascontiguousarray(colour[..., 0]), colour[..., 0]]  # and strided
    images.append(small[..., 0].astype(np.int16))
    for image in images:
        for k in (3, 30):
            result = quantize(image, k, seed=0)
        apply_palette(image, result.palette)
    quantize(small, 4, mask=small[..., 0] > 60, color_space="lab")
    for image in (small, photo):
        sweep(image, [2, 3, 30])[30].labels  # noqa: B018 (labels made on demand)
    features = rng.random((30, 30, 5), dtype=np.float32)
    quantize(features, 3, channel_axis=-1, standardize=True)
    quantize(features.astype(np.float64), 3, channel_axis=-1)
    # tables that reach the finish in row blocks (more rows than the middle stage takes
    # whole, values for two blocks at least), float32 rows used as they are
    n_rows = SUBSET_OF * RowSummary.search.mid_points + 1
    wide = rng.random((n_rows, 2 * ROW_BLOCK_VALUES // n_rows + 1), dtype=np.float32)
    for table in (wide, wide.astype(np.float64)):
        quantize(table, 3, channel_axis=-1)
    quantize(small, 3, method="opencv", seed=0)
    table = features.reshape(-1, 5)  # the estimator's tables: weights, initial centres
    job = Job.of(table, channel_axis=-1)
    job.with_samples(weights=np.ones(len(table))).fit(3)
    job.with_samples(start=table[:3].astype(np.float64)).fit(3)


def warm() -> None:
    """What a warm process's first call would otherwise pay for once (about 0.1 s).

    OpenCV's first 24-bit ``calcHist`` initialises itself (a large photo's colours
    are counted with it), the memory guard imports psutil, and the engine's worker
    threads start. Run in the import's background thread, after the kernels load.
    """
    import cv2

    from .cancel import on_threads
    from .memory import available_bytes

    cv2.calcHist([np.zeros((1, 1, 3), np.uint8)], [2, 1, 0], None, [256] * 3, [0, 256] * 3)
    available_bytes()
    on_threads(lambda _: None, range(2), 2)


def main() -> int:
    """The background preparation: compile and cache the kernels, then write the stamp."""
    from .safe import replacing

    with contextlib.suppress(AttributeError, OSError):
        os.nice(10)
    path = prepare.stamp_path()
    if path is None:
        print("napari-kquant: nowhere to cache the kernels", file=sys.stderr)
        return 1
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    lock = os.open(folder, os.O_RDONLY)  # a lock on the cache folder itself: no lock file
    try:
        with contextlib.suppress(ImportError, OSError):
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # another preparation: wait for it
        if os.path.exists(path):
            return 0
        with prepare.forced(True):
            exercise()
        with replacing(path, what="kernel stamp") as part:
            part.write_bytes(pickle.dumps(prepare.signatures()))
    finally:
        os.close(lock)
    return 0


if __name__ == "__main__":  # run as a script: use the package's modules (one prepare)
    from napari_kquant._core import warmup

    sys.exit(warmup.main())
