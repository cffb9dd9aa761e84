"""Compiled loops of the fast engine (core: numpy + numba).

numpy cannot fuse "find the nearest centre" with "add the point to that centre's
sums", and on the summaries the fast engine clusters (thousands to a few hundred
thousand weighted points) the time went into the dozens of small array calls per
Lloyd iteration, not into arithmetic. These kernels do one pass per iteration, with
Hamerly's bounds so that points that cannot change cluster are not measured again.

They run on the calling thread and release the GIL (napari's render thread and
other workers go on); they start no threads of their own, so no thread pool setting
can make them slower than single-threaded. Compiled on first use and cached on disk
(``cache=True``): later sessions load the machine code.
"""

from __future__ import annotations

import os
import tempfile
import warnings

import numba
import numpy as np
from numba import njit


def _probe():  # a function of this file, to ask numba where its cache could go
    return 0


def _cache_setting() -> bool:
    """Whether the kernels can be cached on disk, finding a writable place if need be.

    numba caches beside this file or in the user's cache folder. A read-only install
    whose user has no writable home has neither ("no locator available"): then the
    cache goes to the temporary folder, and where even that fails the kernels are
    compiled in each process, not cached. Said once, as a warning.
    """
    try:
        njit(cache=True)(_probe)
        return True
    except RuntimeError:
        pass
    try:  # (with no writable temporary folder at all, gettempdir() itself raises)
        folder = os.path.join(tempfile.gettempdir(), f"napari-kquant-numba-{os.getuid()}")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        numba.config.CACHE_DIR = folder  # type: ignore[attr-defined]  # (numba sets it from the env)
        njit(cache=True)(_probe)
        where, cached = f"in {folder}", True
    except (OSError, RuntimeError):
        where, cached = "nowhere: they are compiled again in each process", False
    warnings.warn(
        "napari-kquant: the compiled kernels cannot be cached beside the package or in "
        f"your home folder (a read-only install?); they are cached {where}",
        RuntimeWarning,
        stacklevel=2,
    )
    return cached


CACHE = _cache_setting()

_INF = np.inf
# Reassociation and fused multiply-add in the distance loops; no assumption that
# values are finite (the bounds start at infinity).
FAST = {"reassoc", "contract", "arcp"}
# Triangle-inequality tests skip only beyond this factor of their bound (rounding).
MARGIN = 1.0 + 1e-9
# From this many centres, nearest-centre searches walk sorted neighbour rows...
ROWS_FROM_K = 24
# ... on rows of at most this many channels. On wider rows the walk's early stop
# skips few centres while each step costs a full distance: measuring every centre
# was 1.5 to 3.8 times faster there (8 to 64 channels, K 24 to 128, the same labels).
WALK_CHANNELS = 4


@njit(cache=CACHE, nogil=True, inline="always")
def walks(k, n_channels):
    """Whether searches among ``k`` centres on rows of ``n_channels`` walk neighbour rows."""
    return k >= ROWS_FROM_K and n_channels <= WALK_CHANNELS


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def _two_nearest(points, i, centers):
    """Index of the nearest centre to point i, its squared distance and the next one's.

    The second-best distance is kept without a branch (``min``/``max``: two to three
    times faster on wide rows than ``if``/``elif``, the same numbers).
    """
    best, second, nearest = _INF, _INF, 0
    for j in range(centers.shape[0]):
        d = 0.0
        for c in range(points.shape[1]):
            t = points[i, c] - centers[j, c]
            d += t * t
        second = min(second, max(best, d))
        if d < best:
            nearest = j
        best = min(best, d)
    return nearest, best, second


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def _two_nearest_from(points, i, centers, a, order, apart, slack):
    """:func:`_two_nearest`, walking centre ``a``'s :func:`neighbour_rows` outwards.

    Stops at the first centre whose distance from ``a``, less the point's distance
    to ``a``, exceeds the second-best distance so far: no centre beyond can be
    nearer than the two found. ``slack``: how much nearer any two centres may have
    come since the row was built (rows are kept while the centres move little).
    Equal distances go to the lower index, as in :func:`_two_nearest`.
    """
    best = _squared_distance(points, i, centers, a)
    u = np.sqrt(best)
    second, second_root, nearest = _INF, _INF, a
    for m in range(1, centers.shape[0]):
        if apart[a, m] - slack - u > MARGIN * second_root:
            break
        j = order[a, m]
        d = _squared_distance(points, i, centers, j)
        if d < best or (d == best and j < nearest):
            second = best
            best = d
            nearest = j
            second_root = np.sqrt(second)
        elif d < second:
            second = d
            second_root = np.sqrt(second)
    return nearest, best, second


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def _squared_distance(points, i, centers, j):
    d = 0.0
    for c in range(points.shape[1]):
        t = points[i, c] - centers[j, c]
        d += t * t
    return d


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def nearest_rows(points, centers, labels, best, second):
    """Every row's nearest centre (0-based), its squared distance and the next one's.

    The direct form ``sum((x - c)**2)`` in float64: no cancellation however far the
    values sit from zero (the expanded ``|x|^2 - 2 x.c + |c|^2`` loses every digit
    of ``1e9 + noise``). Where :func:`walks` (many centres, narrow rows), each
    search starts from the previous row's centre and walks its neighbour rows
    (:func:`_two_nearest_from`); elsewhere every centre is measured. Equal distances
    go to the lower index. (The two loops are written apart: one loop choosing per row
    kept the compiler from streamlining the common one.)
    """
    if walks(centers.shape[0], points.shape[1]):
        order, apart = neighbour_rows(centers)
        guess = 0
        for i in range(points.shape[0]):
            j, d, s = _two_nearest_from(points, i, centers, guess, order, apart, 0.0)
            guess = j
            labels[i], best[i], second[i] = j, d, s
        return
    for i in range(points.shape[0]):
        j, d, s = _two_nearest(points, i, centers)
        labels[i], best[i], second[i] = j, d, s


