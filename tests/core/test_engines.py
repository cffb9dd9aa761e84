"""The fast engine's correctness (not its speed): quality, exact labels, every code path."""

import itertools

import numpy as np
import pytest
from skimage import data

from conftest import BruteForce
from napari_kquant import quantize
from napari_kquant._core.fast import codes as _codes
from napari_kquant._core.fast import contract as _contract


def brute_force_nearest(image, centers, rgb=True):
    """Nearest centre (1-based) of every pixel, in float64, and the distance margin."""
    return BruteForce.squared_distances(image.reshape(-1, 3 if rgb else 1), centers)


@pytest.mark.parametrize(
    "make",
    [
        lambda im: im.astype(np.uint16) * 257,
        lambda im: (im / 255.0).astype(np.float32),
        lambda im: im / 255.0 * 1e3 - 7.5,  # float64, negative values
        lambda im: im.astype(np.int32) - 100,
    ],
    ids=["uint16", "float32", "float64", "int32"],
)
def test_inexact_grids_still_give_exact_labels_and_compactness(astronaut, make):
    image = make(astronaut)
    result = quantize(image, 12, seed=4)
    sse = BruteForce.check_nearest(image.reshape(-1, 3), result.labels, result.centers)
    assert result.compactness == pytest.approx(sse, rel=1e-6)
    np.testing.assert_array_equal(
        np.bincount(result.labels.ravel(), minlength=13)[1:], result.counts
    )


@pytest.mark.parametrize(
    "image",
    [
        data.camera(),  # uint8 gray: exact codes
        data.camera().astype(np.uint16) * 300,  # uint16 gray spanning > 65536 values: coded
        data.camera() / 255.0,  # float gray: coded on 65536 levels
    ],
    ids=["uint8", "uint16-wide", "float"],
)
def test_gray_paths_give_exact_labels(image):
    result = quantize(image, 7, seed=0)
    sse = BruteForce.check_nearest(image.reshape(-1, 1), result.labels, result.centers)
    assert result.compactness == pytest.approx(sse, rel=1e-6)


def test_uint16_gives_the_uint8_answer_scaled(astronaut):
    """uint16 = uint8 * 257 is the same image: same partition, centres scaled."""
    small = quantize(astronaut, 8, seed=1)
    wide = quantize(astronaut.astype(np.uint16) * 257, 8, seed=1)
    agree = np.mean(small.labels == wide.labels)
    assert agree > 0.99
    assert wide.compactness / 257**2 == pytest.approx(small.compactness, rel=0.01)


def test_large_image_histogram_path(monkeypatch):
    """retina (2 Mpx) goes through calcHist; recounting its most common colours agrees.

    Above 2**24 pixels of one colour calcHist's float32 counts are recounted exactly;
    lowering that limit recounts retina's background colours the same way.
    """
    image = data.retina()
    assert image.shape[0] * image.shape[1] > _contract.SMALL_IMAGE
    by_hist = quantize(image, 6, seed=2)
    table = image.reshape(-1, 3)
    codes, counts = _codes._count_rgb_codes(table)
    monkeypatch.setattr(_codes, "MAX_HIST_PIXELS", 50_000)
    again, recounted = _codes._count_rgb_codes(table)
    assert (counts >= 50_000).sum() >= 1
    np.testing.assert_array_equal(again, codes)
    np.testing.assert_array_equal(recounted, counts)
    by_bincount = quantize(image, 6, seed=2)
    np.testing.assert_array_equal(by_hist.labels, by_bincount.labels)
    np.testing.assert_array_equal(by_hist.centers, by_bincount.centers)
    # and the sort path agrees too
    monkeypatch.setattr(_codes, "SMALL_IMAGE", 1 << 30)
    by_sort = quantize(image, 6, seed=2)
    np.testing.assert_array_equal(by_hist.labels, by_sort.labels)
    rows = np.random.default_rng(0).choice(image.shape[0], 40, replace=False)
    subset = image[rows]
    d = brute_force_nearest(subset, by_hist.centers)
    chosen = d[np.arange(len(d)), by_hist.labels[rows].ravel() - 1]
    assert np.all(chosen <= d.min(axis=1) + 1e-6)


