import numpy as np
import pytest
from skimage import data

from napari_kquant._core.options import choices

# every engine: tests parametrised over them cover a new one as soon as it is an Option
METHODS = choices("method")


def pytest_sessionstart(session):
    """Tests see the compiled kernels: wait for them (a fresh clone compiles them once).

    Which engine answers is then the same in every test, whatever the timing; the
    numpy stand-in is tested on its own (``prepare.forced(False)``).
    """
    from napari_kquant._core.fast import prepare

    assert prepare.wait(), "the fast engine's kernels could not be prepared"


@pytest.fixture(scope="session")
def astronaut():
    return data.astronaut()


@pytest.fixture(scope="session")
def coffee():
    return data.coffee()


@pytest.fixture(scope="session")
def small_rgb(astronaut):
    """A 64x64 crop: small enough for exhaustive checks, still a real photo."""
    return np.ascontiguousarray(astronaut[100:164, 200:264])


@pytest.fixture
def notifications():
    """Messages napari shows to the user during the test."""
    from napari.utils.notifications import notification_manager

    seen = []

    def collect(event):
        seen.append(str(event.message))

    notification_manager.notification_ready.connect(collect)
    yield seen
    notification_manager.notification_ready.disconnect(collect)


class BruteForce:
    """Plain numpy (and exact-fraction) references the engines are checked against."""

    @staticmethod
    def squared_distances(table, centers) -> np.ndarray:
        """(N, k) squared distances, every difference exact before it is rounded.

        64-bit integer pixels are read as Python ints and centres as exact fractions
        (values beyond 2**53 keep every digit); other pixels in float64, direct form.
        """
        table = np.asarray(table)
        centers = np.asarray(centers, dtype=np.float64)
        if table.dtype.kind in "iu" and table.dtype.itemsize == 8:
            from fractions import Fraction

            rows = table.astype(object)
            fractions = [[Fraction(float(v)) for v in row] for row in centers]
            out = np.empty((len(table), len(centers)))
            for j, centre in enumerate(fractions):
                out[:, j] = [
                    float(sum((int(x) - c) ** 2 for x, c in zip(row, centre, strict=True)))
                    for row in rows
                ]
            return out
        x = table.astype(np.float64)
        return ((x[:, None, :] - centers[None]) ** 2).sum(axis=2)

    @classmethod
    def check_nearest(cls, table, labels, centers, rtol=1e-9) -> float:
        """Assert every label (1..k) is its pixel's nearest centre; return the brute SSE.

        A label passes when its distance is within ``rtol`` of the smallest (a tie to
        rounding); anything farther is a wrong label.
        """
        d = cls.squared_distances(table, centers)
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        assert labels.min() >= 1, "a clustered pixel has label 0"
        mine = d[np.arange(len(d)), labels - 1]
        best = d.min(axis=1)
        wrong = np.flatnonzero(mine > best * (1 + rtol) + 1e-300)
        assert len(wrong) == 0, (
            f"{len(wrong)} of {len(d)} labels are not the nearest centre, e.g. pixel "
            f"{wrong[0]}: {mine[wrong[0]]!r} vs {best[wrong[0]]!r}"
        )
        return float(mine.sum())


@pytest.fixture(scope="session")
def brute():
    """The brute-force references (:class:`BruteForce`)."""
    return BruteForce
