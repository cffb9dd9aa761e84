"""napari adapter: image layer -> array and options; Quantization -> layers."""

from __future__ import annotations

import contextlib
import re
import warnings
import weakref
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.layers import Image, Labels, Layer, Shapes
from napari.utils import DirectLabelColormap
from napari.utils.transforms import Affine

from .._core.fast.contract import label_dtype
from .._core.kmeans import Quantization
from .._core.palette import Palette, display_colors, distinct_colors
from .._core.placement import Placement
from .._core.quantize import apply_palette, quantize
from .._core.sweep import iter_sweep
from .._io.palette_files import PALETTE_FORMATS, save_palette
from .request import Request, request_for
from .tables import features_table, layer_channel_names, stacked_table

if TYPE_CHECKING:
    import napari

METADATA_KEY = "napari_kquant"
# Spatial placement copied from the source so the results overlay it exactly.
TRANSFORMS = ("scale", "translate", "rotate", "shear", "affine", "units", "axis_labels")
TRANSPARENT = (0.0, 0.0, 0.0, 0.0)


def result_names(source_name: str, k: int, suffix: str = "") -> tuple[str, str]:
    """Names of the quantized image layer and the labels layer for ``k`` clusters."""
    return _names(source_name, f"K={k}{suffix}")


def _names(source_name: str, tail: str) -> tuple[str, str]:
    """``"<source> quantized <tail>"`` and ``"<source> clusters <tail>"``, without dots.

    napari's File > Save Selected Layers proposes the layer's name as the file
    name: a dot in it (``cells.ome``, from ``cells.ome.tif``) would read as a file
    extension no writer knows, and the save fails. Dots become underscores.
    """
    return tuple(f"{source_name} {kind} {tail}".replace(".", "_") for kind in KINDS)


KINDS = ("quantized", "clusters")


def live_names(source_name: str) -> tuple[str, str]:
    """Names of the live preview's quantized image and labels layers."""
    return _names(source_name, "live")


def transform_kwargs(layer: Layer) -> dict[str, Any]:
    """The source layer's placement, ready to pass to a new layer."""
    kwargs = {name: getattr(layer, name) for name in TRANSFORMS}
    kwargs["affine"] = layer.affine.affine_matrix
    kwargs["units"] = tuple(str(u) for u in layer.units)
    return kwargs


def placement_of(layer: Layer) -> Placement:
    """The layer's calibration for an export: scale, translate, units and axis names.

    napari's default axis labels ("-2", "-1", "axis -1") name nothing: the export then
    uses t, z, y, x. Units are napari's (pint) names: "pixel" is no unit.
    """
    labels = tuple(str(name) for name in layer.axis_labels)
    named = not all(re.fullmatch(r"(axis )?-?\d+", name) for name in labels)
    return Placement(
        scale=tuple(float(v) for v in layer.scale),
        translate=tuple(float(v) for v in layer.translate),
        units=tuple(str(u) for u in layer.units),
        axis_names=labels if named else None,
    )


def label_colors(layer: Image | list[Image], centers: np.ndarray) -> np.ndarray:
    """RGBA colour of each centre as the source layer displays it.

    For several layers (features) a centre has no one colour (mixing the channels'
    colours makes pale, alike tints), so the clusters get distinct colours
    (:func:`distinct_colors`).
    """
    if isinstance(layer, (list, tuple)):
        if len(layer) == 1:
            return label_colors(layer[0], centers)
        return distinct_colors(len(centers))
    low, high = (float(v) for v in layer.contrast_limits)
    if layer.rgb:
        return display_colors(centers, low, high)
    span = high - low if high > low else 1.0
    return np.asarray(layer.colormap.map(np.clip((centers[:, 0] - low) / span, 0.0, 1.0)))


