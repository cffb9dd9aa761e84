"""KMeansQuantizer: scikit-learn conventions on real pixel tables."""

import numpy as np
import pytest
from skimage import data

from napari_kquant import KMeansQuantizer, NotFittedError, apply_palette, quantize


@pytest.fixture(scope="module")
def table(astronaut):
    return astronaut.reshape(-1, 3)


def test_fit_predict_agree_with_quantize(table, astronaut):
    model = KMeansQuantizer(k=6, seed=2).fit(table)
    reference = quantize(astronaut, 6, seed=2)
    np.testing.assert_array_equal(model.cluster_centers_, reference.centers)
    np.testing.assert_array_equal(model.labels_, reference.labels.ravel() - 1)
    assert model.inertia_ == pytest.approx(reference.compactness)
    assert model.n_features_in_ == 3
    np.testing.assert_array_equal(model.predict(table), model.labels_)
    np.testing.assert_array_equal(KMeansQuantizer(k=6, seed=2).fit_predict(table), model.labels_)


def test_transform_gives_distances_whose_argmin_is_predict(table):
    model = KMeansQuantizer(k=5).fit(table)
    sample = table[::97]
    distances = model.transform(sample)
    assert distances.shape == (len(sample), 5)
    np.testing.assert_array_equal(distances.argmin(axis=1), model.predict(sample))
    expected = np.linalg.norm(sample[0].astype(float) - model.cluster_centers_[2])
    assert distances[0, 2] == pytest.approx(expected)


def test_fit_once_apply_to_many_images(astronaut, coffee):
    model = KMeansQuantizer(k=4, seed=0).fit_image(astronaut)
    labels = model.predict_image(coffee)
    assert labels.shape == coffee.shape[:2] and labels.min() >= 1 and labels.max() <= 4
    image = model.quantize_image(coffee)
    palette = np.clip(np.rint(model.cluster_centers_), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(image, palette[labels - 1])
    np.testing.assert_array_equal(labels, apply_palette(coffee, model.cluster_centers_).labels)


def test_gray_tables():
    camera = data.camera()
    model = KMeansQuantizer(k=3).fit(camera.reshape(-1, 1))
    assert model.cluster_centers_.shape == (3, 1)
    assert model.predict(camera.ravel()[:10]).shape == (10,)
    assert model.predict_image(camera).shape == camera.shape


def test_params_and_clone(table):
    sklearn = pytest.importorskip("sklearn")
    model = KMeansQuantizer(k=3, method="opencv", seed=5)
    assert model.get_params()["k"] == 3 and model.get_params()["method"] == "opencv"
    assert model.set_params(k=4) is model and model.k == 4
    with pytest.raises(ValueError, match="not a parameter"):
        model.set_params(colours=3)
    twin = sklearn.base.clone(model)
    assert twin is not model and twin.get_params() == model.get_params()
    assert "k=4" in repr(model) and "method='opencv'" in repr(model)


def test_not_fitted_and_bad_tables(table):
    model = KMeansQuantizer()
    for call in (model.predict, model.transform, model.predict_image):
        with pytest.raises(NotFittedError, match="not fitted"):
            call(table)
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
    with pytest.raises(ValueError, match="pixel table"):
        model.fit(np.zeros((4, 4, 3)))
    model.fit(table[:5000])
    with pytest.raises(ValueError, match="fitted on 3"):
        model.predict(np.zeros((3, 1)))
