"""Command line: ``napari-kquant`` (also ``python -m napari_kquant``).

``quantize`` processes image files without napari; ``demo`` opens napari with the plugin.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np

SAMPLES = ("astronaut", "coffee")
TIFF = (".tif", ".tiff")
READABLE = (".png", ".jpg", ".jpeg", *TIFF)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-kquant",
        description="Colour quantization of images with k-means (OpenCV's, or a faster engine).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    q = commands.add_parser(
        "quantize",
        help="quantize image files (PNG, JPEG, TIFF)",
        description=(
            "For each IMAGE write <stem>_quantized_k<K><ext> (same format and dtype; JPEG is "
            "re-compressed), <stem>_labels_k<K>.tif (labels 1..K, uint8 or uint16 as K needs) "
            "and the palette <stem>_palette_k<K>.csv/.json (and .gpl for RGB). Inputs are never "
            "overwritten. A file that cannot be read or quantized is reported on one line and "
            "the others go on; the exit code is then 1."
        ),
    )
    q.add_argument("images", nargs="+", type=Path, help="image files (.png .jpg .jpeg .tif .tiff)")
    q.add_argument("-k", type=int, default=8, help="number of colours (default 8)")
    q.add_argument(
        "-o", "--output", type=Path, help="output folder (default: beside each input; created)"
    )
    q.add_argument(
        "--method",
        choices=("fast", "opencv"),
        default="fast",
        help="fast (default): the fast engine; opencv: cv2.kmeans on every pixel",
    )
    q.add_argument("--attempts", type=int, default=3, help="initialisations tried (default 3)")
    q.add_argument("--max-iter", type=int, default=100, help="maximum iterations (default 100)")
    q.add_argument(
        "--epsilon", type=float, help="stop when no centre moves more (default 0.1%% of range)"
    )
    q.add_argument(
        "--init", choices=("kmeans++", "random"), default="kmeans++", help="centre initialisation"
    )
    q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    q.add_argument(
        "--palette-from",
        type=Path,
        help="apply this palette (.csv, .json or .gpl written by napari-kquant) instead of fitting",
    )
    q.add_argument(
        "--sweep",
        metavar="KS",
        help="instead of quantizing, write <stem>_sweep.csv with compactness, MSE and PSNR "
        "for each K (e.g. 2..16 or 2,4,8)",
    )
    q.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    demo = commands.add_parser(
        "demo", help="open napari with a sample image and the K-means quantization widget"
    )
    demo.add_argument("--sample", choices=SAMPLES, default="astronaut", help="sample image to open")
    demo.add_argument("-k", type=int, default=8, help="K preset in the widget (default 8)")
    return parser


def read_image(path: Path) -> np.ndarray:
    """Pixels of a PNG, JPEG or TIFF file."""
    suffix = path.suffix.lower()
    if suffix not in READABLE:
        raise ValueError(f"unsupported file type {suffix!r} (use {', '.join(READABLE)})")
    if suffix in TIFF:
        import tifffile

        return tifffile.imread(path)
    import imageio.v3 as iio

    return iio.imread(path)


def write_image(path: Path, image: np.ndarray) -> None:
    """Write in the format the suffix names (TIFF with tifffile, others with imageio)."""
    if path.suffix.lower() in TIFF:
        import tifffile

        tifffile.imwrite(path, image)
    else:
        import imageio.v3 as iio

        iio.imwrite(path, image)


def outputs_for(image_path: Path, folder: Path | None, k) -> dict[str, Path]:
    """Where the results of one input go."""
    folder = folder or image_path.parent
    stem, suffix = image_path.stem, image_path.suffix
    return {
        "image": folder / f"{stem}_quantized_k{k}{suffix}",
        "labels": folder / f"{stem}_labels_k{k}.tif",
        "csv": folder / f"{stem}_palette_k{k}.csv",
        "json": folder / f"{stem}_palette_k{k}.json",
        "gpl": folder / f"{stem}_palette_k{k}.gpl",
        "sweep": folder / f"{stem}_sweep.csv",
    }


def process(path: Path, args, inputs: set[Path]) -> list[Path]:
    """Quantize (or sweep) one file; returns the files written."""
    from ._kmeans import apply_palette, quantize
    from ._palette import load_palette, save_palette
    from ._sweep import sweep

    image = read_image(path)
    options = {
        "method": args.method,
        "attempts": args.attempts,
        "max_iter": args.max_iter,
        "epsilon": args.epsilon,
        "init": args.init,
        "seed": args.seed,
    }
    if args.sweep:
        out = outputs_for(path, args.output, "")["sweep"]
        _refuse_input(out, inputs)
        table = sweep(image, args.sweep, **options).table()
        with out.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(table)
            writer.writerows(zip(*table.values(), strict=True))
        return [out]
    if args.palette_from:
        result = apply_palette(image, load_palette(args.palette_from))
    else:
        result = quantize(image, args.k, **options)
    out = outputs_for(path, args.output, result.k)
    rgb = result.centers.shape[1] == 3
    wanted = ["image", "labels", "csv", "json", *(["gpl"] if rgb else [])]
    for key in wanted:
        _refuse_input(out[key], inputs)
    write_image(out["image"], result.image)
    write_image(out["labels"], result.labels)
    params = {**result.params, "source": str(path), "compactness": result.compactness}
    for key in wanted[2:]:
        save_palette(out[key], result.centers, counts=result.counts, params=params)
    return [out[key] for key in wanted]


def _refuse_input(target: Path, inputs: set[Path]) -> None:
    if target.resolve() in inputs:
        raise ValueError(f"refusing to overwrite the input {target}")


def quantize_files(args) -> int:
    """Process every file; one line per failure; exit status 1 if any failed."""
    from tqdm import tqdm

    if args.output:
        args.output.mkdir(parents=True, exist_ok=True)
    inputs = {p.resolve() for p in args.images}
    failed = 0
    for path in tqdm(args.images, desc="quantizing", unit="file", disable=args.quiet):
        try:
            process(path, args, inputs)
        except (OSError, ValueError, RuntimeError, SyntaxError) as exc:
            failed += 1
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            tqdm.write(f"napari-kquant: {path}: {message}", file=sys.stderr)
    return 1 if failed else 0


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
    return quantize_files(args)
