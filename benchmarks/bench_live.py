"""Live preview latency: from a change of K to the live layers updated, in a real viewer.

``xvfb-run -a python benchmarks/bench_live.py`` (or on a desktop, without xvfb-run)
prints a Markdown table (benchmarks/RESULTS_LIVE.md). For photo mosaics of 0.5, 2, 8
and 24 Mpx, the K-means dock's **live** toggle is turned on and K is then changed
``--changes`` times (8 -> 5 -> 6 -> 7 ...); for each change the time until the live
layers show the new K (the preview's, above 4 Mpx) and until they show its full
result. The times include napari setting the layers' data and drawing them (a
software-rendered canvas here).
"""

from __future__ import annotations

import argparse
import time

import napari
import numpy as np
from bench_quantize import machine
from images import mosaic
from qtpy.QtWidgets import QApplication

from napari_kquant._core.fast import prepare
from napari_kquant._napari.live import PREVIEW_PIXELS

SIZES = {  # name: (height, width)
    "0.5 Mpx": (600, 840),
    "2 Mpx": (1200, 1680),
    "8 Mpx": (2400, 3360),
    "24 Mpx": (4160, 5760),
}


def wait_until(condition, timeout=120.0):
    end = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > end:
            raise TimeoutError("the live layers did not update")
        QApplication.processEvents()
        time.sleep(0.002)


def measure(name, shape, changes: int) -> dict:
    viewer = napari.Viewer()
    viewer.add_image(mosaic(*shape), name=name)
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    live = widget.live
    live.toggle.value = True
    two_stages = shape[0] * shape[1] > PREVIEW_PIXELS
    wait_until(lambda: live.shown and not live.running and not live._settle.isActive())
    first, full = [], []
    for k in range(5, 5 + changes):
        count = len(live.shown)
        changed = time.perf_counter()
        widget.k.value = k
        wait_until(lambda n=count: len(live.shown) > n)
        first.append(time.perf_counter() - changed)
        if two_stages:
            wait_until(lambda n=count: len(live.shown) > n + 1)
        full.append(time.perf_counter() - changed)
        assert live.shown[-1][1] == k and not live.shown[-1][2]
    viewer.close()
    return {"first": float(np.median(first)), "full": float(np.median(full)), "two": two_stages}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=4)
    args = parser.parse_args()
    prepare.wait()
    print(f"machine: {machine()}\n")
    print(f"median of {args.changes} changes of K per size, live layers of a 'K-means' dock\n")
    print("| image | change -> layers updated (preview above 4 Mpx) | change -> full result |")
    print("|---|---|---|")
    for name, shape in SIZES.items():
        m = measure(name, shape, args.changes)
        first = f"{m['first']:.2f} s" + (" (preview)" if m["two"] else "")
        print(f"| {name} ({shape[1]} x {shape[0]}) | {first} | {m['full']:.2f} s |")


if __name__ == "__main__":
    main()
