"""The working-memory guard: estimates bound measured peaks, too-large jobs are refused early."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from napari_kquant import quantize
from napari_kquant._core import memory as _memory

PEAK_SCRIPT = Path(__file__).parents[2] / "benchmarks" / "memory_peak.py"
PEAK_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def measure(*case, runs=1):
    """Peak RSS of the run in a fresh process (the median of ``runs``), and the estimate.

    The kernel measures it, OpenCV's and the compiled kernels' allocations included
    (tracemalloc does not see them). glibc's mmap threshold is fixed (``PEAK_ENV``)
    so that freed large blocks go back to the system: the peak is then the most
    memory live at once, not what the heap happened to keep from earlier work.
    """
    results = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, str(PEAK_SCRIPT), *case],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **PEAK_ENV},
        )
        results.append(json.loads(done.stdout))
    results.sort(key=lambda m: m["peak_bytes"])
    measured = results[len(results) // 2]
    assert measured["peak_bytes"] > 0
    return measured


MB = 1e6


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    ["motorcycle", "hubble", "microscopy_12bit", "noisy_gradient_4k"],
)
def test_many_colour_images_stay_small_and_match_the_estimate(name):
    """The many-colour set: at most 3x the input at 4K, 3x + 20 MB when small.

    The estimate the run reports (made once the summary is known) is within 1.5x of
    the measured peak, either way.
    """
    m = measure(name, "fast", "k=16", runs=3)
    peak, size = m["peak_bytes"], m["input_bytes"]
    limit = 3 * size if size > 20 * MB else 3 * size + 20 * MB
    assert peak <= limit, m
    assert peak / 1.5 <= m["estimate_bytes"] <= 1.5 * peak, m


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [
        ("noise_rgb", "fast"),  # every pixel a distinct colour
        ("noise_gray_f32", "fast"),
        ("features_2", "fast"),
        ("features_50", "fast"),  # a wide table: every row a point
        ("astronaut", "fast"),
        ("astronaut", "fast", "color_space=lab"),
    ],
    ids="-".join,
)
def test_the_fast_engines_estimate_is_within_half_again_of_the_peak(case):
    m = measure(*case, runs=3)
    assert m["peak_bytes"] / 1.5 <= m["estimate_bytes"] <= 1.5 * m["peak_bytes"], m


@pytest.mark.slow
@pytest.mark.parametrize(
    "case",
    [
        ("noise_rgb", "opencv"),
        ("coffee_u16", "opencv"),
    ],
    ids="-".join,
)
def test_the_first_estimate_bounds_the_measured_peak(case):
    """OpenCV's estimate, from the shape alone, bounds its peak."""
    m = measure(*case)
    assert m["estimate_bytes"] >= m["peak_bytes"], m


def test_a_huge_view_is_refused_before_anything_is_copied():
    # a zero-stride view: 3 bytes of memory that read as a 60000 x 60000 RGB image
    view = np.broadcast_to(np.zeros(3, np.uint8), (60000, 60000, 3))
    started = time.perf_counter()
    with pytest.raises(ValueError, match="working memory"):
        quantize(view, 4)
    assert time.perf_counter() - started < 2  # refused from the shape, not after a copy


def test_non_contiguous_input_counts_its_copy():
    shape = (1000, 1000, 3)
    contiguous = _memory.working_bytes(shape, np.uint8, 3, "fast")
    strided = _memory.working_bytes(shape, np.uint8, 3, "fast", contiguous=False)
    assert strided - contiguous == 3 * 10**6


def test_too_large_a_job_is_refused_with_a_clear_message(monkeypatch, astronaut):
    monkeypatch.setattr(_memory, "available_bytes", lambda: 1 << 20)
    with pytest.raises(ValueError, match=r"needs about .* GiB of working memory") as info:
        quantize(astronaut, 4)
    assert "512x512x3 uint8" in str(info.value)
    assert "crop or downsample" in str(info.value) and "lazily" in str(info.value)


def test_unknown_free_memory_does_not_block(monkeypatch, astronaut):
    monkeypatch.setattr(_memory, "available_bytes", lambda: None)
    assert quantize(astronaut, 2).k == 2


def test_available_bytes_reads_this_machine():
    """psutil's figure (what it reads on Linux, macOS and Windows alike)."""
    import psutil

    free = _memory.available_bytes()
    assert free is not None and free > 0
    assert abs(free - psutil.virtual_memory().available) < 0.1 * free


def test_the_guard_works_without_proc_meminfo(monkeypatch, astronaut):
    """Where /proc/meminfo does not exist (macOS, Windows) the guard still refuses."""
    import builtins

    import psutil

    real_open = builtins.open

    def no_proc(path, *args, **kwargs):
        if str(path).startswith("/proc/"):
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_proc)
    monkeypatch.setattr(
        psutil,
        "virtual_memory",
        lambda: type("Memory", (), {"available": 1 << 20, "total": 1 << 30})(),
    )
    assert _memory.available_bytes() == 1 << 20
    with pytest.raises(ValueError, match=r"needs about .* GiB of working memory"):
        quantize(astronaut, 4)