@pytest.mark.parametrize("name", ["astronaut", "coffee", "retina"])
def test_fast_is_within_one_percent_of_exact(name):
    image = getattr(data, name)()
    fast = quantize(image, 8, seed=0)
    exact = quantize(image, 8, method="opencv", seed=0)
    assert fast.compactness <= 1.01 * exact.compactness


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float64])
def test_fast_is_deterministic(coffee, dtype):
    image = coffee.astype(dtype)
    a, b = quantize(image, 9, seed=11), quantize(image, 9, seed=11)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.centers, b.centers)
    assert a.compactness == b.compactness
    c = quantize(image, 9, seed=12)
    assert c.params["seed"] == 12


def test_k_equal_to_distinct_colours_puts_each_colour_alone():
    rng = np.random.default_rng(3)
    palette = rng.integers(0, 256, (5, 3), dtype=np.uint8)
    image = palette[rng.integers(0, 5, (30, 40))]
    result = quantize(image, 5)
    assert result.compactness == 0
    np.testing.assert_array_equal(result.image, image)
    assert sorted(map(tuple, result.centers.astype(np.uint8))) == sorted(map(tuple, palette))
    with pytest.raises(ValueError, match="5 distinct colours"):
        quantize(image, 6)


def test_random_init_and_iteration_criteria_are_honoured(coffee):
    random = quantize(coffee, 6, init="random", seed=0)
    assert random.params["init"] == "random"
    one_step = quantize(coffee, 6, criteria="max_iter", max_iter=1, seed=0)
    converged = quantize(coffee, 6, criteria="max_iter", max_iter=300, seed=0)
    assert converged.compactness <= one_step.compactness
    assert one_step.params["criteria"] == "max_iter"


@pytest.mark.parametrize("dtype", [np.int64, np.uint32, np.float16])
def test_dtypes_opencv_cannot_read_give_the_float64_answer(astronaut, dtype):
    image = astronaut[::4, ::4].astype(dtype)
    reference = quantize(image.astype(np.float64), 5, seed=0)
    result = quantize(image, 5, seed=0)
    assert result.image.dtype == dtype
    np.testing.assert_allclose(result.centers, reference.centers, rtol=1e-3)
    assert np.mean(result.labels == reference.labels) > 0.999


def test_a_cancellable_opencv_fit_runs_in_a_worker_process_bit_for_bit():
    """Where a cancel may come, OpenCV runs in a process it can end: same result exactly."""
    import threading

    from napari_kquant._core.cancel import cancellable
    from napari_kquant._core.opencv import IN_PROCESS_WORK

    image = np.random.default_rng(1).integers(0, 256, (600, 600, 3), dtype=np.uint8)
    assert IN_PROCESS_WORK <= 600 * 600 * 8  # large enough to go to the worker process
    here = quantize(image, 8, method="opencv", attempts=2, seed=4)
    with cancellable(threading.Event()):
        there = quantize(image, 8, method="opencv", attempts=2, seed=4)
    np.testing.assert_array_equal(there.labels, here.labels)
    np.testing.assert_array_equal(there.centers, here.centers)
    assert there.compactness == here.compactness


def test_cancelling_an_opencv_fit_ends_its_process_at_once():
    import threading
    import time

    import psutil

    from napari_kquant._core.cancel import Cancelled, cancellable

    image = np.random.default_rng(0).integers(0, 256, (2048, 2048, 3), dtype=np.uint8)
    stop = threading.Event()
    threading.Timer(1.0, stop.set).start()
    started = time.perf_counter()
    with pytest.raises(Cancelled), cancellable(stop):
        quantize(image, 16, method="opencv")
    assert time.perf_counter() - started < 2.0  # a cv2.kmeans call here takes > 10 s
    workers = [
        child
        for child in psutil.Process().children(recursive=True)
        if "napari_kquant" in " ".join(child.cmdline())
    ]
    assert workers == []


