"""A computer's first run: the numpy stand-in answers while the kernels are prepared.

The stand-in's results are checked the way the kernels' are (every label the
nearest centre by brute force, the compactness the brute-force SSE, dask equal to
numpy) and against the kernels' quality; a fresh numba cache (a new
``NUMBA_CACHE_DIR``) checks the first result, the background process that fills the
cache, the command line's note, and that a later process compiles nothing.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from test_exact import check_result

from napari_kquant import KMeansQuantizer, apply_palette, quantize, sweep
from napari_kquant._core import warmup
from napari_kquant._core.fast import prepare

STAND_IN = "numpy stand-in (first run on this computer)"


@pytest.fixture
def stand_in():
    """The numpy stand-in answers, as on a computer whose kernels are being prepared."""
    with prepare.forced(False):
        assert prepare.status() == prepare.PREPARING
        yield


@pytest.mark.parametrize(
    "make",
    [
        lambda a: a,
        lambda a: a.astype(np.uint16) * 257,
        lambda a: a.astype(np.float32) / 255,
        lambda a: a[..., 1],
        lambda a: a[..., 1].astype(np.float64) + 1e9,
    ],
    ids=["uint8-rgb", "uint16-rgb", "float32-rgb", "uint8-gray", "float64-offset-1e9"],
)
def test_stand_in_labels_every_pixel_with_its_nearest_centre(make, small_rgb, brute, stand_in):
    image = make(small_rgb)
    result = quantize(image, 6, seed=0)
    assert result.params["kernels"] == STAND_IN
    assert len({tuple(c) for c in result.centers}) == 6
    check_result(image, result, brute, channels=image.ndim == 3)
    assert result.counts.sum() == image.shape[0] * image.shape[1]


def test_stand_in_reaches_the_kernels_quality_on_a_photo(astronaut):
    """Samples and polishes: within 2 % of the kernels' compactness (the same seed)."""
    with prepare.forced(False):
        plain = quantize(astronaut, 8, seed=0)
    fast = quantize(astronaut, 8, seed=0)
    assert "kernels" not in fast.params
    assert plain.compactness == pytest.approx(fast.compactness, rel=0.02)
    assert plain.image.dtype == astronaut.dtype and plain.image.shape == astronaut.shape


def test_stand_in_sweeps_palettes_and_estimator(small_rgb, brute, stand_in):
    swept = sweep(small_rgb, [2, 4])
    for k in (2, 4):
        brute.check_nearest(small_rgb.reshape(-1, 3), swept[k].labels, swept[k].centers)
    reapplied = apply_palette(small_rgb, swept[4].palette)
    assert np.array_equal(reapplied.labels, swept[4].labels)
    table = small_rgb.reshape(-1, 3).astype(np.float64)
    weights = np.linspace(0.5, 2.0, len(table))
    model = KMeansQuantizer(k=3, seed=0).fit(table, sample_weight=weights)
    distances = brute.squared_distances(table, model.cluster_centers_)
    assert np.array_equal(model.labels_, distances.argmin(axis=1))
    assert model.inertia_ == pytest.approx((distances.min(axis=1) * weights).sum(), rel=1e-9)
    started = KMeansQuantizer(k=3, init=table[[0, 500, 4000]], seed=0).fit(table)
    assert started.n_iter_ <= started.max_iter
    assert np.array_equal(started.predict(table), started.labels_)


def test_nothing_cacheable_compiles_in_this_process(monkeypatch):
    """No writable folder for numba: the thread compiles here, then the kernels answer."""
    monkeypatch.setattr(prepare, "stamp_path", lambda: None)
    monkeypatch.setattr(prepare, "_stamp_seen", False)
    for name in ("_done", "_compiled_here"):
        monkeypatch.setattr(prepare, name, type(getattr(prepare, name))())
    monkeypatch.setattr(prepare, "_thread", None)
    assert prepare.preparing()
    prepare.start(warmup.exercise)  # as importing the package does
    assert prepare.wait(timeout=600)
    assert prepare._compiled_here.is_set() and not prepare.preparing()
    assert "kernels" not in quantize(np.arange(64, dtype=np.uint8).reshape(8, 8), 3).params