@njit(cache=CACHE, nogil=True, fastmath=FAST, inline="always")
def _add_point(points, weights, i, j, best, second, labels, upper, lower, mass, sums):
    """Point i goes to centre j (at squared distance ``best``; the next at ``second``)."""
    labels[i] = j
    upper[i] = np.sqrt(best)
    lower[i] = np.sqrt(second)
    w = weights[i]
    mass[j] += w
    for c in range(points.shape[1]):
        sums[j, c] += w * points[i, c]


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def assign_all(points, weights, centers, labels, upper, lower, mass, sums, rows):
    """Every point's nearest centre and bounds; the clusters' weights and weighted sums.

    Where :func:`walks` (many centres, narrow rows), each search starts from the
    previous point's centre (summary points come sorted by colour code, so neighbours
    are alike) and walks its neighbour rows; elsewhere every centre is measured.
    """
    mass[:] = 0.0
    sums[:] = 0.0
    if walks(centers.shape[0], points.shape[1]):
        order, apart = neighbour_rows(centers)
        rows[0][:] = order
        rows[1][:] = apart
        guess = 0
        for i in range(points.shape[0]):
            j, best, second = _two_nearest_from(points, i, centers, guess, order, apart, 0.0)
            guess = j
            _add_point(points, weights, i, j, best, second, labels, upper, lower, mass, sums)
        return
    for i in range(points.shape[0]):
        j, best, second = _two_nearest(points, i, centers)
        _add_point(points, weights, i, j, best, second, labels, upper, lower, mass, sums)


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def _half_gaps(centers, gap):
    k = centers.shape[0]
    for a in range(k):
        g = _INF
        for b in range(k):
            if a != b:
                d = _squared_distance(centers, a, centers, b)
                if d < g:
                    g = d
        gap[a] = 0.5 * np.sqrt(g) if k > 1 else _INF


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def lloyd(points, weights, centers, max_iter, tol, with_inertia):
    """Weighted Lloyd iterations from ``centers``: centres, inertia, labels, iterations, unsure.

    Stops after ``max_iter`` centre updates or when no centre moves by more than
    ``tol``. An empty cluster takes the point that costs most where it is (the
    costliest first, each point once). The labels and the inertia returned are those
    of the final centres (every point's nearest, fixed by one more bounded step);
    without ``with_inertia`` the inertia is NaN and its pass over the points saved.
    ``unsure``: the points whose bounds leave a tie possible (:func:`unsure_points`).
    """
    n, n_channels = points.shape
    k = centers.shape[0]
    centers = centers.copy()
    labels = np.empty(n, np.int64)
    upper = np.empty(n)
    lower = np.empty(n)
    mass = np.zeros(k)
    sums = np.zeros((k, n_channels))
    moved = np.empty(k)
    gap = np.empty(k)
    big = walks(k, n_channels)  # neighbour rows pay from this many centres (1 x 1 below)
    rows = (np.empty((k if big else 1, k), np.int64), np.empty((k if big else 1, k)))
    # the centres' cumulative drift (the sum of each update's largest move) when each
    # row was built: rows stay in use while the centres have moved little since
    built = np.zeros(k)
    drift = 0.0
    assign_all(points, weights, centers, labels, upper, lower, mass, sums, rows)
    n_iter = 0
    for iteration in range(max_iter):
        n_iter = iteration + 1
        new = centers.copy()
        empty = False
        for j in range(k):
            if mass[j] > 0:
                for c in range(n_channels):
                    new[j, c] = sums[j, c] / mass[j]
            else:
                empty = True
        if empty:
            cost = np.empty(n)  # the labels are every point's nearest centre here
            point_costs(points, weights, centers, labels, cost)
            for j in range(k):
                if mass[j] <= 0:
                    far = np.argmax(cost)
                    for c in range(n_channels):
                        new[j, c] = points[far, c]
                    cost[far] = 0.0
        shift = centre_moves(new, centers, moved)
        centers = new
        drift += shift
        if empty:  # a centre jumped: measure everything again
            assign_all(points, weights, centers, labels, upper, lower, mass, sums, rows)
            built[:] = drift
        else:
            reassign(
                points,
                weights,
                centers,
                moved,
                labels,
                upper,
                lower,
                mass,
                sums,
                gap,
                rows,
                built,
                drift,
            )
        if shift <= tol:
            break
    # the labels are every point's nearest final centre: the inertia needs one distance each
    unsure = np.empty(n, np.bool_)
    unsure_points(centers, labels, upper, lower, unsure)
    if not with_inertia:
        return centers, np.nan, labels, n_iter, unsure
    inertia = 0.0
    for i in range(n):
        inertia += _squared_distance(points, i, centers, labels[i]) * weights[i]
    return centers, inertia, labels, n_iter, unsure


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def centre_moves(new, centers, moved):
    """How far each centre moved (``moved[j]``, as :func:`lloyd` measures it); the largest."""
    shift = 0.0
    for j in range(centers.shape[0]):
        moved[j] = np.sqrt(_squared_distance(new, j, centers, j))
        shift = max(shift, moved[j])
    return shift


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def point_costs(points, weights, centers, labels, out):
    """``out[i]``: point i's weighted squared distance to its centre ``labels[i]`` (0-based)."""
    for i in range(points.shape[0]):
        out[i] = _squared_distance(points, i, centers, labels[i]) * weights[i]


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def unsure_points(centers, labels, upper, lower, out):
    """``out[i]``: whether Hamerly's bounds leave point i's nearest centre in doubt.

    ``upper[i]`` bounds the distance to its centre ``labels[i]`` (0-based) from above,
    ``lower[i]`` the distance to every other from below. Its centre is the one strictly
    nearest where the upper bound is below the lower one, or below half the distance
    from its centre to the nearest other (triangle inequality); MARGIN keeps the test
    clear of rounding. Otherwise another centre may be as near: an exact tie, which
    Lloyd leaves to the point's history.
    """
    gap = np.empty(centers.shape[0])
    _half_gaps(centers, gap)
    for i in range(labels.shape[0]):
        out[i] = upper[i] * MARGIN >= max(lower[i], gap[labels[i]])


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def reassign(
    points, weights, centers, moved, labels, upper, lower, mass, sums, gap, rows, built, drift
):
    """Hamerly's step: after the centres moved by ``moved``, fix every point's nearest centre.

    Bounds are loosened by the moves; a point is measured only when its upper bound
    exceeds both its lower bound and half the gap from its centre to the next one
    (then no other centre can be nearer). Clusters' sums follow the points that move.
    Where :func:`walks` (many centres, narrow rows), a point that must search does so
    along its centre's neighbour row. A row built when the centres' cumulative drift was
    ``built[a]`` is used with a slack of twice the drift since (no two centres came
    nearer by more), and built again once that slack exceeds the distance from
    ``a`` to its nearest other centre.
    """
    k = centers.shape[0]
    n_channels = points.shape[1]
    pruned = walks(k, n_channels)
    row = np.empty(k)
    first, top, runner_up = 0, 0.0, 0.0
    for j in range(k):
        if moved[j] > top:
            runner_up = top
            top = moved[j]
            first = j
        elif moved[j] > runner_up:
            runner_up = moved[j]
    _half_gaps(centers, gap)
    for i in range(points.shape[0]):
        a = labels[i]
        upper[i] += moved[a]
        lower[i] -= runner_up if a == first else top
        bound = max(lower[i], gap[a])
        if upper[i] <= bound:
            continue
        upper[i] = np.sqrt(_squared_distance(points, i, centers, a))
        if upper[i] <= bound:
            continue
        if pruned:
            slack = 2.0 * (drift - built[a])
            if slack > 2.0 * gap[a]:  # the distance to its nearest other centre
                _neighbour_row(centers, a, rows[0], rows[1], row)
                built[a] = drift
                slack = 0.0
            j, best, second = _two_nearest_from(points, i, centers, a, rows[0], rows[1], slack)
        else:
            j, best, second = _two_nearest(points, i, centers)
        upper[i] = np.sqrt(best)
        lower[i] = np.sqrt(second)
        if j != a:
            w = weights[i]
            mass[a] -= w
            mass[j] += w
            for c in range(n_channels):
                sums[a, c] -= w * points[i, c]
                sums[j, c] += w * points[i, c]
            labels[i] = j


