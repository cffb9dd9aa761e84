"""The row summary: tables clustered on their rows themselves (core: numpy)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .contract import FIXED_BYTES, ROW_BYTES_PER_POINT, SCORE_BYTES, Search

ROW_KEY_BYTES = 16  # tables with rows this narrow may be summarised by their distinct rows
SAMPLE_ROWS = 2048  # rows looked at to decide whether they repeat
# A stage runs on a subset only of a table more than this many times its size: the
# finish runs Lloyd on every row after it anyway (20,000 x 16: a subset of 8,192 rows
# and the finish took 4.4 ms, every row 3.9 ms; 24,000 x 64: 8.9 against 7.8 ms;
# from about 32,768 rows the subset pays)
SUBSET_OF = 3


@dataclass(frozen=True)
class RowSummary:
    """A table clustered on its rows themselves: feature tables, weighted samples.

    Exact for any number of channels: the points are the distinct rows (narrow
    integer rows, and float rows that repeat, found by a sort) or every row, weighted
    by their count (or the caller's sample weights). Coarse and middle stages run on
    random subsets of the rows (:meth:`reduce`); the finish runs Lloyd on every row
    to convergence, so the centres are a Lloyd fixed point of the data (K=1 gives
    the mean).
    """

    table: np.ndarray
    points: np.ndarray  # (P, C): float rows themselves (not copied), else float64
    weights: np.ndarray
    inverse: np.ndarray | None  # each row's point (None: point i is row i)
    value_range: tuple[np.ndarray, np.ndarray]
    exact: bool = True
    search = Search(
        # the finish runs Lloyd on every row to convergence (or max_iter) ...
        finish_iterations=None,
        # ... so the middle stage's subset can be small
        mid_points=1 << 13,
        # The coarse subset only ranks the starts (the best are refined on the middle
        # subset): 512 rows do that as well as 2,048, at a quarter of the cost
        coarse_points=1 << 9,
        # A start on wide rows costs as much as a short run (its k-means++ measures
        # every channel): one per attempt keeps KMeans' quality (digits: 0.998 of its
        # inertia)
        starts_per_attempt=1,
        # Each refinement on the middle subset (8,192 rows, or every row of a table of up
        # to 24,576) costs a full run: the best two do as well as the best three (digits:
        # the same median inertia over 12 seeds) ...
        mid_candidates=2,
        # (and two distinct ones: on well-separated data the attempts often find the
        # same clustering, whose second refinement would only repeat the first)
        distinct_candidates=True,
        # ... and at large K as well as extra k-means++ starts there, which cost the
        # most on wide rows (noise 8,000 x 64, K=40: 0.136 s instead of 0.40 s, inertia
        # 1.0007 of scikit-learn's KMeans; digits K=40: 0.997)
        fine_starts=0,
    )
    # the finish passes over every row: in fixed blocks on worker threads
    blocked = True

    @classmethod
    def of(
        cls,
        table: np.ndarray,
        weights: np.ndarray | None = None,
        column_range: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> RowSummary:
        """Summarise ``table`` (N, C); ``weights`` (N,) are the rows' sample weights.

        ``column_range``: the table's per-channel lows and highs, if measured already.
        """
        inverse = None
        row_bytes = table.dtype.itemsize * table.shape[1]
        keys = None
        if weights is None and row_bytes <= ROW_KEY_BYTES:
            rows = table + 0.0 if table.dtype.kind == "f" else table  # -0.0 is 0.0
            rows = np.ascontiguousarray(rows)
            keys = rows.view(np.dtype((np.void, row_bytes))).reshape(-1)
        if keys is not None and (table.dtype.kind != "f" or _rows_repeat(rows)):
            _, first, inverse, counts = np.unique(
                keys, return_index=True, return_inverse=True, return_counts=True
            )
            points = rows[first].astype(np.float64)
            weights = counts.astype(np.float64)
            inverse = inverse.reshape(-1)
        else:
            # float rows are used as they are (the kernels compute in float64)
            float_rows = table.dtype in (np.float32, np.float64)
            points = np.ascontiguousarray(table, dtype=None if float_rows else np.float64)
            if weights is None:
                weights = np.ones(len(table))
            weights = np.ascontiguousarray(weights, dtype=np.float64)
        from . import kernels

        if column_range is None:
            column_range = kernels.column_ranges(points)
        return cls(table, points, weights, inverse, column_range)

    def reduce(self, points, weights, target, low=None, high=None):
        """A uniform random subset of ``target`` points, weighted to the same total.

        Every point where there are at most SUBSET_OF times ``target``.

        Drawn from a fixed stream: the same data gives the same subsets. The rows are
        kept in table order (a mask, not a sort, puts them there) and gathered with
        ``np.take`` (twice as fast as fancy indexing on narrow rows).
        """
        if len(points) <= SUBSET_OF * target:
            return points, weights
        chosen = np.zeros(len(points), dtype=bool)
        chosen[np.random.default_rng(0).choice(len(points), target, replace=False)] = True
        pick = np.flatnonzero(chosen)
        kept = weights[pick]
        return np.take(points, pick, axis=0), kept * (weights.sum() / kept.sum())

    def point_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel min and max of the points: the rows' own range."""
        return self.value_range

    def too_coarse(self, k: int) -> bool:
        """Never: the rows are exact."""
        return False

    def exact_summary(self, keep_codes: bool = False) -> RowSummary:
        """Itself: the rows are exact."""
        return self

    def label_pixels(self, code_labels: np.ndarray, centers=None) -> np.ndarray:
        """Each row's label from its point's (exact: ``centers`` are not needed)."""
        return code_labels if self.inverse is None else code_labels[self.inverse]

    def working_bytes(self, k: int) -> int:
        """Peak bytes of its own allocations (the points and Lloyd's per-point arrays)."""
        n, points = len(self.table), len(self.points)
        copied = self.points is not self.table
        per_point = points * (
            ROW_BYTES_PER_POINT + (self.points.itemsize * self.points.shape[1] if copied else 0)
        )
        if self.inverse is None:  # Lloyd labels the rows: no block of distances on top
            return FIXED_BYTES + per_point
        # the sort's temporaries are freed before Lloyd runs; each row's point is kept
        sort = n * (8 * 2 + 1 + self.table.itemsize * self.table.shape[1])
        return FIXED_BYTES + max(sort, per_point) + 8 * n + SCORE_BYTES


def _rows_repeat(rows: np.ndarray) -> bool:
    """Whether float rows repeat enough for summarising them by a sort to pay.

    Integer rows always are (a few levels a channel). Floats are decided on an evenly
    spaced sample of 2,048 rows: under 3/4 of them distinct (colours stored as
    floats). Rows of measured floats rarely repeat, and sorting them cost as much as
    the whole fit of a small table. The sample's rows are counted by one 64-bit hash
    of their bits each (sorting the rows themselves took ten times as long; two
    distinct rows sharing a hash only make this say "repeat" where it is not worth it).
    """
    sample = rows[:: max(1, len(rows) // SAMPLE_ROWS)][:SAMPLE_ROWS]
    bits = sample.view(f"u{sample.dtype.itemsize}").astype(np.uint64)
    hashed = bits[:, 0].copy()
    for column in bits.T[1:]:
        hashed *= np.uint64(0x9E3779B97F4A7C15)
        hashed ^= column
    hashed.sort()
    distinct = 1 + np.count_nonzero(hashed[1:] != hashed[:-1])
    return distinct < 0.75 * len(sample)
