"""Input and option checks shared by every entry point (core: numpy + cv2 only).

Each rule lives here once; the core, the lazy path, sweeps, the CLI and the widgets
call these rather than checking on their own. Every check raises a ``ValueError``
that names the input and says what would be accepted.
"""

from __future__ import annotations

import numbers
import secrets

import cv2
import numpy as np

from .options import MAX_ATTEMPTS, MAX_ITER, MAX_K, MAX_SEED, MAX_SWEEP_VALUES, bounds, choices

__all__ = ["MAX_ATTEMPTS", "MAX_ITER", "MAX_K", "MAX_SEED", "MAX_SWEEP_VALUES"]


class InvalidInputError(ValueError):
    """An image, palette or option that napari-kquant refuses; the message says why.

    A ``ValueError``, so ``except ValueError`` catches it too; options of the wrong
    type raise its subclass that is also a ``TypeError``.

    Examples
    --------
    >>> from napari_kquant import quantize
    >>> import numpy as np
    >>> try:
    ...     quantize(np.zeros((4, 4), np.uint8), k="8")
    ... except TypeError as exc:
    ...     print(type(exc).__name__, "-", exc)
    InvalidTypeError - k must be an integer number of colours, got '8'
    """


class NothingToCluster(InvalidInputError):
    """The mask selects no pixel, or every selected pixel is NaN or inf."""


class InvalidTypeError(InvalidInputError, TypeError):
    """An option or input of the wrong type (also a ``TypeError``)."""


MAX_FLOAT_MAGNITUDE = 1e150  # beyond this, squared distances overflow float64
# Magnitudes whose squared distances float32 holds with room to spare: (2 * 1e18)**2
# * channels stays far below float32's maximum (3.4e38). OpenCV's k-means measures in
# float32, so it takes values (and epsilon) up to this; the fast engine switches to
# float64 above it.
FLOAT32_SAFE = 1e18
_FLAGS = {"eps": cv2.TERM_CRITERIA_EPS, "max_iter": cv2.TERM_CRITERIA_MAX_ITER}
# each criteria choice of Options as OpenCV's flags ("eps+max_iter": both)
CRITERIA = {name: sum(_FLAGS[part] for part in name.split("+")) for name in choices("criteria")}


def check_choice(name: str, value, choices) -> str:
    """``value`` if it is one of the string ``choices``."""
    if not isinstance(value, str):
        raise InvalidTypeError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    if value not in choices:
        raise InvalidInputError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_flag(name: str, value) -> bool:
    """A true/false option: Python or numpy booleans only (1, "yes" are refused)."""
    if not isinstance(value, (bool, np.bool_)):
        raise InvalidTypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_k(k) -> int:
    """A number of clusters, 1..MAX_K."""
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise InvalidTypeError(f"k must be an integer number of colours, got {k!r}")
    if k < 1:
        raise InvalidInputError(f"k must be at least 1, got {k}")
    if k > MAX_K:
        raise InvalidInputError(f"k={k} is more than napari-kquant's limit of {MAX_K} colours")
    return int(k)


