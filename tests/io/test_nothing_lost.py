"""Nothing lost, round three: every write through the safe writer, and Ctrl+C that stops.

Each promise through its real entry point: the API, the command line (real
subprocesses, two started together, a real SIGINT), and real files and links.
"""

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask.array as da
import imageio.v3 as iio
import numpy as np
import pytest
import zarr
from skimage import data

from napari_kquant import export_zarr, load_palette, quantize, save_palette

SRC = Path(__file__).resolve().parents[2] / "src" / "napari_kquant"


def interruptible():
    """A child that Ctrl+C reaches, even when pytest runs in the background (where
    the shell starts it with SIGINT ignored, and children inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(*args, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-m", "napari_kquant", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
        **kwargs,
    )


# --- 1. the palette writer ------------------------------------------------------------


def test_save_palette_never_writes_through_a_link_or_over_a_file(tmp_path):
    thesis = tmp_path / "thesis.txt"
    thesis.write_text("four years of work")
    os.symlink("thesis.txt", tmp_path / "p.json")
    os.link(thesis, tmp_path / "hard.json")
    for target in ("p.json", "hard.json"):
        with pytest.raises(ValueError, match="exists"):
            save_palette(tmp_path / target, [[0, 0, 0]])
    with pytest.raises(ValueError, match="symbolic link"):
        save_palette(tmp_path / "p.json", [[0, 0, 0]], overwrite=True)
    # asked: the name gets a new file; the thesis behind the hard link is untouched
    save_palette(tmp_path / "hard.json", [[1, 2, 3]], overwrite=True)
    assert thesis.read_text() == "four years of work"
    assert load_palette(tmp_path / "hard.json").centers.tolist() == [[1.0, 2.0, 3.0]]
    assert not list(tmp_path.glob(".*kquant*"))  # no temporary left behind


# --- 2. the source store, however it was opened ---------------------------------------


@pytest.mark.parametrize("how", ["path", "component", "file-url", "array"])
def test_an_export_never_replaces_the_store_a_lazy_result_reads(tmp_path, how):
    store = tmp_path / "source.zarr"
    group = zarr.open_group(str(store), mode="w")
    pixels = data.coffee()[::4, ::4]
    group.create_array("image", data=pixels, chunks=(50, 50, 3))
    source = {
        "path": lambda: da.from_zarr(str(store / "image")),
        "component": lambda: da.from_zarr(str(store), component="image"),
        "file-url": lambda: da.from_zarr(f"file://{store}", component="image"),
        "array": lambda: da.from_zarr(zarr.open_array(str(store / "image"))),
    }[how]()
    result = quantize(source, 4, seed=0)
    for target in (store, store / "image"):
        with pytest.raises(ValueError, match="input"):
            export_zarr(result, target, overwrite=True)
    np.testing.assert_array_equal(zarr.open_array(str(store / "image"))[:], pixels)


# --- 3. two command-line runs into one folder ------------------------------------------


def test_two_runs_into_one_folder_never_mix(tmp_path):
    inputs = []
    for i in range(3):
        inputs.append(tmp_path / f"in{i}.png")
        iio.imwrite(inputs[-1], np.roll(data.astronaut(), 40 * i, axis=1))
    out = tmp_path / "out"
    runs = [cli("quantize", *inputs, "-k", "5", "--seed", seed, "-o", out, "-q") for seed in (1, 2)]
    codes = [run.wait(120) for run in runs]
    errors = [run.stderr.read() for run in runs]
    assert sorted(codes)[0] == 0, errors
    assert codes != [0, 0], "both runs claimed every output"
    for path in inputs:  # each input's files all come from one run
        palette = load_palette(out / f"{path.stem}_palette_k5.json")
        image = iio.imread(out / f"{path.stem}_quantized_k5.png").reshape(-1, 3)
        colours = np.unique(image, axis=0).astype(float)
        expected = np.unique(np.clip(np.rint(palette.centers), 0, 255), axis=0)
        np.testing.assert_array_equal(colours, expected)
    assert not list(out.glob(".*kquant*"))


# --- 4. Ctrl+C ---------------------------------------------------------------------------

NOISY = """
import numpy as np, sys
from napari_kquant import quantize
rng = np.random.default_rng(0)
image = np.clip(np.linspace(0, 255, 1500)[None, :, None] + rng.normal(0, 25, (1000, 1500, 3)),
                0, 255).astype(np.uint8)
quantize(image[:64, :64], 2)
print("ready", flush=True)
while True:
    quantize(image, 64, attempts=5)
