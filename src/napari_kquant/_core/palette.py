"""The Palette: label ordering, colours and its JSON form (core: numpy only; files: _io)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from .kinds import takes_lazy_path
from .options import choices
from .validate import MAX_FLOAT_MAGNITUDE, InvalidInputError, check_choice

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


def display_colors(centers: np.ndarray, low: float, high: float) -> np.ndarray:
    """RGBA colours in 0..1 for showing each centre (gray centres become gray colours)."""
    centers = np.asarray(centers, dtype=np.float64)
    span = high - low if high > low else 1.0
    unit = np.clip((centers - low) / span, 0.0, 1.0)
    rgb = unit[:, :3] if unit.shape[1] >= 3 else np.repeat(unit[:, :1], 3, axis=1)
    return np.column_stack([rgb, np.ones(len(rgb))])


# matplotlib's tab20 (tab10 is every other one): colours that are easy to tell apart
TAB20 = (
    (0.12156862745098039, 0.4666666666666667, 0.7058823529411765),
    (0.6823529411764706, 0.7803921568627451, 0.9098039215686274),
    (1.0, 0.4980392156862745, 0.054901960784313725),
    (1.0, 0.7333333333333333, 0.47058823529411764),
    (0.17254901960784313, 0.6274509803921569, 0.17254901960784313),
    (0.596078431372549, 0.8745098039215686, 0.5411764705882353),
    (0.8392156862745098, 0.15294117647058825, 0.1568627450980392),
    (1.0, 0.596078431372549, 0.5882352941176471),
    (0.5803921568627451, 0.403921568627451, 0.7411764705882353),
    (0.7725490196078432, 0.6901960784313725, 0.8352941176470589),
    (0.5490196078431373, 0.33725490196078434, 0.29411764705882354),
    (0.7686274509803922, 0.611764705882353, 0.5803921568627451),
    (0.8901960784313725, 0.4666666666666667, 0.7607843137254902),
    (0.9686274509803922, 0.7137254901960784, 0.8235294117647058),
    (0.4980392156862745, 0.4980392156862745, 0.4980392156862745),
    (0.7803921568627451, 0.7803921568627451, 0.7803921568627451),
    (0.7372549019607844, 0.7411764705882353, 0.13333333333333333),
    (0.8588235294117647, 0.8588235294117647, 0.5529411764705883),
    (0.09019607843137255, 0.7450980392156863, 0.8117647058823529),
    (0.6196078431372549, 0.8549019607843137, 0.8980392156862745),
)


def distinct_colors(n: int) -> np.ndarray:
    """``n`` RGBA colours that are easy to tell apart: tab10/tab20, then golden-angle hues.

    For clusters with no one colour of their own (several layers as features).
    """
    import colorsys

    if n <= 20:
        rgb = np.asarray(TAB20[::2][:n] if n <= 10 else TAB20[:n], dtype=float).reshape(-1, 3)
    else:
        hsv = [
            ((i * 0.618033988749895) % 1.0, 0.55 + 0.45 * (i % 3) / 2, 0.95 - 0.3 * (i % 2))
            for i in range(n)
        ]
        rgb = np.array([colorsys.hsv_to_rgb(*colour) for colour in hsv])
    return np.column_stack([rgb, np.ones(n)])


PALETTE_FORMAT = "napari-kquant palette"


@dataclass(frozen=True, eq=False)
class Palette:
    """A fitted palette: the model that :func:`napari_kquant.quantize` estimates.

    Everything needed to label another image exactly as the fit did: the centres in
    the image's units, the space distances are measured in (colour space, per-channel
    scaling), the channel layout, and how it was made (``params``: k, method, seed,
    source, ...) with the pixels per label of the fit. It means the same in memory,
    in a layer's metadata, in a JSON/CSV/GIMP file and on the command line:
    ``load_palette(save_palette(path, palette))`` gives it back, and applying it
    labels like the fit.

    ``np.asarray(palette)`` gives the centres.

    Attributes
    ----------
    centers : (k, C) ndarray of float64
        Row i is the centre of label i + 1, in the image's value units.
    color_space : {"rgb", "lab"}
        Where nearest centres are measured.
    channel_scale, channel_offset : (C,) ndarray or None
        A z-scored fit's per-channel scale and offset (distances are measured on
        ``value / scale``).
    rgb : bool or None
        Whether the fitted image's last axis held colour (None: guessed per image).
    channel_axis : int or None
        The axis the features were on (several channels clustered together).
    counts : (k,) ndarray of int64 or None
        Pixels per label in the fit.
    params : dict
        How the palette was made.

    Examples
    --------
    >>> from skimage import data
    >>> from napari_kquant import quantize
    >>> palette = quantize(data.astronaut(), 6, color_space="lab", seed=0).palette
    >>> palette.k, palette.color_space
    (6, 'lab')
    >>> labels = palette.apply(data.astronaut()).labels
    >>> bool((labels == quantize(data.astronaut(), 6, color_space="lab", seed=0).labels).all())
    True
    >>> Palette.from_json(palette.to_json()).color_space
    'lab'
    """

    centers: np.ndarray
    color_space: str = "rgb"
    channel_scale: np.ndarray | None = None
    channel_offset: np.ndarray | None = None
    rgb: bool | None = None
    channel_axis: int | None = None
    counts: np.ndarray | None = None
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        centers = np.asarray(self.centers, dtype=np.float64)
        if centers.ndim == 1:
            centers = centers[:, None]
        if centers.ndim != 2 or len(centers) == 0:
            raise InvalidInputError(
                f"a palette's centres are a (k, C) array, got shape {centers.shape}"
            )
        if not np.isfinite(centers).all():
            raise InvalidInputError("a palette's centres must be finite numbers (NaN or inf found)")
        if np.abs(centers).max() > MAX_FLOAT_MAGNITUDE:  # checked once, for every apply path
            raise InvalidInputError(
                f"centers up to {np.abs(centers).max():.3g} make squared distances overflow: "
                f"palette values must stay below {MAX_FLOAT_MAGNITUDE:.0e}"
            )
        object.__setattr__(self, "centers", centers)
        check_choice("color_space", self.color_space, choices("color_space"))
        for name in ("channel_scale", "channel_offset"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value, dtype=np.float64).reshape(-1)
                if len(value) != centers.shape[1] or not np.isfinite(value).all():
                    raise InvalidInputError(f"{name} must hold one finite value per channel")
                object.__setattr__(self, name, value)
        if self.channel_scale is not None and not (self.channel_scale > 0).all():
            raise InvalidInputError("channel_scale must be positive")
        if self.counts is not None:
            object.__setattr__(self, "counts", np.asarray(self.counts, dtype=np.int64))

    def __array__(self, dtype=None, copy=None):
        return self.centers if dtype is None else self.centers.astype(dtype)

    def __len__(self) -> int:
        return len(self.centers)

    @property
    def k(self) -> int:
        """Number of colours."""
        return len(self.centers)

    @property
    def fractions(self) -> np.ndarray | None:
        """Fraction of the fitted pixels per label (None without counts)."""
        if self.counts is None:
            return None
        total = self.counts.sum()
        return self.counts / total if total else np.zeros(self.k)

    def apply(self, image, *, mask=None, rgb=None, channel_axis=None):
        """Label ``image`` with this palette: each pixel takes its nearest centre.

        Distances are measured in the palette's colour space and scaling. ``rgb`` and
        ``channel_axis`` default to the fit's layout. Returns a Quantization (see
        :func:`napari_kquant.apply_palette`); eager, lazy (dask, zarr) or multiscale
        input alike.
        """
        if rgb is None and channel_axis is None:  # the fitted image's layout
            rgb, channel_axis = self.rgb, self.channel_axis
        apply = _APPLIERS["lazy" if takes_lazy_path(image) else "eager"]
        return apply(image, self, mask=mask, rgb=rgb, channel_axis=channel_axis)

    def to_dict(self) -> dict:
        """The palette as plain JSON types (the layer metadata and JSON file form)."""
        fractions = self.fractions
        return {
            "format": PALETTE_FORMAT,
            "k": self.k,
            "channels": channel_names(self.centers.shape[1]),
            "centers": self.centers.tolist(),
            "color_space": self.color_space,
            "channel_scale": _listed(self.channel_scale),
            "channel_offset": _listed(self.channel_offset),
            "rgb": self.rgb,
            "channel_axis": self.channel_axis,
            "counts": _listed(self.counts),
            "fractions": _listed(fractions),
            "params": json.loads(json.dumps(self.params, default=str)),
        }

    @classmethod
    def from_dict(cls, document) -> Palette:
        """The palette of :meth:`to_dict` (missing keys take their defaults)."""
        if not isinstance(document, dict) or "centers" not in document:
            raise InvalidInputError("a palette is an object with a 'centers' list")
        params = document.get("params") or {}
        if not isinstance(params, dict):
            raise InvalidInputError(f"a palette's 'params' is an object, not {params!r}")
        return cls(
            centers=document["centers"],
            color_space=str(document.get("color_space", params.get("color_space", "rgb"))),
            channel_scale=document.get("channel_scale", params.get("channel_scale")),
            channel_offset=document.get("channel_offset", params.get("channel_offset")),
            rgb=document.get("rgb", params.get("rgb")),
            channel_axis=document.get("channel_axis", params.get("channel_axis")),
            counts=document.get("counts"),
            params=params,
        )

    def to_json(self) -> str:
        """Lossless JSON text (floats are written so that they read back exactly)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Palette:
        """The palette of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def space(self) -> dict:
        """What the CSV and GIMP views keep besides the colours."""
        document = self.to_dict()
        for key in ("centers", "counts", "fractions", "channels", "params"):
            document.pop(key)
        return document


# How a palette is applied, by path ("eager", "lazy": kinds.takes_lazy_path decides).
# The strategies register themselves from the modules that implement them, which
# sit above this one; the order they are imported in does not matter.
_APPLIERS: dict = {}


def register_applier(path: str, apply) -> None:
    """The apply strategy of ``path`` ("eager" or "lazy").

    ``apply(image, palette, *, mask, rgb, channel_axis)`` labels an input of that path.
    """
    if path not in ("eager", "lazy"):
        raise ValueError(f"an apply strategy is 'eager' or 'lazy', not {path!r}")
    _APPLIERS[path] = apply


def _listed(values):
    return None if values is None else np.asarray(values).tolist()


def as_palette(source, *, counts=None, params=None) -> Palette:
    """A Palette from a Palette, a Quantization (its ``palette``) or an array of centres."""
    if isinstance(source, Palette):
        return source
    if hasattr(source, "palette") and hasattr(source, "labels"):
        return source.palette
    return Palette(source, counts=counts, params=dict(params or {}))


def channel_names(n_channels: int, feature_names=None) -> list[str]:
    """The names of a palette's channels (one owner: tables, files and exports use them).

    r, g, b for colour, value for gray, else the features' names when known (the
    layers clustered together) or c0, c1, ...
    """
    if feature_names is not None:
        return [str(name) for name in feature_names]
    return (
        ["r", "g", "b"]
        if n_channels == 3
        else ["value"]
        if n_channels == 1
        else [f"c{i}" for i in range(n_channels)]
    )
