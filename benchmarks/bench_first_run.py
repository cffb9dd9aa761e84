"""First use: the first result on a fresh computer, and in each later process.

``python benchmarks/bench_first_run.py`` prints Markdown tables
(benchmarks/RESULTS_FIRST_RUN.md). Every row runs in fresh processes, with
``NUMBA_CACHE_DIR`` set to a new empty folder for the cold cache:

* **cold cache** (a computer's first run): ``import napari_kquant``, then at once the
  first ``quantize`` (answered by the numpy stand-in while a background process
  compiles the kernels), the OpenCV recipe on the same image in the same process,
  how long until the kernels are ready, the first call with them and a later one;
* **warm cache** (every later process): the first call right after the import, and
  after the import's background load of the kernels is done (as when the dock opens
  before Run, or a script reads its image first), against a later call.

The image is made before napari_kquant is imported, so "right after the import" is
the worst case.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap

from bench_quantize import machine

CASES = (
    ("astronaut 512x512", "data.astronaut()", 8),
    ("photo mosaic 3840x2160", "mosaic()", 16),
    ("12-bit microscopy 2048x2048", "microscopy_12bit()", 8),
)

SCRIPT = """
import json, sys, time
sys.path.insert(0, {here!r})
from images import mosaic, microscopy_12bit
from skimage import data
image = {make}
k = {k}
out = {{}}
started = time.perf_counter()
import napari_kquant as nk
from napari_kquant._core.fast import prepare
out["import"] = time.perf_counter() - started

def timed(**options):
    start = time.perf_counter()
    result = nk.quantize(image, k, seed=0, **options)
    return time.perf_counter() - start, result

if {wait_first}:
    prepare.wait()
out["first"], first = timed()
out["stand_in"] = "kernels" in first.params
out["first_sse"] = first.compactness
if {cold}:
    out["opencv"], recipe = timed(method="opencv")
    out["opencv_sse"] = recipe.compactness
    start = time.perf_counter()
    prepare.wait()
    out["ready_after"] = time.perf_counter() - started
    out["with_kernels"], fast = timed()
    out["fast_sse"] = fast.compactness
out["later"] = min(timed()[0] for _ in range(2))
print(json.dumps(out))
"""


def run(make: str, k: int, cache: str, cold: bool, wait_first: bool = False) -> dict:
    here = os.path.dirname(os.path.abspath(__file__))
    script = SCRIPT.format(here=here, make=make, k=k, cold=cold, wait_first=wait_first)
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    print(f"machine: {machine()}\n")
    print("### Cold cache: a computer's first run\n")
    print(
        "| image | K | import s | first result s (stand-in) | OpenCV recipe s | first / recipe "
        "| kernels ready after s | first with kernels s | later s "
        "| SSE stand-in / recipe | SSE stand-in / kernels |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    caches = {}
    for name, make, k in CASES:
        cache = caches[name] = tempfile.mkdtemp(prefix="kquant-bench-numba-")
        r = run(make, k, cache, cold=True)
        assert r["stand_in"], "the cold cache was not cold"
        print(
            f"| {name} | {k} | {r['import']:.2f} | {r['first']:.2f} | {r['opencv']:.2f} "
            f"| {r['first'] / r['opencv']:.2f} | {r['ready_after']:.1f} "
            f"| {r['with_kernels']:.3f} | {r['later']:.3f} "
            f"| {r['first_sse'] / r['opencv_sse']:.4f} | {r['first_sse'] / r['fast_sse']:.4f} |"
        )
    print("\n### Warm cache: every later process\n")
    print(
        "| image | K | import s | first call right after import s | / later "
        "| first call once loaded s | / later | later s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, make, k in CASES:
        at_once = run(make, k, caches[name], cold=False)
        loaded = run(make, k, caches[name], cold=False, wait_first=True)
        assert not at_once["stand_in"] and not loaded["stand_in"]
        later = min(at_once["later"], loaded["later"])
        print(
            f"| {name} | {k} | {at_once['import']:.2f} | {at_once['first']:.3f} "
            f"| {at_once['first'] / later:.2f} | {loaded['first']:.3f} "
            f"| {loaded['first'] / later:.2f} | {later:.3f} |"
        )


if __name__ == "__main__":
    main()
