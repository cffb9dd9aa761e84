"""Command line: ``napari-kquant`` (also ``python -m napari_kquant``).

``quantize`` processes image files without napari; ``demo`` opens napari with the plugin.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import struct
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from ._core.cancel import interrupted
from ._core.options import OPTION_NAMES, choices, default, describe, kind
from ._version import __version__

SAMPLES = ("astronaut", "coffee")
TIFF = (".tif", ".tiff")
READABLE = (".png", ".jpg", ".jpeg", *TIFF)
# PNG colour types: channels per pixel (0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA)
PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
EXIT_FAILED, EXIT_USAGE = 1, 2
EXIT_INTERRUPTED = 130  # as a shell reports a command ended by Ctrl+C (128 + SIGINT)
FORMATS = ("files", "ome-zarr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="napari-kquant",
        description="Colour quantization of images with k-means (OpenCV's, or a faster engine).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    q = commands.add_parser(
        "quantize",
        help="quantize image files (PNG, JPEG, TIFF)",
        description=(
            "For each IMAGE write <stem>_quantized_k<K><ext> (same format, dtype and bit "
            "depth; JPEG is re-compressed; an alpha channel is kept, not clustered), "
            "<stem>_labels_k<K>.tif (labels 1..K, uint8 or uint16 as K needs) and the palette "
            "<stem>_palette_k<K>.csv/.json (and .gpl for RGB). Before anything is written "
            "the whole batch is checked: outputs that exist (unless --overwrite), that two "
            "inputs would both write, or that are an input or the palette file (also through "
            "links) are refused and nothing is written. Files are written under a temporary "
            "name and renamed into place. A file that cannot be read or quantized is "
            "reported on one line and the others go on; the exit code is then 1 (2 when the "
            "batch is refused)."
        ),
    )
    q.add_argument("images", nargs="+", type=Path, help="image files (.png .jpg .jpeg .tif .tiff)")
    q.add_argument("-k", type=int, default=8, help="number of colours (default 8)")
    q.add_argument(
        "-o", "--output", type=Path, help="output folder (default: beside each input; created)"
    )
    q.add_argument(
        "--format",
        choices=FORMATS,
        default="files",
        help="files (default): image, labels and palette files; ome-zarr: one "
        "<stem>_k<K>.ome.zarr store per input (the quantized image, the labels coloured "
        "by the palette, the palette), which napari-ome-zarr, QuPath and Fiji open",
    )
    q.add_argument(
        "--overwrite",
        action="store_true",
        help="replace output files that exist already (never an input or the palette file)",
    )
    for name in CLI_OPTIONS:
        add_option(q, name)
    q.add_argument(
        "--mask",
        type=Path,
        metavar="MASKFILE",
        help="cluster only the pixels where this image (one value per pixel, same size as "
        "every input) is non-zero; the others get label 0 and keep their value",
    )
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


# Every option of Options but the multiscale level (files are single-resolution)
CLI_OPTIONS = tuple(name for name in OPTION_NAMES if name != "fit_level")


def add_option(parser: argparse.ArgumentParser, name: str) -> None:
    """Add ``--name`` for one option of Options.

    Its type, choices and default come from Options, its help from quantize()'s
    docstring.
    """
    from ._core.quantize import quantize

    flag = "--" + name.replace("_", "-")
    text = describe(quantize.__doc__).get(name, "").replace("%", "%%")
    value = default(name)
    if kind(name) == "flag":
        parser.add_argument(flag, action="store_true", help=text)
        return
    shown = "automatic" if value is None else value
    kwargs = {"default": value, "help": f"{text} (default: {shown})"}
    if kind(name) == "choice":
        kwargs["choices"] = choices(name)
    else:
        kwargs["type"] = int if kind(name) == "int" else float
        kwargs["metavar"] = name.upper()
    parser.add_argument(flag, **kwargs)


def image_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of an image file, read from its header only."""
    suffix = path.suffix.lower()
    if suffix not in READABLE:
        raise ValueError(f"unsupported file type {suffix!r} (use {', '.join(READABLE)})")
    if suffix in TIFF:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return tuple(series.shape), np.dtype(series.dtype)
    if suffix == ".png":
        with path.open("rb") as f:
            head = f.read(26)
        if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
            raise ValueError("not a PNG file (no PNG header)")
        width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
        channels = PNG_CHANNELS.get(colour)
        if channels is None:
            raise ValueError(f"PNG colour type {colour} is not valid")
        shape = (height, width) if channels == 1 else (height, width, channels)
        return shape, np.dtype(np.uint16 if depth == 16 else np.uint8)
    from PIL import Image

    with Image.open(path) as im:  # reads the JPEG header, not the pixels
        width, height = im.size
        channels = len(im.getbands())
    shape = (height, width) if channels == 1 else (height, width, channels)
    return shape, np.dtype(np.uint8)


