"""Shared steps of the screenshot scripts."""

from pathlib import Path

from qtpy.QtWidgets import QApplication


def run_and_wait(widget):
    """Click the widget's Run button and let Qt work until the run is over."""
    widget.run_button.native.click()
    while widget.running:
        QApplication.processEvents()
    QApplication.processEvents()


def save(viewer, name: str) -> Path:
    """Let the window settle, save it as docs/<name>, and close the viewer."""
    for _ in range(20):
        QApplication.processEvents()
    out = Path(__file__).with_name(name)
    viewer.screenshot(str(out), canvas_only=False)
    viewer.close()
    print(out, out.stat().st_size)
    return out