def result_metadata(
    result: Quantization, source_name: str, recorded: dict | None = None
) -> dict[str, Any]:
    """Everything needed to know how a result was made, and its palette.

    ``palette`` is the :meth:`Palette.to_dict` serialisation (what a JSON palette file
    holds); results with a palette per plane have only ``centers`` and ``counts``.
    """
    info = {
        **result.params,
        **(recorded or {}),
        "source": source_name,
        "compactness": result.compactness,
        "elapsed_s": result.elapsed,
        "centers": result.centers.tolist(),
        "counts": result.counts.tolist(),
    }
    if result.params.get("planes") != "each":
        palette = result.palette
        provenance = {"source": source_name, **(recorded or {})}
        info["palette"] = replace(palette, params={**palette.params, **provenance}).to_dict()
    return {METADATA_KEY: info}


def colormap_for(colors, values=None) -> DirectLabelColormap:
    """Label ``values[i]`` (default i + 1) in ``colors[i]``; 0 and unknown transparent."""
    values = range(1, len(colors) + 1) if values is None else values
    color_dict = {None: TRANSPARENT, 0: TRANSPARENT}
    color_dict.update({int(v): tuple(c) for v, c in zip(values, colors, strict=True)})
    return DirectLabelColormap(color_dict=color_dict)


def quantized_image_kwargs(
    layer: Image, name: str, placement: dict, metadata: dict, *, one_of_several: bool = False
) -> dict:
    """Image layer keywords that display the quantized image as the source is displayed.

    ``one_of_several``: the source is one of several layers clustered as features,
    whose quantized images blend as the sources do.
    """
    kwargs = {
        **placement,
        "name": name,
        "rgb": layer.rgb,
        "contrast_limits": layer.contrast_limits,
        "metadata": metadata,
    }
    if not layer.rgb:
        kwargs["colormap"] = layer.colormap
    if one_of_several:
        kwargs["blending"] = layer.blending
    return kwargs


def result_layer_data(source: Image | Request, result: Quantization) -> list[tuple]:
    """LayerDataTuples for the quantized image(s) and the clusters labels layer.

    For several source layers (features) there is one quantized image layer per
    source, displayed as that source is, and one labels layer.
    """
    request = Request.of(source)
    layers = request.layers
    metadata = result_metadata(result, request.name, request.recorded)
    placement = transform_kwargs(layers[0])
    out = []
    channels = [result.image] if len(layers) == 1 else np.moveaxis(result.image, -1, 0)
    multiscale = isinstance(result.labels, list)
    for layer, image in zip(layers, channels, strict=True):
        image_name = result_names(layer.name, result.k, request.image_suffix(layer))[0]
        kwargs = quantized_image_kwargs(
            layer, image_name, transform_kwargs(layer), metadata, one_of_several=len(layers) > 1
        )
        if multiscale:
            kwargs["multiscale"] = True
        out.append((image, kwargs, "image"))
    labels_kwargs = {
        **placement,
        "name": result_names(request.name, result.k, request.suffix)[1],
        "colormap": colormap_for(label_colors(layers, result.centers)),
        "features": features_table(result, layer_channel_names(layers)),
        "metadata": metadata,
    }
    if multiscale:
        labels_kwargs["multiscale"] = True
    return [*out, (result.labels, labels_kwargs, "labels")]


def show_layer_data(
    viewer: napari.Viewer, layer_data: list[tuple], targets: list[Layer] = ()
) -> list[Layer]:
    """Add each LayerDataTuple, or update in place napari-kquant's layer of that name and type.

    Only a layer that napari-kquant made (it carries ``metadata["napari_kquant"]``) is
    ever updated; any other layer of the same name (a hand-painted labels layer, say)
    is left as it is, and the result is added beside it under a name napari makes
    unique (``"... [1]"``). ``targets``: the layers to update, by reference (a caller
    that keeps its layers: renaming one does not lose it), used while still in the
    viewer.
    """
    shown = []
    targets = list(targets)
    for position, (data, kwargs, layer_type) in enumerate(layer_data):
        target = targets[position] if position < len(targets) else None
        if target is not None and target in viewer.layers:
            update_layer(target, data, {**kwargs, "name": target.name})
            shown.append(target)
            continue
        name = kwargs["name"]
        # napari renames a clash "name [1]": that layer is still ours to update
        named = re.compile(re.escape(name) + r"( \[\d+\])?")
        existing = next(
            (
                lyr
                for lyr in viewer.layers
                if named.fullmatch(lyr.name)
                and type(lyr).__name__.lower() == layer_type
                and METADATA_KEY in lyr.metadata
            ),
            None,
        )
        if existing is None:
            shown.append(viewer.add_layer(Layer.create(data, kwargs, layer_type)))
            continue
        update_layer(existing, data, kwargs)
        shown.append(existing)
    return shown