"""


@pytest.mark.slow
def test_ctrl_c_in_the_api_raises_keyboard_interrupt():
    for trial in range(3):  # lands in different places: kernels, numpy, threads
        process = subprocess.Popen(
            [sys.executable, "-c", NOISY],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=interruptible,
        )
        assert process.stdout.readline().strip() == "ready"
        time.sleep(0.3 + 0.4 * trial)
        process.send_signal(signal.SIGINT)
        process.wait(60)
        stderr = process.stderr.read()
        assert "KeyboardInterrupt" in stderr.splitlines()[-1], stderr
        assert "SystemError" not in stderr.splitlines()[-1]


def test_ctrl_c_stops_a_command_line_batch_and_keeps_the_files_done(tmp_path):
    rng = np.random.default_rng(0)
    inputs = []
    for i in range(6):
        inputs.append(tmp_path / f"noise{i}.png")
        noisy = np.linspace(0, 255, 1200)[None, :, None] + rng.normal(0, 25, (900, 1200, 3))
        iio.imwrite(inputs[-1], np.clip(noisy, 0, 255).astype(np.uint8))
    out = tmp_path / "out"
    run = cli("quantize", *inputs, "-k", "48", "--attempts", "4", "-o", out, "-q")
    deadline = time.monotonic() + 300
    while not list(out.glob("*_palette_k48.gpl")):  # the first file is complete
        assert run.poll() is None, run.stderr.read()
        if time.monotonic() > deadline:
            run.kill()
            pytest.fail(f"no file done after 300 s: {run.communicate()}")
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    code = run.wait(60)
    stderr = run.stderr.read()
    assert code == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    done = {p.name.split("_")[0] for p in out.glob("*_palette_k48.gpl")}
    assert 1 <= len(done) < 6
    for name in done:  # complete, readable outputs
        assert iio.imread(out / f"{name}_quantized_k48.png").shape == (900, 1200, 3)
        assert load_palette(out / f"{name}_palette_k48.json").k == 48
    started = {p.name.split("_")[0] for p in out.iterdir()}
    assert started == done  # nothing partial, under any name
    assert not list(out.glob(".*"))


# --- 5. a killed OpenCV worker -----------------------------------------------------------


def test_a_killed_opencv_worker_is_reported_as_killed():
    import threading

    import psutil

    from napari_kquant._core.cancel import cancellable

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (1500, 1500, 3), dtype=np.uint8)
    event, outcome = threading.Event(), {}

    def run():
        try:
            with cancellable(event):
                quantize(image, 32, method="opencv", attempts=10)
        except Exception as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=run)
    worker.start()

    def workers():  # the OpenCV worker only (pytest-xvfb's display is a child too)
        return [
            child
            for child in psutil.Process().children()
            if "napari_kquant" in " ".join(child.cmdline())
        ]

    deadline = time.monotonic() + 60
    while not workers() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    for child in workers():
        child.kill()  # what the out-of-memory killer does
    worker.join(60)
    message = str(outcome["error"])
    assert "killed by SIGKILL" in message and "out-of-memory" in message
    assert "float32 arithmetic" not in message


# --- 6. malformed palette files ------------------------------------------------------------

MALFORMED = {
    "huge-centre.json": json.dumps({"centers": [[10**400]]}),
    "huge-count.json": json.dumps({"centers": [[1]], "counts": [10**30]}),
    "params-list.json": json.dumps({"centers": [[1]], "params": [1]}),
    "params-list.csv": 'label,value\n1,5\n# napari-kquant palette: {"params": [1]}\n',
    "two-numbers.gpl": "GIMP Palette\n10 20\n",
}


@pytest.mark.parametrize("name", MALFORMED)
def test_a_malformed_palette_file_is_one_clear_error(tmp_path, name):
    from napari_kquant import InvalidInputError

    path = tmp_path / name
    path.write_text(MALFORMED[name])
    with pytest.raises(InvalidInputError, match=name):
        load_palette(path)
    iio.imwrite(tmp_path / "in.png", data.coffee()[::8, ::8])
    run = cli("quantize", tmp_path / "in.png", "--palette-from", path, "-o", tmp_path / "o")
    run.wait(60)
    stderr = run.stderr.read()
    assert run.returncode == 2 and "Traceback" not in stderr and name in stderr


# --- 7. command-line paths ------------------------------------------------------------------


def test_bad_output_and_input_paths_are_one_line_each(tmp_path):
    iio.imwrite(tmp_path / "good.png", data.coffee()[::8, ::8])
    (tmp_path / "afile").write_text("x")
    os.symlink("loop_b", tmp_path / "loop_a")
    os.symlink("loop_a", tmp_path / "loop_b")
    for output in (tmp_path / "afile" / "out", tmp_path / "loop_a"):
        run = cli("quantize", tmp_path / "good.png", "-o", output)
        run.wait(60)
        stderr = run.stderr.read()
        assert run.returncode == 2 and "Traceback" not in stderr, stderr
        assert len(stderr.strip().splitlines()) == 1
    run = cli("quantize", tmp_path / "loop_a", tmp_path / "good.png", "-o", tmp_path / "o", "-q")
    run.wait(60)
    stderr = run.stderr.read()
    assert run.returncode == 1 and "Traceback" not in stderr, stderr
    assert "loop_a" in stderr and len(stderr.strip().splitlines()) == 1
    assert (tmp_path / "o" / "good_palette_k8.json").exists()  # the rest went on


# --- 8. a read-only install ------------------------------------------------------------------


@pytest.mark.slow
def test_no_writable_cache_still_works_and_says_so_once(tmp_path):
    script = f"""
