"""Command line: ``napari-kquant demo`` (also ``python -m napari_kquant``)."""

from __future__ import annotations

import argparse

SAMPLES = ("astronaut", "coffee")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-kquant",
        description="Colour quantization of images with OpenCV k-means.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="open napari with a sample image and the K-means quantization widget"
    )
    demo.add_argument("--sample", choices=SAMPLES, default="astronaut", help="sample image to open")
    demo.add_argument("-k", type=int, default=8, help="K preset in the widget (default 8)")
    return parser


def open_demo(viewer, sample: str = "astronaut", k: int = 8):
    """Load a sample image into ``viewer`` and dock the widget with K preset; returns the widget."""
    viewer.open_sample("napari-kquant", sample)
    _, widget = viewer.window.add_plugin_dock_widget("napari-kquant", "K-means quantization")
    widget.k.value = k
    return widget


def demo(sample: str, k: int) -> None:
    """Open napari with a sample image and the dock widget; returns when napari closes."""
    import napari

    open_demo(napari.Viewer(), sample, k)
    napari.run()


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``napari-kquant`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        demo(args.sample, args.k)
    return 0
