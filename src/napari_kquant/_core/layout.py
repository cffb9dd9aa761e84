"""Where an image keeps its channels, and what they are (core: numpy, dask on demand).

One value, :class:`Layout`, answers it for every path (eager, lazy, per plane): no
channel axis (gray), a last axis of colour (RGB/RGBA: ``rgb``), or a channel axis of
features anywhere (``channel_axis``). It is read from the shape and dtype alone, so
lazy data stays lazy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .validate import InvalidInputError, check_axis, check_flag, check_image


@dataclass(frozen=True)
class Layout:
    """How an image of ``ndim`` axes keeps its channels.

    ``channels``: it has a channel axis; ``features``: that axis holds features (from
    ``channel_axis``), not colour (``rgb``); ``axis``: where the channel axis is in the
    image as given (non-negative; None without one).
    """

    ndim: int
    channels: bool
    features: bool
    axis: int | None

    @classmethod
    def of(cls, image, rgb=None, channel_axis=None) -> Layout:
        """The layout of ``image`` (numpy or dask) for quantize()'s ``rgb``/``channel_axis``.

        ``rgb=None`` guesses colour from the shape (a last axis of 3 or 4); bad values
        raise :class:`InvalidInputError` naming the problem.
        """
        if channel_axis is not None:
            if rgb is not None and check_flag("rgb", rgb):
                raise InvalidInputError("give rgb=True or channel_axis, not both")
            axis = check_axis(image, channel_axis)
            check_image(_moved_last(image, axis), False)
            return cls(image.ndim, True, True, axis)
        colour = check_image(image, rgb)  # reads only shape, dtype and size
        return cls(image.ndim, bool(colour), False, image.ndim - 1 if colour else None)

    @property
    def rgb(self) -> bool:
        """Whether the channels are colour (RGB/RGBA), as quantize()'s ``rgb``."""
        return self.channels and not self.features

    @property
    def channel_axis(self) -> int | None:
        """The features' axis as given, as quantize()'s ``channel_axis`` (None for colour)."""
        return self.axis if self.features else None

    def clustered(self, width: int) -> int:
        """Channels clustered of ``width``: colour without alpha, every feature, or 1."""
        if not self.channels:
            return 1
        return width if self.features else min(width, 3)

    def arrange(self, image):
        """``image`` with its channels last (a numpy view, or a dask array in one chunk)."""
        if not self.channels:
            return image
        moved = image
        if self.features and self.axis is not None:  # (features always have an axis)
            moved = _moved_last(image, self.axis)
        if isinstance(moved, np.ndarray):
            return moved
        import dask.array as da

        moved = da.asarray(moved)
        return moved.rechunk({moved.ndim - 1: -1})

    def table(self, arranged):
        """An image with its channels last (:meth:`arrange`) as an (N, clustered) table."""
        if not self.channels:
            return arranged.reshape(-1, 1)
        return arranged.reshape(-1, arranged.shape[-1])[:, : self.clustered(arranged.shape[-1])]

    def restore(self, image):
        """An array with the channels last (from :meth:`arrange`) back in the image's order."""
        if self.features and self.axis != self.ndim - 1:
            return _moved_last(image, -1, back_to=self.axis)
        return image


def _moved_last(image, axis: int, back_to: int | None = None):
    """``image`` with ``axis`` moved last (or, with ``back_to``, the last axis moved there)."""
    source, target = (axis, -1) if back_to is None else (-1, back_to)
    if isinstance(image, np.ndarray):
        return np.moveaxis(image, source, target)
    import dask.array as da

    return da.moveaxis(da.asarray(image), source, target)
