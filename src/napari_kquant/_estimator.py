"""A scikit-learn style estimator over pixel tables (core: numpy + cv2; sklearn optional)."""

from __future__ import annotations

import numpy as np

from ._core.kmeans import Quantization
from ._core.options import QUANTIZE_DEFAULTS, TABLE_OPTIONS
from ._core.quantize import quantize
from ._core.validate import guess_rgb


class NotFittedError(ValueError, AttributeError):
    """The estimator is used before ``fit``.

    Like scikit-learn's NotFittedError it is both a ValueError and an AttributeError
    (scikit-learn itself is not imported: it is an optional dependency).

    Examples
    --------
    >>> try:
    ...     KMeansQuantizer().predict([[0, 0, 0]])
    ... except NotFittedError as exc:
    ...     print(type(exc).__name__)
    NotFittedError
    """


_PARAMS = ("k", *TABLE_OPTIONS)  # a test checks __init__ takes exactly these


class KMeansQuantizer:
    """k-means colour quantization with scikit-learn's estimator conventions.

    ``fit``/``predict`` work on pixel tables ``(n_pixels, n_channels)`` with 1 (gray)
    or 3 (RGB) channels, and labels are 0-based as in scikit-learn. The image helpers
    (``fit_image``, ``predict_image``, ``quantize_image``) take arrays of any shape and
    give 1-based labels like :func:`napari_kquant.quantize`. Fit once, apply to many
    images. scikit-learn is not needed; where it is installed, ``sklearn.clone`` and
    its pipelines work with this class.

    Parameters
    ----------
    k : int
        Number of clusters.
    method, attempts, max_iter, epsilon, criteria, init, seed, color_space, standardize, sample_size
        As for :func:`napari_kquant.quantize` (the options of
        :class:`napari_kquant._options.Options` that apply to a pixel table).

    Attributes
    ----------
    cluster_centers_ : (k, n_channels) ndarray
        Centres, darkest first.
    labels_ : (n_pixels,) ndarray
        0-based cluster of each training pixel.
    inertia_ : float
        Sum of squared distances of the training pixels to their centres.
    n_features_in_ : int
        Channels seen in ``fit``.
    palette_ : Palette
        The fitted palette (centres, colour space, scaling): ``predict`` and the image
        helpers apply it, :func:`napari_kquant.save_palette` writes it.

    Examples
    --------
    >>> from skimage import data
    >>> table = data.astronaut().reshape(-1, 3)
    >>> model = KMeansQuantizer(k=4, seed=0).fit(table)
    >>> model.cluster_centers_.shape, model.labels_.max(), model.n_features_in_
    ((4, 3), np.uint8(3), 3)
    >>> model.predict(table[:5]).tolist() == model.labels_[:5].tolist()
    True
    >>> model.quantize_image(data.coffee()).shape
    (400, 600, 3)
    """

    def __init__(
        self,
        k: int = 8,
        *,
        method: str = "fast",
        attempts: int = 3,
        max_iter: int = 100,
        epsilon: float | None = None,
        criteria: str | tuple = "eps+max_iter",
        init: str = "kmeans++",
        seed: int | None = 0,
        color_space: str = "rgb",
        standardize: bool = False,
        sample_size: int | None = None,
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

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's parameters (scikit-learn convention)."""
        return {name: getattr(self, name) for name in _PARAMS}

    def set_params(self, **params) -> KMeansQuantizer:
        """Set constructor parameters; unknown names raise ValueError."""
        for name, value in params.items():
            if name not in _PARAMS:
                raise ValueError(f"{name!r} is not a parameter of KMeansQuantizer: {_PARAMS}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        changed = [
            f"{n}={getattr(self, n)!r}"
            for n in _PARAMS
            if n == "k" or getattr(self, n) != QUANTIZE_DEFAULTS.get(n)
        ]
        return f"KMeansQuantizer({', '.join(changed)})"

    def fit(self, X, y=None) -> KMeansQuantizer:
        """Fit the centres on a pixel table ``X`` of shape (n_pixels, 1 or 3)."""
        table, rgb = _as_table(X)
        result = self._quantize(table if rgb else table[:, 0], rgb)
        self.palette_ = result.palette
        self.cluster_centers_ = result.centers
        self.labels_ = result.labels.reshape(-1) - 1
        self.inertia_ = result.compactness
        self.n_features_in_ = table.shape[1]
        return self

    def fit_predict(self, X, y=None) -> np.ndarray:
        """Fit on ``X`` and return its 0-based labels."""
        return self.fit(X).labels_

    def predict(self, X) -> np.ndarray:
        """0-based nearest centre of each row of ``X``."""
        table, rgb = self._checked(X)
        return self.palette_.apply(table if rgb else table[:, 0], rgb=rgb).labels - 1

    def transform(self, X) -> np.ndarray:
        """Euclidean distance of each row of ``X`` to each centre, (n_pixels, k)."""
        table, _ = self._checked(X)
        centers = self.cluster_centers_
        out = np.empty((len(table), len(centers)))
        for start in range(0, len(table), 1 << 16):
            block = table[start : start + (1 << 16)].astype(np.float64)
            out[start : start + len(block)] = np.sqrt(
                ((block[:, None, :] - centers[None]) ** 2).sum(axis=2)
            )
        return out

    def fit_image(self, image, rgb: bool | None = None) -> KMeansQuantizer:
        """Fit on an image of any shape (as :func:`napari_kquant.quantize` reads it)."""
        image = np.asarray(image)
        rgb = guess_rgb(image.shape) if rgb is None else rgb
        table = image.reshape(-1, image.shape[-1])[:, :3] if rgb else image.reshape(-1, 1)
        return self.fit(table)

    def predict_image(self, image, rgb: bool | None = None) -> np.ndarray:
        """1-based labels of an image's pixels, over its spatial shape."""
        return self._apply(image, rgb).labels

    def quantize_image(self, image, rgb: bool | None = None) -> np.ndarray:
        """The image with every pixel replaced by its nearest fitted centre."""
        return self._apply(image, rgb).image

    def _quantize(self, data, rgb) -> Quantization:
        return quantize(data, self.k, rgb=rgb, **{n: getattr(self, n) for n in _PARAMS[1:]})

    def _apply(self, image, rgb) -> Quantization:
        self._check_fitted()
        return self.palette_.apply(image, rgb=rgb)

    def _check_fitted(self):
        if not hasattr(self, "cluster_centers_"):
            raise NotFittedError(
                "this KMeansQuantizer is not fitted yet: call fit() or fit_image() first"
            )

    def _checked(self, X):
        self._check_fitted()
        table, rgb = _as_table(X)
        if table.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {table.shape[1]} channels but the quantizer was fitted on "
                f"{self.n_features_in_}"
            )
        return table, rgb


def _as_table(X):
    """A (n_pixels, 1 or 3) pixel table and whether it is RGB."""
    table = np.asarray(X)
    if table.ndim == 1:
        table = table[:, None]
    if table.ndim != 2 or table.shape[1] not in (1, 3):
        raise ValueError(
            f"X must be a pixel table of shape (n_pixels, 1 or 3), got shape {table.shape}; "
            "use fit_image() for images"
        )
    if np.issubdtype(table.dtype, np.floating) and not np.isfinite(table).all():
        raise ValueError("X contains NaN or inf: every row must be a pixel value")
    return table, table.shape[1] == 3