def update_layer(layer: Layer, data, kwargs: dict) -> None:
    """Give ``layer`` new data and attributes, all or none.

    Everything was built before this is called; if setting any of it fails (a
    listener of another plugin raising, say), the layer gets its old data and
    attributes back, so it never holds new data with an old features table.
    """
    # what has not changed is not set again: each setting makes napari refresh the layer
    # (a live preview updates its layers many times a minute)
    keys = [
        key
        for key in kwargs
        if key not in ("name", "rgb", "multiscale") and not _unchanged(layer, key, kwargs[key])
    ]
    before = {"data": layer.data, **{key: getattr(layer, key) for key in keys}}
    try:
        layer.data = data
        for key in keys:
            setattr(layer, key, kwargs[key])
    except Exception:
        for key, value in before.items():
            with contextlib.suppress(Exception):
                setattr(layer, key, value)
        raise


def _unchanged(layer: Layer, key: str, value) -> bool:
    """Whether ``layer``'s ``key`` already is ``value`` (placement, contrast, blending)."""
    if key in ("features", "metadata", "colormap"):  # (compared by napari at some cost)
        return False
    current = getattr(layer, key, None)
    if isinstance(value, str):
        return current == value
    try:
        if hasattr(current, "affine_matrix"):
            value = getattr(value, "affine_matrix", value)
            return bool(np.array_equal(current.affine_matrix, np.asarray(value, dtype=float)))
        return bool(np.array_equal(np.asarray(current, float), np.asarray(value, float)))
    except (TypeError, ValueError):
        return False


def grid(viewer: napari.Viewer):
    """The viewer's grid settings (``viewer.canvas.grid`` since napari 0.9)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if hasattr(canvas, "grid") else viewer.grid


def text_overlay(viewer: napari.Viewer):
    """The viewer's text overlay (``viewer.canvas.overlays.text`` since napari 0.9)."""
    overlays = getattr(getattr(viewer, "canvas", None), "overlays", None)
    return overlays.text if hasattr(overlays, "text") else viewer.text_overlay


def resolve_layer(viewer: napari.Viewer, layer: Layer | str | None) -> Layer:
    """The layer itself, the layer of that name, or the active layer."""
    if layer is None:
        layer = viewer.layers.selection.active
        if layer is None:
            raise ValueError("no layer is selected: select an image layer or pass layer=")
    elif isinstance(layer, str):
        if layer not in viewer.layers:
            raise ValueError(f"the viewer has no layer named {layer!r}")
        layer = viewer.layers[layer]
    return layer