def read_image(path: Path, method: str = "fast") -> np.ndarray:
    """Pixels of a PNG, JPEG or TIFF file at their full bit depth.

    The size is read from the header first: an image whose pixels and working memory
    would not fit in the memory available is refused before it is decoded.
    """
    from ._core.memory import check_memory

    shape, dtype = image_header(path)
    n_channels = 3 if len(shape) == 3 and shape[-1] >= 3 else 1
    check_memory(shape, dtype, n_channels, method, decoded=True)
    if path.suffix.lower() in TIFF:
        import tifffile

        return tifffile.imread(path)
    import cv2

    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # keeps 16-bit PNG
    if pixels is None:
        raise ValueError("the file could not be decoded")
    if pixels.ndim == 3:
        if len(shape) == 3 and shape[-1] == 2:  # gray + alpha, decoded as BGRA
            return np.ascontiguousarray(pixels[..., [0, 3]])
        code = cv2.COLOR_BGR2RGB if pixels.shape[-1] == 3 else cv2.COLOR_BGRA2RGBA
        pixels = cv2.cvtColor(pixels, code)
    return pixels


def write_image(path: Path, image: np.ndarray) -> None:
    """Write in the format the suffix names, at the image's own bit depth."""
    if path.suffix.lower() in TIFF:
        import tifffile

        tifffile.imwrite(path, image)
        return
    import cv2

    if image.ndim == 3 and image.shape[-1] == 2:  # gray + alpha
        if image.dtype == np.uint8:
            from PIL import Image

            Image.fromarray(image, mode="LA").save(path)
            return
        image = np.dstack([image[..., :1]] * 3 + [image[..., 1:]])
    if image.ndim == 3:
        code = cv2.COLOR_RGB2BGR if image.shape[-1] == 3 else cv2.COLOR_RGBA2BGRA
        image = cv2.cvtColor(image, code)
    if not cv2.imwrite(str(path), image):
        raise ValueError(f"OpenCV could not write {path.suffix} with {image.dtype} pixels")


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
        "store": folder / f"{stem}_k{k}.ome.zarr",
    }


def planned(path: Path, args, k: int | None, rgb: bool | None) -> dict[str, Path]:
    """The files one input will write (``rgb`` None: not known before reading)."""
    out = outputs_for(path, args.output, "" if args.sweep is not None else k)
    if args.sweep is not None:
        return {"sweep": out["sweep"]}
    if args.format == "ome-zarr":
        return {"store": out["store"]}
    keys = ["image", "labels", "csv", "json"]
    if rgb is not False:
        keys.append("gpl")  # planned whenever the input may be RGB
    return {key: out[key] for key in keys}


def _channels(path: Path) -> bool | None:
    try:
        shape, _ = image_header(path)
    except (OSError, ValueError):
        return None  # reported when the file is processed
    return len(shape) == 3 and shape[-1] >= 3


def process(
    path: Path, args, options: dict, palette, protected: list[Path], mask=None
) -> list[Path]:
    """Quantize (or sweep) one file; returns the files written."""
    from ._core.quantize import apply_palette, quantize
    from ._core.safe import replacing, write_safely
    from ._core.sweep import sweep
    from ._io.palette_files import palette_text

    image = read_image(path, options["method"])
    alpha = None
    if image.ndim == 3 and image.shape[-1] == 2:  # gray + alpha: the alpha is not clustered
        image, alpha = image[..., 0], image[..., 1]
    write = {"overwrite": args.overwrite, "protected": protected}
    if args.sweep is not None:
        out = planned(path, args, None, None)["sweep"]
        table = sweep(image, args.sweep, mask=mask, **options).table()
        with replacing(out, **write) as tmp, tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(table)
            writer.writerows(zip(*table.values(), strict=True))
        return [out]
    if palette is not None:
        result = apply_palette(image, palette, mask=mask)
    else:
        result = quantize(image, args.k, mask=mask, **options)
    rgb = result.centers.shape[1] == 3
    out = planned(path, args, result.k, rgb)
    if "store" in out:
        from ._io.calibration import file_placement
        from ._io.zarr_export import export_zarr

        placement = file_placement(path, result.labels.ndim)  # the input's pixel size
        export_zarr(
            result,
            out["store"],
            overwrite=args.overwrite,
            scale=placement.scale,
            units=placement.units,
        )
        return [out["store"]]
    quantized = result.image if alpha is None else np.dstack([result.image, alpha])
    with replacing(out["image"], **write) as tmp:
        write_image(tmp, quantized)
    with replacing(out["labels"], **write) as tmp:
        write_image(tmp, result.labels)
    fitted = result.palette
    provenance = {"source": str(path), "compactness": result.compactness}
    fitted = replace(fitted, params={**fitted.params, **provenance})
    for key in ("csv", "json", "gpl"):
        if key in out:
            write_safely(out[key], palette_text(fitted, out[key].suffix), what="palette", **write)
    return list(out.values())


