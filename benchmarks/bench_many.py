"""Many-colour images: napari-kquant's default beside all-pixel k-means and fast quantizers.

``python benchmarks/bench_many.py [--ks 4 16 64 256] [--images hubble ...]`` prints one
Markdown table (benchmarks/RESULTS_MANY.md). Everything runs side by side in one
process, per image and K in turn, so the ratios compare like with like:

* default: ``quantize(image, k)`` (best of 3), and the same with every thread pool at
  one thread (threadpoolctl for BLAS/OpenMP, ``cv2.setNumThreads(1)``, which also
  caps napari-kquant's own threads) - it must never be slower than that;
* cv2.kmeans with one k-means++ attempt on all pixels (the tutorial's criteria: 10
  iterations, epsilon 1), scikit-learn ``KMeans`` on all pixels (``n_init=1``; K <= 64,
  above it takes minutes): the best of the two is the SSE reference;
* imagequant (libimagequant, pngquant's engine; RGB only) and faiss k-means (on its
  default sample of 256 points per centroid): fast, lossy peers;
* the floor: the passes no method can avoid - one ``calcHist`` of the colours, one
  coding pass and one gather through a 2**24 table (a bincount and gather for gray);
* peak extra memory of the default at K=16 (peak RSS in a fresh process,
  ``memory_peak.py``) over the input's bytes, and the library's estimate over it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from bench_quantize import machine, sse
from images import many_colour_images

from napari_kquant import quantize

SEED = 0
HERE = Path(__file__).parent


def table_of(img):
    return img.reshape(-1, img.shape[-1] if img.ndim == 3 else 1)


def best_of(fn, img, k, repeats):
    best, out = np.inf, None
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        out = fn(img, k)
        best = min(best, time.perf_counter() - start)
    return best, out


def default(img, k):
    result = quantize(img, k, seed=SEED)
    return result.centers, result.labels.ravel().astype(np.intp) - 1


def cv2_pp_once(img, k):
    Z = table_of(img).astype(np.float32)
    cv2.setRNGSeed(SEED)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 1.0)
    _, labels, centers = cv2.kmeans(Z, k, None, criteria, 1, cv2.KMEANS_PP_CENTERS)
    return centers, labels.ravel()


def sklearn_full(img, k):
    from sklearn.cluster import KMeans

    X = table_of(img).astype(np.float32)
    km = KMeans(n_clusters=k, n_init=1, random_state=SEED).fit(X)
    return km.cluster_centers_, km.labels_


def imagequant_peer(img, k):
    import imagequant
    from PIL import Image

    out = imagequant.quantize_pil_image(
        Image.fromarray(img), dithering_level=0.0, max_colors=k, min_quality=0, max_quality=100
    )
    palette = np.asarray(out.getpalette()[: 3 * k], dtype=np.float64).reshape(-1, 3)
    return palette, np.asarray(out).ravel().astype(np.intp)


def faiss_peer(img, k):
    import faiss

    X = np.ascontiguousarray(table_of(img), dtype=np.float32)
    km = faiss.Kmeans(X.shape[1], k, niter=20, seed=SEED + 1, verbose=False)
    km.train(X)
    _, labels = km.index.search(X, 1)
    return km.centroids, labels.ravel()


def floor(img, k):
    """The passes every method needs: count the colours, code the pixels, gather labels."""
    t = table_of(img)
    if t.shape[1] == 3:
        image = np.ascontiguousarray(t).reshape(-1, 1, 3)
        cv2.calcHist([image], [2, 1, 0], None, [256] * 3, [0, 256] * 3)
        rgba = cv2.cvtColor(image, cv2.COLOR_RGB2RGBA)
        codes = rgba.view("<u4").ravel() & 0xFFFFFF
        lut = np.zeros(1 << 24, np.uint8)
    else:
        codes = t[:, 0]
        np.bincount(codes, minlength=1 << 16)
        lut = np.zeros(1 << 16, np.uint8)
    return lut[codes]


def single_threaded(fn):
    from threadpoolctl import threadpool_limits

    def run(img, k):
        before = cv2.getNumThreads()
        cv2.setNumThreads(1)
        try:
            with threadpool_limits(1):
                return fn(img, k)
        finally:
            cv2.setNumThreads(before)

    return run


def memory(name: str) -> dict:
    out = subprocess.run(
        [sys.executable, str(HERE / "memory_peak.py"), name, "fast", "k=16"],
        capture_output=True,
        text=True,
        check=True,
        # freed large blocks go back to the system: the peak is the most memory live
        env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


MEMORY_NAMES = {
    "stereo_motorcycle": "motorcycle",
    "hubble": "hubble",
    "microscopy": "microscopy_12bit",
    "noisy gradient": "noisy_gradient_4k",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", nargs="*", help="substrings of image names to run")
    parser.add_argument("--ks", nargs="*", type=int, default=[4, 16, 64, 256])
    args = parser.parse_args()
    images = many_colour_images()
    if args.images:
        images = {n: im for n, im in images.items() if any(s in n for s in args.images)}
    print(f"machine: {machine()}\n")
    print(
        "| image (distinct values) | K | default s | 1 thread s | cv2.kmeans 1× k-means++ s | "
        "default / cv2 | sklearn all px s | floor s | default / floor | imagequant s (SSE×) | "
        "faiss s (SSE×) | SSE default / best all-px k-means |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, img in images.items():
        t = table_of(img)
        distinct = len(np.unique(t.view(np.dtype((np.void, t.dtype.itemsize * t.shape[1])))))
        quantize(img, 2)  # compiled kernels loaded, caches warm
        for k in args.ks:
            small = img.size < 5e6
            seconds, (centers, labels) = best_of(default, img, k, 3)
            error = sse(img.reshape(len(t), -1), centers, labels)
            one, _ = best_of(single_threaded(default), img, k, 3)
            cv_s, (cc, cl) = best_of(cv2_pp_once, img, k, 3 if small else 1)
            errors = {"cv2": sse(img.reshape(len(t), -1), cc, cl)}
            sk = "—"
            if k <= 64:
                sk_s, (sc, sl) = best_of(sklearn_full, img, k, 1)
                errors["sklearn"] = sse(img.reshape(len(t), -1), sc, sl)
                sk = f"{sk_s:.3f}"
            best = min(errors.values())
            floor_s, _ = best_of(floor, img, k, 3)
            iq = "—"
            if img.ndim == 3 and k <= 256:
                iq_s, (ic, il) = best_of(imagequant_peer, img, k, 3 if small else 1)
                iq = f"{iq_s:.3f} ({sse(img.reshape(len(t), -1), ic, il) / best:.3f})"
            fa_s, (fc, fl) = best_of(faiss_peer, img, k, 3 if small else 1)
            fa = f"{fa_s:.3f} ({sse(img.reshape(len(t), -1), fc, fl) / best:.3f})"
            print(
                f"| {name} ({distinct:,}) | {k} | {seconds:.3f} | {one:.3f} | {cv_s:.3f} | "
                f"{seconds / cv_s:.3f} | {sk} | {floor_s:.3f} | {seconds / floor_s:.2f} | {iq} | "
                f"{fa} | {error / best:.4f} |",
                flush=True,
            )
    print("\n| image | input MB | peak extra MB | peak / input | estimate / peak |")
    print("|---|---|---|---|---|")
    for name in images:
        key = next(v for s, v in MEMORY_NAMES.items() if s in name)
        m = memory(key)
        peak, size = m["peak_bytes"], m["input_bytes"]
        print(
            f"| {name} | {size / 1e6:.1f} | {peak / 1e6:.1f} | {peak / size:.2f} | "
            f"{m['estimate_bytes'] / peak:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