@njit(cache=CACHE, nogil=True, fastmath=FAST, inline="always")
def _running_potential(closest, weights, cumulative):
    """k-means++'s draw table, written into ``cumulative``; returns the total.

    The running sum of weight x squared distance to the nearest pick.
    """
    total = 0.0
    for i in range(closest.shape[0]):
        total += closest[i] * weights[i]
        cumulative[i] = total
    return total


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def kmeans_pp(points, weights, first, draws):
    """Greedy weighted k-means++ (as scikit-learn): the indices of the points picked.

    ``first`` is the first pick; row ``i`` of ``draws`` holds the uniform numbers
    (0..1) of the candidates for pick ``i + 1``: each candidate is drawn with
    probability proportional to weight x squared distance to the nearest pick so
    far, and the candidate that lowers the weighted potential most is kept. When
    every point coincides with a pick the remaining picks repeat the first.

    The points are kept grouped by the pick they were nearest to when last grouped
    (regrouped each time the picks double), each group copied contiguously,
    farthest from its pick first, with every member's distance to the group's pick.
    A member nearer to the group's pick than half the candidate's distance from it
    cannot come nearer to the candidate than to its nearest pick (triangle
    inequality), and neither can the members after it: a group is measured only up
    to there, and skipped whole when its farthest member is that near. At large K a
    candidate measures only the points around it, in order.
    """
    n = points.shape[0]
    k = draws.shape[0] + 1
    n_trials = draws.shape[1]
    picks = np.empty(k, np.int64)
    picks[0] = first
    closest = np.empty(n)  # squared distance to the nearest pick, by point
    owner = np.zeros(n, np.int64)  # the nearest pick's number, by point
    for i in range(n):
        closest[i] = _squared_distance(points, i, points, first)
    # the groups (group g: the points nearest to pick g when grouped), rebuilt at the
    # first step and then each time the picks double
    groups = _regroup(1, owner, closest, weights, points)
    n_groups = 1
    cumulative = np.empty(n)
    for step in range(1, k):
        if step - n_groups >= max(1, n_groups):
            groups = _regroup(step, owner, closest, weights, points)
            n_groups = step
        order, grouped, grouped_weights, to_pick, grouped_closest, group_start = groups
        total = _running_potential(closest, weights, cumulative)
        if total <= 0:
            for rest in range(step, k):
                picks[rest] = first
            break
        best_gain = -1.0
        best_pick = 0
        for t in range(n_trials):
            candidate = min(np.searchsorted(cumulative, draws[step - 1, t] * total), n - 1)
            gain = 0.0  # how much the weighted potential falls with this candidate
            for g in range(n_groups):
                # a member within half the candidate's distance of the group's pick
                # stays; the first member is the farthest
                q = 0.25 * _squared_distance(points, candidate, points, picks[g])
                for pos in range(group_start[g], group_start[g + 1]):
                    if to_pick[pos] * MARGIN < q:
                        break  # (members farthest from the pick first)
                    d = _squared_distance(grouped, pos, points, candidate)
                    # (no branch: adding 0 where the candidate is farther)
                    gain += max(grouped_closest[pos] - d, 0.0) * grouped_weights[pos]
            if gain > best_gain:
                best_gain = gain
                best_pick = candidate
        picks[step] = best_pick
        for g in range(n_groups):  # the members nearer to the new pick
            q = 0.25 * _squared_distance(points, best_pick, points, picks[g])
            for pos in range(group_start[g], group_start[g + 1]):
                if to_pick[pos] * MARGIN < q:
                    break
                d = _squared_distance(grouped, pos, points, best_pick)
                if d < grouped_closest[pos]:
                    grouped_closest[pos] = d
                    closest[order[pos]] = d
                    owner[order[pos]] = step
    return picks


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def kmeans_pp_direct(points, weights, first, draws):
    """:func:`kmeans_pp` measuring every point against every candidate: wide rows.

    The same picks from the same draws (the gains are the same sums, added in point
    order). On rows of many channels distances concentrate, so the triangle
    inequality rarely excuses a point, and grouping cost more than it saved: twice
    as fast at K <= 10 on 8 to 256 channels. The candidates are measured together,
    so the points are read once a pick.
    """
    n = points.shape[0]
    k = draws.shape[0] + 1
    n_trials = draws.shape[1]
    picks = np.empty(k, np.int64)
    picks[0] = first
    closest = np.empty(n)
    for i in range(n):
        closest[i] = _squared_distance(points, i, points, first)
    cumulative = np.empty(n)
    candidates = np.empty(n_trials, np.int64)
    gains = np.empty(n_trials)
    for step in range(1, k):
        total = _running_potential(closest, weights, cumulative)
        if total <= 0:
            for rest in range(step, k):
                picks[rest] = first
            break
        for t in range(n_trials):
            candidates[t] = min(np.searchsorted(cumulative, draws[step - 1, t] * total), n - 1)
        gains[:] = 0.0
        for i in range(n):
            for t in range(n_trials):
                d = _squared_distance(points, i, points, candidates[t])
                gains[t] += max(closest[i] - d, 0.0) * weights[i]
        best_gain = -1.0
        best_pick = 0
        for t in range(n_trials):
            if gains[t] > best_gain:
                best_gain = gains[t]
                best_pick = candidates[t]
        picks[step] = best_pick
        for i in range(n):
            closest[i] = min(closest[i], _squared_distance(points, i, points, best_pick))
    return picks


