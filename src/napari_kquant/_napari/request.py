"""What to quantize, gathered from napari layers: the array, options, names and provenance."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels, Layer, Shapes

from .._core.kinds import is_lazy, is_multiscale, takes_lazy_path
from .._core.options import choices

if TYPE_CHECKING:
    import napari


def layer_array(layer: Image):
    """The pixels of an image layer: a numpy array, a lazy array, or a list of levels.

    Lazy data (dask, zarr) stays lazy and a multiscale layer gives its levels, so the
    core quantizes them without loading them whole.
    """
    if not isinstance(layer, Image):
        raise ValueError(
            f"layer {getattr(layer, 'name', layer)!r} is a {type(layer).__name__}, "
            "not an image layer: choose an image layer"
        )
    if layer.multiscale:
        return list(layer.data)
    data = layer.data
    return data if is_lazy(data) else np.asarray(data)


# quantize()'s choices (Options owns them) and the adapter's own: the plane the viewer shows
PLANES = (*choices("planes"), "current")


@dataclass(frozen=True)
class Request:
    """What to quantize, gathered from layers: the array, quantize() options, provenance.

    ``layers`` are the source image layers (several when they are clustered as
    features); ``recorded`` goes into the result layers' metadata; ``tags`` name
    the experiment after ``"... K=<k>"``. Frozen: a variant (another palette, say)
    is a new request (:meth:`with_palette`), so a request a worker runs with never
    changes under it.
    """

    layers: tuple[Image, ...]
    data: Any
    options: dict[str, Any]
    recorded: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    @classmethod
    def of(cls, source: Image | Request) -> Request:
        """``source`` itself, or a request naming one layer (no data: for names only)."""
        return source if isinstance(source, Request) else cls((source,), None, {})

    @property
    def name(self) -> str:
        """The sources' names, joined."""
        return "+".join(layer.name for layer in self.layers)

    @property
    def suffix(self) -> str:
        """What tells this experiment's layers apart after ``"... K=<k>"``."""
        return name_suffix(self.tags)

    def image_suffix(self, layer: Image) -> str:
        """The suffix of ``layer``'s quantized image (it names the features it was part of)."""
        if len(self.layers) == 1:
            return self.suffix
        return name_suffix([f"of {self.name}", *self.tags])

    def with_palette(self, palette_layer: Layer, palette_source: str) -> Request:
        """The request for apply_palette() with ``palette_layer``'s palette instead.

        The palette's own colour space and scaling apply, not the fit options', and
        there is one palette for the stack; the names and metadata say whose palette.
        """
        fitted = experiment_tags({"color_space": "lab", "standardize": True})
        return replace(
            self,
            options={key: v for key, v in self.options.items() if key != "planes"},
            recorded={**self.recorded, "palette_layer": palette_layer.name},
            tags=(*(t for t in self.tags if t not in fitted), f"palette of {palette_source}"),
        )


def request_for(
    viewer: napari.Viewer | None,
    layers,
    *,
    mask: Labels | Shapes | None = None,
    planes: str = "stack",
    fit_options: dict | None = None,
) -> Request:
    """Gather the array and options to quantize ``layers`` (one, or several as features).

    ``mask``: a labels layer (its non-zero pixels) or a shapes layer (its shapes,
    rasterised onto the image) restricting the pixels clustered. ``planes``:
    ``"stack"`` (one palette), ``"each"`` (a palette per 2D plane) or ``"current"``
    (only the plane the viewer shows; needs ``viewer``). ``fit_options``: the
    quantize() options the request will run with; those that make another experiment
    (colour space, standardize) name it, with the mask, features and planes.
    """
    layers = (layers,) if isinstance(layers, Layer) else tuple(layers)
    if not layers:
        raise ValueError("no image layer to quantize: choose an image layer")
    if planes not in PLANES:
        raise ValueError(f"planes must be one of {PLANES}, got {planes!r}")
    data, options, recorded, lazy = _source(layers, planes)
    full = data[0] if is_multiscale(data) else data
    spatial = full.shape[:-1] if len(layers) > 1 or layers[0].rgb else full.shape
    keep, tags = None, []
    if mask is not None:
        if is_multiscale(data):
            raise ValueError("masks apply to single-resolution layers, not to a multiscale one")
        keep = mask_array(mask, layers[0], spatial)
        recorded["mask_layer"] = mask.name
        tags.append(f"mask {mask.name}")
    tags.extend(experiment_tags(fit_options or {}))
    if planes == "current":
        if is_multiscale(data):
            raise ValueError("'current plane only' needs a single-resolution layer")
        index = current_plane(viewer, layers[0], spatial)
        plane = _plane_mask(spatial, index, full.chunks[: len(spatial)] if lazy else None)
        keep = plane if keep is None else keep & plane
        recorded["plane"] = list(index)
        if index:
            tags.append(f"plane {','.join(map(str, index))}")
    elif planes == "each" and len(spatial) > 2:
        tags.append("per plane")
    options["mask"] = keep
    options["planes"] = "each" if planes == "each" else "stack"
    recorded["planes"] = planes
    return Request(layers, data, options, recorded, tuple(tags))


