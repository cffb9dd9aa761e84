"""napari adapter: image layer -> array and options; Quantization -> layers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from napari.layers import Image, Labels, Layer
from napari.utils import DirectLabelColormap
from napari.utils.transforms import Affine

from ._engines import label_dtype
from ._kmeans import Quantization, quantize
from ._palette import display_colors, save_palette
from ._sweep import iter_sweep

if TYPE_CHECKING:
    import napari

METADATA_KEY = "napari_kquant"
# Spatial placement copied from the source so the results overlay it exactly.
TRANSFORMS = ("scale", "translate", "rotate", "shear", "affine", "units", "axis_labels")
TRANSPARENT = (0.0, 0.0, 0.0, 0.0)


def layer_array(layer: Image) -> np.ndarray:
    """The pixels of an image layer as a numpy array (full resolution of a pyramid)."""
    if not isinstance(layer, Image):
        raise ValueError(
            f"layer {getattr(layer, 'name', layer)!r} is a {type(layer).__name__}, "
            "not an image layer: choose an image layer"
        )
    data = layer.data[0] if layer.multiscale else layer.data
    return np.asarray(data)


def result_names(source_name: str, k: int) -> tuple[str, str]:
    """Names of the quantized image layer and the labels layer for ``k`` clusters."""
    return f"{source_name} quantized K={k}", f"{source_name} clusters K={k}"


def transform_kwargs(layer: Layer) -> dict[str, Any]:
    """The source layer's placement, ready to pass to a new layer."""
    kwargs = {name: getattr(layer, name) for name in TRANSFORMS}
    kwargs["affine"] = layer.affine.affine_matrix
    kwargs["units"] = tuple(str(u) for u in layer.units)
    return kwargs


def label_colors(layer: Image, centers: np.ndarray) -> np.ndarray:
    """RGBA colour of each centre as the source layer displays it."""
    low, high = (float(v) for v in layer.contrast_limits)
    if layer.rgb:
        return display_colors(centers, low, high)
    span = high - low if high > low else 1.0
    return np.asarray(layer.colormap.map(np.clip((centers[:, 0] - low) / span, 0.0, 1.0)))


def features_table(result: Quantization, rgb: bool) -> pd.DataFrame:
    """One row per label: the label, its centre values, pixel count and fraction."""
    labels = np.arange(1, result.k + 1)
    names = ["r", "g", "b"] if rgb else ["value"]
    # napari looks rows up by the `index` column; `label` is the name people read.
    table = {"index": labels, "label": labels}
    for c, name in enumerate(names):
        table[f"center_{name}"] = result.centers[:, c]
    table["count"] = result.counts
    table["fraction"] = result.fractions
    return pd.DataFrame(table)


def result_metadata(result: Quantization, source_name: str) -> dict[str, Any]:
    """Everything needed to know how a result was made (and to reapply its palette)."""
    return {
        METADATA_KEY: {
            **result.params,
            "source": source_name,
            "compactness": result.compactness,
            "elapsed_s": result.elapsed,
            "centers": result.centers.tolist(),
            "counts": result.counts.tolist(),
        }
    }


def colormap_for(colors, values=None) -> DirectLabelColormap:
    """Label ``values[i]`` (default i + 1) in ``colors[i]``; 0 and unknown transparent."""
    values = range(1, len(colors) + 1) if values is None else values
    color_dict = {None: TRANSPARENT, 0: TRANSPARENT}
    color_dict.update({int(v): tuple(c) for v, c in zip(values, colors, strict=True)})
    return DirectLabelColormap(color_dict=color_dict)


def quantized_image_kwargs(layer: Image, name: str, placement: dict, metadata: dict) -> dict:
    """Image layer keywords that display the quantized image as the source is displayed."""
    kwargs = {
        **placement,
        "name": name,
        "rgb": layer.rgb,
        "contrast_limits": layer.contrast_limits,
        "metadata": metadata,
    }
    if not layer.rgb:
        kwargs["colormap"] = layer.colormap
    return kwargs