@pytest.mark.parametrize(
    ("make", "summarised"),
    [
        # a 4-channel uint16 image: integer rows are always summarised by a sort
        (lambda rng: (rng.integers(0, 6, (200, 150, 4)) * 1000).astype(np.uint16), True),
        (lambda rng: rng.integers(0, 65536, (200, 150, 2)).astype(np.uint16), True),
        # two measured float features: rows never repeat, every row is a point
        (lambda rng: rng.normal(size=(200, 150, 2)), False),
        # colours stored as float32, RGBA-like 4 channels: they repeat
        (lambda rng: (rng.integers(0, 4, (200, 150, 4)) / 3).astype(np.float32), True),
    ],
    ids=["uint16-4ch-levels", "uint16-2ch-noise", "float64-2ch-measured", "float32-4ch-levels"],
)
def test_rows_are_summarised_by_a_sort_only_where_they_repeat(make, summarised):
    """Either way every label is the nearest centre and the compactness is the SSE."""
    from napari_kquant._core.fast.rows import RowSummary

    image = make(np.random.default_rng(0))
    table = image.reshape(-1, image.shape[-1])
    summary = RowSummary.of(table)
    assert (summary.inverse is not None) == summarised
    assert summary.weights.sum() == len(table)
    result = quantize(image, 6, channel_axis=-1, seed=0)
    sse = BruteForce.check_nearest(table, result.labels, result.centers)
    assert result.compactness == pytest.approx(sse, rel=1e-9)


def _wide_blobs(rows, channels, dtype, offset=0.0):
    from sklearn.datasets import make_blobs

    table, _ = make_blobs(rows, channels, centers=6, cluster_std=3.0, random_state=1)
    return (table + offset).astype(dtype)


@pytest.mark.parametrize(
    ("dtype", "offset"),
    [(np.float32, 0.0), (np.float64, 0.0), (np.float64, 1e9), (np.float32, 1e4)],
    ids=["float32", "float64", "float64-offset-1e9", "float32-offset-1e4"],
)
@pytest.mark.parametrize("threaded_steps", [True, False], ids=["steps-threaded", "steps-serial"])
def test_a_large_table_is_finished_in_row_blocks_exactly(dtype, offset, threaded_steps, blocks_of):
    """Many row blocks: labels nearest, compactness the SSE, centres their clusters' means."""
    from napari_kquant._core.fast.lloyd import row_blocks

    # unclustered values: the finish has many iterations in which rows change cluster
    # (more rows than the middle stage takes: the finish starts away from convergence)
    table = (np.random.default_rng(5).normal(size=(26000, 64)) + offset).astype(dtype)
    finishes = blocks_of(1 << 18, threaded_steps)  # the blocks of a table 4x as large
    assert len(row_blocks(*table.shape)) >= 5
    result = quantize(table, 6, channel_axis=-1, seed=0, epsilon=0.0, max_iter=5000)
    assert finishes == [len(row_blocks(*table.shape))]  # the blocked finish ran
    sse = BruteForce.check_nearest(table, result.labels, result.centers)
    assert result.compactness == pytest.approx(sse, rel=1e-9)
    x = table.astype(np.float64)
    for label, centre in enumerate(result.centers, start=1):  # a Lloyd fixed point
        members = x[result.labels == label]
        scale = max(np.abs(members - members.mean(axis=0)).max(), 1.0)
        assert np.abs(members.mean(axis=0) - centre).max() <= 1e-9 * scale + 1e-12 * abs(offset)


@pytest.fixture
def blocks_of(monkeypatch):
    """Smaller row blocks (``values`` a block), the steps on worker threads or not.

    The blocked finish's arithmetic on a table small enough for a test, as it runs
    on a table several times as large. Returns the list of the blocks each finish
    used, filled as the engine runs (a test asserts the blocked finish ran at all).
    """
    from napari_kquant._core.fast import engine, lloyd

    finishes: list[int] = []
    blocked = lloyd.blocked_lloyd

    def spy(points, *args, **kwargs):
        finishes.append(len(lloyd.row_blocks(*points.shape)))
        return blocked(points, *args, **kwargs)

    def use(values: int, threaded_steps: bool) -> list[int]:
        monkeypatch.setattr(lloyd, "ROW_BLOCK_VALUES", values)
        monkeypatch.setattr(lloyd, "STEP_THREAD_VALUES", 0 if threaded_steps else 1 << 62)
        monkeypatch.setattr(engine, "blocked_lloyd", spy)
        return finishes

    return use