@njit(cache=CACHE, nogil=True)
def _regroup(n_picks, owner, closest, weights, points):
    """The points grouped by nearest pick (a counting sort), each group farthest first.

    Returns the members' original numbers, coordinates, weights, squared distances
    to the group's pick (fixed until the next grouping) and to their nearest pick
    (kept up to date), and where each group starts (``n_picks`` + 1).
    """
    n = points.shape[0]
    group_start = np.zeros(n_picks + 1, np.int64)
    for i in range(n):
        group_start[owner[i] + 1] += 1
    for g in range(n_picks):
        group_start[g + 1] += group_start[g]
    filled = group_start[:n_picks].copy()
    order = np.empty(n, np.int64)
    for i in range(n):
        g = owner[i]
        order[filled[g]] = i
        filled[g] += 1
    for g in range(n_picks):
        members = order[group_start[g] : group_start[g + 1]]
        members[:] = members[np.argsort(-closest[members], kind="mergesort")]
    grouped = np.empty_like(points)
    for pos in range(n):
        grouped[pos] = points[order[pos]]
    to_pick = closest[order]
    return order, grouped, weights[order], to_pick, to_pick.copy(), group_start


@njit(cache=CACHE, nogil=True)
def grid_histogram(table, shift, with_squares):
    """Count the uint8 RGB pixels of each cell of a (256 >> shift)**3 grid and sum their values.

    One pass over the pixels, nothing the size of the image allocated; sums are
    integers, so the cells' centroids are exact. With ``with_squares`` also each
    cell's sum of squared values (r² + g² + b², exact): the cell's own scatter, from
    which a whole cell's squared distance to any centre follows without its pixels.
    """
    bits = 8 - shift
    cells = 1 << (3 * bits)
    counts = np.zeros(cells, np.int64)
    sums = np.zeros((cells, 3), np.int64)
    squares = np.zeros(cells if with_squares else 1, np.int64)
    for i in range(table.shape[0]):
        r, g, b = np.int64(table[i, 0]), np.int64(table[i, 1]), np.int64(table[i, 2])
        cell = (r >> shift) | ((g >> shift) << bits) | ((b >> shift) << (2 * bits))
        counts[cell] += 1
        sums[cell, 0] += r
        sums[cell, 1] += g
        sums[cell, 2] += b
        if with_squares:
            squares[cell] += r * r + g * g + b * b
    return counts, sums, squares


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def neighbour_rows(centers):
    """Each centre's others by distance: ``order[a]`` (``a`` first) and ``apart[a]`` (sorted).

    With these a search for the nearest centre to ``x`` that starts from a centre
    ``a`` at distance ``u`` can stop at the first centre ``j`` with
    ``apart(a, j) - u`` beyond the best distance so far: ``|x - c_j| >=
    |c_a - c_j| - u`` (triangle inequality), and the rows are sorted.
    """
    k = centers.shape[0]
    order = np.empty((k, k), np.int64)
    apart = np.empty((k, k))
    row = np.empty(k)
    for a in range(k):
        _neighbour_row(centers, a, order, apart, row)
    return order, apart


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def _neighbour_row(centers, a, order, apart, row):
    """Row ``a`` of :func:`neighbour_rows`, written into ``order`` and ``apart``."""
    for j in range(centers.shape[0]):
        row[j] = np.sqrt(_squared_distance(centers, a, centers, j))
    row[a] = -1.0  # the centre itself first, even beside a duplicate
    order[a] = np.argsort(row)
    for m in range(centers.shape[0]):
        apart[a, m] = row[order[a, m]]
    apart[a, 0] = 0.0


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def grid_candidates(cells, shift, centers):
    """For each cell: its label when every colour in it has the same nearest centre, else 0.

    A cell is a box of side ``2**shift - 1`` around its middle ``m``; a colour ``x``
    in it lies within ``r`` (half the box diagonal) of ``m``. With ``a`` the centre
    nearest to ``m``, ``|x - c_j| >= d_j - r`` and ``|x - c_a| <= d_a + r``: only
    centres with ``d_j <= d_a + 2r`` can be nearest to a colour of the cell. Those
    candidates are listed (``start``, ``index``, as CSR) for the cells with more than
    one; their pixels are measured against the candidates only.

    The search for ``a`` and the candidates starts from the previous cell's nearest
    centre and walks its :func:`neighbour_rows` outwards, stopping where no further
    centre can be within ``d_a + 2r``.
    """
    bits = 8 - shift
    mask = (1 << bits) - 1
    side = (1 << shift) - 1
    reach = np.sqrt(3.0) * side * (1 + 1e-9) + 1e-9  # 2r, with a margin for rounding
    k = centers.shape[0]
    n = cells.shape[0]
    order, apart = neighbour_rows(centers)
    sure = np.zeros(n, np.int64)
    start = np.zeros(n + 1, np.int64)
    index = np.empty(n * min(k, 8), np.int64)
    used = 0
    middle = np.empty((1, 3))
    seen = np.empty(k, np.int64)
    distance = np.empty(k)
    guess = 0
    for q in range(n):
        cell = cells[q]
        for c in range(3):
            middle[0, c] = ((cell >> (bits * c)) & mask) * (side + 1) + side / 2.0
        u = np.sqrt(_squared_distance(middle, 0, centers, guess))
        nearest_j, nearest_d, n_seen = guess, u, 0
        for m in range(k):
            if apart[guess, m] > MARGIN * (u + nearest_d + reach) + 1e-9:
                break
            j = order[guess, m]
            d = u if m == 0 else np.sqrt(_squared_distance(middle, 0, centers, j))
            seen[n_seen] = j
            distance[n_seen] = d
            n_seen += 1
            if d < nearest_d or (d == nearest_d and j < nearest_j):
                nearest_d = d
                nearest_j = j
        guess = nearest_j
        count = 0
        for s in range(n_seen):
            if distance[s] <= nearest_d + reach:
                count += 1
        if count == 1:
            sure[q] = nearest_j + 1
        else:
            if used + count > index.shape[0]:
                grown = np.empty(max(2 * index.shape[0], used + count), np.int64)
                grown[:used] = index[:used]
                index = grown
            for s in range(n_seen):
                if distance[s] <= nearest_d + reach:
                    index[used] = seen[s]
                    used += 1
        start[q + 1] = used
    return sure, start, index[:used]


