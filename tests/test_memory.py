"""The working-memory guard: estimates bound real use, and too-large jobs are refused."""

import tracemalloc

import numpy as np
import pytest
from skimage import data

from napari_kquant import _memory, quantize


@pytest.mark.parametrize("method", ["fast", "opencv"])
@pytest.mark.parametrize("image", [data.retina(), data.camera(), data.coffee().astype(np.uint16)])
def test_estimate_bounds_the_measured_peak(image, method):
    rgb = image.ndim == 3
    n_pixels = image.shape[0] * image.shape[1]
    estimate = _memory.working_bytes(image, n_pixels, 3 if rgb else 1, method)
    tracemalloc.start()
    quantize(image, 8, method=method)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak <= estimate


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
    free = _memory.available_bytes()
    assert free is None or free > 0
