"""Lazy results at the eager engine's speed: a 65 Mpx photo mosaic, in memory and as dask.

``python benchmarks/bench_lazy.py`` prints a Markdown table (benchmarks/RESULTS_LAZY.md):
the same palette (K=16, fitted once) applied to an 8640 x 7680 RGB uint8 mosaic of
``skimage.data`` photos held

* as a numpy array (``apply_palette``: the eager path, labels + quantized image);
* as a dask array in 1024 x 1024 chunks, computed with dask's default (threaded)
  scheduler and with its synchronous one: labels and quantized image together
  (``dask.compute``), and labels alone;

and then an OME-Zarr export of the lazy result against the same export of the eager
result (whose arrays are already computed: the cost of writing alone). Every time
is the best of ``--repeat`` runs; the lazy labels and image are checked equal to
the eager ones.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import dask
import dask.array as da
import numpy as np
from bench_quantize import machine
from images import mosaic

import napari_kquant as nk
from napari_kquant._core.fast import prepare


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def first(pair):
    return pair[0]


def second(pair):
    return pair[1]


def passed_through(block):
    """The dask floor: a block's (labels-sized, image-sized) copies, no labelling."""
    block = np.ascontiguousarray(block)
    return block[..., :1].copy(), block.copy()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--height", type=int, default=8640)
    parser.add_argument("--width", type=int, default=7680)
    parser.add_argument("--chunk", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    prepare.wait()
    image = mosaic(args.height, args.width)
    mpx = image.shape[0] * image.shape[1] / 1e6
    palette = nk.quantize(image[::4, ::4], 16, seed=0).palette
    nk.apply_palette(image[:1100, :1000], palette)  # warm
    lazy_input = da.from_array(image, chunks=(args.chunk, args.chunk, 3))

    meta = np.empty((0, 0, 0), np.uint8)
    floor = lazy_input.map_blocks(passed_through, dtype=np.uint8, meta=meta)
    floor_outputs = (
        floor.map_blocks(first, chunks=(*lazy_input.chunks[:-1], (1,)), meta=meta),
        floor.map_blocks(second, meta=meta),
    )
    runs = {}  # name: seconds of each round (the rounds interleave the ways)

    def run(name, function):
        seconds, value = timed(function)
        runs.setdefault(name, []).append(seconds)
        return value

    for _ in range(args.repeat):
        eager = run("eager (numpy), labels + image", lambda: nk.apply_palette(image, palette))
        for scheduler in ("threads", "synchronous"):
            name = "default (threads)" if scheduler == "threads" else "synchronous"
            with dask.config.set(scheduler=scheduler):
                result = nk.apply_palette(lazy_input, palette)
                labels, quantized = run(
                    f"lazy, {name}: labels + image",
                    lambda r=result: dask.compute(r.labels, r.image),
                )
                assert np.array_equal(labels, eager.labels)
                assert np.array_equal(quantized, eager.image)
                run(f"lazy, {name}: labels alone", result.labels.compute)
        run(
            "dask alone (default): the blocks passed through, no labelling",
            lambda: dask.compute(*floor_outputs),
        )
    eager_s = float(np.median(runs["eager (numpy), labels + image"]))

    folder = Path(tempfile.mkdtemp(prefix="kquant-bench-lazy-"))
    try:
        lazy_result = nk.apply_palette(lazy_input, palette)
        computed = replace(  # the same result, already computed, in the same chunks
            lazy_result,
            labels=da.from_array(eager.labels, chunks=lazy_result.labels.chunks),
            image=da.from_array(eager.image, chunks=lazy_result.image.chunks),
        )
        count = iter(range(10**6))
        exports = {}
        for _ in range(args.repeat):
            for name, result in (("writing only", computed), ("labelling + writing", lazy_result)):
                path = folder / f"export{next(count)}.zarr"
                seconds, _ = timed(lambda r=result, p=path: nk.export_zarr(r, p))
                exports.setdefault(name, []).append(seconds)
                shutil.rmtree(path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)

    print(f"machine: {machine()}\n")
    print(
        f"{args.height} x {args.width} RGB uint8 photo mosaic ({mpx:.1f} Mpx), K=16, "
        f"dask chunks {args.chunk} x {args.chunk}; median of {args.repeat} interleaved rounds\n"
    )
    print("| what | seconds | Mpx/s | / eager throughput |")
    print("|---|---|---|---|")
    for name, times in runs.items():
        seconds = float(np.median(times))
        print(f"| {name} | {seconds:.3f} | {mpx / seconds:.0f} | {eager_s / seconds:.2f} |")
    print()
    print("| OME-Zarr export of the lazy result (labels + quantized image) | seconds | Mpx/s |")
    print("|---|---|---|")
    for name, times in exports.items():
        seconds = float(np.median(times))
        print(f"| {name} | {seconds:.2f} | {mpx / seconds:.0f} |")
    ratio = np.median(exports["labelling + writing"]) / np.median(exports["writing only"])
    print(f"\nexport with labelling / writing only: {ratio:.2f}")


if __name__ == "__main__":
    main()
