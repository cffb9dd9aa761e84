"""The command line entry points."""

import subprocess
import sys

import pytest

from napari_kquant._cli import build_parser


def test_module_entry_point_prints_help():
    out = subprocess.run(
        [sys.executable, "-m", "napari_kquant", "demo", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--sample" in out.stdout and "astronaut" in out.stdout


def test_parser_refuses_unknown_sample():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["demo", "--sample", "lena"])
    args = build_parser().parse_args(["demo", "--sample", "coffee", "-k", "5"])
    assert (args.sample, args.k) == ("coffee", 5)
