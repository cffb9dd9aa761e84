"""The dock widget in a real napari viewer, driven as a person would."""

import time

import numpy as np
import pytest
from napari.layers import Image, Labels
from skimage import data

from napari_kquant._cli import open_demo
from napari_kquant._napari.layers import METADATA_KEY

WIDGET = ("napari-kquant", "K-means quantization")


def dock(viewer):
    _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
    return widget


def docked_on(make_napari_viewer, image, name):
    """A viewer showing ``image`` as layer ``name``, with the widget docked."""
    viewer = make_napari_viewer()
    viewer.add_image(image, name=name)
    return viewer, dock(viewer)


def click_run_and_wait(qtbot, widget, timeout=30_000):
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


def test_run_from_dock_widget(make_napari_viewer, qtbot, astronaut):
    viewer = make_napari_viewer()
    viewer.add_image(data.camera(), name="camera")
    source = viewer.add_image(astronaut, name="astronaut", scale=(2, 2))
    before = source.data.copy()
    widget = dock(viewer)
    assert widget.image.value is source  # follows the active layer
    assert [c.name for c in widget.image.choices] == ["camera", "astronaut"]

    widget.k.value = 5
    widget.seed.value = 3
    widget.run_button.native.click()
    assert widget.running and widget.run_button.text == "Cancel"
    qtbot.waitUntil(lambda: not widget.running, timeout=30_000)
    assert widget.run_button.text == "Run"

    quantized = viewer.layers["astronaut quantized K=5"]
    clusters = viewer.layers["astronaut clusters K=5"]
    assert isinstance(quantized, Image) and isinstance(clusters, Labels)
    np.testing.assert_allclose(clusters.scale, (2, 2))
    assert set(np.unique(clusters.data)) == {1, 2, 3, 4, 5}
    assert clusters.metadata[METADATA_KEY]["seed"] == 3
    assert "K=5" in widget.status.value
    np.testing.assert_array_equal(source.data, before)

    # the same settings again update the two layers in place
    widget.method.value = "opencv"
    click_run_and_wait(qtbot, widget)
    assert len(viewer.layers) == 4
    assert viewer.layers["astronaut clusters K=5"].metadata[METADATA_KEY]["method"] == "opencv"


def test_widget_result_matches_api(make_napari_viewer, qtbot, coffee):
    from napari_kquant import quantize

    viewer, widget = docked_on(make_napari_viewer, coffee, "coffee")
    widget.k.value = 4
    widget.attempts.value = 2
    click_run_and_wait(qtbot, widget)
    expected = quantize(coffee, 4, attempts=2, seed=0)
    np.testing.assert_array_equal(viewer.layers["coffee clusters K=4"].data, expected.labels)
    np.testing.assert_array_equal(viewer.layers["coffee quantized K=4"].data, expected.image)


def test_no_image_layer_is_a_notification(make_napari_viewer, qtbot, notifications):
    viewer = make_napari_viewer()
    viewer.add_points(np.zeros((2, 2)))
    widget = dock(viewer)
    widget.run_button.native.click()
    assert not widget.running
    assert any("no image layer" in message for message in notifications)
    assert len(viewer.layers) == 1


def test_bad_k_is_a_notification_and_viewer_stays_usable(make_napari_viewer, qtbot, notifications):
    viewer = make_napari_viewer()
    viewer.add_image(np.full((20, 20, 3), 7, np.uint8), name="flat")
    widget = dock(viewer)
    widget.k.value = 3
    click_run_and_wait(qtbot, widget)
    assert any("distinct colours" in message for message in notifications)
    assert len(viewer.layers) == 1
    widget.k.value = 1
    click_run_and_wait(qtbot, widget)
    assert "flat clusters K=1" in viewer.layers


def test_cancel_discards_the_result(make_napari_viewer, qtbot, astronaut):
    viewer, widget = docked_on(make_napari_viewer, astronaut, "astronaut")
    widget.method.value = "opencv"
    widget.attempts.value = 5
    widget.run_button.native.click()
    widget.run_button.native.click()  # the button is "Cancel" now
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    assert widget.status.value == "cancelled"
    assert len(viewer.layers) == 1