def _source(layers: tuple, planes: str) -> tuple[Any, dict, dict, bool]:
    """The array to cluster, its quantize() options, metadata, and whether it is lazy.

    One layer's array, or several single-channel layers stacked as features.
    """
    arrays = [layer_array(layer) for layer in layers]
    if len(layers) > 1 and any(is_multiscale(a) for a in arrays):
        raise ValueError("multiscale layers cannot be combined as features: use one layer")
    lazy = any(takes_lazy_path(a) for a in arrays)
    if lazy and planes == "each":
        raise ValueError(
            "a palette per plane needs the stack in memory: this layer is lazy; choose "
            "'one palette for the stack' or 'current plane only'"
        )
    if len(layers) == 1:
        return arrays[0], {"rgb": layers[0].rgb}, {}, lazy
    for layer, array in zip(layers, arrays, strict=True):
        if layer.rgb:
            raise ValueError(
                f"layer {layer.name!r} is RGB: features are single-channel layers "
                "(open channels with channel_axis so each is its own layer)"
            )
        if array.shape != arrays[0].shape:
            raise ValueError(
                f"layers {layers[0].name!r} {arrays[0].shape} and {layer.name!r} "
                f"{array.shape} differ in shape: features need layers of the same shape"
            )
    stack = _dask().stack if lazy else np.stack
    recorded = {"feature_layers": [layer.name for layer in layers]}
    return stack(arrays, axis=-1), {"channel_axis": -1}, recorded, lazy


def _plane_mask(spatial: tuple, index: tuple, chunks=None):
    """True on the plane ``index`` of a stack of ``spatial`` pixels.

    Lazy with ``chunks``: nothing the size of the image is allocated.
    """
    if chunks is not None:
        plane = _dask().zeros(spatial, dtype=bool, chunks=chunks)
    else:
        plane = np.zeros(spatial, dtype=bool)
    plane[index] = True
    return plane


def name_suffix(tags) -> str:
    """What follows ``"... K=<k>"`` in a result's layer names: its tags in brackets."""
    return f" ({', '.join(tags)})" if tags else ""


def experiment_tags(fit_options: dict) -> list[str]:
    """The quantize() options that make a different experiment, as words for a layer name.

    The colour space and z-scoring change what is clustered; method, seed or
    attempts only change how well (a re-run with those replaces the layers).
    """
    tags = []
    space = fit_options.get("color_space") or "rgb"
    if space != "rgb":
        tags.append(space)
    if fit_options.get("standardize"):
        tags.append("z-scored")
    return tags


def _dask():
    import dask.array as da

    return da


def current_plane(viewer: napari.Viewer | None, layer: Image, spatial: tuple) -> tuple:
    """Index of the 2D plane of ``layer`` that the viewer shows (its leading axes)."""
    if len(spatial) <= 2:
        return ()
    if viewer is None:
        raise ValueError("planes='current' needs the viewer whose current plane to use")
    position = np.asarray(layer.world_to_data(viewer.dims.point))[: len(spatial) - 2]
    return tuple(
        int(np.clip(np.round(p), 0, n - 1)) for p, n in zip(position, spatial[:-2], strict=True)
    )


def mask_array(mask: Layer, image: Image, spatial: tuple) -> np.ndarray:
    """A boolean mask over ``image``'s pixels from a labels or shapes layer.

    Labels: the non-zero pixels; the layer must have the image's pixel shape (a 2D
    labels layer over a stack applies to every plane). Shapes: the shapes rasterised
    onto the image's pixel grid, through both layers' scale and translate (a 2D
    shapes layer over a stack applies to every plane).
    """
    if isinstance(mask, Labels):
        data = mask.data[0] if mask.multiscale else mask.data
        values = (data if is_lazy(data) else np.asarray(data)) != 0
        if values.shape != tuple(spatial[-values.ndim :]) or values.ndim > len(spatial):
            raise ValueError(
                f"mask layer {mask.name!r} has shape {values.shape} but {image.name!r} has "
                f"{tuple(spatial)} pixels: draw the mask on the image's grid"
            )
        return (
            _dask().broadcast_to(values, spatial)
            if is_lazy(values)
            else np.broadcast_to(values, spatial)
        )
    if isinstance(mask, Shapes):
        if not len(mask.data):
            raise ValueError(f"shapes layer {mask.name!r} holds no shapes to mask with")
        ndim = min(mask.ndim, len(spatial))
        # shape vertices -> world -> the image's pixel coordinates (last ndim axes)
        scale = np.asarray(image.scale)[-ndim:] / np.asarray(mask.scale)[-ndim:]
        shift = (np.asarray(mask.translate)[-ndim:] - np.asarray(image.translate)[-ndim:]) / (
            np.asarray(image.scale)[-ndim:]
        )
        vertices = [np.asarray(v)[:, -ndim:] / scale + shift for v in mask.data]
        grid_shapes = Shapes(vertices, shape_type=mask.shape_type, ndim=ndim)
        values = grid_shapes.to_masks(mask_shape=tuple(spatial[-ndim:])).any(axis=0)
        return np.broadcast_to(values, spatial)
    raise ValueError(
        f"mask layer {getattr(mask, 'name', mask)!r} is a {type(mask).__name__}: "
        "use a labels layer (non-zero pixels) or a shapes layer"
    )
