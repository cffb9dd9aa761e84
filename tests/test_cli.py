"""The command line, end to end with subprocess, on real images written to a temp folder."""

import csv
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
from skimage import data

from napari_kquant import load_palette
from napari_kquant._cli import build_parser


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "napari_kquant", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


@pytest.fixture
def files(tmp_path):
    iio.imwrite(tmp_path / "coffee.png", data.coffee())
    tifffile.imwrite(tmp_path / "camera16.tif", data.camera().astype(np.uint16) * 257)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return tmp_path


def test_quantize_files_reports_the_bad_one_and_does_the_rest(files):
    out = files / "out"
    done = run(
        "quantize",
        files / "coffee.png",
        files / "broken.png",
        files / "camera16.tif",
        "-k",
        "5",
        "-o",
        out,
        "--seed",
        "3",
    )
    assert done.returncode == 1
    bad = [line for line in done.stderr.splitlines() if line.startswith("napari-kquant: ")]
    assert len(bad) == 1 and "broken.png" in bad[0]
    quantized = iio.imread(out / "coffee_quantized_k5.png")
    assert quantized.shape == (400, 600, 3) and quantized.dtype == np.uint8
    assert len(np.unique(quantized.reshape(-1, 3), axis=0)) == 5
    labels = tifffile.imread(out / "coffee_labels_k5.tif")
    assert labels.dtype == np.uint8 and labels.shape == (400, 600) and labels.max() == 5
    for suffix in ("csv", "json", "gpl"):
        assert load_palette(out / f"coffee_palette_k5.{suffix}").centers.shape == (5, 3)
    gray = tifffile.imread(out / "camera16_quantized_k5.tif")
    assert gray.dtype == np.uint16 and len(np.unique(gray)) == 5
    assert load_palette(out / "camera16_palette_k5.json").centers.shape == (5, 1)
    assert not (out / "camera16_palette_k5.gpl").exists()  # GIMP palettes are RGB only


def test_many_labels_need_uint16(files):
    done = run("quantize", files / "coffee.png", "-k", "300", "-q")
    assert done.returncode == 0, done.stderr
    assert tifffile.imread(files / "coffee_labels_k300.tif").dtype == np.uint16


def test_palette_from_reapplies(files):
    run("quantize", files / "coffee.png", "-k", "4", "-o", files / "a", "-q")
    iio.imwrite(files / "astronaut.png", data.astronaut())
    done = run(
        "quantize",
        files / "astronaut.png",
        "--palette-from",
        files / "a" / "coffee_palette_k4.json",
        "-o",
        files / "b",
        "-q",
    )
    assert done.returncode == 0, done.stderr
    colours = np.unique(
        iio.imread(files / "b" / "astronaut_quantized_k4.png").reshape(-1, 3), axis=0
    )
    palette = np.rint(load_palette(files / "a" / "coffee_palette_k4.json")).astype(np.uint8)
    assert {tuple(c) for c in colours} <= {tuple(c) for c in palette}