@njit(cache=CACHE, nogil=True)
def grid_label_pixels(
    table, shift, slot, sure, start, index, centers, labels, counts, sums, figures
):
    """Label every uint8 RGB pixel with its nearest centre (1-based) and sum the squared distances.

    ``sure[cell]`` is the label of a sure cell (0: unsure), by cell number (a small
    table: one lookup per pixel); a sure cell gives its label at once, the pixels
    of the others are measured against their candidate centres (the nearest of all,
    by the bound above), found through ``slot[cell]``, the cell's row in
    ``start``. With ``figures``, ``counts`` (k + 1) gets the pixels per label and
    ``sums`` (k + 1, 3) the sums of their values (for a Lloyd update on the pixels),
    and the exact sum of squared distances is returned; without, only the labels
    are written (the figures are known: a sweep's) and 0.0 returned.
    """
    bits = 8 - shift
    total = 0.0
    point = np.empty((1, 3))
    for i in range(table.shape[0]):
        r, g, b = table[i, 0], table[i, 1], table[i, 2]
        cell = (r >> shift) | ((g >> shift) << bits) | ((b >> shift) << (2 * bits))
        label = np.int64(sure[cell])
        if label and not figures:
            labels[i] = label
            continue
        point[0, 0], point[0, 1], point[0, 2] = r, g, b
        if label:
            d = _squared_distance(point, 0, centers, label - 1)
        else:
            q = slot[cell]
            d = _INF
            for p in range(start[q], start[q + 1]):
                e = _squared_distance(point, 0, centers, index[p])
                if e < d or (e == d and index[p] + 1 < label):
                    d = e
                    label = index[p] + 1
        labels[i] = label
        if figures:
            counts[label] += 1
            sums[label, 0] += r
            sums[label, 1] += g
            sums[label, 2] += b
            total += d
    return total


