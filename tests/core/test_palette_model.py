"""The palette is the model: one Palette through memory, files, layers, CLI and estimator."""

import subprocess
import sys

import dask.array as da
import numpy as np
import pytest
import tifffile
from skimage import data

from napari_kquant import (
    KMeansQuantizer,
    Palette,
    apply_palette,
    load_palette,
    quantize,
    save_palette,
)


@pytest.fixture(scope="module")
def ihc():
    return data.immunohistochemistry()[::2, ::2]


FITS = {
    "lab": lambda: (data.astronaut(), {"color_space": "lab"}, 6),
    "z-scored channels": lambda: (
        data.immunohistochemistry()[::2, ::2],
        {"channel_axis": -1, "standardize": True},
        5,
    ),
}


@pytest.mark.parametrize("fit", FITS)
@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_a_saved_palette_labels_exactly_like_the_fit(tmp_path, fit, suffix):
    image, options, k = FITS[fit]()
    result = quantize(image, k, seed=0, **options)
    loaded = load_palette(save_palette(tmp_path / f"p{suffix}", result))
    assert loaded.color_space == result.params["color_space"]
    np.testing.assert_array_equal(loaded.centers, result.centers)
    again = apply_palette(image, loaded)
    assert int((again.labels != result.labels).sum()) == 0
    assert int((result.apply(image).labels != result.labels).sum()) == 0


def test_json_is_lossless_and_gpl_keeps_the_space(tmp_path, astronaut):
    result = quantize(astronaut, 4, color_space="lab", seed=3)
    palette = result.palette
    back = load_palette(save_palette(tmp_path / "p.json", palette))
    assert back.to_dict() == palette.to_dict()
    assert back.params["seed"] == 3 and back.counts.sum() == astronaut.shape[0] ** 2
    gimp = load_palette(save_palette(tmp_path / "p.gpl", palette))
    assert gimp.color_space == "lab"
    np.testing.assert_allclose(gimp.centers, palette.centers, atol=0.5)


def test_bare_centres_still_make_a_palette(tmp_path):
    path = save_palette(tmp_path / "bare.csv", [[1.0, 2.0, 3.0]], counts=[7])
    palette = load_palette(path)
    assert palette.color_space == "rgb" and palette.counts.tolist() == [7]
    assert np.asarray(palette).tolist() == [[1.0, 2.0, 3.0]]


def test_a_lazy_image_is_labelled_like_the_eager_one(astronaut):
    palette = quantize(astronaut, 5, color_space="lab", seed=0).palette
    lazy = palette.apply(da.from_array(astronaut, chunks=(100, 128, 3)))
    assert isinstance(lazy.labels, da.Array)
    np.testing.assert_array_equal(lazy.labels.compute(), palette.apply(astronaut).labels)


def test_the_estimator_takes_the_same_options_and_gives_the_palette(tmp_path, astronaut):
    model = KMeansQuantizer(k=6, color_space="lab", seed=0).fit_image(astronaut)
    reference = quantize(astronaut, 6, color_space="lab", seed=0)
    np.testing.assert_array_equal(model.predict_image(astronaut), reference.labels)
    assert isinstance(model.palette_, Palette) and model.palette_.color_space == "lab"
    loaded = load_palette(save_palette(tmp_path / "model.json", model.palette_))
    np.testing.assert_array_equal(loaded.apply(astronaut).labels, reference.labels)


@pytest.mark.parametrize("flags", [["--color-space", "lab"], ["--standardize"]])
def test_the_command_line_round_trip_is_exact(tmp_path, flags):
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "astronaut.png", data.astronaut())

    def cli(*args):
        done = subprocess.run(
            [sys.executable, "-m", "napari_kquant", "quantize", *map(str, args), "-q"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr

    cli(tmp_path / "astronaut.png", "-k", "6", "-o", tmp_path / "fit", *flags)
    for suffix in ("json", "csv"):
        palette = tmp_path / "fit" / f"astronaut_palette_k6.{suffix}"
        cli(tmp_path / "astronaut.png", "--palette-from", palette, "-o", tmp_path / suffix)
        fitted = tifffile.imread(tmp_path / "fit" / "astronaut_labels_k6.tif")
        again = tifffile.imread(tmp_path / suffix / "astronaut_labels_k6.tif")
        assert int((fitted != again).sum()) == 0


def test_a_mask_file_from_the_command_line(tmp_path):
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "coffee.png", data.coffee())
    mask = np.zeros(data.coffee().shape[:2], np.uint8)
    mask[100:300, 200:400] = 255
    iio.imwrite(tmp_path / "mask.png", mask)
    done = subprocess.run(
        [
            *(sys.executable, "-m", "napari_kquant", "quantize", tmp_path / "coffee.png"),
            *("-k", "3", "--mask", tmp_path / "mask.png", "-q", "-o", tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    labels = tifffile.imread(tmp_path / "out" / "coffee_labels_k3.tif")
    assert (labels[mask == 0] == 0).all() and set(np.unique(labels[mask > 0])) == {1, 2, 3}


def test_a_palette_refuses_what_it_cannot_be():
    with pytest.raises(ValueError, match="finite"):
        Palette([[np.nan, 0, 0]])
    with pytest.raises(ValueError, match="color_space"):
        Palette([[0, 0, 0]], color_space="hsv")
    with pytest.raises(ValueError, match="bare centres"):
        apply_palette(data.coffee(), Palette([[0, 0, 0]]), color_space="lab")