def _say_if_preparing(method: str) -> None:
    """Say once that the fast engine is being prepared (a computer's first run)."""
    from ._core.fast import prepare

    if method == "fast" and prepare.preparing():
        print(
            f"napari-kquant: {prepare.PREPARING}: its compiled kernels are cached in the "
            "background (about half a minute); meanwhile results come from its numpy stand-in",
            file=sys.stderr,
        )


def _refuse(message: str) -> int:
    print(f"napari-kquant: {message}", file=sys.stderr)
    return EXIT_USAGE


def quantize_files(args) -> int:
    """Check the whole batch, then process every file; one line per failure.

    Exit status 0 when every file was done, 1 when some failed, 2 when the batch was
    refused before anything was written.
    """
    from ._core.safe import OutputError, exclusive, plan_outputs
    from ._core.sweep import parse_ks
    from ._core.validate import check_k
    from ._io.palette_files import load_palette
    from ._io.zarr_export import is_export

    if args.output is not None:
        problem = _folder_problem(args.output)
        if problem:
            return _refuse(f"-o {args.output}: {problem}: give a folder for the outputs")
    options = {name: getattr(args, name) for name in CLI_OPTIONS}
    palette = None
    try:
        if args.sweep is not None:
            args.sweep = ",".join(map(str, parse_ks(args.sweep)))
        else:
            check_k(args.k)
    except ValueError as exc:
        return _refuse(f"--sweep {args.sweep!r}: {exc}" if args.sweep is not None else str(exc))
    if args.palette_from is not None:
        try:
            palette = load_palette(args.palette_from)
        except (OSError, ValueError) as exc:
            message = str(exc)  # names the file already, or not
            if not message.startswith(str(args.palette_from)):
                message = f"{args.palette_from}: {message}"
            return _refuse(f"palette file {message}")
    mask = None
    if args.mask is not None:
        try:
            pixels = read_image(args.mask)
        except (OSError, ValueError) as exc:
            return _refuse(f"mask file {args.mask}: {exc}")
        mask = pixels != 0 if pixels.ndim == 2 else (pixels != 0).any(axis=-1)
    failed = 0
    images = []
    for path in args.images:  # one line per unusable input; the rest of the batch goes on
        problem = _input_problem(path)
        if problem:
            failed += 1
            print(f"napari-kquant: {path}: {problem}", file=sys.stderr)
        else:
            images.append(path)
    extra = [f for f in (args.palette_from, args.mask) if f is not None]
    protected = [*images, *extra]
    k = len(palette) if palette is not None else args.k
    targets = [
        (target, str(path))
        for path in images
        for target in planned(path, args, k, _channels(path)).values()
    ]
    folders = [args.output] if args.output else [path.parent for path in images]
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(exclusive(folders))  # a second run into these folders waits not
            plan_outputs(
                targets,
                protected=protected,
                overwrite=args.overwrite,
                is_ours=is_export if args.format == "ome-zarr" else None,
            )
        except OutputError as exc:
            return _refuse(str(exc))
        if args.output:
            args.output.mkdir(parents=True, exist_ok=True)
        _say_if_preparing(args.method)
        failed += _process_all(images, args, options, palette, protected, mask)
    return EXIT_FAILED if failed else 0


def _process_all(images, args, options, palette, protected, mask) -> int:
    """Process every input; one line per failure. Returns the number that failed."""
    from tqdm import tqdm

    failed = 0
    for path in tqdm(images, desc="quantizing", unit="file", disable=args.quiet):
        try:
            process(path, args, options, palette, protected, mask)
        except Exception as exc:  # a batch reports each file's failure and goes on
            if interrupted(exc):  # Ctrl+C inside a compiled kernel: stop the batch
                raise KeyboardInterrupt from exc
            failed += 1
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            tqdm.write(f"napari-kquant: {path}: {message}", file=sys.stderr)
    return failed


def _folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot hold outputs (a file on its path, a link loop), or None."""
    try:
        folder.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        return f"cannot be followed ({exc})"
    for ancestor in (folder, *folder.parents):
        if ancestor.is_symlink() and not ancestor.exists():
            return f"{ancestor} is a broken link"
        if ancestor.exists():
            return None if ancestor.is_dir() else f"{ancestor} is a file"
    return None


def _input_problem(path: Path) -> str | None:
    """Why ``path`` cannot be read as an input image (missing, a link loop, a folder), or None."""
    try:
        path.resolve(strict=True)
    except FileNotFoundError:
        return "no such file"
    except (OSError, RuntimeError) as exc:
        return f"cannot be followed ({exc})"
    return None if path.is_file() else "not a file"


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
    try:
        return quantize_files(args)
    except KeyboardInterrupt:
        # every output is written under a temporary name and renamed when complete:
        # the files done are kept, the one in progress left nothing
        print("napari-kquant: interrupted (the files done are kept)", file=sys.stderr)
        return EXIT_INTERRUPTED