def quantize_layer(
    viewer: napari.Viewer,
    layer: Image | str | None = None,
    k: int = 8,
    *,
    features=(),
    mask: Labels | Shapes | str | None = None,
    planes: str = "stack",
    **options,
) -> tuple[Image, Labels]:
    """Quantize an image layer of ``viewer`` and show the result as two layers.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer holding the layer; the results are added to it.
    layer : napari.layers.Image or str, optional
        The source layer, or its name. Default: the active layer.
    k : int
        Number of colours.
    features : sequence of Image or str, optional
        More single-channel layers of the same shape: the pixels are clustered on the
        vector of all the layers' values, and each layer gets its quantized layer.
    mask : napari.layers.Labels, Shapes or str, optional
        Cluster only the non-zero pixels of a labels layer, or the inside of a shapes
        layer's shapes. Pixels outside get label 0 and keep their values.
    planes : {"stack", "each", "current"}
        One palette for the whole stack, one per 2D plane, or only the plane the
        viewer shows (the other planes stay unlabelled).
    **options
        Passed to :func:`napari_kquant.quantize` (method, attempts, max_iter, epsilon,
        criteria, init, seed, color_space, standardize).

    Returns
    -------
    (Image, Labels)
        ``"<source> quantized K=<k>"`` and ``"<source> clusters K=<k>"``, added or,
        when they exist already, updated in place (with features: the first source's
        quantized layer; the others are added too).

    Examples
    --------
    >>> from napari.components import ViewerModel
    >>> from skimage import data
    >>> viewer = ViewerModel()  # a napari.Viewer works the same, with a window
    >>> _ = viewer.add_image(data.coffee(), name="coffee")
    >>> quantized, clusters = quantize_layer(viewer, "coffee", k=3)
    >>> clusters.name, int(clusters.data.max()), clusters.features["label"].tolist()
    ('coffee clusters K=3', 3, [0, 1, 2, 3])
    """
    layers = [resolve_layer(viewer, layer), *(resolve_layer(viewer, f) for f in features)]
    if isinstance(mask, str):
        mask = resolve_layer(viewer, mask)
    request = request_for(viewer, layers, mask=mask, planes=planes, fit_options=options)
    result = quantize(request.data, k, **request.options, **options)
    shown = show_result(viewer, request, result)
    return shown[0], shown[-1]


def palette_of(layer: Layer) -> Palette:
    """The palette a napari-kquant result layer carries (centres, space, provenance).

    Examples
    --------
    >>> from napari.components import ViewerModel
    >>> from skimage import data
    >>> viewer = ViewerModel()
    >>> _ = viewer.add_image(data.astronaut(), name="astronaut")
    >>> _, clusters = quantize_layer(viewer, "astronaut", k=4, color_space="lab")
    >>> palette = palette_of(clusters)
    >>> palette.centers.shape, palette.color_space, palette.params["source"]
    ((4, 3), 'lab', 'astronaut')
    """
    info = layer.metadata.get(METADATA_KEY) if isinstance(layer, Layer) else None
    if not info or not isinstance(info.get("centers"), list):
        raise ValueError(
            f"layer {getattr(layer, 'name', layer)!r} holds no napari-kquant palette: choose "
            "a clusters or quantized layer made with one K"
        )
    if info.get("planes") == "each":
        raise ValueError(
            f"layer {layer.name!r} holds one palette per plane: fit one palette to reapply it"
        )
    # layers saved before the palette was stored whole carry its parts at the top
    return Palette.from_dict(info.get("palette", info))


def palette_request(request: Request, palette_layer: Layer) -> tuple[Request, Palette]:
    """``request`` made one for apply_palette() with ``palette_layer``'s palette, and it.

    The new request's names and metadata say whose palette it is.
    """
    palette = palette_of(palette_layer)
    source = palette_layer.metadata[METADATA_KEY].get("source", palette_layer.name)
    return request.with_palette(palette_layer, source), palette


def apply_layer_palette(
    viewer: napari.Viewer,
    palette_layer: Layer | str,
    layer: Image | str | None = None,
    *,
    features=(),
    mask: Labels | Shapes | str | None = None,
    planes: str = "stack",
) -> tuple[Image, Labels]:
    """Quantize ``layer`` with the palette of ``palette_layer`` (a napari-kquant result).

    Every pixel takes its nearest centre of that palette, in the colour space and
    channel scaling it was fitted in. The results are named ``"<source> quantized
    K=<k> (palette of <palette source>)"`` (and ``clusters``).

    Examples
    --------
    >>> from napari.components import ViewerModel
    >>> from skimage import data
    >>> viewer = ViewerModel()
    >>> _ = viewer.add_image(data.astronaut(), name="astronaut")
    >>> _ = viewer.add_image(data.coffee(), name="coffee")
    >>> _, fitted = quantize_layer(viewer, "astronaut", k=4)
    >>> _, applied = apply_layer_palette(viewer, fitted, "coffee")
    >>> applied.name, applied.features["label"].tolist()
    ('coffee clusters K=4 (palette of astronaut)', [0, 1, 2, 3, 4])
    """
    palette_layer = resolve_layer(viewer, palette_layer)
    layers = [resolve_layer(viewer, layer), *(resolve_layer(viewer, f) for f in features)]
    if isinstance(mask, str):
        mask = resolve_layer(viewer, mask)
    request = request_for(viewer, layers, mask=mask, planes="stack" if planes == "each" else planes)
    request, palette = palette_request(request, palette_layer)
    result = apply_palette(request.data, palette, **request.options)
    shown = show_result(viewer, request, result)
    return shown[0], shown[-1]


