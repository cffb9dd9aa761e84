"""Coded summaries: pixels coded on a regular grid of values (core: numpy + cv2)."""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ..cancel import checkpoint
from ..validate import FLOAT32_SAFE
from .contract import (
    BLOCK,
    BYTES_PER_SUMMARY_POINT,
    CELLS_PER_CLUSTER,
    CV_DEPTHS,
    FIXED_BYTES,
    HIST_BYTES,
    LUT_ENTRIES,
    MAX_HIST_PIXELS,
    SMALL_IMAGE,
    SORT_BYTES_PER_PIXEL,
)
from .lloyd import Regridded, nearest
from .rows import RowSummary


@dataclass(frozen=True)
class CodedSummary(Regridded):
    """Pixels coded on a regular grid of colours, the occupied codes and their counts.

    Three channels are coded to 256 levels each over the image's value range (for
    uint8 the codes are the values themselves) and a code is the 24-bit number
    ``c0 + 256 c1 + 65536 c2``; one channel is coded to 65536 levels (for integer
    images spanning fewer values, the values minus the minimum). ``points`` are the
    occupied codes' colours in image units and ``weights`` their pixel counts.
    Where the grid step is 1 on integers (``exact``) each code is one colour, so
    k-means on the summary is k-means on the pixels; otherwise a code is a small
    cell of colours.
    """

    table: np.ndarray
    coded: np.ndarray  # (N, 3) uint8 channel codes, or (N,) combined codes, per pixel
    step: float | np.ndarray  # grid step (per channel for 2 or 4+ channels)
    codes: np.ndarray
    points: np.ndarray
    weights: np.ndarray
    exact: bool
    value_range: tuple[np.ndarray, np.ndarray]  # per-channel min and max of the pixels
    searched: bool = False  # ``codes`` are sorted: a pixel's is found by binary search
    luts: dict = field(default_factory=dict)  # lookup-table buffers, reused across K

    @classmethod
    def of(cls, table: np.ndarray, keep_codes: bool = False) -> CodedSummary:
        """Code ``table`` ((N, 1) or (N, 3)) and count the codes.

        With ``keep_codes`` the per-pixel codes are combined once and kept, so
        labelling again (another K of a sweep) is a single gather.
        """
        n_channels = table.shape[1]
        if table.dtype == np.uint8 and n_channels == 3:
            low, step, coded = 0.0, 1.0, table
            value_range = (np.zeros(3), np.full(3, 255.0))  # used on inexact grids only
        else:
            # One 1-D pass per channel: far faster than numpy's reduction over axis 0.
            columns = [table[:, c] for c in range(n_channels)]
            value_range = (
                np.array([float(col.min()) for col in columns]),
                np.array([float(col.max()) for col in columns]),
            )
            low, high = float(value_range[0].min()), float(value_range[1].max())
            levels = 256 if n_channels == 3 else 1 << 16
            integer = np.issubdtype(table.dtype, np.integer)
            span = high - low
            if integer and span < levels:
                step = 1.0
            else:
                # divided first so that spans near the float maximum do not overflow
                step = high / (levels - 1) - low / (levels - 1)
                if not step > 0:  # a constant image, or a span too small to divide
                    step = 1.0
            if n_channels == 3:
                coded = _code_rgb(table, low, high, step)
            elif integer and step == 1.0 and table.dtype.kind == "u" and table.itemsize <= 2:
                coded, low = table[:, 0], 0.0  # uint8/uint16 values are their own codes
            elif integer and step == 1.0:
                coded = _offset_codes(table[:, 0], int(low))
            else:
                coded = np.empty(len(table), dtype=np.uint16)
                for start in range(0, len(table), BLOCK):  # float temporaries per block
                    block = table[start : start + BLOCK, 0].astype(np.float64)
                    # in float64 and from the minimum: float32 would place a value
                    # far from zero several levels off
                    coded[start : start + BLOCK] = np.rint((block - low) / step)
        searched = False
        if n_channels == 3 and len(coded) <= SMALL_IMAGE:
            # A sort is cheap here and needs no 2**24 tables; pixels find their code
            # by a binary search among the sorted codes when they are labelled.
            codes, counts = np.unique(_rgb_codes(coded), return_counts=True)
            points = np.column_stack([codes & 255, (codes >> 8) & 255, codes >> 16])
            searched = True
        elif n_channels == 3:
            codes, counts = _count_rgb_codes(coded)
            points = np.column_stack([codes & 255, (codes >> 8) & 255, codes >> 16])
        else:
            from . import kernels

            counts = kernels.count_codes(coded, 1 << 16)  # no int64 copy of the codes
            codes = np.flatnonzero(counts)
            counts = counts[codes]
            points = codes[:, None]
        points = low + step * points.astype(np.float64)
        exact = step == 1.0 and np.issubdtype(table.dtype, np.integer)
        if keep_codes and n_channels == 3:
            coded = _rgb_codes(coded)  # combined once, not once per K
        weights = counts.astype(np.float64)
        return cls(
            table, coded, step, codes, points, weights, exact, value_range, searched=searched
        )

    def too_coarse(self, k: int) -> bool:
        """Whether too few cells are occupied for ``k`` (floats closer than a cell merge).

        With too few occupied cells, K clusters could not all be filled: then
        :meth:`exact_summary` is used.
        """
        return not self.exact and len(self.points) < CELLS_PER_CLUSTER * k

    def exact_summary(self, keep_codes: bool = False) -> RowSummary:
        """The exact summary of the same pixels: their distinct rows."""
        return RowSummary.of(self.table)

    def working_bytes(self, k: int) -> int:
        """Peak bytes of its own allocations: the coding, the counts, the per-point arrays."""
        n, per_point = len(self.table), len(self.points) * BYTES_PER_SUMMARY_POINT
        if self.searched:  # small RGB: a sort of the codes, then per-point arrays
            kept = self.coded.nbytes if self.coded.ndim == 1 else 0
            return FIXED_BYTES + kept + max(SORT_BYTES_PER_PIXEL * n, per_point)
        if self.table.shape[1] == 3:  # large RGB: the 2**24 histogram and table
            kept = self.coded.nbytes if self.coded.base is not self.table else 0
            return FIXED_BYTES + HIST_BYTES + LUT_ENTRIES[3] + kept + per_point
        copied = not np.shares_memory(self.coded, self.table)
        inexact = 0 if self.exact else BLOCK * 8 * 4  # float blocks: coding, figures
        counts = (1 << 16) * 8  # the count of each code
        return FIXED_BYTES + self.coded.nbytes * copied + counts + inexact + per_point

    def label_pixels(self, code_labels: np.ndarray, centers: np.ndarray | None = None):
        """Label of every pixel through a lookup table from code to label.

        With ``centers`` (inexact grids), codes whose cell straddles the boundary
        between two centres are marked, and their pixels get their nearest centre
        computed exactly.
        """
        if centers is not None:
            code_labels = code_labels.copy()
            code_labels[self._straddling(centers)] = 0
        if self.searched:  # sorted codes: the labels are the lookup table
            lut, codes = code_labels, self.codes
        else:
            # Pixels only ever carry occupied codes, so the table needs no zeroing.
            n_channels = self.table.shape[1]
            size = 1 << 24 if n_channels == 3 else 1 << 16
            if code_labels.dtype not in self.luts:
                self.luts[code_labels.dtype] = np.empty(size, code_labels.dtype)
            lut = self.luts[code_labels.dtype]
            lut[self.codes] = code_labels
        out = np.empty(len(self.table), dtype=code_labels.dtype)
        from . import kernels

        direct = centers is None and self.coded.ndim == 1 and not self.searched
        hashed = self.searched and self.coded.ndim == 2 and self.coded.dtype == np.uint8
        if hashed:  # small uint8 RGB: a hash table from code to row, one compiled pass
            if "index" not in self.luts:
                self.luts["index"] = kernels.code_index(self.codes.astype(np.uint32))
            slots, positions = self.luts["index"]
            if centers is not None:
                hashed = False  # unsure pixels need the exact measure below
        for start in range(0, len(self.table), BLOCK):
            checkpoint()
            block = slice(start, start + BLOCK)
            if direct:  # kept codes: one compiled gather
                kernels.gather(lut, self.coded[block], out[block])
                continue
            if hashed:
                coded = np.ascontiguousarray(self.coded[block])
                kernels.label_rgb(coded, slots, positions, lut, out[block])
                continue
            pixel_codes = self._pixel_codes(self.coded[block])
            if self.searched:
                pixel_codes = np.searchsorted(codes, pixel_codes)
            labels = lut[pixel_codes]
            if centers is not None:
                unsure = np.flatnonzero(labels == 0)
                if len(unsure):
                    x = self.table[block][unsure].astype(np.float64)
                    labels[unsure] = nearest(x, centers, distances=False)[0] + 1
            out[block] = labels
        return out

    def _straddling(self, centers):
        """Occupied codes whose cell may hold colours nearer to different centres."""
        if len(centers) == 1:
            return np.zeros(len(self.codes), dtype=bool)
        # Every colour of a cell lies within half a cell diagonal of the cell's point,
        # so a cell is on one side when its two nearest centres differ by more than
        # a diagonal (with a margin for rounding).
        diagonal = float(np.sqrt(np.sum(np.broadcast_to(self.step, centers.shape[1:]) ** 2)))
        _, best, second = nearest(self.points, centers, second=True)
        return np.sqrt(second) - np.sqrt(best) <= diagonal * (1 + 1e-2)

    def _pixel_codes(self, coded_block: np.ndarray) -> np.ndarray:
        if coded_block.ndim == 2:  # (n, 3) uint8 channel codes, not yet combined
            return _rgb_codes(coded_block)
        return coded_block


