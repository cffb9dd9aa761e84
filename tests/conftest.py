import numpy as np
import pytest
from skimage import data


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
