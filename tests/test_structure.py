"""The package's structure: one owner per concept, no import cycles, a light import."""

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import napari_kquant
from napari_kquant import KMeansQuantizer, quantize
from napari_kquant._core.options import (
    OPTION_NAMES,
    QUANTIZE_DEFAULTS,
    TABLE_OPTIONS,
    Options,
    choices,
    describe,
)

PACKAGE = Path(napari_kquant.__file__).parent


def dotted(path: Path) -> str:
    """``_core/kmeans.py`` -> ``_core.kmeans``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> dict[str, set[str]]:
    """Package modules a module imports (function-level imports too) -> names taken."""
    here = dotted(path).split(".") if dotted(path) else []
    package = here if path.name == "__init__.py" else here[:-1]
    found: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        base = package[: len(package) - (node.level - 1)]
        if node.module:
            target = ".".join([*base, node.module])
            found.setdefault(target, set()).update(a.name for a in node.names)
        else:  # from . import engines: the names are modules
            for alias in node.names:
                found.setdefault(".".join([*base, alias.name]), set())
    return found


def module_graph() -> dict[str, dict[str, set[str]]]:
    return {
        dotted(path): imports_of(path)
        for path in PACKAGE.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py")
    }


def test_no_import_cycle_between_the_package_modules():
    graph = module_graph()
    state: dict[str, int] = {}

    def visit(module, trail):
        state[module] = 1
        for target in graph.get(module, {}):
            if target not in graph:
                continue
            assert state.get(target) != 1, "import cycle: " + " -> ".join([*trail, target])
            if target not in state:
                visit(target, [*trail, target])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_no_module_takes_another_modules_private_names():
    for module, targets in module_graph().items():
        for target, names in targets.items():
            private = sorted(n for n in names if n.startswith("_") and not n.startswith("__"))
            assert not private, f"{module} imports {private} from {target}"


def test_the_core_imports_no_gui():
    code = (
        "import sys, napari_kquant, napari_kquant._core.quantize, napari_kquant._cli,"
        " napari_kquant._io.zarr_export, napari_kquant._io.palette_files;"
        "print(sorted(m for m in ('napari', 'qtpy', 'magicgui', 'PyQt6') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_quantize_takes_exactly_the_options_with_their_defaults():
    signature = inspect.signature(quantize)
    keywords = {
        name: p.default
        for name, p in signature.parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert keywords == QUANTIZE_DEFAULTS
    assert set(describe(quantize.__doc__)) >= set(OPTION_NAMES)  # every option explained


def test_the_estimator_takes_the_table_options_with_their_defaults():
    parameters = inspect.signature(KMeansQuantizer).parameters
    assert tuple(parameters) == ("k", *TABLE_OPTIONS)
    for name in TABLE_OPTIONS:
        assert parameters[name].default == getattr(Options(), name)


def test_the_command_line_has_a_flag_for_every_option():
    from napari_kquant._cli import build_parser

    quantize_parser = build_parser()._subparsers._group_actions[0].choices["quantize"]
    flags = {a.dest: a for a in quantize_parser._actions}
    for name in OPTION_NAMES:
        if name == "fit_level":  # files are single-resolution
            continue
        assert name in flags, name
        if flags[name].choices is not None:
            assert tuple(flags[name].choices) == choices(name)
        assert flags[name].help and "``" not in flags[name].help


def test_engines_and_colour_spaces_are_registered_under_the_options_choices():
    from napari_kquant._core.engines import ENGINES
    from napari_kquant._core.spaces import SPACES

    assert tuple(ENGINES) == choices("method")
    assert tuple(SPACES) == choices("color_space")
    for engine in ENGINES.values():
        assert engine.max_magnitude > 0 and engine.working_bytes(1000, 3, 1) > 0


def test_bad_input_is_one_error_class_and_wrong_types_are_type_errors(small_rgb):
    from napari_kquant import InvalidInputError

    with pytest.raises(InvalidInputError, match="at least 1"):
        quantize(small_rgb, 0)
    for options in ({"k": 2.5}, {"method": 3}, {"standardize": "yes"}, {"seed": 1.5}):
        with pytest.raises(TypeError) as info:
            quantize(small_rgb, **{"k": 3, **options})
        assert isinstance(info.value, InvalidInputError)


def test_one_version_source():
    """The version is written once (``_version.py``); the build and the CLI read it."""
    from importlib.metadata import version

    assert napari_kquant.__version__ == version("napari-kquant")
    pyproject = (PACKAGE.parents[1] / "pyproject.toml").read_text()
    assert 'dynamic = ["version"]' in pyproject and "_version.py" in pyproject
    done = subprocess.run(
        [sys.executable, "-m", "napari_kquant", "--version"], capture_output=True, text=True
    )
    assert done.stdout.split() == ["napari-kquant", napari_kquant.__version__]


def test_each_part_imports_only_what_it_may():
    """core < io < napari adapter < Qt widgets; the CLI and estimator use core and io."""
    allowed = {
        "_core": {"_core"},
        "_io": {"_core", "_io"},
        "_napari": {"_core", "_io", "_napari"},
        "_qt": {"_core", "_io", "_napari", "_qt"},
    }
    for module, targets in module_graph().items():
        part = module.split(".")[0]
        if part == "_version":  # the version: a leaf every part may read
            assert not targets, f"_version imports {targets}"
            continue
        for target in targets:
            target_part = target.split(".")[0]
            if target_part == "_version":
                continue
            if part in allowed:
                assert target_part in allowed[part], f"{module} imports {target}"
            elif part in ("_cli", "_estimator"):
                assert target_part in ("_core", "_io"), f"{module} imports {target}"


def test_one_owner_for_the_channel_names_and_the_planes():
    """The naming rule of channels lives in the core's palette; the planes' choices in Options."""
    sources = {p.relative_to(PACKAGE).as_posix(): p.read_text() for p in PACKAGE.rglob("*.py")}
    defining = [name for name, text in sources.items() if "def channel_names(" in text]
    assert defining == ["_core/palette.py"]
    # a tuple or list of the planes' choices written out anywhere but in Options
    pattern = re.compile(r"[=(\[]\s*\(?\s*\"stack\",\s*\"each\"")
    literal = [
        name
        for name, text in sources.items()
        if pattern.search(text) and name != "_core/options.py"  # (the owner's Literal)
    ]
    assert literal == [], literal  # every other place reads choices("planes")


def test_one_owner_for_the_channel_layout():
    """Where the channels are (rgb, channel_axis) is worked out by ``Layout`` alone."""
    sources = {p.relative_to(PACKAGE).as_posix(): p.read_text() for p in PACKAGE.rglob("*.py")}
    reading = [name for name, text in sources.items() if "check_axis(" in text]
    assert sorted(reading) == ["_core/layout.py", "_core/validate.py"]  # (its definition)
    assert not [name for name, text in sources.items() if "class _Layout" in text]
    # guessing colour from the shape: only the check Layout.of calls (validate.check_image)
    guessing = [name for name, text in sources.items() if "guess_rgb(" in text]
    assert guessing == ["_core/validate.py"], guessing
    # an image made a pixel table: Layout.table alone
    tabling = [name for name, text in sources.items() if "reshape(-1, 1)" in text]
    assert tabling == ["_core/layout.py"], tabling


def test_one_owner_for_the_working_dtype():
    """The dtype the engines compute in is chosen by ``validate.working_dtype`` alone.

    The eager table and the lazy path's palette space must agree to the bit.
    """
    sources = {p.relative_to(PACKAGE).as_posix(): p.read_text() for p in PACKAGE.rglob("*.py")}
    defining = [name for name, text in sources.items() if "def working_dtype(" in text]
    assert defining == ["_core/validate.py"]
    choosing = [
        name
        for name, text in sources.items()
        if re.search(r"float16\b.*float32|== np\.float16", text) and name != "_core/validate.py"
    ]
    assert choosing == [], choosing


def test_one_owner_for_the_lazy_or_eager_choice():
    """``kinds.takes_lazy_path`` decides the path for quantize, sweep and Palette.apply."""
    from napari_kquant._core import palette

    sources = {p.relative_to(PACKAGE).as_posix(): p.read_text() for p in PACKAGE.rglob("*.py")}
    deciding = [name for name, text in sources.items() if re.search(r"is_lazy\(\w+\) or", text)]
    assert deciding == ["_core/kinds.py"], deciding
    assert set(palette._APPLIERS) == {"eager", "lazy"}  # by path, whatever the import order


def test_a_job_is_built_from_checked_options_and_one_layout():
    """Job.of takes an Options (not a keyword per option); the Job keeps the Layout.

    Its fit options are checked once (``Fitting``), the memory guard's inputs travel
    as a ``Footprint``, and in the core only ``Layout`` moves the channel axis.
    """
    from dataclasses import fields

    from napari_kquant._core.kmeans import Fitting, Job
    from napari_kquant._core.layout import Layout
    from napari_kquant._core.memory import Footprint
    from napari_kquant._core.options import OPTION_NAMES, Options

    parameters = inspect.signature(Job.of).parameters
    assert not set(parameters) & set(OPTION_NAMES)  # the options come as one value
    assert parameters["options"].default == Options()
    types = {f.name: f.type for f in fields(Job)}
    assert types["layout"] == "Layout" and types["fitting"] == "Fitting"
    assert types["footprint"] == "Footprint"
    assert not set(types) & set(OPTION_NAMES) - {"seed"}

    job = Job.of(np.zeros((4, 5, 6), np.float32), channel_axis=0)
    assert job.layout == Layout(3, True, True, 0) and job.image.shape == (5, 6, 4)
    assert isinstance(job.fitting, Fitting) and isinstance(job.footprint, Footprint)
    assert "memory" not in job.cache
    core = {
        p.relative_to(PACKAGE).as_posix(): p.read_text() for p in (PACKAGE / "_core").rglob("*.py")
    }
    moving = [name for name, text in core.items() if "moveaxis(" in text]
    assert moving == ["_core/layout.py"], moving