FIRST_RUN = """
import contextlib, io, json, os, sys, time
import numpy as np
import imageio.v3 as iio
from skimage import data
import napari_kquant as nk
from napari_kquant._core.fast import prepare
from napari_kquant._cli import main

image = data.astronaut()[::2, ::2]
iio.imwrite(sys.argv[1], image)
out = {"ready_at_import": prepare.ready()}
errors = io.StringIO()
with contextlib.redirect_stderr(errors):
    out["cli_status"] = main(["quantize", sys.argv[1], "-k", "4", "-o", sys.argv[2]])
out["cli_stderr"] = errors.getvalue()
started = time.perf_counter()
first = nk.quantize(image, 8, seed=0)
out["first_s"] = time.perf_counter() - started
out["first_kernels"] = first.params.get("kernels")
table = image.reshape(-1, 3).astype(np.float64)
d = ((table[:, None] - first.centers[None]) ** 2).sum(axis=2)
out["nearest"] = bool(np.all(d[np.arange(len(d)), first.labels.ravel() - 1] <= d.min(axis=1)))
out["ready"] = prepare.wait(timeout=900)
out["stamp"] = os.path.exists(prepare.stamp_path())
out["after_kernels"] = nk.quantize(image, 8, seed=0).params.get("kernels")
print(json.dumps(out))
"""

WARM = """
import json
import numpy as np
from numba.core.event import install_recorder
from skimage import data
import napari_kquant as nk
from napari_kquant._core.fast import prepare

out = {"ready_at_import": prepare.ready()}
image = data.astronaut()
with install_recorder("numba:compile") as compiled:
    for picture in (image, image[:100, :100], image[..., 0], image.astype(np.float32) / 255):
        result = nk.quantize(picture, 8, seed=0)
        nk.apply_palette(picture, result.palette)
    nk.sweep(image, [2, 3, 4])
names = [e.data["dispatcher"].py_func.__name__ for _, e in compiled.buffer if e.is_start]
out["compiled"] = sorted(set(names))
out["kernels"] = result.params.get("kernels")
print(json.dumps(out))
"""


def _python(script, cache, *args):
    env = {k: v for k, v in os.environ.items() if k != prepare.CHILD}
    env["NUMBA_CACHE_DIR"] = str(cache)
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_fresh_cache_answers_at_once_and_is_filled_in_the_background(tmp_path):
    cache = tmp_path / "numba-cache"
    first = _python(FIRST_RUN, cache, tmp_path / "photo.png", tmp_path / "out")
    assert not first["ready_at_import"]
    assert first["cli_status"] == 0
    assert first["cli_stderr"].count(prepare.PREPARING) == 1, first["cli_stderr"]
    assert first["first_kernels"] == STAND_IN and first["nearest"]
    assert first["ready"] and first["stamp"] and first["after_kernels"] is None
    assert any(name.endswith(".nbc") for _, _, files in os.walk(cache) for name in files)
    # a later process: the cache is ready when it starts, and nothing compiles again
    warm = _python(WARM, cache)
    assert warm["ready_at_import"] and warm["kernels"] is None
    assert warm["compiled"] == []


ENDS_WHILE_WARMING = """
import time
import napari_kquant
from napari_kquant._core import warmup
from napari_kquant._core.fast import prepare

def late_warm():  # the warm-up still starting threads as the process ends
    prepare._native.wait(60)
    time.sleep(0.5)
    warmup.warm()

prepare._warm = late_warm
prepare._native.wait(60)  # the import's thread loads the kernels: end the process now
"""


def test_a_process_that_ends_while_the_kernels_warm_up_says_nothing():
    """A command-line run that fails at once must print its one line and nothing else."""
    done = subprocess.run(
        [sys.executable, "-c", ENDS_WHILE_WARMING], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
