"""napari adapter: image layer -> array and options; Quantization -> layers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from napari.layers import Image, Labels, Layer
from napari.utils import DirectLabelColormap

from ._kmeans import Quantization, quantize
from ._palette import display_colors

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


def result_layer_data(layer: Image, result: Quantization) -> list[tuple]:
    """LayerDataTuples for the quantized image and the clusters labels layer."""
    image_name, labels_name = result_names(layer.name, result.k)
    placement = transform_kwargs(layer)
    metadata = result_metadata(result, layer.name)
    rgb = bool(result.params["rgb"])
    image_kwargs = {
        **placement,
        "name": image_name,
        "rgb": layer.rgb,
        "contrast_limits": layer.contrast_limits,
        "metadata": metadata,
    }
    if not layer.rgb:
        image_kwargs["colormap"] = layer.colormap
    colors = label_colors(layer, result.centers)
    color_dict = {None: TRANSPARENT, 0: TRANSPARENT}
    color_dict.update({i + 1: tuple(c) for i, c in enumerate(colors)})
    labels_kwargs = {
        **placement,
        "name": labels_name,
        "colormap": DirectLabelColormap(color_dict=color_dict),
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
    """
    if layer is None:
        layer = viewer.layers.selection.active
        if layer is None:
            raise ValueError("no layer is selected: select an image layer or pass layer=")
    elif isinstance(layer, str):
        if layer not in viewer.layers:
            raise ValueError(f"the viewer has no layer named {layer!r}")
        layer = viewer.layers[layer]
    result = quantize(layer_array(layer), k, rgb=layer.rgb, **options)
    image_layer, labels_layer = show_layer_data(viewer, result_layer_data(layer, result))
    return image_layer, labels_layer
