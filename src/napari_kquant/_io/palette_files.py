"""Palette files: JSON (lossless), CSV and GIMP ``.gpl`` (core formats; numpy only)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .._core.palette import Palette, as_palette, channel_names
from .._core.safe import write_safely
from .._core.validate import InvalidInputError

PALETTE_FORMATS = (".csv", ".json", ".gpl")
_META_PREFIX = "# napari-kquant palette: "  # CSV and GIMP files carry the palette's space here


def save_palette(path, palette, *, counts=None, params=None, overwrite=False) -> Path:
    """Write a palette as JSON, CSV or GIMP palette (``.gpl``, RGB only), by suffix.

    JSON keeps everything (:meth:`Palette.to_json`). CSV holds one row per label
    (centre, count, fraction) and GIMP palettes the colours rounded to integers; both
    carry the palette's colour space and channel scaling in a ``#`` comment line (the
    last line of a CSV), so that reapplying a loaded palette measures distances as the
    fit did.

    Parameters
    ----------
    path : str or Path
        Where to write; the suffix picks the format.
    palette : Palette, Quantization or (k, C) array_like
        The palette, a result (its palette), or bare centres (row i for label i + 1).
    counts : (k,) array_like, optional
        Pixels per label, for bare centres.
    params : dict, optional
        How bare centres were made.
    overwrite : bool
        Replace an existing file (never a folder or a link: the new file takes the
        name's place, and what a link pointed to is left as it was).

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    ValueError
        For an unknown suffix, a non-RGB palette as ``.gpl``, or an existing ``path``
        without ``overwrite`` (:class:`~napari_kquant._core.safe.OutputError`).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> written = save_palette(folder / "p.json", [[0, 0, 0], [255, 128, 0]], counts=[3, 1])
    >>> load_palette(written).centers.tolist()
    [[0.0, 0.0, 0.0], [255.0, 128.0, 0.0]]
    """
    palette = as_palette(palette, counts=counts, params=params)
    text = palette_text(palette, Path(path).suffix)
    return write_safely(path, text, what="palette", overwrite=overwrite)


def palette_text(palette: Palette, suffix: str) -> str:
    """The text of ``palette`` in the format of ``suffix`` (``.json``, ``.csv`` or ``.gpl``)."""
    suffix = suffix.lower()
    if suffix not in PALETTE_FORMATS:
        raise InvalidInputError(f"palette format {suffix!r} is not one of {PALETTE_FORMATS}")
    centers, k = palette.centers, palette.k
    meta = _META_PREFIX + json.dumps(palette.space())
    if suffix == ".json":
        return palette.to_json()
    if suffix == ".csv":
        counts, fractions = palette.counts, palette.fractions
        names = channel_names(centers.shape[1])
        rows = ["label," + ",".join(names) + (",count,fraction" if counts is not None else "")]
        for i in range(k):
            row = [str(i + 1), *(repr(float(v)) for v in centers[i])]
            if counts is not None and fractions is not None:
                row += [str(int(counts[i])), repr(float(fractions[i]))]
            rows.append(",".join(row))
        rows.append(meta)  # last, so that the header stays the first line for spreadsheets
        return "\n".join(rows) + "\n"
    if centers.shape[1] != 3:
        raise InvalidInputError("a GIMP palette holds RGB colours: this palette is not RGB")
    rgb = np.clip(np.rint(centers), 0, 255).astype(int)
    lines = ["GIMP Palette", f"Name: napari-kquant K={k}", "Columns: 0", meta]
    lines += [f"{r:3d} {g:3d} {b:3d}\tlabel {i + 1}" for i, (r, g, b) in enumerate(rgb)]
    return "\n".join(lines) + "\n"


def is_palette_file(path) -> bool:
    """Whether ``path`` looks like a palette file :func:`save_palette` wrote (cheap check).

    JSON with ``centers``, CSV whose header starts with ``label,``, a GIMP palette: so
    that a reader offered every ``.csv`` (napari's points and shapes tables) declines
    the others.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PALETTE_FORMATS or not path.is_file():
        return False
    try:
        with path.open(encoding="utf-8") as f:
            head = f.read(1 << 16)
    except (OSError, UnicodeDecodeError):
        return False
    if suffix == ".json":
        return '"centers"' in head
    first = head.lstrip().splitlines()[0] if head.strip() else ""
    return first.startswith("label,") if suffix == ".csv" else first.strip() == "GIMP Palette"


def load_palette(path) -> Palette:
    """Read a palette written by :func:`save_palette` (or any CSV/GIMP colour list).

    Returns
    -------
    Palette
        Its centres (row i for label i + 1), colour space and scaling; from JSON also
        the counts and how it was made.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "p.gpl"
    >>> load_palette(save_palette(path, [[10, 20, 30]])).centers.tolist()
    [[10.0, 20.0, 30.0]]
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PALETTE_FORMATS:
        raise InvalidInputError(f"palette format {suffix!r} is not one of {PALETTE_FORMATS}")
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{path} is not a text palette file") from exc
    try:
        if suffix == ".json":
            return Palette.from_json(text)
        lines = [line for line in text.splitlines() if line.strip()]
        space = {}
        for line in lines:
            if line.startswith(_META_PREFIX):
                space = json.loads(line[len(_META_PREFIX) :])
        if suffix == ".csv":
            rows = [line for line in lines if not line.startswith("#")]
            header = rows[0].split(",")
            columns = [
                i for i, name in enumerate(header) if name not in ("label", "count", "fraction")
            ]
            centers = np.array([[float(row.split(",")[i]) for i in columns] for row in rows[1:]])
            counts = None
            if "count" in header:
                at = header.index("count")
                counts = [int(row.split(",")[at]) for row in rows[1:]]
        else:
            if not lines or lines[0].strip() != "GIMP Palette":
                raise InvalidInputError("no 'GIMP Palette' header")
            rows = [
                line.split()
                for line in lines[1:]
                if not line.startswith(("#", "Name:", "Columns:"))
            ]
            for row in rows:  # "R G B name...": three numbers first
                if len(row) < 3 or not all(part.lstrip("-").isdigit() for part in row[:3]):
                    raise InvalidInputError(f"a colour row {' '.join(row)!r} is not 'R G B'")
            centers, counts = np.array([row[:3] for row in rows], dtype=np.float64), None
        return Palette.from_dict({**space, "centers": centers, "counts": counts})
    except (
        KeyError,
        IndexError,
        TypeError,
        ValueError,
        AttributeError,
        OverflowError,
        RecursionError,
    ) as exc:
        # JSONDecodeError is a ValueError; OverflowError: integers beyond float64 or
        # int64; RecursionError: JSON nested too deeply
        raise InvalidInputError(f"{path} is not a readable palette: {exc}") from None
