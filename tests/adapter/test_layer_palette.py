"""A result layer's metadata holds the palette as its JSON file does."""

import numpy as np
from skimage import data


def test_layer_metadata_holds_the_same_serialisation():
    from napari.components import ViewerModel

    from napari_kquant import palette_of, quantize_layer

    viewer = ViewerModel()
    viewer.add_image(data.astronaut(), name="astronaut")
    _, clusters = quantize_layer(viewer, "astronaut", k=4, color_space="lab")
    palette = palette_of(clusters)
    stored = clusters.metadata["napari_kquant"]["palette"]
    assert stored == palette.to_dict() and stored["color_space"] == "lab"
    np.testing.assert_array_equal(palette.apply(data.astronaut()).labels, clusters.data)
