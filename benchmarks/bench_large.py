"""Large images: time against pixels (8 to 48 Mpx), large K and K sweeps at 4K.

``python benchmarks/bench_large.py`` prints Markdown tables (benchmarks/RESULTS_LARGE.md):

* the default at K=16 on photo mosaics and noisy gradients of 8, 16, 24 and 48 Mpx
  (a 6000x4000 camera photo is 24 Mpx): seconds and seconds per Mpx, which stay flat
  when time grows linearly (no step at 2**24 pixels);
* K = 16, 64, 128, 256 at 3840x2160, as a ratio to K=16;
* ``sweep(image, "2..16")`` at 3840x2160 against one K=16 run: the sweep itself (every K's
  centres and exact figures; a K's labels and quantized image are made when its result is
  first taken), and the sweep with all 15 results taken.

Best of 2 runs each, one process, side by side.
"""

from __future__ import annotations

import gc
import time

from bench_quantize import machine
from images import mosaic, noisy_gradient

from napari_kquant import quantize, sweep


def best(fn, repeats=2):
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


SIZES = ((2160, 3840), (3000, 5400), (4000, 6000), (6000, 8000))  # 8, 16, 24, 48 Mpx


def main():
    print(f"machine: {machine()}\n")
    quantize(mosaic(300, 400), 4)
    print("| image | Mpx | seconds, K=16 | seconds per Mpx |")
    print("|---|---|---|---|")
    for name, make in (("photo mosaic", mosaic), ("noisy gradient σ=20", noisy_gradient)):
        for h, w in SIZES:
            image = make(h, w)
            seconds = best(lambda image=image: quantize(image, 16))
            print(f"| {name} | {h * w / 1e6:.1f} | {seconds:.3f} | {seconds / (h * w / 1e6):.4f} |")
            del image
    print("\n| 3840x2160 image | K | seconds | / K=16 |")
    print("|---|---|---|---|")
    for name, make in (("photo mosaic", mosaic), ("noisy gradient σ=20", noisy_gradient)):
        image = make()
        base = None
        for k in (16, 64, 128, 256):
            seconds = best(lambda image=image, k=k: quantize(image, k))
            base = base or seconds
            print(f"| {name} | {k} | {seconds:.3f} | {seconds / base:.2f} |")
        swept = best(lambda image=image: sweep(image, "2..16"), 1)
        print(f"| {name} | sweep 2..16 (15 K) | {swept:.3f} | {swept / base:.2f} |")
        taken = best(lambda image=image: [r.image for r in sweep(image, "2..16")], 1)
        print(f"| {name} | sweep 2..16, every result taken | {taken:.3f} | {taken / base:.2f} |")
        del image


if __name__ == "__main__":
    main()