def test_row_blocks_are_even_in_number_and_size():
    """Set by the shape alone; equal sizes, an even count: two cores share them evenly."""
    from napari_kquant._core.fast.contract import ROW_BLOCK_VALUES
    from napari_kquant._core.fast.lloyd import row_blocks

    assert len(row_blocks(20000, 16)) == 1  # 320,000 values: one block
    for n_rows, n_channels in ((20000, 64), (20000, 256), (262144, 32), (100003, 33)):
        blocks = row_blocks(n_rows, n_channels)
        sizes = [b.stop - b.start for b in blocks]
        assert len(blocks) % 2 == 0 and sum(sizes) == n_rows
        assert max(sizes) - min(sizes) <= len(blocks)
        assert blocks[0].start == 0 and all(
            a.stop == b.start for a, b in itertools.pairwise(blocks)
        )
        assert max(sizes) * n_channels <= ROW_BLOCK_VALUES + n_channels * len(blocks)


def test_a_row_stage_takes_a_subset_only_of_a_table_over_three_times_its_size():
    """Up to 3x: every row (no finish needed after); beyond: a sorted, reweighted subset."""
    from napari_kquant._core.fast.rows import SUBSET_OF, RowSummary

    table = _wide_blobs(3 * 512 + 1, 16, np.float64)
    summary = RowSummary.of(table)
    whole = summary.reduce(summary.points[:-1], summary.weights[:-1], 512)
    assert len(whole[0]) == SUBSET_OF * 512
    points, weights = summary.reduce(summary.points, summary.weights, 512)
    assert len(points) == 512 and weights.sum() == pytest.approx(len(table))
    rows = [int(np.flatnonzero((table == p).all(axis=1))[0]) for p in points]
    assert rows == sorted(rows)  # table order (neighbours stay alike)
    again = summary.reduce(summary.points, summary.weights, 512)[0]
    assert np.array_equal(points, again)  # a fixed stream: the same subset


def test_float_rows_are_clustered_without_a_copy():
    from napari_kquant._core.fast.rows import RowSummary

    for dtype in (np.float32, np.float64):
        table = _wide_blobs(3000, 40, dtype)
        assert np.shares_memory(RowSummary.of(table).points, table)
    integers = (_wide_blobs(3000, 40, np.float64) * 10).astype(np.int32)
    assert RowSummary.of(integers).points.dtype == np.float64


@pytest.mark.parametrize("threaded_steps", [True, False], ids=["steps-threaded", "steps-serial"])
def test_the_blocked_finish_gives_the_same_result_on_any_number_of_threads(
    threaded_steps, blocks_of
):
    """Blocks are fixed by the table's shape: one thread or several, the same bits."""
    import cv2

    from napari_kquant._core.fast.lloyd import row_blocks

    table = _wide_blobs(26000, 64, np.float32)
    finishes = blocks_of(1 << 18, threaded_steps)
    assert len(row_blocks(*table.shape)) >= 4
    runs = []
    before = cv2.getNumThreads()
    try:
        for threads in (1, before):
            cv2.setNumThreads(threads)
            runs.append(quantize(table, 7, channel_axis=-1, seed=3))
    finally:
        cv2.setNumThreads(before)
    assert finishes == [len(row_blocks(*table.shape))] * 2  # a blocked finish each
    assert np.array_equal(runs[0].labels, runs[1].labels)
    assert np.array_equal(runs[0].centers, runs[1].centers)
    assert runs[0].compactness == runs[1].compactness