import warnings
import numba.core.caching as caching
import numba
# a read-only install whose user has no writable home: no locator but a configured one
caching.CacheImpl._locator_classes = [caching.UserProvidedCacheLocator]
import tempfile
tempfile.tempdir = {str(tmp_path)!r}
import numpy as np
from napari_kquant import quantize
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    result = quantize(np.arange(300.0).reshape(15, 20), 3)
    quantize(np.arange(300.0).reshape(15, 20), 4)
from napari_kquant._core.fast import prepare
ready = prepare.wait(600)  # the background preparation, in the temporary folder too
print(result.k, sum("cannot be cached" in str(w.message) for w in seen), ready)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    k, warned, ready = done.stdout.split()
    assert k == "3" and int(warned) + done.stderr.count("cannot be cached") == 1
    assert ready == "True"
    assert list(tmp_path.glob("napari-kquant-numba-*/**/*.nbi"))  # cached there
    assert list(tmp_path.glob("napari-kquant-numba-*/**/napari-kquant-ready-*.pkl"))


def test_nothing_writable_at_all_still_works_and_says_so_once():
    """No cache locator and no temporary folder: the stand-in answers, one warning."""
    script = """
import tempfile, warnings
import numba.core.caching as caching
caching.CacheImpl._locator_classes = [caching.UserProvidedCacheLocator]
def no_temporary_folder():
    raise FileNotFoundError("No usable temporary directory found")
tempfile.gettempdir = no_temporary_folder
import numpy as np
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    from napari_kquant import quantize
    image = np.arange(300.0).reshape(15, 20)
    result = quantize(image, 3)
nearest = np.abs(image.reshape(-1, 1) - result.centers.reshape(1, -1)).argmin(axis=1) + 1
print(result.k, sum("cannot be cached" in str(w.message) for w in seen),
      bool((result.labels.reshape(-1) == nearest).all()))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    k, warned, nearest = done.stdout.split()
    assert k == "3" and int(warned) + done.stderr.count("cannot be cached") == 1
    assert nearest == "True"


# --- every write goes through the safe writer ---------------------------------------------

# Calls that write a file (method or function name), and the os/shutil calls that move one
WRITERS = {"write_text", "write_bytes", "imwrite", "to_zarr", "save", "savez", "tofile"}
MOVERS = {"replace", "rename", "renames", "link", "symlink", "move", "copy", "copyfile"}
# Internal files of a private temporary folder (the OpenCV worker's call and answer)
INTERNAL = {"_core/cancel.py"}


def _name(func) -> str:
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _writes(node) -> str | None:
    """What ``node`` (a call) writes, or None."""
    func = node.func
    called = _name(func)
    if called == "open":
        modes = [*node.args[1:2], *(k.value for k in node.keywords if k.arg == "mode")]
        if any(isinstance(m, ast.Constant) and set(str(m.value)) & set("wax+") for m in modes):
            return "open(..., write mode)"
        return None
    if called in MOVERS and isinstance(func, ast.Attribute):
        owner = getattr(func.value, "id", "")
        return f"{owner}.{called}()" if owner in ("os", "shutil") else None
    return f"{called}()" if called in WRITERS else None


def test_every_write_in_src_goes_through_the_safe_writer():
    """A write is in ``with replacing(...)``, or in a function only called from there.

    (``write_safely`` is the safe writer's own helper; ``.write_text`` is pathlib's
    plain write.)
    """
    offenders = []
    for path in SRC.rglob("*.py"):
        name = path.relative_to(SRC).as_posix()
        if name == "_core/safe.py" or name in INTERNAL:
            continue
        tree = ast.parse(path.read_text())
        guarded = [node for node in ast.walk(tree) if _is_replacing(node)]
        inside = {id(n) for block in guarded for n in ast.walk(block)}
        helpers = {
            _name(n.func) for block in guarded for n in ast.walk(block) if isinstance(n, ast.Call)
        }
        for function, call in _calls_by_function(tree):
            if id(call) in inside or function in helpers:
                continue
            what = _writes(call)
            if what:
                offenders.append(f"{name}:{call.lineno} {what}")
    assert not offenders, sorted(set(offenders))


def _calls_by_function(tree):
    """(name of the innermost enclosing function or None, call) for every call."""

    def visit(node, function):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef) else function
            if isinstance(child, ast.Call):
                yield function, child
            yield from visit(child, inner)

    yield from visit(tree, None)


def _is_replacing(node) -> bool:
    """Whether ``node`` is a ``with replacing(...) as tmp:`` block."""
    return isinstance(node, ast.With) and any(
        isinstance(item.context_expr, ast.Call) and _name(item.context_expr.func) == "replacing"
        for item in node.items
    )
