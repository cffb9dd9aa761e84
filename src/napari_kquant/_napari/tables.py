"""The features table of a clusters layer: one row per label (napari's convention)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from napari.layers import Image

from .._core.kmeans import Quantization, to_dtype
from .._core.palette import channel_names


def features_table(result: Quantization, names: list[str]) -> pd.DataFrame:
    """Napari's convention: row v describes label v, row 0 the background.

    Columns: ``index`` and ``label`` (the label value), ``plane`` (per-plane
    palettes), the centre per channel (NaN for the background; for integer images
    the value the quantized image holds, so napari's status bar shows 7190, not
    7.19e+03), ``count`` (pixels with the label; the background's is the unclustered
    pixels, NaN for lazy results whose labels are not computed) and ``fraction``
    (of all the layer's pixels; with a palette per plane, of that plane's pixels).
    """
    table = with_background(cluster_rows(result, names), unclustered(result))
    if "plane" in table and isinstance(result.labels, np.ndarray):
        n_planes = int(table["plane"].max()) + 1
        per_plane = result.labels.size / n_planes
        rows = table["label"] > 0
        table.loc[rows, "fraction"] = table.loc[rows, "count"] / per_plane
    return table


def unclustered(result: Quantization) -> float:
    """Pixels left out of the clustering (label 0); NaN when the labels are lazy."""
    if not isinstance(result.labels, np.ndarray):
        return float("nan")
    return float(result.labels.size - result.counts.sum())


def cluster_rows(result: Quantization, names: list[str]) -> pd.DataFrame:
    """One row per label 1..K: its centre values and pixel count."""
    labels = np.arange(1, len(result.centers) + 1)
    # napari looks rows up by the `index` column; `label` is the name people read.
    table = {"index": labels, "label": labels}
    if result.params.get("planes") == "each":
        table["plane"] = (labels - 1) // result.k
    centers = result.centers
    dtype = (result.image[0] if isinstance(result.image, list) else result.image).dtype
    if np.issubdtype(dtype, np.integer):
        centers = to_dtype(centers, dtype)
    for c, name in enumerate(names):
        table[f"center_{name}"] = centers[:, c]
    table["count"] = result.counts
    return pd.DataFrame(table)


def with_background(rows: pd.DataFrame, background_count: float) -> pd.DataFrame:
    """``rows`` after a row 0 for the background label, and the fractions of all pixels."""
    background = {column: np.nan for column in rows.columns}
    background.update(index=0, label=0, count=background_count)
    table = pd.concat([pd.DataFrame([background]), rows], ignore_index=True)
    for column in ("index", "label"):
        table[column] = table[column].astype(np.int64)
    for column in rows.columns:
        if column.startswith("center_") and np.issubdtype(rows[column].dtype, np.integer):
            # integer centres stay integers (napari's status bar shows 7190, not 7.19e+03);
            # the background's missing centre is pandas' NA
            table[column] = table[column].astype(
                rows[column].dtype.name.replace("uint", "UInt").replace("int", "Int")
            )
    total = table["count"].sum()  # NaN background (lazy): fractions of the counted pixels
    table["fraction"] = table["count"] / total if total else 0.0
    # pixel counts are whole numbers (napari's status bar: 47800, not 4.78e+04)
    table["count"] = table["count"].astype("Int64" if table["count"].isna().any() else np.int64)
    return table


def layer_channel_names(layers: list[Image]) -> list[str]:
    """Feature column names of ``layers`` (:func:`channel_names`: the features' layer names)."""
    if len(layers) > 1:
        return channel_names(len(layers), [layer.name for layer in layers])
    return channel_names(3 if layers[0].rgb else 1)


def stacked_table(
    results: list[Quantization], names: list[str], offsets, pixels: int
) -> pd.DataFrame:
    """The table of a stacked K sweep: row ``offsets[j] + i`` for cluster ``i`` of the j-th K.

    A ``k`` column says which K a row belongs to; a cluster's fraction is of its own
    K's pixels (one K plane of the stack, ``pixels`` in all), so the fractions of one
    K sum to 1 with the unclustered pixels, as the palette shows.
    """
    tables = []
    for offset, result in zip(offsets, results, strict=True):
        table = cluster_rows(result, names)
        table.insert(1, "k", result.k)
        table["index"] += offset
        tables.append(table)
    # every K leaves the same pixels unclustered, once per K plane of the stack
    background = sum(unclustered(result) for result in results)
    features = with_background(pd.concat(tables, ignore_index=True), background)
    clustered = features["label"] > 0
    features.loc[clustered, "fraction"] = features.loc[clustered, "count"] * len(results) / pixels
    features.loc[~clustered, "fraction"] = background / pixels if pixels else 0.0
    return features
