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
