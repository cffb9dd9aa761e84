"""Measure the peak extra memory of one quantize() run against the library's estimate.

Run as ``python benchmarks/memory_peak.py NAME METHOD [OPTION=VALUE ...]``: it builds the
image NAME (see IMAGES), resets the process's peak-RSS mark, quantizes once and prints
one JSON line with the measured peak above the starting RSS and the estimate. Each run
is its own process so that nothing allocated earlier hides in the peak. Used by
tests/test_memory.py and benchmarks/bench_memory.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def _images():
    from skimage import data

    rng = np.random.default_rng(0)
    return {
        "noise_rgb": lambda: rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8),
        "astronaut": data.astronaut,
        "coffee_u16": lambda: data.coffee().astype(np.uint16) * 257,
        "camera": data.camera,
        "noise_gray_f32": lambda: rng.random((1024, 1024), dtype=np.float32),
        "retina_f64": lambda: data.retina()[::2, ::2].astype(np.float64) / 255,
        "features_2": lambda: rng.integers(0, 4096, (1024, 1024, 2)).astype(np.uint16),
        "features_50": lambda: rng.random((600, 600, 50), dtype=np.float32),
        "motorcycle": lambda: data.stereo_motorcycle()[0],
        "hubble": data.hubble_deep_field,
        "microscopy_12bit": lambda: _bench_images().microscopy_12bit(),
        "noisy_gradient_4k": lambda: _bench_images().noisy_gradient(),
        "noise_4k": lambda: np.clip(
            np.linspace(0, 255, 3840)[None, :, None] + rng.normal(0, 20, (2160, 3840, 3)),
            0,
            255,
        ).astype(np.uint8),
    }


def _bench_images():
    sys.path.insert(0, str(Path(__file__).parent))
    import images

    return images


def _rss(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def measure(name: str, method: str, **options) -> dict:
    from napari_kquant import quantize
    from napari_kquant._core.memory import working_bytes
    from napari_kquant._core.validate import guess_rgb

    k = options.pop("k", 16)
    image = _images()[name]()
    features = name.startswith("features")
    kwargs = {"channel_axis": -1} if features else {}
    from napari_kquant._core.fast import prepare

    # imports, caches and the compiled kernels of every path, loaded once per process
    # (the import's background load of the kernels finished first: it is not the run's)
    prepare.wait()
    quantize(image[:8, :8], 2, method=method, **kwargs, **options)
    quantize(image[::4, ::4], k, method=method, **kwargs, **options)
    if image.size > 3 << 20:  # and the compiled kernels of large images
        quantize(image[:1100, :1000], k, method=method, **kwargs, **options)
    rgb = features or guess_rgb(image.shape)
    n_channels = image.shape[-1] if features else (3 if rgb else 1)
    transformed = options.get("color_space", "rgb") != "rgb" or bool(options.get("standardize"))
    estimate = working_bytes(image.shape, image.dtype, n_channels, method, transformed=transformed)
    import ctypes
    import gc

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed warm-up memory goes back to the system
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets the peak RSS mark (VmHWM)
    start = _rss("VmRSS:")
    result = quantize(image, k, method=method, **kwargs, **options)
    peak = _rss("VmHWM:") - start
    # the second estimate, made once the summary is known (the fast engine), else the first
    estimate = result.params.get("memory_estimate_bytes", estimate)
    del result
    return {
        "image": name,
        "method": method,
        "input_bytes": image.nbytes,
        "peak_bytes": peak,
        "estimate_bytes": estimate,
    }


if __name__ == "__main__":
    name, method, *rest = sys.argv[1:]
    options = {}
    for item in rest:
        key, value = item.split("=")
        options[key] = (
            int(value)
            if value.isdigit()
            else value == "True"
            if value
            in (
                "True",
                "False",
            )
            else value
        )
    print(json.dumps(measure(name, method, **options)))
