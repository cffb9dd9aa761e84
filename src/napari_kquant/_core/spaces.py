"""Where pixels are clustered: colour spaces and per-channel scaling (core: numpy + cv2).

A colour space turns pixel values into the vectors whose distances k-means measures,
and centres back; each is one small class in ``SPACES``, the registry that maps
``color_space`` to it (adding a space is one class and one line there).
:class:`FeatureSpace` combines the colour space with the z-scoring of ``standardize``.
"""

from __future__ import annotations

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

    name, identity, clips_centres = "rgb", True, False

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

    name, identity, clips_centres = "lab", False, True

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


@dataclass(frozen=True)
class FeatureSpace:
    """Where pixels are clustered: RGB or CIELAB, optionally z-scored per channel.

    ``forward`` takes an (N, C) table (or centres) in image units to that space,
    ``back`` takes centres back to image units.
    """

    color_space: str = "rgb"
    white: float = 1.0  # full intensity, for Lab
    offset: np.ndarray | None = None
    scale: np.ndarray | None = None

    @property
    def colours(self) -> ColourSpace:
        """The colour space's own conversions."""
        return SPACES[self.color_space]

    @property
    def identity(self) -> bool:
        """Whether pixels are clustered in their own values."""
        return self.colours.identity and self.scale is None

    def forward(self, table: np.ndarray) -> np.ndarray:
        """Image units to the clustering space."""
        table = self.colours.forward(table, self.white)
        if self.scale is not None:
            table = (table - self.offset) / self.scale
        return table

    def back(self, centers: np.ndarray) -> np.ndarray:
        """Centres in the clustering space to image units."""
        if self.scale is not None:
            centers = centers * self.scale + self.offset
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
        )
        return space

    @classmethod
    def of(
        cls, table, color_space, standardize, dtype, rgb, value_range=None
    ) -> tuple[FeatureSpace, np.ndarray]:
        """The space for these options and the table moved into it.

        ``value_range``: the table's (min, max), when known (float images), for the
        colour space to check the values it reads.
        """
        colours = SPACES[check_choice("color_space", color_space, COLOR_SPACES)]
        colours.check(np.dtype(dtype), rgb, value_range)
        space = cls(color_space, colours.white(np.dtype(dtype)))
        table = space.forward(table)
        if standardize is False or standardize is None:
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