def _code_rgb(table, low, high, step):
    """round((x - low) / step) as uint8, in blocks.

    OpenCV's ``convertScaleAbs`` does it in one vectorised pass but computes in
    float32: it is used where that stays exact to well under a cell, numpy elsewhere
    (huge magnitudes, or dtypes OpenCV cannot read such as int64 or float16).
    """
    magnitude = max(abs(low), abs(high))
    direct = table.dtype in CV_DEPTHS and magnitude / step <= 2**16 and magnitude < FLOAT32_SAFE
    coded = np.empty(table.shape, dtype=np.uint8)
    for start in range(0, len(table), BLOCK):
        block = table[start : start + BLOCK]
        if direct:
            scaled = cv2.convertScaleAbs(_as_image(block), alpha=1 / step, beta=-low / step)
            coded[start : start + BLOCK] = scaled.reshape(-1, 3)
        else:
            scaled = np.rint((block.astype(np.float64) - low) / step)
            coded[start : start + BLOCK] = np.clip(scaled, 0, 255)
    return coded


def _offset_codes(column: np.ndarray, low: int) -> np.ndarray:
    """``column - low`` as uint16 codes (signed or wide integers spanning < 65536 values)."""
    return (column.astype(np.int64) - low).astype(np.uint16)


def _count_rgb_codes(coded: np.ndarray):
    """Occupied 24-bit codes of an (N, 3) uint8 table and their pixel counts.

    One ``calcHist`` pass at any size: its float32 counts are exact below 2**24, so
    only a colour held by 2**24 pixels or more (a 16-Mpx single-colour area) is
    counted again, exactly, in a second pass over its pixels.
    """
    hist = cv2.calcHist([_as_image(coded)], [2, 1, 0], None, [256] * 3, [0, 256] * 3)
    hist = hist.ravel()
    codes = _occupied(hist)
    counts = hist[codes].astype(np.int64)
    large = np.flatnonzero(counts >= MAX_HIST_PIXELS)
    if len(large):
        exact = np.zeros(len(large), dtype=np.int64)
        for start in range(0, len(coded), BLOCK):
            checkpoint()
            block = _rgb_codes(coded[start : start + BLOCK])
            for i, code in enumerate(codes[large]):
                exact[i] += np.count_nonzero(block == code)
        counts[large] = exact
    return codes, counts


def _occupied(counts: np.ndarray) -> np.ndarray:
    """Indices of the non-zero counts, in slices (no full-size boolean temporary)."""
    step = len(counts) // 16 or len(counts)
    return np.concatenate(
        [np.flatnonzero(counts[i : i + step] > 0) + i for i in range(0, len(counts), step)]
    )


def _rgb_codes(block: np.ndarray) -> np.ndarray:
    """24-bit code ``r + 256 g + 65536 b`` of each uint8 RGB row."""
    # R, G, B, 0 bytes read as one little-endian uint32.
    rgba = cv2.cvtColor(_as_image(np.ascontiguousarray(block)), cv2.COLOR_RGB2RGBA)
    keys = rgba.view("<u4").ravel()
    keys &= 0xFFFFFF
    return keys


def _as_image(table: np.ndarray) -> np.ndarray:
    """View an (N, C) pixel table as an (N, 1, C) image for OpenCV."""
    return table.reshape(len(table), 1, table.shape[1])