def test_sample_data_and_demo(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = open_demo(viewer, "coffee", k=3)
    assert viewer.layers[0].name == "coffee" and viewer.layers[0].rgb
    assert widget.image.value is viewer.layers[0]
    click_run_and_wait(qtbot, widget)
    assert "coffee clusters K=3" in viewer.layers
    viewer.open_sample("napari-kquant", "astronaut")
    assert viewer.layers["astronaut"].data.shape == (512, 512, 3)


def threads_done(qtbot):
    from qtpy.QtCore import QThreadPool

    qtbot.waitUntil(lambda: QThreadPool.globalInstance().activeThreadCount() == 0, timeout=60_000)


def slow_run(widget):
    """Settings that keep a worker busy for a moment on the astronaut."""
    widget.method.value = "opencv"
    widget.attempts.value = 4
    widget.k.value = 12


def test_cancel_leaves_no_thread(make_napari_viewer, qtbot, astronaut):
    viewer, widget = docked_on(make_napari_viewer, astronaut, "astronaut")
    slow_run(widget)
    widget.run_button.native.click()
    widget.run_button.native.click()
    threads_done(qtbot)
    qtbot.wait(50)
    assert not widget.running and widget.run_button.text == "Run"
    assert [layer.name for layer in viewer.layers] == ["astronaut"]


def test_run_twice_starts_one_worker(make_napari_viewer, qtbot, astronaut, notifications):
    viewer, widget = docked_on(make_napari_viewer, astronaut, "astronaut")
    slow_run(widget)
    widget.run()
    first = widget._worker
    widget.run()  # a script calling run() again while the first is in flight
    assert widget._worker is first
    assert any("in progress" in message for message in notifications)
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    assert len(viewer.layers) == 3


def test_deleting_the_source_mid_run_discards_the_result(
    make_napari_viewer, qtbot, astronaut, notifications
):
    viewer = make_napari_viewer()
    source = viewer.add_image(astronaut, name="astronaut")
    before = astronaut.copy()
    widget = dock(viewer)
    slow_run(widget)
    widget.run_button.native.click()
    viewer.layers.remove(source)
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    assert len(viewer.layers) == 0
    assert any("removed during the run" in message for message in notifications)
    np.testing.assert_array_equal(astronaut, before)
    # the viewer is still usable
    viewer.add_image(astronaut[::2, ::2], name="small")
    widget.k.value = 3
    widget.method.value = "fast"
    click_run_and_wait(qtbot, widget)
    assert "small clusters K=3" in viewer.layers


def test_closing_the_viewer_mid_run_leaves_no_thread(make_napari_viewer, qtbot, astronaut):
    viewer, widget = docked_on(make_napari_viewer, astronaut, "astronaut")
    slow_run(widget)
    widget.run_button.native.click()
    assert widget.running
    viewer.close()
    threads_done(qtbot)


def test_closing_the_viewer_mid_run_returns_at_once(make_napari_viewer, qtbot):
    import time

    # many colours and a large K: several seconds of work for the fast engine
    noisy = np.random.default_rng(0).integers(0, 256, (2048, 2048, 3), dtype=np.uint8)
    viewer, widget = docked_on(make_napari_viewer, noisy, "noise")
    widget.k.value = 64
    widget.run_button.native.click()
    qtbot.wait(300)
    assert widget.running
    started = time.perf_counter()
    viewer.close()
    threads_done(qtbot)
    assert time.perf_counter() - started < 3


def test_a_result_never_replaces_a_layer_napari_kquant_did_not_make(
    make_napari_viewer, qtbot, coffee
):
    viewer, widget = docked_on(make_napari_viewer, coffee, "coffee")
    painted = np.zeros(coffee.shape[:2], np.uint8)
    painted[10:20, 10:20] = 1
    mine = viewer.add_labels(painted, name="coffee clusters K=3")
    widget.image.value = viewer.layers["coffee"]
    widget.k.value = 3
    click_run_and_wait(qtbot, widget)
    assert viewer.layers["coffee clusters K=3"] is mine
    np.testing.assert_array_equal(mine.data, painted)
    ours = [layer for layer in viewer.layers if METADATA_KEY in layer.metadata]
    assert {layer.name for layer in ours} == {"coffee quantized K=3", "coffee clusters K=3 [1]"}
    # a second run updates napari-kquant's layers only
    click_run_and_wait(qtbot, widget)
    assert len(viewer.layers) == 4
    np.testing.assert_array_equal(mine.data, painted)


def test_export_from_the_widget_refuses_a_users_folder(
    make_napari_viewer, qtbot, tmp_path, coffee, notifications
):
    import zarr

    _, widget = docked_on(make_napari_viewer, coffee, "coffee")
    widget.k.value = 3
    click_run_and_wait(qtbot, widget)
    folder = tmp_path / "results.zarr"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    widget.export_path.value = folder
    widget.export_replace.value = True  # even when asked: it is not an export
    widget.export_button.native.click()
    assert not widget.running
    assert any("did not make" in message for message in notifications)
    assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    # a new path exports; the same path again needs 'replace'
    widget.export_path.value = tmp_path / "k3.zarr"
    widget.export_replace.value = False
    widget.export_button.native.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    assert widget.status.value.startswith("exported to")
    widget.export_button.native.click()
    assert not widget.running and any("exists" in message for message in notifications)
    widget.k.value = 4
    click_run_and_wait(qtbot, widget)
    widget.export_replace.value = True
    widget.export_button.native.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    group = zarr.open_group(str(tmp_path / "k3.zarr"), mode="r")
    assert group.attrs["napari_kquant"]["params"]["k"] == 4


def test_worker_thread_gives_the_same_bytes_as_the_api(make_napari_viewer, qtbot, coffee):
    from napari_kquant import quantize

    viewer, widget = docked_on(make_napari_viewer, coffee, "coffee")
    widget.method.value = "opencv"
    widget.k.value = 5
    widget.seed.value = 9
    click_run_and_wait(qtbot, widget)
    direct = quantize(coffee, 5, method="opencv", seed=9)
    clusters = viewer.layers["coffee clusters K=5"]
    np.testing.assert_array_equal(clusters.data, direct.labels)
    np.testing.assert_array_equal(
        np.asarray(clusters.metadata[METADATA_KEY]["centers"]), direct.centers
    )


def test_memory_guard_is_a_notification(make_napari_viewer, qtbot, monkeypatch, notifications):
    from napari_kquant._core import memory as _memory

    monkeypatch.setattr(_memory, "available_bytes", lambda: 1 << 20)
    viewer = make_napari_viewer()
    viewer.add_image(data.coffee(), name="coffee")
    widget = dock(viewer)
    click_run_and_wait(qtbot, widget)
    assert any("working memory" in message for message in notifications)
    assert len(viewer.layers) == 1


NAPARI_CTRL_C = """
import os, signal, time
import numpy as np
import napari
from qtpy.QtCore import QTimer

viewer = napari.Viewer()
noisy = np.random.default_rng(0).integers(0, 256, (2048, 2048, 3), dtype=np.uint8)
viewer.add_image(noisy, name="noise")
_, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
widget.image.value = viewer.layers["noise"]
widget.method.value = "opencv"  # a cv2.kmeans call that cannot stop half way: in a worker
widget.k.value = 16
QTimer.singleShot(200, widget.run_button.native.click)
marks = {}

def interrupt():
    print("running", widget.running, flush=True)
    marks["sent"] = time.perf_counter()
    os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl+C in the terminal
    QTimer.singleShot(100, check)  # (scheduled here: two timers due at once may swap)

def check():
    if widget.running and time.perf_counter() - marks["sent"] < 20:
        QTimer.singleShot(50, check)
        return
    print(f"stopped after {time.perf_counter() - marks['sent']:.2f} s", flush=True)
    print("status", widget.status.value, flush=True)
    print("layers", len(viewer.layers), flush=True)
    viewer.close()  # napari was still open: the user closes it

QTimer.singleShot(2500, interrupt)
napari.run()
print("closed", flush=True)
"""


@pytest.mark.slow
def test_ctrl_c_in_napari_cancels_the_run_as_cancel_does():
    """A real SIGINT mid-run: the run stops within a second, napari stays open, no worker left."""
    import contextlib
    import subprocess
    import sys
    import tempfile

    import psutil

    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
        # (files, not pipes: a child that fills a pipe nobody reads would block forever)
        process = subprocess.Popen(
            [sys.executable, "-c", NAPARI_CTRL_C], stdout=out_file, stderr=err_file, text=True
        )
        children = set()
        deadline = time.monotonic() + 180
        while process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(psutil.Error):  # the OpenCV worker it starts
                children |= {c.pid for c in psutil.Process(process.pid).children(recursive=True)}
            time.sleep(0.1)
        if process.poll() is None:
            process.kill()
        process.wait(60)
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read(), err_file.read()
    assert "running True" in out and "closed" in out, (out, err)
    seconds = float(out.split("stopped after")[1].split()[0])
    assert seconds < 1.5, out  # a cv2.kmeans call on this image takes > 10 s
    assert "status cancelled" in out and "layers 1" in out  # no result shown
    assert "Traceback" not in err + out, (out, err)
    assert children, "the run never started its worker process"
    assert not [pid for pid in children if psutil.pid_exists(pid)]


def test_a_first_run_says_the_engine_is_being_prepared(make_napari_viewer, qtbot, astronaut):
    """On a computer's first run the dock says so, answers with the stand-in, then is ready."""
    from napari_kquant._core.fast import prepare

    with prepare.forced(False):  # the kernels' cache is still being filled
        viewer, widget = docked_on(make_napari_viewer, astronaut, "astronaut")
        assert widget.status.value.startswith(prepare.PREPARING)
        widget.k.value = 4
        widget.run_button.native.click()
        assert prepare.PREPARING in widget.status.value  # while it runs
        qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
        assert widget.status.value.startswith("K=4") and "stand-in" in widget.status.value
        clusters = viewer.layers["astronaut clusters K=4"]
        assert clusters.metadata[METADATA_KEY]["kernels"].startswith("numpy stand-in")
        shown = widget.status.value
    # the cache is filled: the result stays, and the status says the engine is ready now
    qtbot.waitUntil(
        lambda: widget.status.value == f"{shown}; the fast engine is ready now", timeout=5_000
    )
    with prepare.forced(False):  # a dock opened while preparing, no run yet
        _, other = docked_on(make_napari_viewer, astronaut, "astronaut")
        assert other.status.value.startswith(prepare.PREPARING)
    qtbot.waitUntil(lambda: other.status.value == "the fast engine is ready", timeout=5_000)
