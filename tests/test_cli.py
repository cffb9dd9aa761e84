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
        assert load_palette(out / f"coffee_palette_k5.{suffix}").shape == (5, 3)
    gray = tifffile.imread(out / "camera16_quantized_k5.tif")
    assert gray.dtype == np.uint16 and len(np.unique(gray)) == 5
    assert load_palette(out / "camera16_palette_k5.json").shape == (5, 1)
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
    done = run("quantize", source, files / "coffee.png", "-k", "3", "-q")
    # coffee.png's output would overwrite the other input: refused, and said
    assert done.returncode == 1
    assert "refusing to overwrite" in done.stderr
    assert source.read_bytes() == before


def test_help_explains_every_option():
    done = run("quantize", "--help")
    assert done.returncode == 0
    for option in ("-k", "--output", "--method", "--seed", "--palette-from", "--sweep", "--quiet"):
        assert option in done.stdout
    assert "--sample" in run("demo", "--help").stdout


def test_parser_refuses_unknown_sample_and_method():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--sample", "lena"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["quantize", "x.png", "--method", "sklearn"])
    args = build_parser().parse_args(["demo", "--sample", "coffee", "-k", "5"])
    assert (args.sample, args.k) == ("coffee", 5)
