"""The colour-grid summary of large uint8 RGB images (core: numpy + numba)."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..cancel import checkpoint, on_threads
from .codes import CodedSummary
from .contract import (
    BLOCK,
    BYTES_PER_SUMMARY_POINT,
    FIXED_BYTES,
    GRID_BYTES_PER_CELL,
    HIST_BYTES,
    LUT_ENTRIES,
    Fit,
    label_dtype,
    worker_threads,
)
from .lloyd import Regridded

GRID_SHIFT = 2  # large uint8 RGB images: cells of 4 x 4 x 4 colours (64**3 cells)


# The grid summary is used where the colours fill at least this many cells, and this
# many per cluster (noise, sensor images); otherwise the exact 24-bit summary.
GRID_MIN_CELLS = 1 << 15


GRID_CELLS_PER_CLUSTER = 256


@dataclass(frozen=True)
class GridSummary(Regridded):
    """A large uint8 RGB image summarised on a bounded grid of colour cells.

    One compiled pass counts the pixels of each cell and sums their values: the
    points are the cells' exact centroids, weighted by their pixel counts, at most
    64**3 of them however many distinct colours the image has (a noisy 4K image has
    millions). k-means on the centroids minimises the pixels' squared error over
    assignments of whole cells; the finish then runs Lloyd updates on the pixels
    themselves (:meth:`polish`), and the labels are exact per pixel: a cell whose
    every colour has the same nearest centre labels its pixels at once, the pixels
    of the others are measured against the few centres that can be nearest (see
    :func:`napari_kquant._core.kernels.grid_candidates`).
    """

    table: np.ndarray
    shift: int
    cells: np.ndarray  # the occupied cells' numbers
    points: np.ndarray
    weights: np.ndarray
    value_range: tuple[np.ndarray, np.ndarray]
    slot: np.ndarray  # slot[cell number] = the cell's row (its pixels find their cell by it)
    scatter: np.ndarray | None = None  # each cell's squared distances to its own centroid
    colours: tuple | None = None  # each cell's distinct colours and their pixels (CSR)
    exact: bool = False

    @classmethod
    def of(cls, table: np.ndarray, shift: int = GRID_SHIFT, for_figures=False) -> GridSummary:
        """Summarise an (N, 3) uint8 table (``for_figures``: ready for :meth:`figures`)."""
        from . import kernels

        table = np.ascontiguousarray(table)
        counts, sums, squares = kernels.grid_histogram(table, shift, for_figures)
        checkpoint()
        cells = np.flatnonzero(counts)
        weights = counts[cells].astype(np.float64)
        points = sums[cells] / weights[:, None]
        slot = np.zeros(len(counts), np.int32)
        slot[cells] = np.arange(len(cells))
        value_range = (np.zeros(3), np.full(3, 255.0))
        scatter = colours = None
        if for_figures:  # sum |x|^2 - n |mean|^2, from exact integer sums
            scatter = np.maximum(squares[cells] - weights * (points * points).sum(axis=1), 0.0)
            colours = kernels.grid_colours(table, shift, slot, len(cells))
            checkpoint()
        return cls(table, shift, cells, points, weights, value_range, slot, scatter, colours)

    def working_bytes(self, k: int) -> int:
        """Peak bytes of its own allocations for ``k``: the grid's tables and the cells' points.

        (The labelling passes' memory is freed before the quantized image is made.)
        """
        points = len(self.points)
        if self.too_coarse(k):  # goes exact: the 2**24 histogram and table
            return FIXED_BYTES + HIST_BYTES + LUT_ENTRIES[3] + 64 * points * BYTES_PER_SUMMARY_POINT
        cells = 1 << (3 * (8 - self.shift))
        colours = 0
        if self.colours is not None:  # a sweep's: the cells' squares and colour lists
            colours = 8 * cells + sum(part.nbytes for part in self.colours)
        return FIXED_BYTES + GRID_BYTES_PER_CELL * cells + points * 16 + colours

    def too_coarse(self, k: int) -> bool:
        """Whether the colours fill too few cells for ``k`` (then :meth:`exact_summary` is used).

        Colours that fill few cells (a photo's, even at 4K) are summarised exactly:
        the 24-bit codes are their distinct colours.
        """
        return len(self.points) < max(GRID_MIN_CELLS, GRID_CELLS_PER_CLUSTER * k)

    def exact_summary(self, keep_codes: bool = False) -> CodedSummary:
        """The exact summary of the same pixels (their 24-bit codes)."""
        return CodedSummary.of(self.table, keep_codes)

    def assign_pixels(self, centers: np.ndarray):
        """Every pixel's nearest centre (labels 1..k), the pixels per label, the exact SSE."""
        labels, counts, _, sse = self._label(centers)
        return labels, counts, sse

    def label_pixels(self, centers: np.ndarray) -> np.ndarray:
        """Every pixel's nearest centre (labels 1..k), with no figures."""
        return self._label(centers, figures=False)[0]

    def figures(self, centers: np.ndarray):
        """The pixels per label and the exact SSE of :meth:`assign_pixels`, with no labels.

        A cell whose colours all have the same nearest centre contributes its pixel
        count and ``scatter + count * |centroid - centre|^2`` (its pixels' squared
        distances, summed exactly); the colours of the other cells are measured one
        by one, weighted by their pixel counts. No pass over the image.
        """
        from . import kernels

        k = len(centers)
        centers = np.ascontiguousarray(centers, dtype=np.float64)
        sure, start, index = kernels.grid_candidates(self.cells, self.shift, centers)
        counts = np.zeros(k + 1, np.int64)
        sse = kernels.grid_unsure_figures(
            self.cells, self.shift, self.colours, sure, start, index, centers, counts
        )
        assert self.scatter is not None, "a grid summarised for its figures (for_figures)"
        whole = np.flatnonzero(sure)
        label = sure[whole] - 1
        counts[1:] += np.bincount(label, weights=self.weights[whole], minlength=k).astype(np.int64)
        offset = ((self.points[whole] - centers[label]) ** 2).sum(axis=1)
        sse += float((self.scatter[whole] + self.weights[whole] * offset).sum())
        return counts[1:], sse

    def polish(self, centers: np.ndarray, iterations: int, tol: float):
        """Lloyd updates on the pixels themselves (exact labels, exact means): new centres.

        Each update is one compiled pass. Stops after ``iterations`` or when no centre
        moves by more than ``tol``; a centre that loses every pixel stays where it is.
        """
        for _ in range(iterations):
            _, counts, sums, _ = self._label(centers)
            filled = counts > 0
            new = centers.copy()
            new[filled] = sums[filled] / counts[filled, None]
            shift = float(np.sqrt(((new - centers) ** 2).sum(axis=1)).max())
            centers = new
            if shift <= tol:
                break
        return centers

    def _label(self, centers: np.ndarray, figures: bool = True):
        """Label the pixels in one compiled pass, in blocks on one thread per core.

        Returns the labels and, with ``figures``, the counts and sums by label and
        the squared distances summed (:func:`kernels.grid_label_pixels`).
        """
        from . import kernels

        centers = np.ascontiguousarray(centers, dtype=np.float64)
        sure, start, index = kernels.grid_candidates(self.cells, self.shift, centers)
        by_cell = np.zeros(len(self.slot), label_dtype(len(centers)))  # sure labels by cell
        by_cell[self.cells] = sure
        tables = (self.shift, self.slot, by_cell, start, index, centers)
        return label_on_grid(self.table, tables, figures)


def label_on_grid(table, tables, figures: bool = True):
    """One compiled pass over ``table``'s pixels (:func:`kernels.grid_label_pixels`).

    ``tables``: the grid's (shift, slot, sure labels by cell, candidates' start and
    index, centres). In blocks, on one thread per core. Returns the labels and, with
    ``figures``, the counts and sums by label and the squared distances summed.
    """
    from . import kernels

    k = len(tables[-1])
    labels = np.empty(len(table), dtype=label_dtype(k))
    threads = worker_threads(2)
    counts = np.zeros((threads, k + 1), np.int64)
    sums = np.zeros((threads, k + 1, 3))
    blocks = [slice(begin, begin + BLOCK * 8) for begin in range(0, len(table), BLOCK * 8)]

    def run(part):  # the blocks of one thread, with its own counts and sums
        sse = 0.0
        for block in blocks[part::threads]:
            sse += kernels.grid_label_pixels(  # type: ignore[call-arg]  # (numba's stub)
                table[block], *tables, labels[block], counts[part], sums[part], figures
            )
        return sse

    checkpoint()
    sse = sum(on_threads(run, range(threads), threads))
    checkpoint()
    return labels, counts.sum(axis=0)[1:], sums.sum(axis=0)[1:], sse


class PaletteGrid:
    """Given centres' candidate lists for every cell of the uint8 RGB grid (applying a palette).

    Made once per palette (:meth:`of` keeps the last few): every one of the 64**3
    cells gets its sure label or its candidate centres (:func:`kernels.grid_candidates`),
    so labelling any uint8 RGB pixels is then one compiled pass over them, with no
    summary of the image: what applying a palette needs, eagerly or block by block.
    The labels are the pixels' nearest centres, exactly as :class:`GridSummary`'s.
    """

    def __init__(self, centers: np.ndarray, shift: int = GRID_SHIFT):
        from . import kernels

        centers = np.ascontiguousarray(centers, dtype=np.float64)
        cells = np.arange(1 << (3 * (8 - shift)), dtype=np.int64)
        sure, start, index = kernels.grid_candidates(cells, shift, centers)
        slot = np.arange(len(cells), dtype=np.int32)
        self.tables = (shift, slot, sure.astype(label_dtype(len(centers))), start, index, centers)

    @classmethod
    def of(cls, centers: np.ndarray) -> PaletteGrid:
        """The grid of ``centers`` (made once for the same centres: the blocks of an image)."""
        centers = np.ascontiguousarray(centers, dtype=np.float64)
        key = (centers.shape, centers.tobytes())
        with _grids_lock:
            grid = _grids.get(key)
        if grid is None:
            grid = cls(centers)
            with _grids_lock:
                _grids[key] = grid
                while len(_grids) > 4:
                    _grids.pop(next(iter(_grids)))
        return grid

    def label(self, table: np.ndarray, figures: bool = True):
        """Labels of an (N, 3) uint8 table; with ``figures`` its counts and exact SSE too."""
        labels, counts, _, sse = label_on_grid(np.ascontiguousarray(table), self.tables, figures)
        return labels, counts, sse


_grids: dict = {}
_grids_lock = threading.Lock()


class GridLabeller:
    """Labels uint8 RGB pixels for given centres through their :class:`PaletteGrid`.

    What applying a palette needs: no summary of the image, one compiled pass.
    Without ``figures`` only the labels are made (counts 0, compactness NaN).
    """

    def __init__(self, table: np.ndarray):
        self.table = table

    def assign(self, centers, epsilon=0.0, figures=True) -> Fit:
        labels, counts, sse = PaletteGrid.of(centers).label(self.table, figures)
        return Fit(centers, labels, sse if figures else np.nan, counts, epsilon)
