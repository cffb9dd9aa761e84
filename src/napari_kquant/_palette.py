"""Label ordering, palette colours and palette files (core: numpy only)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

COLOR_SPACES = ("rgb", "lab")
_LAB_BLOCK = 1 << 18  # pixels per block of the Lab conversion

# ITU-R BT.601 luma weights, the ones OpenCV's RGB->gray conversion uses.
_LUMA = np.array([0.299, 0.587, 0.114])


def brightness(centers: np.ndarray) -> np.ndarray:
    """Brightness of each centre: luma for colour (3 channels), else the channels' mean."""
    centers = np.asarray(centers, dtype=np.float64)
    if centers.shape[1] == 3:
        return centers[:, :3] @ _LUMA
    return centers.mean(axis=1)


def darkest_first(centers: np.ndarray) -> np.ndarray:
    """Permutation that sorts centres by brightness, ties broken by channel values."""
    centers = np.asarray(centers, dtype=np.float64)
    keys = [centers[:, c] for c in range(centers.shape[1] - 1, -1, -1)]
    return np.lexsort([*keys, brightness(centers)])


def rgb_to_lab(table: np.ndarray, white: float) -> np.ndarray:
    """CIELAB (D65) of an (N, 3) RGB table whose full intensity is ``white``.

    sRGB values are read as ``value / white`` (0..1) and converted by OpenCV in
    float32, block by block: L in 0..100, a and b in about -128..127.
    """
    out = np.empty(table.shape, dtype=np.float32)
    for start in range(0, len(table), _LAB_BLOCK):
        block = np.asarray(table[start : start + _LAB_BLOCK], dtype=np.float32) / np.float32(white)
        lab = cv2.cvtColor(block.reshape(-1, 1, 3), cv2.COLOR_RGB2Lab)
        out[start : start + _LAB_BLOCK] = lab.reshape(-1, 3)
    return out


def lab_to_rgb(lab: np.ndarray, white: float) -> np.ndarray:
    """RGB (0..``white``, float64) of (k, 3) CIELAB colours; out-of-gamut colours are clipped."""
    rgb = cv2.cvtColor(np.asarray(lab, dtype=np.float32).reshape(-1, 1, 3), cv2.COLOR_Lab2RGB)
    return np.clip(rgb.reshape(-1, 3).astype(np.float64), 0.0, 1.0) * white


def display_colors(centers: np.ndarray, low: float, high: float) -> np.ndarray:
    """RGBA colours in 0..1 for showing each centre (gray centres become gray colours)."""
    centers = np.asarray(centers, dtype=np.float64)
    span = high - low if high > low else 1.0
    unit = np.clip((centers - low) / span, 0.0, 1.0)
    rgb = unit[:, :3] if unit.shape[1] >= 3 else np.repeat(unit[:, :1], 3, axis=1)
    return np.column_stack([rgb, np.ones(len(rgb))])


PALETTE_FORMATS = (".csv", ".json", ".gpl")


def save_palette(path, centers, *, counts=None, params=None) -> Path:
    """Write a palette as CSV, JSON or GIMP palette (``.gpl``, RGB only), by suffix.

    Parameters
    ----------
    path : str or Path
        Where to write; the suffix picks the format.
    centers : (k, C) array_like
        The centres, row i for label i + 1.
    counts : (k,) array_like, optional
        Pixels per label (CSV and JSON keep them, with the fractions).
    params : dict, optional
        The parameters that made the palette (JSON keeps them).

    Returns
    -------
    Path
        The file written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> written = save_palette(folder / "p.json", [[0, 0, 0], [255, 128, 0]], counts=[3, 1])
    >>> load_palette(written).tolist()
    [[0.0, 0.0, 0.0], [255.0, 128.0, 0.0]]
    """
    path = Path(path)
    centers = np.asarray(centers, dtype=np.float64)
    if centers.ndim == 1:
        centers = centers[:, None]
    suffix = path.suffix.lower()
    if suffix not in PALETTE_FORMATS:
        raise ValueError(f"palette format {suffix!r} is not one of {PALETTE_FORMATS}")
    k, n_channels = centers.shape
    fractions = None
    if counts is not None:
        counts = np.asarray(counts, dtype=np.int64)
        total = counts.sum()
        fractions = counts / total if total else np.zeros(k)
    names = _channel_names(n_channels)
    if suffix == ".csv":
        rows = ["label," + ",".join(names) + (",count,fraction" if counts is not None else "")]
        for i in range(k):
            row = [str(i + 1), *(repr(float(v)) for v in centers[i])]
            if counts is not None:
                row += [str(int(counts[i])), repr(float(fractions[i]))]
            rows.append(",".join(row))
        path.write_text("\n".join(rows) + "\n")
    elif suffix == ".json":
        document = {
            "k": k,
            "channels": names,
            "centers": centers.tolist(),
            "counts": None if counts is None else counts.tolist(),
            "fractions": None if fractions is None else fractions.tolist(),
            "params": params or {},
        }
        path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    else:
        if n_channels != 3:
            raise ValueError("a GIMP palette holds RGB colours: this palette is not RGB")
        rgb = np.clip(np.rint(centers), 0, 255).astype(int)
        lines = ["GIMP Palette", f"Name: napari-kquant K={k}", "Columns: 0", "#"]
        lines += [f"{r:3d} {g:3d} {b:3d}\tlabel {i + 1}" for i, (r, g, b) in enumerate(rgb)]
        path.write_text("\n".join(lines) + "\n")
    return path


def load_palette(path) -> np.ndarray:
    """Read the centres back from a palette written by :func:`save_palette`.

    Returns
    -------
    (k, C) ndarray of float64
        Row i is the centre of label i + 1.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "p.gpl"
    >>> load_palette(save_palette(path, [[10, 20, 30]])).tolist()
    [[10.0, 20.0, 30.0]]
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in PALETTE_FORMATS:
        raise ValueError(f"palette format {suffix!r} is not one of {PALETTE_FORMATS}")
    try:
        text = path.read_text()
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not a text palette file") from exc
    try:
        if suffix == ".json":
            document = json.loads(text)
            if not isinstance(document, dict) or "centers" not in document:
                raise ValueError("a JSON palette is an object with a 'centers' list")
            centers = np.asarray(document["centers"], dtype=np.float64)
        elif suffix == ".csv":
            lines = [line for line in text.splitlines() if line.strip()]
            header = lines[0].split(",")
            columns = [
                i for i, name in enumerate(header) if name not in ("label", "count", "fraction")
            ]
            centers = np.array([[float(line.split(",")[i]) for i in columns] for line in lines[1:]])
        elif suffix == ".gpl":
            lines = text.splitlines()
            if not lines or lines[0].strip() != "GIMP Palette":
                raise ValueError("no 'GIMP Palette' header")
            rows = [
                line.split()[:3]
                for line in lines[1:]
                if line.strip() and not line.startswith(("#", "Name:", "Columns:"))
            ]
            centers = np.array(rows, dtype=np.float64)
    except (KeyError, IndexError, TypeError, ValueError, RecursionError) as exc:
        # JSONDecodeError is a ValueError; RecursionError: JSON nested too deeply
        raise ValueError(f"{path} is not a readable palette: {exc}") from None
    if centers.ndim != 2 or len(centers) == 0 or not np.isfinite(centers).all():
        raise ValueError(f"{path} holds no palette (expected one row of numbers per colour)")
    return centers


def _channel_names(n_channels: int) -> list[str]:
    return (
        ["r", "g", "b"]
        if n_channels == 3
        else ["value"]
        if n_channels == 1
        else [f"c{i}" for i in range(n_channels)]
    )
