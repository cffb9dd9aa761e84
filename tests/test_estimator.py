"""KMeansQuantizer as a scikit-learn estimator.

scikit-learn's own checks (check_estimator) and the cases of scikit-learn's
``cluster/tests/test_k_means.py`` that apply to a quantizer without sample weights
or initial centres, ported to KMeansQuantizer for both methods; then the image
helpers on real photos.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from skimage import data

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone, is_clusterer  # noqa: E402
from sklearn.cluster import KMeans  # noqa: E402
from sklearn.datasets import make_blobs  # noqa: E402
from sklearn.metrics import pairwise_distances, v_measure_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402
from sklearn.utils.validation import check_is_fitted  # noqa: E402

from conftest import METHODS  # noqa: E402
from napari_kquant import (  # noqa: E402
    KMeansQuantizer,
    NotFittedError,
    Palette,
    apply_palette,
    quantize,
)

# scikit-learn's test data: non centred, sparse centres
CENTERS = np.array(
    [[0.0, 5.0, 0.0, 0.0, 0.0], [1.0, 1.0, 4.0, 0.0, 0.0], [1.0, 0.0, 0.0, 5.0, 1.0]]
)
X, TRUE_LABELS = make_blobs(n_samples=100, centers=CENTERS, cluster_std=1.0, random_state=42)
N_CLUSTERS = len(CENTERS)


def failed_checks(estimator) -> set[str]:
    results = check_estimator(estimator, on_fail=None, on_skip=None)
    return {r["check_name"] for r in results if r["status"] == "failed"}


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_check_estimator_fails_no_more_than_kmeans(method):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = failed_checks(KMeansQuantizer(method=method))
        theirs = failed_checks(KMeans(n_init=1))
    if method == "opencv":  # cv2.kmeans takes no weights: it says so (a ValueError)
        ours = {name for name in ours if not name.startswith("check_sample_weights")}
    assert ours <= theirs, ours - theirs


def test_sample_weights_are_used_as_kmeans_uses_them():
    rng = np.random.default_rng(0)
    weights = rng.random(len(X))
    ours = KMeansQuantizer(k=N_CLUSTERS, seed=0).fit(X, sample_weight=weights)
    theirs = KMeans(N_CLUSTERS, n_init=1, random_state=0).fit(X, sample_weight=weights)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=5e-3)
    assert ours.score(X, sample_weight=weights) == pytest.approx(-ours.inertia_)
    # integer weights are repeated samples
    counts = rng.integers(1, 4, len(X))
    repeated = KMeansQuantizer(k=N_CLUSTERS, seed=0).fit(np.repeat(X, counts, axis=0))
    weighted = KMeansQuantizer(k=N_CLUSTERS, seed=0).fit(X, sample_weight=counts)
    assert weighted.inertia_ == pytest.approx(repeated.inertia_, rel=1e-6)
    labels = KMeansQuantizer(k=N_CLUSTERS, seed=0).fit_predict(X, sample_weight=weights)
    assert np.array_equal(labels, ours.labels_)
    with pytest.raises(ValueError, match="method='fast'"):
        KMeansQuantizer(k=3, method="opencv").fit(X, sample_weight=weights)


def test_init_spellings_and_arrays():
    spelled = KMeansQuantizer(k=3, init="k-means++", seed=0).fit(X)
    ours = KMeansQuantizer(k=3, init="kmeans++", seed=0).fit(X)
    assert np.array_equal(spelled.cluster_centers_, ours.cluster_centers_)
    started = KMeansQuantizer(k=3, init=CENTERS, epsilon=0).fit(X)
    theirs = KMeans(3, init=CENTERS, n_init=1, tol=0).fit(X)
    order = np.lexsort(theirs.cluster_centers_.T)
    np.testing.assert_allclose(
        started.cluster_centers_[np.lexsort(started.cluster_centers_.T)],
        theirs.cluster_centers_[order],
        atol=1e-9,
    )
    with pytest.raises(ValueError, match="shape"):
        KMeansQuantizer(k=2, init=CENTERS).fit(X)


def test_float32_stays_float32():
    model = KMeansQuantizer(k=3, seed=0).fit(X.astype(np.float32))
    assert model.cluster_centers_.dtype == np.float32
    assert model.transform(X.astype(np.float32)).dtype == np.float32
    assert KMeansQuantizer(k=3).fit(X).cluster_centers_.dtype == np.float64


def test_bad_parameters_raise_scikit_learns_error():
    from sklearn.utils._param_validation import InvalidParameterError

    for bad in ({"k": 0}, {"attempts": 0}, {"init": "sometimes"}, {"max_iter": -1}):
        with pytest.raises(InvalidParameterError):
            KMeansQuantizer(**bad).fit(X)
    assert issubclass(InvalidParameterError, ValueError)
    assert issubclass(InvalidParameterError, TypeError)


def test_k_above_the_distinct_points_warns_inside_a_search_as_kmeans_does():
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import GridSearchCV

    few = np.repeat(np.array([[0.0, 0.0], [5.0, 5.0], [9.0, 0.0]]), 20, axis=0)
    with pytest.warns(ConvergenceWarning, match="distinct clusters"):
        model = KMeansQuantizer(k=5, seed=0).fit(few)
    assert model.cluster_centers_.shape == (5, 2)
    assert model.inertia_ == 0
    with pytest.warns(ConvergenceWarning):
        search = GridSearchCV(KMeansQuantizer(seed=0), {"k": [2, 3, 6]}, cv=3).fit(few)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()  # every K scored


@pytest.mark.parametrize("max_iter", [1, 2, 5])
def test_n_iter_never_exceeds_max_iter(max_iter):
    model = KMeansQuantizer(k=6, seed=0, max_iter=max_iter, epsilon=0).fit(X)
    assert 1 <= model.n_iter_ <= max_iter


def test_predict_agrees_with_transform_far_from_zero():
    rng = np.random.default_rng(0)
    table = 1e9 + rng.random((2000, 2))
    model = KMeansQuantizer(k=8, seed=0).fit(table)
    assert np.array_equal(model.predict(table), model.transform(table).argmin(axis=1))


@pytest.mark.parametrize("method", METHODS)
def test_pipeline_fits_and_predicts(method):
    pipeline = make_pipeline(StandardScaler(), KMeansQuantizer(k=3, method=method, seed=0))
    labels = pipeline.fit(X).predict(X)
    assert labels.dtype == np.intp and v_measure_score(labels, TRUE_LABELS) > 0.9
    check_is_fitted(pipeline[-1])
    assert is_clusterer(KMeansQuantizer())


def test_unfitted_is_scikit_learns_not_fitted_error():
    from sklearn.exceptions import NotFittedError as SklearnNotFitted

    assert NotFittedError is SklearnNotFitted
    for call in ("predict", "transform", "score", "predict_image"):
        with pytest.raises(SklearnNotFitted):
            getattr(KMeansQuantizer(), call)(X)


# --- ported from scikit-learn's cluster/tests/test_k_means.py ---


@pytest.mark.parametrize("method", METHODS)
def test_kmeans_relocated_clusters(method):
    X_toy = np.array([[0, 0], [0.5, 0], [0.5, 1], [1, 1]])
    km = KMeansQuantizer(k=2, method=method, seed=0).fit(X_toy)
    assert_allclose(km.inertia_, 0.25)
    assert len(set(km.labels_[:2])) == 1 and len(set(km.labels_[2:])) == 1
    assert km.labels_[0] != km.labels_[2]
    assert_allclose(sorted(km.cluster_centers_.tolist()), [[0.25, 0], [0.75, 1]])


@pytest.mark.parametrize("method", METHODS)
def test_relocating_with_duplicates(method):
    X_dup = np.array([[0.0], [0.0], [0.0], [1.0], [2.0], [3.0]])
    km = KMeansQuantizer(k=4, method=method, seed=0).fit(X_dup)
    assert len(np.unique(km.labels_)) == 4 and km.inertia_ == pytest.approx(0.0)


@pytest.mark.parametrize("method", METHODS)
def test_score_max_iter(method):
    X_rand = np.random.RandomState(0).randn(100, 10)
    s1 = KMeansQuantizer(method=method, attempts=1, max_iter=1, seed=0).fit(X_rand).score(X_rand)
    s2 = KMeansQuantizer(method=method, attempts=1, max_iter=10, seed=0).fit(X_rand).score(X_rand)
    assert s2 > s1


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("max_iter", [2, 100])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kmeans_predict(method, max_iter, dtype):
    X_blobs, _ = make_blobs(n_samples=200, n_features=10, centers=10, random_state=0)
    X_blobs = X_blobs.astype(dtype)
    km = KMeansQuantizer(k=10, method=method, init="random", attempts=10, max_iter=max_iter)
    km.fit(X_blobs)
    assert_array_equal(km.predict(X_blobs), km.labels_)
    assert_array_equal(km.fit_predict(X_blobs), km.labels_)
    assert_array_equal(km.predict(km.cluster_centers_), np.arange(10))


def test_sparse_input_is_refused_with_a_message_about_sparse_input():
    from scipy.sparse import csr_matrix

    with pytest.raises(TypeError, match=r"[Ss]parse"):
        KMeansQuantizer(k=3).fit(csr_matrix(X))
    km = KMeansQuantizer(k=3).fit(X)
    with pytest.raises(TypeError, match=r"[Ss]parse"):
        km.predict(csr_matrix(X))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_input(method, dtype):
    X_int = np.array([[0, 0], [10, 10], [12, 9], [-1, 1], [2, 0], [8, 10]], dtype=dtype)
    km = KMeansQuantizer(k=2, method=method, seed=0).fit(X_int)
    assert km.cluster_centers_.dtype == np.float64
    assert_allclose(v_measure_score(km.labels_, [0, 1, 1, 0, 0, 1]), 1.0)


@pytest.mark.parametrize("method", METHODS)
def test_transform(method):
    km = KMeansQuantizer(k=N_CLUSTERS, method=method, seed=0).fit(X)
    Xt = km.transform(km.cluster_centers_)
    assert_allclose(Xt, pairwise_distances(km.cluster_centers_), atol=1e-12)
    assert_array_equal(Xt.diagonal(), np.zeros(N_CLUSTERS))
    assert_allclose(km.transform(X), pairwise_distances(X, km.cluster_centers_))


@pytest.mark.parametrize("method", METHODS)
def test_fit_transform(method):
    X1 = KMeansQuantizer(method=method, seed=0).fit(X).transform(X)
    X2 = KMeansQuantizer(method=method, seed=0).fit_transform(X)
    assert_allclose(X1, X2)


@pytest.mark.parametrize("method", METHODS)
def test_fortran_aligned_data(method):
    km_c = KMeansQuantizer(k=N_CLUSTERS, method=method, seed=0).fit(X)
    km_f = KMeansQuantizer(k=N_CLUSTERS, method=method, seed=0).fit(np.asfortranarray(X))
    assert_allclose(km_c.cluster_centers_, km_f.cluster_centers_)
    assert_array_equal(km_c.labels_, km_f.labels_)


@pytest.mark.parametrize("method", METHODS)
def test_float_precision(method):
    km32 = KMeansQuantizer(k=N_CLUSTERS, method=method, seed=0).fit(X.astype(np.float32))
    km64 = KMeansQuantizer(k=N_CLUSTERS, method=method, seed=0).fit(X)
    assert_allclose(km32.cluster_centers_, km64.cluster_centers_, rtol=1e-4, atol=1e-4)
    assert v_measure_score(km32.labels_, km64.labels_) == pytest.approx(1.0)
    assert_allclose(km32.inertia_, km64.inertia_, rtol=1e-4)


@pytest.mark.parametrize("method", METHODS)
def test_centers_not_mutated_and_input_untouched(method):
    X_copy = X.copy()
    km = KMeansQuantizer(k=N_CLUSTERS, method=method, seed=0).fit(X)
    centers = km.cluster_centers_.copy()
    km.predict(X[:10])
    km.transform(X[:10])
    assert_array_equal(km.cluster_centers_, centers)
    assert_array_equal(X, X_copy)


@pytest.mark.parametrize("method", METHODS)
def test_kmeans_empty_cluster_relocated(method):
    X_two = np.array([[-1.0], [1.0]])
    km = KMeansQuantizer(k=2, method=method, seed=0).fit(X_two)
    assert len(set(km.labels_)) == 2
    assert_allclose(km.cluster_centers_, [[-1.0], [1.0]])  # darkest (lowest) first


@pytest.mark.parametrize("method", METHODS)
def test_inertia(method):
    km = KMeansQuantizer(k=N_CLUSTERS, method=method, seed=0).fit(X)
    distances = ((X - km.cluster_centers_[km.labels_]) ** 2).sum()
    assert_allclose(km.inertia_, distances, rtol=1e-6)
    assert km.score(X) == pytest.approx(-km.inertia_)


@pytest.mark.parametrize("method", METHODS)
def test_kmeans_convergence(method):
    km = KMeansQuantizer(k=5, method=method, max_iter=300, seed=0).fit(X)
    assert 1 <= km.n_iter_ <= 300


def test_feature_names_out_and_set_output():
    km = KMeansQuantizer(k=3).fit(X)
    assert km.get_feature_names_out().tolist() == [
        "kmeansquantizer0",
        "kmeansquantizer1",
        "kmeansquantizer2",
    ]
    pandas = pytest.importorskip("pandas")
    frame = km.set_output(transform="pandas").transform(X)
    assert isinstance(frame, pandas.DataFrame)
    assert list(frame.columns) == km.get_feature_names_out().tolist()


def test_predict_does_not_change_cluster_centers():
    km = KMeansQuantizer(k=3, seed=0).fit(X)
    before = km.cluster_centers_.copy()
    km.predict(X * 2)
    assert_array_equal(km.cluster_centers_, before)


# --- napari-kquant's own: labels, images, palettes ---


@pytest.mark.parametrize("method", METHODS)
def test_labels_are_signed_and_equal_predict_on_a_photo(method, coffee):
    table = coffee.reshape(-1, 3)
    km = KMeansQuantizer(k=8, method=method, seed=0).fit(table)
    assert km.labels_.dtype == np.intp and (km.labels_ - 1).min() == -1
    assert_array_equal(km.predict(table), km.labels_)


def test_fit_predict_agree_with_quantize(astronaut):
    table = astronaut.reshape(-1, 3)
    model = KMeansQuantizer(k=6, seed=2).fit(table)
    reference = quantize(astronaut, 6, seed=2)
    assert_array_equal(model.cluster_centers_, reference.centers)
    assert_array_equal(model.labels_, reference.labels.ravel() - 1)
    assert model.inertia_ == pytest.approx(reference.compactness)
    assert model.n_features_in_ == 3


def test_fit_once_apply_to_many_images(astronaut, coffee):
    model = KMeansQuantizer(k=4, seed=0).fit_image(astronaut)
    labels = model.predict_image(coffee)
    assert labels.shape == coffee.shape[:2] and labels.min() >= 1 and labels.max() <= 4
    image = model.quantize_image(coffee)
    palette = np.clip(np.rint(model.cluster_centers_), 0, 255).astype(np.uint8)
    assert_array_equal(image, palette[labels - 1])
    assert_array_equal(labels, apply_palette(coffee, model.cluster_centers_).labels)
    assert isinstance(model.palette_, Palette)


def test_gray_tables_and_images():
    camera = data.camera()
    model = KMeansQuantizer(k=3).fit(camera.reshape(-1, 1))
    assert model.cluster_centers_.shape == (3, 1)
    assert model.predict(camera.reshape(-1, 1)[:10]).shape == (10,)
    assert model.predict_image(camera).shape == camera.shape


def test_params_clone_and_repr():
    model = KMeansQuantizer(k=3, method="opencv", seed=5)
    assert model.get_params()["k"] == 3 and model.get_params()["method"] == "opencv"
    assert model.set_params(k=4) is model and model.k == 4
    with pytest.raises(ValueError, match="Invalid parameter"):
        model.set_params(colours=3)
    twin = clone(model)
    assert twin is not model and twin.get_params() == model.get_params()
    assert "k=4" in repr(model) and "method='opencv'" in repr(model)


def test_bad_tables_are_refused_as_scikit_learn_refuses_them():
    model = KMeansQuantizer(k=3)
    with pytest.raises(ValueError, match="2D array"):
        model.fit(np.arange(10.0))  # 1-D
    with pytest.raises(ValueError, match="dim 3"):
        model.fit(np.zeros((4, 4, 3)))
    model.fit(X)
    with pytest.raises(ValueError, match="5 features"):
        model.predict(np.zeros((3, 1)))
    with pytest.raises(ValueError, match="NaN"):
        KMeansQuantizer(k=2).fit(np.array([[0.0], [np.nan], [1.0]]))


@pytest.mark.parametrize(
    "options, fit_keywords",
    [
        ({}, {}),
        ({"color_space": "lab"}, {}),
        ({"standardize": True}, {}),
        ({"sample_size": 5_000}, {}),
        ({"init": "first rows"}, {}),
        ({}, {"sample_weight": "ramp"}),
        ({"method": "opencv", "max_iter": 2}, {}),
    ],
    ids=["default", "lab", "standardize", "sample_size", "init array", "weights", "opencv"],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_labels_and_inertia_are_those_of_predict_for_every_fit_path(
    options, fit_keywords, dtype, coffee
):
    """labels_ is predict(X) and inertia_ the brute-force SSE of the labels, whichever way
    the fit went (the fast engine's labels kept, OpenCV's measured again)."""
    table = coffee[::2, ::2].reshape(-1, 3).astype(dtype)
    if dtype != np.uint8:
        table = table / 255.0 if options.get("color_space") == "lab" else table + 1e6
        table = table.astype(dtype)
    options = dict(options)
    if options.get("init") == "first rows":
        options["init"] = np.unique(table, axis=0)[:: len(np.unique(table, axis=0)) // 6][:6]
    if fit_keywords.get("sample_weight") == "ramp":
        fit_keywords = {"sample_weight": np.linspace(0.5, 2.0, len(table))}
    model = KMeansQuantizer(k=6, seed=1, **options).fit(table, **fit_keywords)
    assert_array_equal(model.labels_, model.predict(table))
    if options.get("color_space") or options.get("standardize"):
        return  # (inertia in the space clustered: checked by score below)
    weights = fit_keywords.get("sample_weight")
    centers = model.palette_.centers  # (float64: cluster_centers_ keeps float32 input's dtype)
    difference = table.astype(np.float64) - centers[model.labels_]
    sse = (difference**2).sum(axis=1)
    expected = float(sse @ weights) if weights is not None else float(sse.sum())
    assert model.inertia_ == pytest.approx(expected, rel=1e-9)
    assert -model.score(table, sample_weight=weights) == pytest.approx(expected, rel=1e-9)


def test_labels_of_samples_halfway_between_two_centres_equal_predict():
    """Exact ties: the fit's labels give them to the first centre, as predict() does."""
    X = np.array([[0.0], [0.0], [1.0], [2.0], [3.0]])
    model = KMeansQuantizer(k=2, init=np.array([[2.0], [0.0]])).fit(X)
    assert_array_equal(model.cluster_centers_.ravel(), [0.0, 2.0])  # X[2] is 1 from each
    assert_array_equal(model.labels_, [0, 0, 0, 1, 1])
    assert_array_equal(model.predict(X), model.labels_)
    X = np.array([[0.0], [1.0], [2.0]])  # the middle sample weighs nothing
    weighted = KMeansQuantizer(k=2, init=np.array([[2.0], [0.0]]))
    weighted.fit(X, sample_weight=[1.0, 0.0, 1.0])
    assert_array_equal(weighted.cluster_centers_.ravel(), [0.0, 2.0])
    assert_array_equal(weighted.labels_, [0, 0, 1])
    assert_array_equal(weighted.predict(X), weighted.labels_)