def check_count(name: str, value) -> int:
    """A positive integer option (attempts, max_iter, sample_size), within its Options bounds."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {value!r}")
    limits = bounds(name)  # Options owns them
    maximum = None if limits is None else int(limits.high)
    if maximum is not None and value > maximum:
        raise InvalidInputError(f"{name}={value} is above the limit of {maximum}")
    return int(value)


def check_seed(seed) -> int:
    """A seed 0..2**31 - 1; None draws one (recorded, so the run can be repeated)."""
    limits = bounds("seed")  # Options owns them
    assert limits is not None
    low, high = int(limits.low), int(limits.high)
    if seed is None:
        return low + secrets.randbelow(high - low + 1)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise InvalidTypeError(f"seed must be an integer {low}..{high} or None, got {seed!r}")
    if not low <= seed <= high:
        raise InvalidInputError(f"seed must be an integer {low}..{high} or None, got {seed}")
    return int(seed)


def check_epsilon(epsilon, maximum: float = MAX_FLOAT_MAGNITUDE) -> float | None:
    """A finite number >= 0, or None (the default)."""
    if epsilon is None:
        return None
    if isinstance(epsilon, (bool, np.bool_)) or not isinstance(epsilon, numbers.Real):
        raise InvalidTypeError(f"epsilon must be a number >= 0 or None, got {epsilon!r}")
    epsilon = float(epsilon)
    if not np.isfinite(epsilon) or epsilon < 0:
        raise InvalidInputError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
    if epsilon > maximum:
        raise InvalidInputError(
            f"epsilon={epsilon:.3g} is above what this method can use ({maximum:.0e})"
        )
    return epsilon


def check_criteria(criteria, max_iter, epsilon) -> tuple[int, int, float | None]:
    """Termination criteria as (OpenCV type, max_iter, epsilon)."""
    if isinstance(criteria, tuple):
        if len(criteria) != 3:
            raise InvalidInputError(
                f"criteria tuple must be (type, max_iter, epsilon), got {criteria!r}"
            )
        criteria_type, max_iter, epsilon = criteria
        if isinstance(criteria_type, bool) or criteria_type not in CRITERIA.values():
            raise InvalidInputError(
                f"criteria type must combine cv2.TERM_CRITERIA_*, got {criteria_type!r}"
            )
    elif isinstance(criteria, str) and criteria in CRITERIA:
        criteria_type = CRITERIA[criteria]
    else:
        raise InvalidInputError(
            f"criteria must be one of {tuple(CRITERIA)} or an OpenCV tuple "
            f"(type, max_iter, epsilon), got {criteria!r}"
        )
    max_iter = check_count("max_iter", max_iter)
    return int(criteria_type), max_iter, check_epsilon(epsilon)


def criteria_name(criteria_type: int) -> str:
    """The name of an OpenCV criteria type."""
    return next(name for name, value in CRITERIA.items() if value == criteria_type)


def guess_rgb(shape: tuple[int, ...]) -> bool:
    """Napari's rule: 3+ dimensions and a last axis of length 3 or 4."""
    return len(shape) >= 3 and shape[-1] in (3, 4)


def check_dtype(dtype) -> np.dtype:
    """Integer or real floating dtypes only (no bool, complex, dates or durations)."""
    dtype = np.dtype(dtype)
    if dtype.kind not in "uif":
        hint = " (convert booleans with image.astype(np.uint8))" if dtype.kind == "b" else ""
        raise InvalidInputError(
            f"image dtype {dtype} is not supported: use an integer or float image{hint}"
        )
    return dtype


def check_image(image, rgb) -> bool:
    """Check dtype and size (reads only the shape and dtype); returns whether it is RGB(A)."""
    check_dtype(image.dtype)
    if image.size == 0:
        raise InvalidInputError(f"image is empty (shape {image.shape}): nothing to quantize")
    if rgb is None:
        return guess_rgb(image.shape)
    rgb = check_flag("rgb", rgb)
    if rgb and (image.ndim < 2 or image.shape[-1] not in (3, 4)):
        raise InvalidInputError(
            f"rgb=True needs a last axis of length 3 or 4, got image of shape {image.shape}"
        )
    return rgb


def check_axis(image, axis) -> int:
    """``channel_axis`` as a non-negative axis of ``image``."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise InvalidTypeError(f"channel_axis must be an integer axis, got {axis!r}")
    if image.ndim < 2 or not -image.ndim <= axis < image.ndim:
        raise InvalidInputError(
            f"channel_axis={axis} is not an axis of an image of shape {image.shape} "
            "(the features need their own axis besides the pixels' axes)"
        )
    return int(axis) % image.ndim


def check_mask_shape(mask, spatial: tuple) -> None:
    """Refuse a mask that does not give one value per pixel."""
    if tuple(mask.shape) != tuple(spatial):
        raise InvalidInputError(
            f"mask has shape {mask.shape} but the image's pixels are {spatial}: "
            "give one mask value per pixel"
        )


def check_mask_dtype(mask) -> None:
    """Masks are boolean, or integer with non-zero meaning inside."""
    if not (mask.dtype == bool or np.issubdtype(mask.dtype, np.integer)):
        raise InvalidInputError(
            f"mask must be boolean (or integer, non-zero = in), not {mask.dtype}"
        )


def working_dtype(dtype) -> np.dtype:
    """The dtype the engines compute pixels of ``dtype`` in (see :func:`working_table`)."""
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        return np.dtype(np.float32)
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def working_table(table: np.ndarray) -> np.ndarray:
    """The pixel table in a dtype the engines compute with exactly.

    Byte-swapped (big-endian) data becomes native, and float16 becomes float32
    (float16 cannot hold the engines' intermediate figures).
    """
    dtype = working_dtype(table.dtype)
    return table if dtype == table.dtype else table.astype(dtype)
