"""The K sweep against single runs, in one run: skimage.data.retina(), K = 2..16, defaults.

Prints the sweep's seconds (and with every K's labels and image made: a sweep makes them
when a result is first taken), a single K=16 run's seconds and their ratio, the time of 15
separate quantize() calls, and the worst ratio of a sweep result's compactness to the
separate run's at the same K.

    python benchmarks/bench_sweep.py
"""

from __future__ import annotations

import time

import numpy as np
from bench_quantize import machine
from skimage import data

from napari_kquant import quantize, sweep


def best_time(fn, repeats=5):
    best, out = np.inf, None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main():
    image = data.retina()
    ks = range(2, 17)
    quantize(image, 16)  # warm caches and imports
    single, _ = best_time(lambda: quantize(image, 16))
    swept, result = best_time(lambda: sweep(image, ks))
    taken, _ = best_time(lambda: [r.image for r in sweep(image, ks)])
    separate, singles = best_time(lambda: [quantize(image, k) for k in ks], repeats=2)
    worst = max(r.compactness / s.compactness for r, s in zip(result, singles, strict=True))
    print(f"machine: {machine()}\n")
    print("| retina 1411x1411, K=2..16 | seconds | / single K=16 run |")
    print("|---|---|---|")
    print(f"| sweep (napari_kquant.sweep) | {swept:.3f} | {swept / single:.2f} |")
    print(f"| sweep, every K's result taken | {taken:.3f} | {taken / single:.2f} |")
    print(f"| 15 separate quantize() calls | {separate:.3f} | {separate / single:.2f} |")
    print(f"| single quantize(K=16) | {single:.3f} | 1.00 |")
    print(f"\nworst sweep / separate compactness at the same K: {worst:.4f}")
    print(f"elbow (kneedle): K={result.elbow()}")


if __name__ == "__main__":
    main()