@njit(cache=CACHE, nogil=True)
def _bits_set(x):
    """The number of bits set in a uint64."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


@njit(cache=CACHE, nogil=True)
def grid_colours(table, shift, slot, n_cells):
    """The distinct colours within each occupied cell and their pixel counts, as CSR.

    Returns ``start`` (cells + 1), ``subs`` (each colour's place in its cell, the
    low ``shift`` bits of r, g, b) and ``counts`` (int32): memory in proportion to
    the distinct colours, not to the cells' 64 places. Two passes: a 64-bit mask of
    the places present per cell, then the counts (``shift`` at most 2).
    """
    bits = 8 - shift
    low = (1 << shift) - 1
    masks = np.zeros(n_cells, np.uint64)
    for i in range(table.shape[0]):
        r, g, b = table[i, 0], table[i, 1], table[i, 2]
        cell = (r >> shift) | ((g >> shift) << bits) | ((b >> shift) << (2 * bits))
        sub = (r & low) | ((g & low) << shift) | ((b & low) << (2 * shift))
        masks[slot[cell]] |= np.uint64(1) << np.uint64(sub)
    start = np.zeros(n_cells + 1, np.int64)
    for q in range(n_cells):
        start[q + 1] = start[q] + _bits_set(masks[q])
    subs = np.empty(start[n_cells], np.uint8)
    counts = np.zeros(start[n_cells], np.int32)
    for q in range(n_cells):
        p = start[q]
        for sub in range(1 << (3 * shift)):
            if masks[q] & (np.uint64(1) << np.uint64(sub)):
                subs[p] = sub
                p += 1
    for i in range(table.shape[0]):
        r, g, b = table[i, 0], table[i, 1], table[i, 2]
        cell = (r >> shift) | ((g >> shift) << bits) | ((b >> shift) << (2 * bits))
        sub = (r & low) | ((g & low) << shift) | ((b & low) << (2 * shift))
        q = slot[cell]
        below = masks[q] & ((np.uint64(1) << np.uint64(sub)) - np.uint64(1))
        counts[start[q] + _bits_set(below)] += 1
    return start, subs, counts


@njit(cache=CACHE, nogil=True, fastmath=FAST)
def grid_unsure_figures(cells, shift, colours, sure, start, index, centers, counts):
    """Pixels per label and squared distances of the unsure cells, colour by colour.

    For each cell whose colours may have different nearest centres (``sure`` 0,
    by row), every colour it holds (``colours``: :func:`grid_colours`) is measured
    against the cell's candidates (ties to the lower label, as
    :func:`grid_label_pixels`) and its pixel count added to ``counts`` (k + 1, by
    label). Returns the sum of their squared distances: exactly what labelling
    those pixels one by one gives.
    """
    colour_start, subs, colour_counts = colours
    bits = 8 - shift
    mask = (1 << bits) - 1
    low = (1 << shift) - 1
    total = 0.0
    point = np.empty((1, 3))
    for q in range(cells.shape[0]):
        if sure[q]:
            continue
        cell = cells[q]
        for s in range(colour_start[q], colour_start[q + 1]):
            sub = np.int64(subs[s])
            for c in range(3):
                base = ((cell >> (bits * c)) & mask) << shift
                point[0, c] = base | ((sub >> (shift * c)) & low)
            d = _INF
            label = 0
            for p in range(start[q], start[q + 1]):
                e = _squared_distance(point, 0, centers, index[p])
                if e < d or (e == d and index[p] + 1 < label):
                    d = e
                    label = index[p] + 1
            n = colour_counts[s]
            counts[label] += n
            total += n * d
    return total


DENSE_BINS = 1 << 20  # grids up to this many bins use a dense table (4 bytes a bin)


@njit(cache=CACHE, nogil=True)
def bin_merge(points, weights, low, high, levels):
    """Merge weighted points into the bins of a levels**C grid over [low, high].

    Returns the occupied bins' weighted means and total weights, in bin order.
    Small grids count in a dense table; larger ones sort the points' bin keys, so
    the memory stays proportional to the points, not to the grid.
    """
    n, n_channels = points.shape
    scale = np.empty(n_channels)
    for c in range(n_channels):
        span = high[c] - low[c]
        scale[c] = levels / span if span > 0 else 0.0
    keys = np.empty(n, np.int64)
    for i in range(n):
        key = 0
        for c in range(n_channels):
            code = int((points[i, c] - low[c]) * scale[c])
            code = min(max(code, 0), levels - 1)
            key = key * levels + code
        keys[i] = key
    bins = levels**n_channels
    slot = np.empty(n, np.int64)
    if bins <= DENSE_BINS:
        index = np.full(bins, -1, np.int32)
        occupied = 0
        for i in range(n):
            if index[keys[i]] < 0:
                index[keys[i]] = 0
        for b in range(bins):
            if index[b] == 0:
                index[b] = occupied
                occupied += 1
        for i in range(n):
            slot[i] = index[keys[i]]
    else:
        order = np.argsort(keys)
        occupied = 0
        previous = -1
        for r in range(n):
            i = order[r]
            if keys[i] != previous:
                occupied += 1
                previous = keys[i]
            slot[i] = occupied - 1
    mass = np.zeros(occupied)
    out = np.zeros((occupied, n_channels))
    for i in range(n):
        q = slot[i]
        w = weights[i]
        mass[q] += w
        for c in range(n_channels):
            out[q, c] += points[i, c] * w
    for q in range(occupied):
        for c in range(n_channels):
            out[q, c] /= mass[q]
    return out, mass


@njit(cache=CACHE, nogil=True)
def column_ranges(table):
    """Each column's smallest and largest value in one pass over the rows (float64).

    A column holding a NaN has NaN for both (NaN compares false, so it stays).
    numpy's reductions over axis 0 of a wide float table are ten times slower.
    """
    n_channels = table.shape[1]
    low = np.full(n_channels, np.inf)
    high = np.full(n_channels, -np.inf)
    for i in range(table.shape[0]):
        for c in range(n_channels):
            v = float(table[i, c])
            if v < low[c]:
                low[c] = v
            if v > high[c]:
                high[c] = v
            if v != v:
                low[c] = v
                high[c] = v
    return low, high


@njit(cache=CACHE, nogil=True)
def count_codes(codes, size):
    """Pixels per code (numpy's bincount would first copy the codes as int64)."""
    counts = np.zeros(size, np.int64)
    for i in range(codes.shape[0]):
        counts[codes[i]] += 1
    return counts


@njit(cache=CACHE, nogil=True)
def paint(labels, palette, source, target):
    """``target[i] = palette[labels[i]]``, or ``source[i]`` where the label is 0 (one pass)."""
    n_channels = target.shape[1]
    if n_channels == 3:  # RGB written out: three times faster than the loop below
        for i in range(labels.shape[0]):
            label = labels[i]
            if label == 0:
                target[i, 0] = source[i, 0]
                target[i, 1] = source[i, 1]
                target[i, 2] = source[i, 2]
            else:
                target[i, 0] = palette[label, 0]
                target[i, 1] = palette[label, 1]
                target[i, 2] = palette[label, 2]
        return
    for i in range(labels.shape[0]):
        label = labels[i]
        if label == 0:
            for c in range(n_channels):
                target[i, c] = source[i, c]
        else:
            for c in range(n_channels):
                target[i, c] = palette[label, c]


@njit(cache=CACHE, nogil=True)
def gather(table, index, out):
    """``out[i] = table[index[i]]`` in one pass (numpy's take goes through int64 indices)."""
    for i in range(index.shape[0]):
        out[i] = table[index[i]]


@njit(cache=CACHE, nogil=True)
def summary_figures(points, weights, centers, labels):
    """Weight per label (1-based labels) and the weighted sum of squared distances."""
    counts = np.zeros(centers.shape[0] + 1)
    total = 0.0
    for i in range(points.shape[0]):
        label = labels[i]
        counts[label] += weights[i]
        total += weights[i] * _squared_distance(points, i, centers, label - 1)
    return counts[1:], total


@njit(cache=CACHE, nogil=True)
def code_index(codes):
    """An open-addressing hash table from each 24-bit code to its position in ``codes``.

    Returns (slots, positions): ``slots`` holds code + 1 (0 = empty) in a power-of-two
    table at least twice the codes' number, ``positions`` the matching index.
    """
    size = 1
    while size < 2 * codes.shape[0]:
        size *= 2
    slots = np.zeros(size, np.uint32)
    positions = np.zeros(size, np.int32)
    mask = size - 1
    for p in range(codes.shape[0]):
        code = np.int64(codes[p])
        h = (code * 2654435761) & mask
        while slots[h] != 0:
            h = (h + 1) & mask
        slots[h] = code + 1
        positions[h] = p
    return slots, positions


@njit(cache=CACHE, nogil=True)
def label_rgb(table, slots, positions, code_labels, out):
    """Label each uint8 RGB pixel with ``code_labels`` of its code (found in the hash table)."""
    mask = slots.shape[0] - 1
    for i in range(table.shape[0]):
        r, g, b = np.int64(table[i, 0]), np.int64(table[i, 1]), np.int64(table[i, 2])
        code = r | (g << 8) | (b << 16)
        h = (code * 2654435761) & mask
        while slots[h] != code + 1:
            h = (h + 1) & mask
        out[i] = code_labels[positions[h]]