def result_layer_data(layer: Image, result: Quantization) -> list[tuple]:
    """LayerDataTuples for the quantized image and the clusters labels layer."""
    image_name, labels_name = result_names(layer.name, result.k)
    placement = transform_kwargs(layer)
    metadata = result_metadata(result, layer.name)
    rgb = bool(result.params["rgb"])
    image_kwargs = quantized_image_kwargs(layer, image_name, placement, metadata)
    labels_kwargs = {
        **placement,
        "name": labels_name,
        "colormap": colormap_for(label_colors(layer, result.centers)),
        "features": features_table(result, rgb),
        "metadata": metadata,
    }
    return [
        (result.image, image_kwargs, "image"),
        (result.labels, labels_kwargs, "labels"),
    ]


def show_layer_data(viewer: napari.Viewer, layer_data: list[tuple]) -> list[Layer]:
    """Add each LayerDataTuple, or update in place the layer of the same name and type."""
    shown = []
    for data, kwargs, layer_type in layer_data:
        name = kwargs["name"]
        existing = next(
            (
                lyr
                for lyr in viewer.layers
                if lyr.name == name and type(lyr).__name__.lower() == layer_type
            ),
            None,
        )
        if existing is None:
            shown.append(viewer.add_layer(Layer.create(data, kwargs, layer_type)))
            continue
        existing.data = data
        for key, value in kwargs.items():
            if key not in ("name", "rgb"):
                setattr(existing, key, value)
        shown.append(existing)
    return shown


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
    viewer: napari.Viewer, layer: Image | str | None = None, k: int = 8, **options
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
    **options
        Passed to :func:`napari_kquant.quantize` (method, attempts, max_iter, epsilon,
        criteria, init, seed).

    Returns
    -------
    (Image, Labels)
        ``"<source> quantized K=<k>"`` and ``"<source> clusters K=<k>"``, added or,
        when they exist already, updated in place.

    Examples
    --------
    >>> from napari.components import ViewerModel
    >>> from skimage import data
    >>> viewer = ViewerModel()  # a napari.Viewer works the same, with a window
    >>> _ = viewer.add_image(data.coffee(), name="coffee")
    >>> quantized, clusters = quantize_layer(viewer, "coffee", k=3)
    >>> clusters.name, int(clusters.data.max()), clusters.features["label"].tolist()
    ('coffee clusters K=3', 3, [1, 2, 3])
    """
    layer = resolve_layer(viewer, layer)
    result = quantize(layer_array(layer), k, rgb=layer.rgb, **options)
    image_layer, labels_layer = show_layer_data(viewer, result_layer_data(layer, result))
    return image_layer, labels_layer


DISPLAYS = ("layers", "stack")


def stack_names(source_name: str) -> tuple[str, str]:
    """Names of the stacked quantized image and labels layers of a K sweep."""
    return f"{source_name} quantized K sweep", f"{source_name} clusters K sweep"


def stacked_placement(layer: Layer) -> dict[str, Any]:
    """The source's placement behind a new leading K axis (identity on that axis)."""
    physical = Affine(
        scale=layer.scale, translate=layer.translate, rotate=layer.rotate, shear=layer.shear
    ).affine_matrix
    world = layer.affine.affine_matrix @ physical
    stacked = np.eye(len(world) + 1)
    stacked[1:, 1:] = world
    return {"affine": stacked, "axis_labels": ("K", *layer.axis_labels)}


