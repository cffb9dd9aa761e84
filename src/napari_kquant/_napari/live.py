"""Live preview, the adapter's part: what the viewer shows, quantized (no Qt).

A live run quantizes what the viewer shows: the current plane of a stack (the other
planes keep their source values, as with "current plane only"). Above
:data:`PREVIEW_PIXELS` a run has two stages: a *preview* whose palette is fitted on
the visible region of the plane, read every n-th pixel (about
:data:`PREVIEW_FIT_PIXELS`), and applied to the whole image; then, once the person
stops changing things, the *full* run, fitted on every pixel of the plane. Both
update the same two live layers (:func:`.layers.show_live_result`).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from .._core.kinds import is_lazy, is_multiscale
from .._core.layout import Layout
from .._core.quantize import apply_palette, quantize
from .request import Request, current_plane

if TYPE_CHECKING:
    import napari
    from napari.layers import Image

    from .._core.kmeans import Quantization

# Above this many pixels in what a run reads, a preview fitted on the visible region
# comes first (about 4 Mpx: larger images take more than ~0.1 s to fit).
PREVIEW_PIXELS = 4_000_000

# The preview's palette is fitted on about this many pixels of the visible region.
PREVIEW_FIT_PIXELS = 1 << 20

# Above this many pixels in the whole image, live is off: each change would run long
# and hold another copy of the image.
LIVE_MAX_PIXELS = 64_000_000


def live_refusal(layer: Image | None) -> str | None:
    """Why live cannot run on ``layer`` (None: it can)."""
    if layer is None:
        return None
    data = layer.data
    if is_multiscale(data) or layer.multiscale:
        return "live is off for multiscale layers: use Run (each K is computed lazily)"
    if is_lazy(data):
        return "live is off for lazy (dask, zarr) layers: use Run (chunks are computed as viewed)"
    pixels = math.prod(data.shape[:-1] if layer.rgb else data.shape)
    if pixels > LIVE_MAX_PIXELS:
        return (
            f"live is off for images over {LIVE_MAX_PIXELS / 1e6:.0f} Mpx "
            f"({pixels / 1e6:.0f} Mpx here): use Run"
        )
    return None


def _spatial(request: Request) -> tuple:
    """The pixel axes of the request's data (its channels last, as the adapter gives them)."""
    options = request.options
    layout = Layout.of(request.data, options.get("rgb"), options.get("channel_axis"))
    return request.data.shape[:-1] if layout.channels else request.data.shape


def plane_pixels(request: Request) -> int:
    """Pixels a live run of ``request`` reads: one plane of a stack, or the image."""
    return math.prod(_spatial(request)[-2:])


def visible_region(viewer: napari.Viewer, layer: Image, request: Request) -> np.ndarray:
    """The part of the current plane the canvas shows, every n-th pixel (a numpy copy).

    At most about :data:`PREVIEW_FIT_PIXELS`; the whole plane when the view shows
    nothing of it (the layer's corners not known yet).
    """
    data = request.data
    spatial = _spatial(request)
    index = current_plane(viewer, layer, spatial)
    corners = np.asarray(layer.corner_pixels)[:, -2:]
    (top, left), (bottom, right) = corners[0], corners[1] + 1
    if bottom - top < 2 or right - left < 2:
        top, left, (bottom, right) = 0, 0, spatial[-2:]
    step = max(1, math.ceil(math.sqrt((bottom - top) * (right - left) / PREVIEW_FIT_PIXELS)))
    return np.ascontiguousarray(data[(*index, slice(top, bottom, step), slice(left, right, step))])


def live_quantize(request: Request, k: int, fit_options: dict, region=None) -> Quantization:
    """The live result of ``request`` at ``k``: fitted on ``region`` when given (a preview).

    The preview's palette, fitted on the region, labels every pixel of the request
    (its mask and plane included), so the layers keep their shape between stages.
    """
    options = request.options
    if region is None:
        return quantize(request.data, k, **options, **fit_options)
    layout = {key: options[key] for key in ("rgb", "channel_axis") if key in options}
    fitted = quantize(region, k, **layout, **fit_options)
    result = apply_palette(request.data, fitted.palette, mask=options.get("mask"), **layout)
    params = {
        **fitted.params,
        "preview": f"fitted on the visible region ({region.shape[0]}x{region.shape[1]} px)",
    }
    return replace(result, params=params)
