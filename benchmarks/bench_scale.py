"""Bigger than memory: a 40,000 x 40,000 RGB uint8 zarr (4.8 GB of pixels) quantized at K=8.

The script writes the zarr itself, chunk by chunk (1024 x 1024 x 3), from tiles of real
``skimage.data`` photos, then runs the lazy path and prints:

* fit: drawing the 1,000,000-pixel sample chunk by chunk and fitting K=8 on it;
* one view: computing the labels and the quantized image of one 1024 x 1024 view;
* labels to zarr: computing and writing all 1.6 billion labels;
* peak RSS of the whole process (generation included), against the 2 GB target and
  against the memory the eager path would need for the same image.

    python benchmarks/bench_scale.py [--side 40000] [--store /tmp/kquant-scale.zarr]

The zarr is kept and reused by later runs (delete it to regenerate).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import zarr
from bench_quantize import machine
from skimage import data

from napari_kquant import export_zarr, quantize
from napari_kquant._core.memory import working_bytes

CHUNK = 1024


def photo_tiles():
    """Real photos, each tiled up to a 1024 x 1024 RGB uint8 tile."""
    tiles = []
    for image in (data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.retina()):
        reps = (-(-CHUNK // image.shape[0]), -(-CHUNK // image.shape[1]), 1)
        tiles.append(np.ascontiguousarray(np.tile(image, reps)[:CHUNK, :CHUNK, :3]))
    return tiles


def make_store(path: Path, side: int) -> zarr.Array:
    """The synthetic slide: tile (i, j) is photo (i + 2j) mod 5, rolled by (7i, 13j) pixels."""
    if path.exists():
        store = zarr.open_array(str(path), mode="r")
        if store.shape == (side, side, 3):
            return store
        shutil.rmtree(path)
    store = zarr.open_array(
        str(path), mode="w", shape=(side, side, 3), chunks=(CHUNK, CHUNK, 3), dtype=np.uint8
    )
    tiles = photo_tiles()
    n = -(-side // CHUNK)
    for i in range(n):
        for j in range(n):
            tile = np.roll(tiles[(i + 2 * j) % len(tiles)], (7 * i, 13 * j), axis=(0, 1))
            rows = min(CHUNK, side - i * CHUNK)
            cols = min(CHUNK, side - j * CHUNK)
            store[i * CHUNK : i * CHUNK + rows, j * CHUNK : j * CHUNK + cols] = tile[:rows, :cols]
    return zarr.open_array(str(path), mode="r")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # kB on Linux


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=40_000)
    parser.add_argument("--store", type=Path, default=Path("/tmp/kquant-scale.zarr"))
    parser.add_argument("--k", type=int, default=8)
    args = parser.parse_args()

    start = time.perf_counter()
    source = make_store(args.store, args.side)
    made = time.perf_counter() - start
    pixels = args.side * args.side
    print(f"machine: {machine()}")
    print(f"store: {args.store} {source.shape} {source.dtype}, chunks {source.chunks}")
    print(f"  {pixels * 3 / 1e9:.1f} GB of pixels; ready in {made:.1f} s\n")

    start = time.perf_counter()
    result = quantize(source, args.k, seed=0)
    fit = time.perf_counter() - start

    middle = args.side // 2 // CHUNK * CHUNK
    view = (slice(middle, middle + CHUNK), slice(middle, middle + CHUNK))
    start = time.perf_counter()
    labels_view = result.labels[view].compute()
    image_view = result.image[view].compute()
    one_view = time.perf_counter() - start
    assert labels_view.shape == (CHUNK, CHUNK) and image_view.shape == (CHUNK, CHUNK, 3)

    out = args.store.with_name(args.store.stem + "-labels.zarr")
    start = time.perf_counter()
    export_zarr(result, out, image=False)
    written = time.perf_counter() - start
    check = zarr.open_group(str(out), mode="r")["labels"]
    assert check.shape == (args.side, args.side)
    np.testing.assert_array_equal(check[view], labels_view)

    rss = peak_rss_gb()
    eager = working_bytes((pixels, 3), np.uint8, 3, "fast") + pixels * 3
    print(f"| {args.side:,} x {args.side:,} RGB uint8, K={args.k} | value |")
    print("|---|---|")
    sampled = result.params["sampled"]
    print(f"| fit (sample of {sampled:,} px, drawn chunk by chunk) | {fit:.1f} s |")
    print(f"| compute one {CHUNK}x{CHUNK} view (labels + quantized) | {one_view:.3f} s |")
    print(f"| compute and write all labels to zarr | {written:.1f} s |")
    print(f"| peak RSS, whole run | {rss:.2f} GB (target < 2 GB: {rss < 2}) |")
    print(f"| eager path would hold (input + estimated working memory) | {eager / 1e9:.1f} GB |")
    print(f"| peak RSS / eager estimate | {rss / (eager / 1e9):.3f} |")
    print(f"\ncentres (darkest first): {np.round(result.centers).astype(int).tolist()}")
    shutil.rmtree(out)


if __name__ == "__main__":
    main()