DISPLAYS = ("layers", "stack")


def stack_names(source_name: str, suffix: str = "") -> tuple[str, str]:
    """Names of the stacked quantized image and labels layers of a K sweep."""
    return _names(source_name, f"K sweep{suffix}")


def stacked_placement(layer: Layer) -> dict[str, Any]:
    """The source's placement behind a new leading K axis (identity on that axis)."""
    physical = Affine(
        scale=layer.scale, translate=layer.translate, rotate=layer.rotate, shear=layer.shear
    ).affine_matrix
    world = layer.affine.affine_matrix @ physical
    stacked = np.eye(len(world) + 1)
    stacked[1:, 1:] = world
    return {"affine": stacked, "axis_labels": ("K", *layer.axis_labels)}


def stack_layer_data(source: Image | Request, results: list[Quantization]) -> list[tuple]:
    """LayerDataTuples stacking the results along a leading K axis.

    In the stacked labels, cluster ``i`` of the j-th K is ``offsets[j] + i`` so that
    every K keeps its own colours; the features table maps values back to (k, label).
    """
    request = Request.of(source)
    layer = request.layers[0]
    labels_name = stack_names(request.name, request.suffix)[1]
    ks = [r.k for r in results]
    offsets = np.concatenate([[0], np.cumsum(ks)[:-1]]).astype(int)
    dtype = label_dtype(int(sum(ks)))
    labels = np.stack([r.labels.astype(dtype) for r in results])
    for j, offset in enumerate(offsets):
        labels[j][labels[j] > 0] += dtype.type(offset)
    colors = np.concatenate([label_colors(request.layers, r.centers) for r in results])
    metadata = {
        METADATA_KEY: {
            **{key: v for key, v in results[0].params.items() if key != "k"},
            **request.recorded,
            "source": layer.name,
            "ks": ks,
            "offsets": offsets.tolist(),
            "compactness": [r.compactness for r in results],
            "centers": {str(r.k): r.centers.tolist() for r in results},
        }
    }
    placement = stacked_placement(layer)
    images = []  # one stacked quantized image per source layer (several: features)
    for c, source_layer in enumerate(request.layers):
        name = stack_names(source_layer.name, request.image_suffix(source_layer))[0]
        several = len(request.layers) > 1
        kwargs = quantized_image_kwargs(
            source_layer, name, placement, metadata, one_of_several=several
        )
        if several:
            stacked = np.stack([np.asarray(r.image)[..., c] for r in results])
        else:
            stacked = np.stack([r.image for r in results])
        images.append((stacked, kwargs, "image"))
    features = stacked_table(results, layer_channel_names(request.layers), offsets, labels.size)
    labels_kwargs = {
        **placement,
        "name": labels_name,
        "colormap": colormap_for(colors, features["index"][1:]),
        "features": features,
        "metadata": metadata,
    }
    return [*images, (labels, labels_kwargs, "labels")]


def stack_k_at(layer: Layer, viewer: napari.Viewer) -> int | None:
    """The K that the viewer's K slider shows on a stacked sweep layer."""
    ks = layer.metadata.get(METADATA_KEY, {}).get("ks")
    if not ks:
        return None
    index = int(np.clip(np.round(layer.world_to_data(viewer.dims.point)[0]), 0, len(ks) - 1))
    return ks[index]


