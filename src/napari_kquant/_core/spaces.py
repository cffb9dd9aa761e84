"""Where pixels are clustered: colour spaces and per-channel scaling (core: numpy + cv2).

A colour space turns pixel values into the vectors whose distances k-means measures,
and centres back; each is one small class in ``SPACES``, the registry that maps
``color_space`` to it (adding a space is one class and one line there).
:class:`FeatureSpace` combines the colour space with the z-scoring of ``standardize``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Protocol

import cv2
import numpy as np

from .options import choices
from .validate import InvalidInputError, check_choice

_LAB_BLOCK = 1 << 18  # pixels per block of the Lab conversion


class ColourSpace(Protocol):
    """How pixel values become feature vectors, and back."""

    name: str
    identity: bool  # the feature vectors are the values themselves
    clips_centres: bool  # centres taken back may leave the data's range: clip them
    reads_colour: bool  # it reads RGB(A) pixels only (a table's columns are R, G, B)

    def white(self, dtype: np.dtype) -> float:
        """Full intensity for pixels of ``dtype``."""

    def check(self, dtype: np.dtype, rgb: bool, value_range) -> None:
        """Refuse images this space cannot read (ValueError)."""

    def forward(self, table: np.ndarray, white: float) -> np.ndarray:
        """(N, C) values to (N, C') features."""

    def back(self, centers: np.ndarray, white: float) -> np.ndarray:
        """Centres as features to values."""


class RGBSpace:
    """The pixel values themselves (the OpenCV recipe)."""

    name, identity, clips_centres, reads_colour = "rgb", True, False, False

    def white(self, dtype):
        return 1.0

    def check(self, dtype, rgb, value_range):
        return None

    def forward(self, table, white):
        return table

    def back(self, centers, white):
        return centers


class LabSpace:
    """CIELAB (D65): distances follow perceived colour differences. RGB(A) only."""

    name, identity, clips_centres, reads_colour = "lab", False, True, True

    def white(self, dtype):
        return float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0

    def check(self, dtype, rgb, value_range):
        if not rgb:
            raise InvalidInputError(
                "color_space='lab' applies to RGB(A) images only: this image has no "
                "colour axis (use color_space='rgb')"
            )
        if np.issubdtype(dtype, np.signedinteger):
            raise InvalidInputError(
                f"color_space='lab' needs unsigned integer or 0..1 float RGB, not {dtype}"
            )
        if value_range is not None and np.issubdtype(dtype, np.floating):
            low, high = value_range
            if low < 0 or high > 1:
                raise InvalidInputError(
                    f"color_space='lab' reads float RGB as 0..1, but this image spans "
                    f"{low:.4g}..{high:.4g}: scale it to 0..1 (e.g. image / 255) or use 'rgb'"
                )

    def forward(self, table, white):
        return rgb_to_lab(table, white)

    def back(self, centers, white):
        return lab_to_rgb(centers, white)


SPACES: dict[str, ColourSpace] = {space.name: space for space in (RGBSpace(), LabSpace())}
COLOR_SPACES = choices("color_space")  # a test checks SPACES has exactly these


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


def scaling(palette):
    """A palette's z-scoring as FeatureSpace.of takes it: (scale, offset), or False."""
    if palette.channel_scale is None:
        return False
    offset = palette.channel_offset
    if offset is None:
        offset = np.zeros(palette.centers.shape[1])
    return palette.channel_scale, offset


# Values farther from zero than this many times their span are clustered relative to
# an origin (their minimum): the engines' coding and OpenCV's float32 then keep the
# digits that tell them apart, and 64-bit integers beyond 2**53 their exact values.
CENTRE_FROM = 16
EXACT_FLOAT_INTEGERS = 2**53  # integers beyond this lose digits as float64


def _origin(lows, highs, dtype: np.dtype) -> tuple | None:
    """The origin for values spanning ``lows..highs`` per channel, or None (the one rule).

    Only floats and integers of 4 bytes or more: smaller integers are exact in every
    engine's arithmetic. A channel more than ``CENTRE_FROM`` times its span from zero
    gets its low value (an integer inside the dtype for integers), the others 0.
    """
    if not (dtype.kind == "f" or (dtype.kind in "iu" and dtype.itemsize >= 4)):
        return None
    far = [
        max(abs(lo), abs(hi)) > CENTRE_FROM * (hi - lo) for lo, hi in zip(lows, highs, strict=True)
    ]
    if not any(far):
        return None
    if dtype.kind in "iu":  # float64 rounds 2**64 - 1 up to 2**64: stay inside the dtype
        info = np.iinfo(dtype)
        return tuple(
            min(max(math.floor(lo), info.min), info.max) if f else 0
            for lo, f in zip(lows, far, strict=True)
        )
    return tuple(float(lo) if f else 0.0 for lo, f in zip(lows, far, strict=True))


def data_origin(table: np.ndarray, value_range=None, column_range=None) -> tuple | None:
    """The origin to cluster ``table`` relative to (one value per channel), or None.

    ``value_range`` (min, max) and ``column_range`` (per-channel lows and highs):
    the table's, where already measured (a Job measures wide float tables' in one
    compiled pass, :func:`napari_kquant._core.kmeans._column_range`).
    """
    if len(table) == 0:
        return None
    if column_range is not None:
        lows, highs = (list(part) for part in column_range)
    elif value_range is not None and table.shape[1] == 1:
        lows, highs = [value_range[0]], [value_range[1]]
    elif table.shape[1] <= 4:  # one 1-D pass per channel: faster than an axis-0 reduction
        columns = [table[:, c] for c in range(table.shape[1])]
        lows, highs = [col.min() for col in columns], [col.max() for col in columns]
    else:  # (wide float rows come measured, as column_range)
        # integers: numpy's reduction is fast (and exact for 64-bit values)
        lows, highs = table.min(axis=0).tolist(), table.max(axis=0).tolist()
    # Python numbers: exact for 64-bit integers, no overflow in the spans
    number = int if table.dtype.kind in "iu" else float
    return _origin([number(v) for v in lows], [number(v) for v in highs], table.dtype)


def palette_origin(centers: np.ndarray, dtype: np.dtype) -> tuple | None:
    """The origin a palette is applied relative to, for pixels of ``dtype``, or None.

    The rule of :func:`data_origin`, read from the centres: it depends on them alone,
    so every apply path (eager, lazy, the fit's own labelling) measures the same
    differences and gives the same labels.
    """
    centers = np.asarray(centers, dtype=np.float64)
    lows, highs = centers.min(axis=0).tolist(), centers.max(axis=0).tolist()
    return _origin(lows, highs, np.dtype(dtype))


def shift(values: np.ndarray, origin: tuple, sign: int = -1) -> np.ndarray:
    """``values - origin`` (``sign=-1``) or ``values + origin`` per channel, exactly.

    Integer tables less an integer origin stay integers (int64: uint64 beyond 2**63
    included); float tables become float64. Centres (float) against an integer origin
    beyond float64's integers are shifted as exact fractions, then rounded once.
    """
    from fractions import Fraction

    if values.dtype.kind in "iu":
        shifted = np.empty(values.shape, dtype=np.int64)
        for c, o in enumerate(origin):
            column = values[:, c]
            # the difference fits int64 (the span does); the arithmetic wraps modulo
            # 2**64 on the way, which gives it exactly
            moved: np.ndarray
            if column.dtype == np.uint64:
                moved = column - np.uint64(o) if sign < 0 else column + np.uint64(o)
            else:
                wide = column.astype(np.int64)
                moved = wide - np.int64(o) if sign < 0 else wide + np.int64(o)
            shifted[:, c] = moved.astype(np.int64)
        return shifted
    values = np.asarray(values, dtype=np.float64)
    if all(isinstance(o, float) or abs(o) < EXACT_FLOAT_INTEGERS for o in origin):
        return values + sign * np.asarray(origin, dtype=np.float64)
    out = np.empty(values.shape)
    for index in np.ndindex(values.shape):
        out[index] = float(Fraction(float(values[index])) + sign * origin[index[-1]])
    return out


@dataclass(frozen=True)
class FeatureSpace:
    """Where pixels are clustered: RGB or CIELAB, optionally z-scored per channel.

    ``forward`` takes an (N, C) table (or centres) in image units to that space,
    ``back`` takes centres back to image units. ``origin``: values clustered relative
    to it (values far from zero, see :func:`data_origin`): a shift, so distances stay
    those of the image's units.
    """

    color_space: str = "rgb"
    white: float = 1.0  # full intensity, for Lab
    offset: np.ndarray | None = None
    scale: np.ndarray | None = None
    origin: tuple | None = None

    @property
    def colours(self) -> ColourSpace:
        """The colour space's own conversions."""
        return SPACES[self.color_space]

    @property
    def identity(self) -> bool:
        """Whether pixels are clustered in their own values (no transform, no shift)."""
        return self.isometric and self.origin is None

    @property
    def isometric(self) -> bool:
        """Whether distances are those of the image's units (a shift at most)."""
        return self.colours.identity and self.scale is None

    def forward(self, table: np.ndarray) -> np.ndarray:
        """Image units to the clustering space."""
        table = self.colours.forward(table, self.white)
        if self.origin is not None:
            table = shift(table, self.origin)
        if self.scale is not None:
            table = (table - self.offset) / self.scale
        return table

    def back(self, centers: np.ndarray) -> np.ndarray:
        """Centres in the clustering space to image units."""
        if self.scale is not None:
            centers = centers * self.scale + self.offset
        if self.origin is not None:
            centers = shift(np.asarray(centers, dtype=np.float64), self.origin, +1)
        return self.colours.back(centers, self.white)

    @classmethod
    def for_palette(cls, palette, dtype, rgb: bool) -> FeatureSpace:
        """The space ``palette`` measures distances in, for pixels of ``dtype``."""
        space, _ = cls.of(
            np.empty((0, palette.centers.shape[1]), dtype),
            palette.color_space,
            scaling(palette),
            dtype,
            rgb,
            origin=palette_origin(palette.centers, dtype),
        )
        return space

    @classmethod
    def of(
        cls,
        table,
        color_space,
        standardize,
        dtype,
        rgb,
        value_range=None,
        origin="data",
        column_range=None,
    ) -> tuple[FeatureSpace, np.ndarray]:
        """The space for these options and the table moved into it.

        ``value_range``: the table's (min, max), when known (float images), for the
        colour space to check the values it reads; ``column_range``: its per-channel
        lows and highs, when known (wide float tables). ``origin``: ``"data"`` (a fit:
        :func:`data_origin` of the table, for values in their own colour space and
        unscaled), or a palette's (:func:`palette_origin`, None for none).
        """
        colours = SPACES[check_choice("color_space", color_space, COLOR_SPACES)]
        colours.check(np.dtype(dtype), rgb, value_range)
        space = cls(color_space, colours.white(np.dtype(dtype)))
        table = space.forward(table)
        if standardize is False or standardize is None:
            if isinstance(origin, str):
                origin = data_origin(table, value_range, column_range) if colours.identity else None
            if origin is not None:
                space = replace(space, origin=origin)
                table = shift(table, origin)
            return space, table
        if standardize is True:
            # column by column on contiguous copies: the same figures whatever the
            # table's memory layout (eager and lazy paths then agree to the bit)
            columns = [
                np.ascontiguousarray(table[:, c], dtype=np.float64) for c in range(table.shape[1])
            ]
            offset = np.array([column.mean() for column in columns])
            scale = np.array([column.std() for column in columns])
            scale[~(scale > 0)] = 1.0
        else:  # a palette's (scale, offset): distances measured exactly as in its fit
            scale, offset = (np.asarray(v, dtype=np.float64).reshape(-1) for v in standardize)
            if len(scale) != table.shape[1]:
                raise InvalidInputError(
                    f"channel_scale has {len(scale)} values for {table.shape[1]} channels"
                )
        space = replace(space, offset=offset, scale=scale)
        return space, (table - offset) / scale