def stack_layer_data(layer: Image, results: list[Quantization]) -> list[tuple]:
    """LayerDataTuples stacking the results along a leading K axis.

    In the stacked labels, cluster ``i`` of the j-th K is ``offsets[j] + i`` so that
    every K keeps its own colours; the features table maps values back to (k, label).
    """
    image_name, labels_name = stack_names(layer.name)
    ks = [r.k for r in results]
    offsets = np.concatenate([[0], np.cumsum(ks)[:-1]]).astype(int)
    dtype = label_dtype(int(sum(ks)))
    labels = np.stack([r.labels.astype(dtype) for r in results])
    for j, offset in enumerate(offsets):
        labels[j][labels[j] > 0] += dtype.type(offset)
    rgb = bool(results[0].params["rgb"])
    tables = []
    for offset, result in zip(offsets, results, strict=True):
        table = features_table(result, rgb)
        table.insert(1, "k", result.k)
        table["index"] += offset
        tables.append(table)
    colors = np.concatenate([label_colors(layer, r.centers) for r in results])
    metadata = {
        METADATA_KEY: {
            **{key: v for key, v in results[0].params.items() if key != "k"},
            "source": layer.name,
            "ks": ks,
            "offsets": offsets.tolist(),
            "compactness": [r.compactness for r in results],
            "centers": {str(r.k): r.centers.tolist() for r in results},
        }
    }
    placement = stacked_placement(layer)
    image_kwargs = quantized_image_kwargs(layer, image_name, placement, metadata)
    features = pd.concat(tables, ignore_index=True)
    labels_kwargs = {
        **placement,
        "name": labels_name,
        "colormap": colormap_for(colors, features["index"]),
        "features": features,
        "metadata": metadata,
    }
    return [
        (np.stack([r.image for r in results]), image_kwargs, "image"),
        (labels, labels_kwargs, "labels"),
    ]


def stack_k_at(layer: Layer, viewer: napari.Viewer) -> int | None:
    """The K that the viewer's K slider shows on a stacked sweep layer."""
    ks = layer.metadata.get(METADATA_KEY, {}).get("ks")
    if not ks:
        return None
    index = int(np.clip(np.round(layer.world_to_data(viewer.dims.point)[0]), 0, len(ks) - 1))
    return ks[index]


def announce_k(viewer: napari.Viewer, layer: Layer) -> None:
    """Show the current K of a stacked layer in the viewer's text overlay as the slider moves."""
    overlay = text_overlay(viewer)

    def update(event=None):
        if layer in viewer.layers:
            overlay.text = f"{layer.name}: K={stack_k_at(layer, viewer)}"

    overlay.visible = True
    viewer.dims.events.current_step.connect(update)
    update()


def show_sweep_results(
    viewer: napari.Viewer, layer: Image, results: list[Quantization], display: str
) -> list[Layer]:
    """Show the newest of a sweep's results: its own pair of layers, or the stacked pair."""
    if display == "layers":
        return show_layer_data(viewer, result_layer_data(layer, results[-1]))
    is_new = stack_names(layer.name)[0] not in viewer.layers
    shown = show_layer_data(viewer, stack_layer_data(layer, results))
    if is_new:
        announce_k(viewer, shown[0])
    return shown


def sweep_layer(
    viewer: napari.Viewer, layer: Image | str | None, ks, display: str = "layers", **options
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
    **options
        Passed to :func:`napari_kquant.sweep`.

    Returns
    -------
    list of Layer
        The layers added or updated.
    """
    layer = resolve_layer(viewer, layer)
    if display not in DISPLAYS:
        raise ValueError(f"display must be one of {DISPLAYS}, got {display!r}")
    shown, results = [], []
    for result in iter_sweep(layer_array(layer), ks, rgb=layer.rgb, **options):
        results.append(result)
        latest = show_sweep_results(viewer, layer, results, display)
        shown = [*shown, *latest] if display == "layers" else latest
    return shown


def write_palette(path: str, data, meta: dict) -> list[str]:
    """npe2 writer: save a clusters layer's palette as CSV, JSON or GIMP palette.

    The palette (centres, counts, parameters) comes from the layer's
    ``metadata["napari_kquant"]``, so a layer made by this plugin can be saved with
    File > Save Selected Layers (or ``viewer.layers.save(path, plugin="napari-kquant")``).
    """
    info = (meta.get("metadata") or {}).get(METADATA_KEY)
    if not info or "centers" not in info:
        raise ValueError("this layer holds no napari-kquant palette (make it with napari-kquant)")
    if isinstance(info["centers"], dict):
        raise ValueError(
            "a stacked K sweep holds one palette per K: save the clusters layer of one K"
        )
    params = {key: v for key, v in info.items() if key not in ("centers", "counts")}
    return [str(save_palette(path, info["centers"], counts=info.get("counts"), params=params))]
