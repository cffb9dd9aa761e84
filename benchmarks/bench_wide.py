"""Wide feature tables: the fast engine against scikit-learn KMeans and OpenCV, in one run.

make_blobs (20,000 samples, 8 centres) at 2 to 256 features, scikit-learn's digits
(1,797 x 64, K=10), image-sized float32 tables (512 x 512 pixels of 32 channels,
1024 x 1024 of 16), and many clusters on wide rows (normal noise 8,000 x 64 at K=40,
make_blobs 30,000 x 32 with 64 overlapping centres at K=64). For each: seconds (best
of 5, warm) and inertia (sum of squared distances) of napari-kquant's default engine
(3 attempts; and with 1 attempt), KMeans(n_init=1) and cv2.kmeans (k-means++, the
same criteria as our default; one attempt and three), and the inertia ratios of our
default / KMeans and / OpenCV (one attempt); median over seeds 0, 1, 2. Each
runner and seed: a pause, one untimed call, then the best of 5 (see PAUSE).

    python benchmarks/bench_wide.py
"""

from __future__ import annotations

import time

import cv2
import numpy as np
from bench_quantize import machine
from bench_sweep import best_time
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits, make_blobs

from napari_kquant import quantize

SEEDS = (0, 1, 2)
REPEATS = 5
# Before each runner's calls: a pause, in which the worker threads of the one before
# stop (after cv2.kmeans on 1,048,576 x 16 the next call of anything took up to 1.7x
# as long), then one untimed call, since on this VM a process that was idle runs its
# next call up to twice as slowly
PAUSE = 0.3


def ours(X, k, seed, attempts=3):
    return quantize(X, k, channel_axis=-1, seed=seed, attempts=attempts).compactness


def ours_1(X, k, seed):
    return ours(X, k, seed, attempts=1)


def sklearn(X, k, seed):
    return KMeans(k, n_init=1, random_state=seed).fit(X).inertia_


def opencv(X, k, seed, attempts=1):
    cv2.setRNGSeed(seed)
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 100, 1e-3 * np.ptp(X))
    samples = np.ascontiguousarray(X, dtype=np.float32)
    return cv2.kmeans(samples, k, None, criteria, attempts, cv2.KMEANS_PP_CENTERS)[0]


def opencv_3(X, k, seed):
    return opencv(X, k, seed, attempts=3)


def row(name, X, k):
    quantize(X[:200], 2, channel_axis=-1)  # compiled kernels loaded
    figures = {}
    runners = (
        ("ours", ours),
        ("ours 1", ours_1),
        ("KMeans", sklearn),
        ("OpenCV", opencv),
        ("OpenCV 3", opencv_3),
    )
    for label, fn in runners:
        runs = []
        for s in SEEDS:
            time.sleep(PAUSE)  # the last runner's worker threads go quiet
            fn(X, k, s)  # (and one untimed call: this runner's caches and threads warm)
            runs.append(best_time(lambda fn=fn, s=s: fn(X, k, s), repeats=REPEATS))
        figures[label] = (np.median([t for t, _ in runs]), [float(v) for _, v in runs])
    ratio_km = np.median(np.divide(figures["ours"][1], figures["KMeans"][1]))
    ratio_cv = np.median(np.divide(figures["ours"][1], figures["OpenCV"][1]))
    times = " | ".join(
        f"{figures[n][0]:.4f}" for n in ("ours", "ours 1", "KMeans", "OpenCV", "OpenCV 3")
    )
    table = f"{X.shape[0]} x {X.shape[1]}, K={k}"
    return f"| {name} | {table} | {times} | {ratio_km:.4f} | {ratio_cv:.4f} |"


def main():
    print(f"machine: {machine()}\n")
    print(
        "| data | table | ours s (3 attempts) | ours s (1 attempt) | KMeans s (n_init=1)"
        " | OpenCV s (1 attempt) | OpenCV s (3 attempts) | inertia / KMeans | inertia / OpenCV |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for features in (2, 8, 16, 32, 64, 128, 256):
        X, _ = make_blobs(20_000, features, centers=8, random_state=0)
        print(row("make_blobs", X, 8), flush=True)
    print(row("digits", load_digits().data, 10), flush=True)
    # image-sized tables: a 512 x 512 image of 32 channels, a 1024 x 1024 image of 16
    for pixels, features in ((512 * 512, 32), (1024 * 1024, 16)):
        X, _ = make_blobs(pixels, features, centers=8, random_state=0)
        print(row("image-sized", X.astype(np.float32), 8), flush=True)
    # many clusters on wide rows: no structure at all, and overlapping blobs
    noise = np.random.default_rng(0).normal(size=(8000, 64))
    print(row("normal noise", noise, 40), flush=True)
    X, _ = make_blobs(30_000, 32, centers=64, cluster_std=5.0, random_state=3)
    print(row("make_blobs", X, 64), flush=True)


if __name__ == "__main__":
    main()
