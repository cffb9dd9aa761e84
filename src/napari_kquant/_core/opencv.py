"""The OpenCV recipe: ``cv2.kmeans`` on every pixel as float32 (core: numpy + cv2)."""

from __future__ import annotations

import cv2
import numpy as np

from .cancel import ChildError, WorkerKilled, active, checkpoint, in_child_process
from .fast.contract import SCORE_BYTES, Fit, darkest_first_ranks, default_epsilon
from .validate import FLOAT32_SAFE, InvalidInputError


def opencv_kmeans(table, k, *, criteria, attempts, init, seed) -> Fit:
    """``cv2.kmeans`` on every pixel, exactly as the OpenCV tutorial recipe calls it."""
    samples = np.ascontiguousarray(table, dtype=np.float32)
    if len(samples) == 1:  # OpenCV reads a single row as that many 1-D points
        samples = samples.reshape(1, 1, -1)
    flags = cv2.KMEANS_PP_CENTERS if init == "kmeans++" else cv2.KMEANS_RANDOM_CENTERS
    # cv2's RNG is per thread: seeding here, on the thread that clusters, makes runs
    # in napari's worker threads reproducible too.
    try:
        if active() and len(samples) * k >= IN_PROCESS_WORK:
            # a cancel must not wait for a call that cannot stop: run it where it can be ended
            compactness, labels, centers = in_child_process(
                _opencv_attempts, samples, k, criteria, attempts, flags, seed
            )
        else:
            compactness, labels, centers = _opencv_attempts(
                samples, k, criteria, attempts, flags, seed
            )
    except WorkerKilled as exc:
        raise InvalidInputError(
            f"OpenCV's k-means stopped: {exc}. It holds every pixel as float32 with its "
            "labels and distances; method='fast' needs far less memory, or use a smaller image"
        ) from exc
    except (cv2.error, ChildError) as exc:
        # e.g. values so large that squared distances overflow OpenCV's float32
        reason = str(exc).strip().splitlines()[-1]
        raise InvalidInputError(
            f"OpenCV's k-means failed on this image ({reason}); its float32 arithmetic cannot "
            f"hold these values (up to {float(np.abs(samples).max()):.3g}): use method='fast'"
        ) from exc
    centers, rank = darkest_first_ranks(centers.astype(np.float64))
    counts = np.bincount(labels.ravel(), minlength=k)[np.argsort(rank)]
    return Fit(centers, rank[labels.ravel()], float(compactness), counts, criteria[2])


# Pixels x K from which a cancellable OpenCV fit runs in a worker process (starting
# one costs about half a second; a call this size takes seconds).
IN_PROCESS_WORK = 1 << 21


def _opencv_attempts(samples, k, criteria, attempts, flags, seed):
    """``attempts`` calls of one attempt each, keeping the first most compact.

    That is what cv2.kmeans does with ``attempts`` (the RNG runs on between calls):
    the same result, bit for bit, with a chance to stop between attempts. cv2's RNG
    is per thread: seeding here, on the thread (or process) that clusters, makes runs
    in napari's worker threads reproducible too.
    """
    cv2.setRNGSeed(int(seed))
    best = None
    for _ in range(attempts):
        checkpoint()
        run = cv2.kmeans(samples, k, None, criteria, 1, flags)
        if best is None or run[0] < best[0]:
            best = run
    return best


class OpenCVKMeans:
    """``cv2.kmeans`` on every pixel as float32: the OpenCV recipe, bit for bit."""

    name = "opencv"
    label = "OpenCV's float32 k-means"
    max_magnitude = FLOAT32_SAFE  # squared distances in float32
    # OpenCV's labels are those of its last assignment, before the centres' last update
    nearest_labels = False

    def fits(self, job, ks, defer_labels=False):
        """Yield a Fit per K of ``ks`` (each K on its own, as the recipe runs; labelled)."""
        if job.start is not None or job.weights is not None:
            raise InvalidInputError(
                "sample weights and initial centres need method='fast' (cv2.kmeans takes neither)"
            )
        fitting = job.fitting
        epsilon = fitting.epsilon
        if epsilon is None:
            epsilon = default_epsilon(*job.value_range())
        criteria = (fitting.criteria_type, fitting.max_iter, epsilon)
        for k in ks:
            yield opencv_kmeans(
                job.table,
                k,
                criteria=criteria,
                attempts=fitting.attempts,
                init=fitting.init,
                seed=fitting.seed,
            )

    @staticmethod
    def working_bytes(n_pixels: int, n_channels: int, table_itemsize: int) -> int:
        """Bytes it allocates for ``n_pixels`` pixels besides the outputs.

        Float32 samples; OpenCV's int32 labels, float distances and best labels; our
        relabelling; a block of the quantized image.
        """
        return n_pixels * (4 * n_channels + 32) + SCORE_BYTES
