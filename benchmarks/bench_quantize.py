"""napari-kquant against its peers, side by side in one run.

For each image and K: wall seconds, sum of squared error (SSE: each pixel to the colour
it is given), time ratio to the seed recipe, SSE ratio to the reference (the better of the
seed recipe and scikit-learn KMeans on all pixels), and peak extra memory (tracemalloc,
in multiples of the input's bytes).

    python benchmarks/bench_quantize.py                 # everything (about 15 minutes)
    python benchmarks/bench_quantize.py --images astronaut --ks 8 16

Needs the [bench] extra (scikit-learn, Pillow).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import time
import tracemalloc

import cv2
import numpy as np
from images import benchmark_images
from PIL import Image
from sklearn.cluster import KMeans
from sklearn.utils import shuffle

from napari_kquant import quantize

SEED = 0


def cv2_recipe(img, k, attempts, flags):
    """The OpenCV tutorial's code with its criteria (10 iterations, epsilon 1)."""
    Z = img.reshape((-1, 3)).astype(np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    cv2.setRNGSeed(SEED)
    _, label, center = cv2.kmeans(Z, k, None, criteria, attempts, flags)
    return center, label.ravel(), np.uint8(center)[label.ravel()].reshape(img.shape)


def seed_recipe(img, k):
    """The OpenCV tutorial: 10 random starts."""
    return cv2_recipe(img, k, 10, cv2.KMEANS_RANDOM_CENTERS)


def opencv_pp_once(img, k):
    """cv2.kmeans, one k-means++ start."""
    return cv2_recipe(img, k, 1, cv2.KMEANS_PP_CENTERS)


def sklearn_full(img, k):
    """scikit-learn KMeans on every pixel, one k-means++ start."""
    X = img.reshape(-1, 3).astype(np.float32)
    km = KMeans(n_clusters=k, n_init=1, random_state=SEED).fit(X)
    return km.cluster_centers_, km.labels_, None


def sklearn_example(img, k):
    """scikit-learn's colour-quantization example: fit on 1,000 pixels, predict all."""
    X = img.reshape(-1, 3).astype(np.float64) / 255
    sample = shuffle(X, random_state=SEED, n_samples=1_000)
    km = KMeans(n_clusters=k, random_state=SEED).fit(sample)
    return km.cluster_centers_ * 255, km.predict(X), None


def pillow_median_cut(img, k):
    """Pillow's median-cut quantize."""
    q = Image.fromarray(img).quantize(colors=k, method=Image.Quantize.MEDIANCUT)
    palette = np.asarray(q.getpalette()[: 3 * k], dtype=np.float64).reshape(-1, 3)
    return palette, np.asarray(q).ravel(), None


def kquant_fast(img, k):
    """napari-kquant, default settings."""
    r = quantize(img, k, seed=SEED)
    return r.centers, r.labels.ravel() - 1, r.image


def kquant_opencv(img, k):
    """napari-kquant, method="opencv" (cv2.kmeans on all pixels), other settings default."""
    r = quantize(img, k, method="opencv", seed=SEED)
    return r.centers, r.labels.ravel() - 1, r.image


PEERS = {
    "seed recipe (cv2, 10 random starts)": seed_recipe,
    "cv2.kmeans 1x k-means++": opencv_pp_once,
    "sklearn KMeans all pixels": sklearn_full,
    "sklearn example (1,000 px)": sklearn_example,
    "Pillow median cut": pillow_median_cut,
    "napari-kquant fast (default)": kquant_fast,
    "napari-kquant opencv": kquant_opencv,
}
SEED_PEER = "seed recipe (cv2, 10 random starts)"
REFERENCE = (SEED_PEER, "sklearn KMeans all pixels")


def sse(img, centers, labels):
    """Sum of squared distances from each pixel to the centre it is given (float64)."""
    X = img.reshape(-1, img.shape[-1])
    centers = np.asarray(centers, dtype=np.float64)
    total = 0.0
    for s in range(0, len(X), 1 << 20):
        diff = X[s : s + (1 << 20)].astype(np.float64) - centers[labels[s : s + (1 << 20)]]
        total += float(np.einsum("ij,ij->", diff, diff))
    return total


def measure(fn, img, k, repeats):
    best = np.inf
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        out = fn(img, k)
        best = min(best, time.perf_counter() - start)
    gc.collect()
    tracemalloc.start()
    fn(img, k)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return best, out, peak


def dtype_table():
    """napari-kquant's default on the 4K mosaic at K=16 in three dtypes, side by side."""
    from images import mosaic

    rgb8 = mosaic()
    images = {
        "uint8": rgb8,
        "uint16 (x257)": rgb8.astype(np.uint16) * 257,
        "float32 (/255)": rgb8.astype(np.float32) / 255,
    }
    print(f"machine: {machine()}\n")
    print("| 3840x2160 RGB, K=16 | seconds | / uint8 | SSE in uint8 units / uint8's |")
    print("|---|---|---|---|")
    base_time = base_sse = None
    for name, img in images.items():
        scale = {"uint8": 1.0, "uint16 (x257)": 257.0, "float32 (/255)": 1 / 255}[name]
        seconds, (centers, labels, _), _ = measure(kquant_fast, img, 16, repeats=3)
        error = sse(img, centers, labels) / scale**2
        base_time, base_sse = base_time or seconds, base_sse or error
        print(f"| {name} | {seconds:.3f} | {seconds / base_time:.2f} | {error / base_sse:.4f} |")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}, OpenCV {cv2.__version__}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="*", help="substrings of image names to run")
    parser.add_argument("--ks", nargs="*", type=int, default=[4, 8, 16, 32, 64])
    parser.add_argument("--peers", nargs="*", help="substrings of peer names to run")
    parser.add_argument(
        "--dtypes", action="store_true", help="only: the 4K mosaic at K=16 as uint8, uint16, float"
    )
    args = parser.parse_args()
    if args.dtypes:
        dtype_table()
        return
    images = benchmark_images()
    if args.images:
        images = {n: im for n, im in images.items() if any(s in n for s in args.images)}
    peers = PEERS
    if args.peers:
        peers = {
            n: f for n, f in PEERS.items() if n in REFERENCE or any(s in n for s in args.peers)
        }
    print(f"machine: {machine()}\n")
    print(
        "| image | K | method | seconds | SSE | time / seed recipe | SSE / reference | "
        "peak extra memory / input |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, img in images.items():
        for k in args.ks:
            rows = {}
            for peer, fn in peers.items():
                repeats = 3 if img.size < 5e6 or "kquant fast" in peer else 1
                seconds, (centers, labels, _), peak = measure(fn, img, k, repeats)
                rows[peer] = (seconds, sse(img, centers, labels), peak / img.nbytes)
            reference = min(rows[p][1] for p in REFERENCE if p in rows)
            seed_time = rows[SEED_PEER][0]
            for peer, (seconds, error, memory) in rows.items():
                print(
                    f"| {name} | {k} | {peer} | {seconds:.3f} | {error:.4g} | "
                    f"{seconds / seed_time:.4f} | {error / reference:.4f} | {memory:.2f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
