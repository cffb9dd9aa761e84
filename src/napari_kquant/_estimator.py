"""KMeansQuantizer: a scikit-learn estimator over napari-kquant's k-means.

This is the one module that imports scikit-learn (the ``[estimator]`` extra); the
package root imports it on first use of ``KMeansQuantizer``, so ``import
napari_kquant`` stays light.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import replace
from numbers import Integral, Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
)
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ._core.cancel import keyboard_interrupts
from ._core.engines import ENGINES
from ._core.kmeans import Job, Quantization, distinct_rows
from ._core.layout import Layout
from ._core.options import (
    DEFAULTS,
    MAX_K,
    TABLE_OPTIONS,
    Options,
    bounds,
    choices,
    kind,
    optional,
)
from ._core.quantize import quantize
from ._core.spaces import SPACES, FeatureSpace

__all__ = ["KMeansQuantizer", "NotFittedError"]
SKLEARN_INIT = {"k-means++": "kmeans++"}  # scikit-learn's spelling of our choices


def _constraints() -> dict:
    """scikit-learn parameter constraints, read from Options' choices and bounds."""
    out = {"k": [Interval(Integral, 1, MAX_K, closed="both")]}
    for name in TABLE_OPTIONS:
        option_kind = kind(name)
        if option_kind == "choice":
            allowed = set(choices(name))
            if name == "init":
                out[name] = [StrOptions(allowed | set(SKLEARN_INIT)), "array-like"]
            elif name == "criteria":
                out[name] = [StrOptions(allowed), tuple]
            else:
                out[name] = [StrOptions(allowed)]
        elif option_kind == "flag":
            out[name] = ["boolean"]
        else:
            limits = bounds(name)
            number = Integral if option_kind == "int" else Real
            low, high = (limits.low, limits.high) if limits else (0, None)
            out[name] = [Interval(number, low, high, closed="both" if high else "left")]
        if optional(name):
            out[name].append(None)
    return out


