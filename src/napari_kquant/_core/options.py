"""Every choice a user makes, typed once (core: standard library only).

:class:`Options` is the one owner of the option set: its fields' names, types,
choices (``Literal``), bounds (``Annotated[..., Bounds]``) and defaults. The core
validates from it, the dock widgets build their fields from it, the command line
generates its flags from it, the estimator takes its parameters from it, and the
recorded ``params`` name the same things. The words that explain each option live
in :func:`napari_kquant.quantize`'s docstring (tooltips and ``--help`` read them).
"""

from __future__ import annotations

import functools
import re
from dataclasses import MISSING, asdict, dataclass, fields
from typing import Annotated, Literal, get_args, get_origin, get_type_hints

MAX_K = 1024  # clusters: palettes people use stop at 256; 1024 still runs in seconds
MAX_SWEEP_VALUES = 256  # K values in one sweep
MAX_SEED = 2**31 - 1  # cv2.setRNGSeed takes a C int
MAX_ATTEMPTS = 100  # initialisations: beyond this a run only gets slower
MAX_ITER = 100_000  # Lloyd iterations (a criterion that is off uses 10,000)


@dataclass(frozen=True)
class Bounds:
    """Inclusive bounds of a number option."""

    low: float
    high: float


@dataclass(frozen=True)
class Options:
    """The options of a k-means quantization, with their defaults.

    See :func:`napari_kquant.quantize` for what each one means. ``criteria`` may also
    be an OpenCV tuple ``(type, max_iter, epsilon)`` when calling the API.

    Examples
    --------
    >>> Options().method, choices("color_space"), bounds("attempts")
    ('fast', ('rgb', 'lab'), Bounds(low=1, high=100))
    """

    method: Literal["fast", "opencv"] = "fast"
    attempts: Annotated[int, Bounds(1, MAX_ATTEMPTS)] = 3
    max_iter: Annotated[int, Bounds(1, MAX_ITER)] = 100
    epsilon: float | None = None
    criteria: Literal["eps+max_iter", "eps", "max_iter"] = "eps+max_iter"
    init: Literal["kmeans++", "random"] = "kmeans++"
    seed: Annotated[int, Bounds(0, MAX_SEED)] | None = 0
    color_space: Literal["rgb", "lab"] = "rgb"
    standardize: bool = False
    planes: Literal["stack", "each"] = "stack"
    sample_size: Annotated[int, Bounds(1, 2**62)] | None = None
    fit_level: int = -1

    @classmethod
    def picked(cls, values) -> Options:
        """The options among ``values`` (a mapping; other keys are left out)."""
        return cls(**{name: values[name] for name in OPTION_NAMES if name in values})


DEFAULTS = Options()
OPTION_NAMES = tuple(f.name for f in fields(Options))
# Options that describe a fit of a pixel table (the estimator's, besides k)
TABLE_OPTIONS = tuple(n for n in OPTION_NAMES if n not in ("planes", "fit_level"))
# Where the pixels and their channels are: part of the input, not of the options
LAYOUT_DEFAULTS = {"rgb": None, "mask": None, "channel_axis": None}


def layout_keywords(values) -> dict:
    """The keywords among ``values`` that say where the pixels and channels are."""
    return {name: values.get(name, default) for name, default in LAYOUT_DEFAULTS.items()}


# Every keyword of quantize() with its default (a test checks the signature agrees)
QUANTIZE_DEFAULTS = {**asdict(Options()), **LAYOUT_DEFAULTS}


@functools.cache
def _hints() -> dict:
    """Options' evaluated annotations (evaluated once: it took 0.5 ms a call)."""
    return get_type_hints(Options, include_extras=True)


def _hint(name: str):
    return _hints()[name]


def _parts(hint) -> list:
    """The alternatives of a hint (``X | None`` gives X and NoneType)."""
    args = get_args(hint)
    return list(args) if get_origin(hint) not in (Literal, Annotated) and args else [hint]


def choices(name: str) -> tuple:
    """The allowed values of a ``Literal`` option."""
    for part in _parts(_hint(name)):
        if get_origin(part) is Literal:
            return get_args(part)
    raise KeyError(f"{name} is not a choice option")


def bounds(name: str) -> Bounds | None:
    """The bounds of a number option (None when unbounded)."""
    for part in _parts(_hint(name)):
        if get_origin(part) is Annotated:
            return next((m for m in get_args(part)[1:] if isinstance(m, Bounds)), None)
    return None


def kind(name: str) -> str:
    """The option's kind: choice, flag, int or float (for building widgets and flags)."""
    parts = [p for p in _parts(_hint(name)) if p is not type(None)]
    base = parts[0]
    if get_origin(base) is Literal:
        return "choice"
    if get_origin(base) is Annotated:
        base = get_args(base)[0]
    return {bool: "flag", int: "int", float: "float"}[base]


def optional(name: str) -> bool:
    """Whether None is allowed (it means "automatic")."""
    return type(None) in _parts(_hint(name))


def default(name: str):
    """The option's default."""
    field = next(f for f in fields(Options) if f.name == name)
    return field.default if field.default is not MISSING else None


def describe(docstring: str | None) -> dict[str, str]:
    """Each parameter's text in a numpydoc ``Parameters`` section, as one line.

    Examples
    --------
    >>> describe('''Do it.
    ...
    ...     Parameters
    ...     ----------
    ...     k : int
    ...         Number of colours,
    ...         at least 1.
    ...     ''')
    {'k': 'Number of colours, at least 1.'}
    """
    if not docstring:
        return {}
    lines = docstring.expandtabs().splitlines()
    section = [i for i, line in enumerate(lines) if line.strip() == "Parameters"]
    if not section:
        return {}
    body = lines[section[0] + 2 :]
    # the section ends where the next one's title is underlined with dashes
    end = next(
        (
            i
            for i in range(len(body) - 1)
            if body[i + 1].strip() and set(body[i + 1].strip()) == {"-"}
        ),
        len(body),
    )
    out: dict[str, str] = {}
    names: list[str] = []
    indent = None
    for line in body[:end]:
        stripped = line.strip()
        if not stripped:
            continue
        current = len(line) - len(line.lstrip())
        if indent is None or current <= indent:
            indent = current
            header = re.match(r"([\w, ]+?)\s*:", stripped)
            names = [n.strip() for n in header[1].split(",")] if header else []
            out.update(dict.fromkeys(names, ""))
        else:
            for name in names:
                out[name] = f"{out[name]} {stripped}".strip()
    # plain text for tooltips and --help: no reStructuredText literals
    return {name: text.replace("``", "") for name, text in out.items() if text}