def test_sweep_writes_a_csv(files):
    done = run("quantize", files / "coffee.png", "--sweep", "2..5", "-q")
    assert done.returncode == 0, done.stderr
    with (files / "coffee_sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["k"]) for r in rows] == [2, 3, 4, 5]
    compactness = [float(r["compactness"]) for r in rows]
    assert compactness == sorted(compactness, reverse=True)
    assert all(float(r["psnr"]) > 10 for r in rows)


def test_inputs_are_never_overwritten(files):
    source = files / "coffee_quantized_k3.png"
    iio.imwrite(source, data.coffee())
    before = source.read_bytes()
    done = run("quantize", source, files / "coffee.png", "-k", "3", "-q", "--overwrite")
    # coffee.png's output would overwrite the other input: the batch is refused, even
    # with --overwrite, and nothing is written
    assert done.returncode == 2
    assert "is (or holds, or is inside) the input" in done.stderr
    assert "nothing was written" in done.stderr
    assert source.read_bytes() == before
    assert not (files / "coffee_labels_k3.tif").exists()


def _written(folder):
    return sorted(p.name for p in folder.iterdir())


def test_outputs_of_two_inputs_with_one_name_collide_and_nothing_is_written(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    iio.imwrite(tmp_path / "a" / "x.png", data.coffee())
    iio.imwrite(tmp_path / "b" / "x.png", data.astronaut())
    out = tmp_path / "out"
    done = run("quantize", tmp_path / "a" / "x.png", tmp_path / "b" / "x.png", "-o", out, "-q")
    assert done.returncode == 2
    assert "would be written for both" in done.stderr and "nothing was written" in done.stderr
    assert not out.exists() or _written(out) == []


def test_png_and_tif_of_one_stem_collide_in_one_folder(tmp_path):
    iio.imwrite(tmp_path / "x.png", data.coffee())
    tifffile.imwrite(tmp_path / "x.tif", data.coffee())
    for extra in ([], ["--sweep", "2..3"]):
        done = run("quantize", tmp_path / "x.png", tmp_path / "x.tif", "-q", *extra)
        assert done.returncode == 2, done.stderr
        assert "would be written for both" in done.stderr
        assert _written(tmp_path) == ["x.png", "x.tif"]


def test_existing_outputs_are_kept_unless_overwrite_is_asked(files):
    first = run("quantize", files / "coffee.png", "-k", "3", "-q")
    assert first.returncode == 0, first.stderr
    labels = files / "coffee_labels_k3.tif"
    labels.write_bytes(b"my own notes")
    again = run("quantize", files / "coffee.png", "-k", "3", "-q")
    assert again.returncode == 2 and "exists" in again.stderr and "--overwrite" in again.stderr
    assert labels.read_bytes() == b"my own notes"
    forced = run("quantize", files / "coffee.png", "-k", "3", "-q", "--overwrite")
    assert forced.returncode == 0, forced.stderr
    assert tifffile.imread(labels).max() == 3
    # no temporary files are left behind
    assert not [p for p in files.iterdir() if ".kquant-" in p.name]


def test_a_hard_link_to_an_input_at_an_output_name_is_never_written_through(files):
    import os

    link = files / "coffee_quantized_k3.png"
    os.link(files / "coffee.png", link)
    before = (files / "coffee.png").read_bytes()
    done = run("quantize", files / "coffee.png", "-k", "3", "-q", "--overwrite")
    assert done.returncode == 2 and "the input" in done.stderr
    assert (files / "coffee.png").read_bytes() == before


def test_a_symlink_at_an_output_name_is_never_written_through(files):
    target = files / "precious.png"
    target.write_bytes(b"precious")
    (files / "coffee_quantized_k3.png").symlink_to(target)
    done = run("quantize", files / "coffee.png", "-k", "3", "-q")
    assert done.returncode == 2 and "exists" in done.stderr
    forced = run("quantize", files / "coffee.png", "-k", "3", "-q", "--overwrite")
    assert forced.returncode == 2 and "symbolic link" in forced.stderr
    assert target.read_bytes() == b"precious"


def test_the_palette_file_is_protected_like_an_input(files):
    # the README's pattern: fit, then reapply the palette with outputs in the same folder
    assert run("quantize", files / "coffee.png", "-k", "4", "-q").returncode == 0
    palette = files / "coffee_palette_k4.json"
    before = palette.read_bytes()
    done = run("quantize", files / "coffee.png", "--palette-from", palette, "-q", "--overwrite")
    assert done.returncode == 2 and "the input" in done.stderr
    assert palette.read_bytes() == before


def test_batch_level_mistakes_are_refused_in_one_line(files):
    a_file = files / "coffee.png"
    cases = [
        (["-o", a_file], "is a file"),
        (["--sweep", ""], "empty"),
        (["--sweep", "2..1000000000"], "limit of 1024"),
        (["-k", "0"], "at least 1"),
        (["--palette-from", files / "broken.png"], "palette file"),
    ]
    for extra, message in cases:
        done = run("quantize", files / "coffee.png", "-q", *extra)
        assert done.returncode == 2, (extra, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    (files / "list.json").write_text("[1, 2, 3]")
    (files / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    for bad in ("list.json", "deep.json"):
        done = run("quantize", files / "coffee.png", "-q", "--palette-from", files / bad)
        assert done.returncode == 2 and "palette file" in done.stderr, done.stderr
        assert "Traceback" not in done.stderr


def test_a_huge_png_header_fails_that_file_only(files):
    import struct
    import zlib

    header = struct.pack(">IIBBBBB", 30000, 30000, 16, 6, 0, 0, 0)
    chunk = b"IHDR" + header
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk
    png += struct.pack(">I", zlib.crc32(chunk)) + b"\x00" * 64
    (files / "huge.png").write_bytes(png)
    done = run("quantize", files / "huge.png", files / "coffee.png", "-k", "3", "-q")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("napari-kquant: ")]
    assert len(lines) == 1 and "huge.png" in lines[0]
    assert (files / "coffee_quantized_k3.png").exists()


def test_gray_with_alpha_keeps_its_alpha_and_16_bit_png_stays_16_bit(tmp_path):
    from PIL import Image

    gray = data.camera()[::4, ::4]
    alpha = np.tile(np.linspace(0, 255, gray.shape[1]).astype(np.uint8), (gray.shape[0], 1))
    Image.fromarray(np.dstack([gray, alpha]), mode="LA").save(tmp_path / "la.png")
    rgb16 = data.astronaut()[::4, ::4].astype(np.uint16) * 257
    import cv2

    cv2.imwrite(str(tmp_path / "deep.png"), rgb16[..., ::-1])
    done = run("quantize", tmp_path / "la.png", tmp_path / "deep.png", "-k", "4", "-q")
    assert done.returncode == 0, done.stderr
    la = iio.imread(tmp_path / "la_quantized_k4.png")
    assert la.shape == (*gray.shape, 2)
    np.testing.assert_array_equal(la[..., 1], alpha)  # alpha carried over, not clustered
    assert len(np.unique(la[..., 0])) == 4
    deep = cv2.imread(str(tmp_path / "deep_quantized_k4.png"), cv2.IMREAD_UNCHANGED)
    assert deep.dtype == np.uint16 and deep.shape == rgb16.shape
    assert len(np.unique(deep.reshape(-1, 3), axis=0)) == 4
    assert (np.unique(deep) % 257 != 0).any()  # centres at 16-bit precision, not 8-bit


def test_version():
    done = run("--version")
    assert done.returncode == 0 and done.stdout.startswith("napari-kquant ")


def test_help_explains_every_option():
    done = run("quantize", "--help")
    assert done.returncode == 0
    for option in (
        "-k",
        "--output",
        "--overwrite",
        "--method",
        "--seed",
        "--palette-from",
        "--sweep",
        "--quiet",
    ):
        assert option in done.stdout
    assert "--sample" in run("demo", "--help").stdout


def test_parser_refuses_unknown_sample_and_method():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--sample", "lena"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["quantize", "x.png", "--method", "sklearn"])
    args = build_parser().parse_args(["demo", "--sample", "coffee", "-k", "5"])
    assert (args.sample, args.k) == ("coffee", 5)


def test_ome_zarr_output(files):
    import zarr

    out = files / "ome"
    done = run("quantize", files / "coffee.png", "-k", "4", "-o", out, "--format", "ome-zarr", "-q")
    assert done.returncode == 0, done.stderr
    assert [p.name for p in out.iterdir()] == ["coffee_k4.ome.zarr"]
    root = zarr.open_group(str(out / "coffee_k4.ome.zarr"), mode="r")
    labels = root["labels/clusters/0"][:]
    assert labels.shape == (400, 600) and labels.max() == 4
    assert root.attrs["napari_kquant"]["palette"]["k"] == 4
    again = run(
        "quantize", files / "coffee.png", "-k", "4", "-o", out, "--format", "ome-zarr", "-q"
    )
    assert again.returncode == 2 and "exists" in again.stderr
    forced = run(
        "quantize",
        files / "coffee.png",
        "-k",
        "4",
        "-o",
        out,
        "--format",
        "ome-zarr",
        "-q",
        "--overwrite",
        "--seed",
        "9",
    )
    assert forced.returncode == 0, forced.stderr
    assert (
        zarr.open_group(str(out / "coffee_k4.ome.zarr")).attrs["napari_kquant"]["params"]["seed"]
        == 9
    )


@pytest.mark.parametrize("kind", ["ome-tiff", "imagej", "resolution-tags"])
def test_ome_zarr_from_the_command_line_keeps_the_tiffs_pixel_size(tmp_path, kind):
    import json

    image = data.camera()
    path = tmp_path / ("in.ome.tif" if kind == "ome-tiff" else "in.tif")
    if kind == "ome-tiff":
        sizes = {"PhysicalSizeX": 0.325, "PhysicalSizeY": 0.325}
        units = {"PhysicalSizeXUnit": "µm", "PhysicalSizeYUnit": "µm"}
        tifffile.imwrite(path, image, ome=True, metadata={**sizes, **units})
    elif kind == "imagej":
        tifffile.imwrite(
            path, image, imagej=True, resolution=(1 / 0.325,) * 2, metadata={"unit": "um"}
        )
    else:  # pixels per centimetre
        tifffile.imwrite(path, image, resolution=(1e4 / 0.325,) * 2, resolutionunit=3)
    done = run("quantize", path, "-k", "3", "--format", "ome-zarr", "-o", tmp_path / "out", "-q")
    assert done.returncode == 0, done.stderr
    store = next((tmp_path / "out").glob("*.ome.zarr"))
    for group in (store, store / "labels" / "clusters"):
        multiscale = json.loads((group / "zarr.json").read_text())["attributes"]["ome"]
        multiscale = multiscale["multiscales"][0]
        assert [axis.get("unit") for axis in multiscale["axes"]] == ["micrometer"] * 2
        scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
        assert scale == pytest.approx([0.325, 0.325])
