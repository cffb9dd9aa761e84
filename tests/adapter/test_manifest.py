"""Packaging: one npe2 manifest, loadable from editable and wheel installs; headless import."""

import json
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import npe2
import pytest

import napari_kquant

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_MANIFEST = ROOT / "src" / "napari_kquant" / "napari.yaml"


def test_manifest_loads_from_the_installed_distribution():
    manifest = npe2.PluginManifest.from_distribution("napari-kquant")
    assert manifest.name == "napari-kquant"
    manifest.validate_imports()  # every python_name resolves
    widgets = [w.display_name for w in manifest.contributions.widgets]
    assert widgets == ["K-means quantization", "Compare K"]
    samples = {s.key for s in manifest.contributions.sample_data}
    assert samples == {"astronaut", "coffee"}
    assert "napari/layers/classify" in manifest.contributions.menus


def test_top_level_manifest_is_the_package_manifest():
    top = ROOT / "napari.yaml"
    assert top.is_symlink()
    assert top.samefile(PACKAGE_MANIFEST)


def test_editable_install_reads_the_source_manifest():
    dist = metadata.distribution("napari-kquant")
    direct_url = dist.read_text("direct_url.json")
    if direct_url is None or not json.loads(direct_url).get("dir_info", {}).get("editable"):
        pytest.skip("not an editable install")
    manifest = npe2.PluginManifest.from_distribution("napari-kquant")
    assert Path(napari_kquant.__file__).resolve().parent == PACKAGE_MANIFEST.parent
    assert manifest.display_name == "napari-kquant"


def test_import_is_headless():
    code = (
        "import sys, napari_kquant\n"
        "napari_kquant.quantize\n"
        "bad = [m for m in ('napari', 'qtpy', 'magicgui', 'PyQt6', 'PyQt5', 'PySide6')"
        " if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.slow
def test_wheel_carries_a_real_manifest_that_npe2_loads(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("napari_kquant-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo("napari_kquant/napari.yaml")
        assert (info.external_attr >> 16) & 0o170000 != 0o120000  # a file, not a link
        assert zf.read(info) == PACKAGE_MANIFEST.read_bytes()
        entry_points = next(n for n in zf.namelist() if n.endswith("entry_points.txt"))
        assert "napari_kquant:napari.yaml" in zf.read(entry_points).decode()
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    code = (
        "import npe2, napari_kquant, sys\n"
        f"assert napari_kquant.__file__.startswith({str(target)!r}), napari_kquant.__file__\n"
        "m = npe2.PluginManifest.from_distribution('napari-kquant')\n"
        "m.validate_imports()\n"
        "print(m.name)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(target), "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "napari-kquant"


def test_npe2_validate_command_passes():
    npe2_cli = Path(sys.executable).with_name("npe2")
    out = subprocess.run(
        [str(npe2_cli), "validate", "napari-kquant"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "valid" in out.stdout


def test_every_public_name_has_a_numpydoc_docstring_with_an_example():
    for name in napari_kquant.__all__:
        doc = getattr(napari_kquant, name).__doc__ or ""
        assert "Examples\n" in doc and ">>> " in doc, f"{name} has no Example"