def overlay_follows(viewer: napari.Viewer) -> None:
    """Keep the viewer's text overlay on the K of the visible stacked sweep layer.

    The overlay reads ``"<layer>: K=<k>"`` while a stacked sweep layer (image or
    labels) is visible (the topmost one, if several are) and is hidden when none is: it never labels
    other layers. Connected once per viewer.
    """
    if viewer in _FOLLOWED:
        _FOLLOWED[viewer]()
        return
    overlay = text_overlay(viewer)

    def update(event=None):
        stacked = [layer for layer in viewer.layers if "ks" in layer.metadata.get(METADATA_KEY, {})]
        for layer in stacked:  # connecting twice is a no-op for napari's events
            layer.events.visible.connect(update)
        visible = [layer for layer in stacked if layer.visible]
        if not visible:
            overlay.visible = False
            return
        layer = visible[-1]
        overlay.text = f"{layer.name}: K={stack_k_at(layer, viewer)}"
        overlay.visible = True

    _FOLLOWED[viewer] = update
    viewer.dims.events.current_step.connect(update)
    viewer.layers.events.inserted.connect(update)
    viewer.layers.events.removed.connect(update)
    update()


_FOLLOWED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def show_sweep_results(
    viewer: napari.Viewer,
    source: Image | Request,
    results: list[Quantization],
    display: str,
    targets: list[Layer] = (),
) -> list[Layer]:
    """Show the newest of a sweep's results: its own pair of layers, or the stacked pair.

    ``targets``: the stacked pair shown so far (updated by reference).
    """
    if display == "layers":
        return show_result(viewer, source, results[-1])
    shown = show_layer_data(viewer, stack_layer_data(source, results), targets)
    overlay_follows(viewer)
    return shown


def show_result(viewer: napari.Viewer, source: Image | Request, result: Quantization) -> list:
    """Show one result as its quantized image and labels layers, remembering the result.

    :func:`result_behind` gives the result back from either layer (to export it).
    """
    shown = show_layer_data(viewer, result_layer_data(source, result))
    request = Request.of(source)
    for layer in shown:
        _RESULTS[unwrapped(layer)] = (request, result)
    return shown


def show_live_result(
    viewer: napari.Viewer, request: Request, result: Quantization, targets=()
) -> list:
    """Show a live result in the source's two live layers, updated in place (``targets``).

    One quantized image layer per source layer (several for features), then the labels.
    """
    layer_data = []
    sources = [*request.layers, None]  # the labels layer comes last
    for (data, kwargs, layer_type), source in zip(
        result_layer_data(request, result), sources, strict=True
    ):
        quantized, clusters = live_names(request.name if source is None else source.name)
        name = clusters if layer_type == "labels" else quantized
        layer_data.append((data, {**kwargs, "name": name}, layer_type))
    shown = show_layer_data(viewer, layer_data, targets)
    for layer in shown:
        _RESULTS[unwrapped(layer)] = (request, result)
    return shown


def result_behind(layer: Layer | None):
    """``(request, result)`` of a layer :func:`show_result` showed, else None."""
    return None if layer is None else _RESULTS.get(unwrapped(layer))


def unwrapped(layer: Layer) -> Layer:
    """The layer itself, not napari's proxy of it.

    napari hands plugin widgets its viewer behind a proxy whose layers are new proxy
    objects at every access (no use as dictionary keys).
    """
    return getattr(layer, "__wrapped__", layer)


_RESULTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def sweep_layer(
    viewer: napari.Viewer,
    layer: Image | str | None,
    ks,
    display: str = "layers",
    *,
    features=(),
    mask: Labels | Shapes | str | None = None,
    planes: str = "stack",
    **options,
) -> list[Layer]:
    """Quantize an image layer at several K and show the results in ``viewer``.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer holding the layer.
    layer : napari.layers.Image or str, optional
        The source layer or its name; default the active layer.
    ks : iterable of int or str
        K values (``[2, 4, 8]``, ``range(2, 9)`` or ``"2..8"``).
    display : {"layers", "stack"}
        ``"layers"``: a quantized and a clusters layer per K. ``"stack"``: one image
        and one labels layer with a leading K axis (its slider picks the K).
    features : sequence of Image or str, optional
        Single-channel layers clustered with ``layer``, each pixel the vector of
        their values (see :func:`quantize_layer`).
    mask : napari.layers.Labels, Shapes or str, optional
        Sweep only over the pixels of a mask (see :func:`quantize_layer`).
    planes : {"stack", "current"}
        The whole stack, or only the plane the viewer shows.
    **options
        Passed to :func:`napari_kquant.sweep`.

    Returns
    -------
    list of Layer
        The layers added or updated.

    Examples
    --------
    >>> from napari.components import ViewerModel
    >>> from skimage import data
    >>> viewer = ViewerModel()
    >>> _ = viewer.add_image(data.coffee(), name="coffee")
    >>> stacked = sweep_layer(viewer, "coffee", "2..4", display="stack")
    >>> [layer.name for layer in stacked], stacked[-1].data.shape
    (['coffee quantized K sweep', 'coffee clusters K sweep'], (3, 400, 600))
    """
    layers = [resolve_layer(viewer, layer), *(resolve_layer(viewer, f) for f in features)]
    if display not in DISPLAYS:
        raise ValueError(f"display must be one of {DISPLAYS}, got {display!r}")
    if isinstance(mask, str):
        mask = resolve_layer(viewer, mask)
    request = request_for(viewer, layers, mask=mask, planes=planes, fit_options=options)
    shown, results = [], []
    for result in iter_sweep(request.data, ks, **request.options, **options):
        results.append(result)
        latest = show_sweep_results(viewer, request, results, display)
        shown = [*shown, *latest] if display == "layers" else latest
    return shown


def write_palette(path: str, data, meta: dict) -> list[str]:
    """npe2 writer: save a clusters layer's palette as CSV, JSON or GIMP palette.

    The palette (centres, counts, parameters) comes from the layer's
    ``metadata["napari_kquant"]``, so a layer made by this plugin can be saved with
    File > Save Selected Layers (or ``viewer.layers.save(path, plugin="napari-kquant")``).
    Another labels layer (npe2 offers this writer for any labels layer saved as
    .csv, .json or .gpl) is declined: nothing is written, and a warning (napari's
    save dialog shows it) says why and what to do instead.
    """
    problem = _palette_problem(meta)
    if problem:
        warnings.warn(f"napari-kquant wrote no palette: {problem}", UserWarning, stacklevel=2)
        return []
    info = meta["metadata"][METADATA_KEY]
    if "palette" in info:
        palette = Palette.from_dict(info["palette"])
    else:  # a layer saved before the palette was stored whole
        params = {key: v for key, v in info.items() if key not in ("centers", "counts")}
        palette = Palette.from_dict({**info, "params": params})
    if Path(path).suffix.lower() not in PALETTE_FORMATS:  # a name typed without one
        path = f"{path}{PALETTE_FORMATS[0]}"
    # napari asked before replacing an existing file (its save dialog's confirmation)
    return [str(save_palette(path, palette, overwrite=True))]


def _palette_problem(meta: dict) -> str:
    """Why a layer with this ``meta`` has no palette to save ("" when it has one)."""
    name = meta.get("name", "this layer")
    info = (meta.get("metadata") or {}).get(METADATA_KEY)
    if not info or "centers" not in info:
        return (
            f"layer {name!r} holds no napari-kquant palette (only layers made by napari-kquant "
            "do); save a labels layer as .tif, or a palette from a clusters layer"
        )
    if isinstance(info["centers"], dict):
        return (
            f"{name!r} is a stacked K sweep, with one palette per K: save the clusters layer "
            "of one K"
        )
    return ""
