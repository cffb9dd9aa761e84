"""Bigger than memory: a 40,000 x 40,000 RGB uint8 zarr (4.8 GB of pixels) quantized at K=8.

The script writes the zarr itself, chunk by chunk (1024 x 1024 x 3), from tiles of real
``skimage.data`` photos, then runs the lazy path and prints:

* fit: drawing the 1,000,000-pixel sample chunk by chunk and fitting K=8 on it;
* one view: computing the labels and the quantized image of one 1024 x 1024 view;
* labels to zarr: computing and writing all 1.6 billion labels;
* peak RSS of the whole process (generation included), against the 2 GB target and
  against the memory the eager path would need for the same image.

Then (``--generated``, default 100,000) an RGB image of that side **generated on the
fly** (a dask array whose every chunk is a rolled photo tile: no input file, 30 GB
of pixels at 100,000) is quantized at K=8 and its labels written compressed, with
dask's default scheduler and then on a ``LocalCluster`` of 2 worker processes (the
labels are checked equal). The floor is the same pass without the labelling: each
chunk generated and a labels-sized channel of it written the same way.

    python benchmarks/bench_scale.py [--side 40000] [--store /tmp/kquant-scale.zarr]
                                     [--generated 100000]

The zarr is kept and reused by later runs (delete it to regenerate).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time
from pathlib import Path

import numpy as np
import zarr
from bench_quantize import machine
from images import CHUNK, generated, photo_tiles

from napari_kquant import export_zarr, quantize
from napari_kquant._core.memory import working_bytes


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


def run_generated(side: int, k: int, folder: Path) -> None:
    """The generated image: fit, labels written (threads, then a 2-process LocalCluster)."""
    import dask.array as da
    from distributed import Client, LocalCluster

    image = generated(side)
    pixels = side * side
    print(f"\n### {side:,} x {side:,} RGB uint8 generated on the fly ({pixels * 3 / 1e9:.0f} GB)\n")
    rows = []
    start = time.perf_counter()
    result = quantize(image, k, seed=0)
    rows.append(("fit (sample of 1,000,000 px, drawn chunk by chunk)", time.perf_counter() - start))
    threads_out = folder / "generated-labels.zarr"
    start = time.perf_counter()
    export_zarr(result, threads_out, image=False)
    labelled = time.perf_counter() - start
    rows.append(("label and write all labels (compressed), default scheduler", labelled))
    floor_out = folder / "generated-floor.zarr"
    start = time.perf_counter()
    image[..., 0].to_zarr(str(floor_out))  # generate each chunk, write a labels-sized channel
    floor = time.perf_counter() - start
    rows.append(("floor: generate each chunk and write a labels-sized channel", floor))
    rss = peak_rss_gb()
    cluster_out = folder / "generated-labels-cluster.zarr"
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster,
        Client(cluster) as client,
    ):
        start = time.perf_counter()
        on_cluster = quantize(image, k, seed=0)
        export_zarr(on_cluster, cluster_out, image=False)
        clustered = time.perf_counter() - start
        workers_rss = sum(client.run(peak_rss_gb).values())
    rows.append(("the same (fit + labels) on a LocalCluster of 2 worker processes", clustered))
    a = da.from_zarr(str(threads_out / "labels" / "clusters" / "0"))
    b = da.from_zarr(str(cluster_out / "labels" / "clusters" / "0"))
    equal = bool((a == b).all().compute())
    on_disk = sum(f.stat().st_size for f in threads_out.rglob("*") if f.is_file())
    print("| step | value |")
    print("|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} s |")
    cores = os.cpu_count() or 1
    print(f"| labelling + writing, per core | {pixels / 1e6 / labelled / cores:.0f} Mpx/s |")
    print(f"| floor, per core | {pixels / 1e6 / floor / cores:.0f} Mpx/s |")
    print(f"| labels on disk | {on_disk / 1e9:.2f} GB |")
    print(f"| peak RSS, this process (without the cluster) | {rss:.2f} GB (< 2 GB: {rss < 2}) |")
    print(f"| peak RSS, the 2 cluster workers together | {workers_rss:.2f} GB |")
    print(f"| cluster labels equal to the threaded ones | {equal} |")
    total = rows[0][1] + labelled
    print(f"| fit + labels, default scheduler (target <= 10 min) | {total / 60:.1f} min |")
    print(f"\ncentres (darkest first): {np.round(result.centers).astype(int).tolist()}")
    for out in (threads_out, floor_out, cluster_out):
        shutil.rmtree(out)


def peak_rss_gb() -> float:
    """This process's peak resident memory (Linux: VmHWM, else ru_maxrss)."""
    try:
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024 / 1e9
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9  # kB on Linux


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=40_000)
    parser.add_argument("--store", type=Path, default=Path("/tmp/kquant-scale.zarr"))
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--generated", type=int, default=100_000, help="0: skip")
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
    check = zarr.open_group(str(out), mode="r")["labels/clusters/0"]
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
    if args.generated:
        run_generated(args.generated, args.k, args.store.parent)


if __name__ == "__main__":
    main()