def test_the_blocked_lloyd_refills_an_empty_cluster_as_the_single_one_does(blocks_of):
    """A centre far from every row empties: both take the costliest row for it."""
    from napari_kquant._core.fast.lloyd import blocked_lloyd, row_blocks, weighted_lloyd

    table = _wide_blobs(5000, 256, np.float64)
    blocks_of(1 << 18, threaded_steps=True)
    assert len(row_blocks(*table.shape)) >= 4
    weights = np.ones(len(table))
    start = table[[0, 1, 2]].copy()
    start[2] = table.max(axis=0) + 1e3  # nearest to no row
    blocked = blocked_lloyd(table, weights, start, 50, 0.0)
    single = weighted_lloyd(table, weights, start, 50, 0.0)
    assert np.array_equal(blocked[2], single[2])
    np.testing.assert_allclose(blocked[0], single[0], rtol=1e-12, atol=1e-9)
    assert blocked[1] == pytest.approx(single[1], rel=1e-12)
    assert blocked[3] == single[3]
    assert len(np.unique(blocked[2])) == 3


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_wide_float_table_with_a_non_finite_value_leaves_only_that_pixel_out(bad):
    """The one-pass column range sees NaN and infinities as the finite check did."""
    image = np.random.default_rng(2).normal(size=(60, 50, 8)).astype(np.float32)
    image[3, 4, 5] = bad
    result = quantize(image, 4, channel_axis=-1, seed=0)
    labels = np.asarray(result.labels).reshape(-1)
    assert labels[3 * 50 + 4] == 0
    assert (labels > 0).sum() == 60 * 50 - 1
    keep = labels > 0
    sse = BruteForce.check_nearest(image.reshape(-1, 8)[keep], labels[keep], result.centers)
    assert result.compactness == pytest.approx(sse, rel=1e-9)
    assert np.isfinite(result.centers).all()


def test_a_table_far_from_zero_reports_its_iterations_and_the_shifted_copy():
    """Values with a common offset are clustered shifted: the result still says how many
    Lloyd iterations ran, and its memory estimate counts the shifted copy of the table."""
    from napari_kquant import KMeansQuantizer

    rng = np.random.default_rng(0)
    table = rng.normal(0, 5, (2000, 5))
    near, far = (quantize(t, 3, channel_axis=-1, seed=0) for t in (table, table + 1e4))
    assert far.params["n_iter"] == near.params["n_iter"] <= near.params["max_iter"]
    assert far.params["memory_estimate_bytes"] >= near.params["memory_estimate_bytes"] + (
        3 * table.size * 8
    )
    model = KMeansQuantizer(k=3, epsilon=0.0, max_iter=5000, seed=0).fit(table + 1e4)
    assert model.n_iter_ < 5000


def test_the_refined_candidates_are_distinct_clusterings():
    """A coarse result with every centre within the tolerance of a better one's is passed over."""
    from napari_kquant._core.fast.lloyd import distinct_results

    centres = _wide_blobs(4, 8, np.float64)
    best = (centres, 1.0)
    same = (centres[::-1] + 1e-4, 1.0)  # the same clustering, centres in another order
    other = (centres + np.arange(4)[:, None], 2.0)
    assert distinct_results([best, same, other], 2, 1e-3) == [best, other]
    assert distinct_results([best, same, other], 2, 1e-5) == [best, same]  # farther than that
    assert distinct_results([best, same], 2, 1e-3) == [best]  # one clustering: one refinement
    # two centres of one result near the same centre of another: not the same clustering
    merged = (np.vstack([centres[:3], centres[:1] + 1e-4]), 1.5)
    assert distinct_results([best, merged], 2, 1e-3) == [best, merged]


def test_well_separated_blobs_refine_one_candidate_at_the_same_result(monkeypatch):
    """Three attempts that agree are refined once: the result is the two-candidate one."""
    from dataclasses import replace

    from sklearn.datasets import make_blobs

    from napari_kquant._core.fast import engine
    from napari_kquant._core.fast.rows import RowSummary

    table = make_blobs(12000, 16, centers=6, random_state=0)[0]  # (cluster_std=1)
    refined = []
    runs = engine.lloyd_runs

    def spy(points, weights, starts, *args, **kwargs):
        if not kwargs.get("seeded"):  # the middle stage's refinements
            refined.append(len(starts))
        return runs(points, weights, starts, *args, **kwargs)

    monkeypatch.setattr(engine, "lloyd_runs", spy)
    result = quantize(table, 6, channel_axis=-1, seed=0)
    assert refined == [1]
    monkeypatch.setattr(RowSummary, "search", replace(RowSummary.search, distinct_candidates=False))
    both = quantize(table, 6, channel_axis=-1, seed=0)
    assert refined == [1, 2]
    assert np.array_equal(result.labels, both.labels)
    assert result.compactness == both.compactness
    BruteForce.check_nearest(table, result.labels, result.centers)