class KMeansQuantizer(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator
):
    """k-means colour quantization as a scikit-learn estimator.

    ``fit``/``predict``/``transform`` work on pixel tables ``(n_samples, n_features)``
    (any number of features: 3 for RGB, 1 for gray, channels stacked as features),
    with 0-based labels as in scikit-learn. The image helpers (``fit_image``,
    ``predict_image``, ``quantize_image``) take arrays of any shape and give 1-based
    labels like :func:`napari_kquant.quantize`. Fit once, apply to many images; it
    works in pipelines, ``clone``, ``GridSearchCV`` and ``set_output``.

    Parameters
    ----------
    k : int
        Number of clusters.
    method, attempts, max_iter, epsilon, criteria, init, seed, color_space, standardize, sample_size
        As for :func:`napari_kquant.quantize` (the options that apply to a pixel
        table). ``color_space="lab"`` needs 3 features (RGB).

    Attributes
    ----------
    cluster_centers_ : (k, n_features) ndarray
        Centres, darkest first.
    labels_ : (n_samples,) ndarray of intp
        0-based nearest centre of each training sample (``predict(X)`` on the
        training data gives the same; with ``method="opencv"`` OpenCV's own float32
        labelling is finished with an exact nearest-centre labelling for that).
    inertia_ : float
        Sum of squared distances of the training samples to their centres, in the
        space clustered (Lab or z-scored units when asked for).
    n_iter_ : int
        Lloyd iterations of the run that gave the centres (for ``"opencv"``, which
        does not report them, ``max_iter``: an upper bound).
    n_features_in_ : int
        Features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Their names, when ``X`` had string column names.
    palette_ : Palette
        The fitted palette (centres, colour space, scaling): ``predict`` and the image
        helpers apply it, :func:`napari_kquant.save_palette` writes it.

    Examples
    --------
    >>> from skimage import data
    >>> table = data.astronaut().reshape(-1, 3)
    >>> model = KMeansQuantizer(k=4, seed=0).fit(table)
    >>> model.cluster_centers_.shape, model.labels_.dtype == np.intp, model.n_features_in_
    ((4, 3), True, 3)
    >>> bool((model.predict(table) == model.labels_).all())
    True
    >>> model.quantize_image(data.coffee()).shape
    (400, 600, 3)
    """

    def __init__(
        self,
        k: int = 8,
        *,
        method: str = DEFAULTS.method,
        attempts: int = DEFAULTS.attempts,
        max_iter: int = DEFAULTS.max_iter,
        epsilon: float | None = DEFAULTS.epsilon,
        criteria: str | tuple = DEFAULTS.criteria,
        init: str = DEFAULTS.init,
        seed: int | None = DEFAULTS.seed,
        color_space: str = DEFAULTS.color_space,
        standardize: bool = DEFAULTS.standardize,
        sample_size: int | None = DEFAULTS.sample_size,
    ):
        self.k = k
        self.method = method
        self.attempts = attempts
        self.max_iter = max_iter
        self.epsilon = epsilon
        self.criteria = criteria
        self.init = init
        self.seed = seed
        self.color_space = color_space
        self.standardize = standardize
        self.sample_size = sample_size

    _parameter_constraints = _constraints()

    def fit(self, X, y=None, sample_weight=None):
        """Fit the centres on ``X`` (n_samples, n_features), weighted by ``sample_weight``."""
        self._validate_params()
        X = validate_data(self, X, dtype="numeric", ensure_min_samples=1)
        weights = None
        if sample_weight is not None:
            weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
        self._fit_table(X, weights)
        return self

    def fit_predict(self, X, y=None, sample_weight=None) -> np.ndarray:
        """Fit on ``X`` (weighted by ``sample_weight``) and return its 0-based labels."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def predict(self, X) -> np.ndarray:
        """0-based nearest centre of each sample of ``X``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype="numeric", reset=False)
        return self._apply_table(X).labels.reshape(-1).astype(np.intp) - 1

    def transform(self, X) -> np.ndarray:
        """Distance of each sample of ``X`` to each centre, (n_samples, k).

        Measured in the space clustered (Euclidean in the values, Lab or z-scored).
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype="numeric", reset=False)
        return self._distances(X, _float_dtype(X))

    def _distances(self, X, dtype) -> np.ndarray:
        """(n_samples, k) distances to the centres, measured in float64, stored as ``dtype``."""
        space = self._space(X.dtype)
        # the palette's float64 centres (cluster_centers_ keeps float32 input's dtype)
        centers = space.forward(self.palette_.centers)
        out = np.empty((len(X), len(centers)), dtype=dtype)
        for start in range(0, len(X), 1 << 16):
            block = space.forward(X[start : start + (1 << 16)]).astype(np.float64)
            out[start : start + len(block)] = np.sqrt(
                ((block[:, None, :] - centers[None]) ** 2).sum(axis=2)
            )
        return out

    def score(self, X, y=None, sample_weight=None) -> float:
        """Opposite of the (weighted) k-means objective on ``X`` (higher is better)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype="numeric", reset=False)
        return -self._inertia(X, sample_weight)

    def fit_image(self, image, rgb: bool | None = None) -> KMeansQuantizer:
        """Fit on an image of any shape (as :func:`napari_kquant.quantize` reads it)."""
        image = np.asarray(image)
        layout = Layout.of(image, rgb)
        return self.fit(layout.table(layout.arrange(image)))

    def predict_image(self, image, rgb: bool | None = None) -> np.ndarray:
        """1-based labels of an image's pixels, over its spatial shape."""
        return self._apply_image(image, rgb).labels

    def quantize_image(self, image, rgb: bool | None = None) -> np.ndarray:
        """The image with every pixel replaced by its nearest fitted centre."""
        return self._apply_image(image, rgb).image

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    @property
    def _n_features_out(self) -> int:
        return len(self.cluster_centers_)

    def _layout(self) -> dict:
        """How quantize() reads a table: colour for a colour space (Lab), else features."""
        return {"rgb": True} if self._reads_colour() else {"channel_axis": -1}

    def _reads_colour(self) -> bool:
        return SPACES[self.color_space].reads_colour

    def _fit_table(self, X: np.ndarray, weights: np.ndarray | None) -> None:
        if len(X) < self.k:  # said as scikit-learn says it
            raise ValueError(f"n_samples={len(X)} should be >= k={self.k}")
        options = {name: getattr(self, name) for name in TABLE_OPTIONS}
        start = None
        if isinstance(self.init, str):
            options["init"] = SKLEARN_INIT.get(self.init, self.init)
        else:
            start = np.asarray(self.init, dtype=np.float64)
            if start.shape != (self.k, X.shape[1]):
                raise ValueError(
                    f"init must be an array of shape (k, n_features) = {(self.k, X.shape[1])}, "
                    f"got {start.shape}"
                )
            options["init"] = "kmeans++"
        distinct = distinct_rows(X, self.k)
        k = self.k
        if distinct < k:  # as KMeans: a warning, and the distinct points as centres
            warnings.warn(
                f"Number of distinct clusters ({distinct}) found smaller than k ({k}). "
                "Possibly due to duplicate points in X.",
                ConvergenceWarning,
                stacklevel=3,
            )
            k = distinct
            start = None if start is None else start[:k]
        result = self._fit(X, k, weights, start, options)
        self.palette_ = result.palette
        if k < self.k:  # the last centre repeated, so that there are k (as KMeans has)
            centers = np.vstack([result.centers, np.repeat(result.centers[-1:], self.k - k, 0)])
            self.palette_ = replace(result.palette, centers=centers, counts=None)
        self.cluster_centers_ = self.palette_.centers.astype(_float_dtype(X), copy=False)
        # Every sample's exact nearest centre, as predict() gives it. The fast engine's
        # fit (and a fit on a sample, which labels by applying the palette) has those
        # labels already; OpenCV's are those of its last assignment, before the
        # centres' last update: the palette is applied again. (Padded centres never
        # win: a tie goes to the first.)
        nearest = ENGINES[self.method].nearest_labels or self.sample_size is not None
        applied = result if nearest else self._apply_table(X)
        self.labels_ = applied.labels.reshape(-1).astype(np.intp) - 1
        self.inertia_ = self._inertia(X, weights, applied)
        self.n_iter_ = min(int(result.params.get("n_iter", self.max_iter)), self.max_iter)

    @keyboard_interrupts
    def _fit(self, X, k, weights, start, options) -> Quantization:
        """The fit: quantize()'s job, with the weights or initial centres, unrendered.

        No quantized image is made (the estimator keeps the palette and labels);
        quantize() itself fits with ``sample_size`` (on a sample, every sample labelled).
        """
        started = time.perf_counter()
        if options.get("sample_size") is not None:
            if weights is not None or start is not None:
                raise ValueError("sample_weight and init arrays fit every sample: drop sample_size")
            return quantize(X, k, **self._layout(), **options)
        options.pop("sample_size", None)
        job = Job.of(X, Options.picked(options), **self._layout())
        job = job.with_samples(weights, start)
        return job.result(job.fit(k), started, image=False)

    def _inertia(self, X, weights, fitted=None) -> float:
        """Sum of (weighted) squared distances to the nearest centres, in the space clustered.

        ``fitted``: a result labelling ``X`` with the fitted palette (its compactness
        is that sum, unweighted).
        """
        if weights is None and fitted is not None:
            return float(fitted.compactness)
        # (in float64: float32 distances, as transform() gives them for float32 input,
        # lose the sum's digits far from zero)
        distances = self._distances(X, np.float64).min(axis=1) ** 2
        weights = np.ones(len(X)) if weights is None else _check_sample_weight(weights, X)
        return float(distances @ weights)

    def _apply_table(self, X: np.ndarray) -> Quantization:
        return self.palette_.apply(X, **self._layout())

    def _apply_image(self, image, rgb) -> Quantization:
        check_is_fitted(self)
        image = np.asarray(image)
        # read as fit_image reads it (not as the palette's tables were: columns)
        return self.palette_.apply(image, rgb=Layout.of(image, rgb).channels)

    def _space(self, dtype) -> FeatureSpace:
        return FeatureSpace.for_palette(self.palette_, dtype, self._reads_colour())


def _float_dtype(X) -> np.dtype:
    """float32 for float32 input (as KMeans keeps it), float64 otherwise."""
    return np.dtype(np.float32) if X.dtype == np.float32 else np.dtype(np.float64)
