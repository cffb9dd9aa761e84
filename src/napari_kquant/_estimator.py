"""KMeansQuantizer: a scikit-learn estimator over napari-kquant's k-means.

This is the one module that imports scikit-learn (the ``[estimator]`` extra); the
package root imports it on first use of ``KMeansQuantizer``, so ``import
napari_kquant`` stays light.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    ClusterMixin,
    TransformerMixin,
)
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted, validate_data

from ._core.kmeans import Quantization
from ._core.options import TABLE_OPTIONS, Options
from ._core.quantize import quantize
from ._core.spaces import FeatureSpace
from ._core.validate import guess_rgb

__all__ = ["KMeansQuantizer", "NotFittedError"]
_DEFAULTS = Options()


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
        method: str = _DEFAULTS.method,
        attempts: int = _DEFAULTS.attempts,
        max_iter: int = _DEFAULTS.max_iter,
        epsilon: float | None = _DEFAULTS.epsilon,
        criteria: str | tuple = _DEFAULTS.criteria,
        init: str = _DEFAULTS.init,
        seed: int | None = _DEFAULTS.seed,
        color_space: str = _DEFAULTS.color_space,
        standardize: bool = _DEFAULTS.standardize,
        sample_size: int | None = _DEFAULTS.sample_size,
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

    def fit(self, X, y=None):
        """Fit the centres on ``X`` (n_samples, n_features)."""
        X = validate_data(self, X, dtype="numeric", ensure_min_samples=1)
        self._fit_table(X)
        return self

    def fit_predict(self, X, y=None, **kwargs) -> np.ndarray:
        """Fit on ``X`` and return its 0-based labels."""
        return self.fit(X).labels_

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
        space = self._space(X.dtype)
        centers = space.forward(self.cluster_centers_)
        out = np.empty((len(X), len(centers)))
        for start in range(0, len(X), 1 << 16):
            block = space.forward(X[start : start + (1 << 16)]).astype(np.float64)
            out[start : start + len(block)] = np.sqrt(
                ((block[:, None, :] - centers[None]) ** 2).sum(axis=2)
            )
        return out

    def score(self, X, y=None) -> float:
        """Opposite of the k-means objective on ``X`` (higher is better)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype="numeric", reset=False)
        return -float(self._apply_table(X).compactness)

    def fit_image(self, image, rgb: bool | None = None) -> KMeansQuantizer:
        """Fit on an image of any shape (as :func:`napari_kquant.quantize` reads it)."""
        image = np.asarray(image)
        rgb = guess_rgb(image.shape) if rgb is None else rgb
        table = image.reshape(-1, image.shape[-1])[:, :3] if rgb else image.reshape(-1, 1)
        return self.fit(table)

    def predict_image(self, image, rgb: bool | None = None) -> np.ndarray:
        """1-based labels of an image's pixels, over its spatial shape."""
        return self._apply_image(image, rgb).labels

    def quantize_image(self, image, rgb: bool | None = None) -> np.ndarray:
        """The image with every pixel replaced by its nearest fitted centre."""
        return self._apply_image(image, rgb).image

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64"]
        return tags

    @property
    def _n_features_out(self) -> int:
        return len(self.cluster_centers_)

    def _layout(self, n_features: int) -> dict:
        """How quantize() reads a table: RGB for Lab, else the columns as features."""
        return {"rgb": True} if self.color_space == "lab" else {"channel_axis": -1}

    def _fit_table(self, X: np.ndarray) -> None:
        if len(X) < self.k:  # said as scikit-learn says it
            raise ValueError(f"n_samples={len(X)} should be >= k={self.k}")
        options = {name: getattr(self, name) for name in TABLE_OPTIONS}
        result = quantize(X, self.k, **self._layout(X.shape[1]), **options)
        self.palette_ = result.palette
        self.cluster_centers_ = result.centers
        # the exact nearest centre of every sample, as predict() gives it
        applied = self._apply_table(X)
        self.labels_ = applied.labels.reshape(-1).astype(np.intp) - 1
        self.inertia_ = float(applied.compactness)
        self.n_iter_ = int(result.params.get("n_iter", self.max_iter))

    def _apply_table(self, X: np.ndarray) -> Quantization:
        return self.palette_.apply(X, **self._layout(X.shape[1]))

    def _apply_image(self, image, rgb) -> Quantization:
        check_is_fitted(self)
        image = np.asarray(image)
        rgb = guess_rgb(image.shape) if rgb is None else rgb  # as fit_image reads it
        return self.palette_.apply(image, rgb=rgb)

    def _space(self, dtype) -> FeatureSpace:
        return FeatureSpace.for_palette(self.palette_, dtype, self.color_space == "lab")
