"""export_zarr never deletes or overwrites what it did not make, nor writes into its source."""

import numpy as np
import pytest
import zarr

from napari_kquant import export_zarr, quantize
from napari_kquant._io.zarr_export import iter_export_zarr


@pytest.fixture
def source(tmp_path, astronaut):
    """The astronaut in a zarr store on disk, opened read-only as a user would."""
    path = tmp_path / "source.zarr"
    store = zarr.open_array(
        str(path), mode="w", shape=astronaut.shape, chunks=(128, 128, 3), dtype=np.uint8
    )
    store[:] = astronaut
    return path, zarr.open_array(str(path), mode="r")


def files_in(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_an_existing_folder_of_user_files_is_never_touched(tmp_path, coffee):
    folder = tmp_path / "mine.zarr"
    folder.mkdir()
    (folder / "notes.txt").write_text("three weeks of work")
    result = quantize(coffee, 3)
    with pytest.raises(ValueError, match="exists"):
        export_zarr(result, folder)
    with pytest.raises(ValueError, match="did not make"):
        export_zarr(result, folder, overwrite=True)
    assert files_in(folder) == ["notes.txt"]
    assert (folder / "notes.txt").read_text() == "three weeks of work"


def test_other_arrays_of_a_zarr_group_are_never_deleted(tmp_path, coffee):
    group = zarr.open_group(str(tmp_path / "experiment.zarr"), mode="w")
    group.create_array("raw", shape=(4, 4), dtype=np.uint8)[:] = 7
    with pytest.raises(ValueError):
        export_zarr(quantize(coffee, 3), tmp_path / "experiment.zarr", overwrite=True)
    assert (zarr.open_group(str(tmp_path / "experiment.zarr"), mode="r")["raw"][:] == 7).all()


def test_an_earlier_export_is_replaced_only_when_asked(tmp_path, coffee):
    path = tmp_path / "out.zarr"
    export_zarr(quantize(coffee, 3), path)
    with pytest.raises(ValueError, match="exists"):
        export_zarr(quantize(coffee, 5), path)
    assert zarr.open_group(str(path), mode="r").attrs["napari_kquant"]["params"]["k"] == 3
    export_zarr(quantize(coffee, 5), path, overwrite=True)
    assert zarr.open_group(str(path), mode="r").attrs["napari_kquant"]["params"]["k"] == 5
    assert [p.name for p in tmp_path.iterdir()] == ["out.zarr"]  # no temporaries left


@pytest.mark.parametrize("where", ["itself", "inside", "around"])
def test_exporting_into_the_source_store_is_refused(source, astronaut, where):
    path, array = source
    target = {"itself": path, "inside": path / "labels.zarr", "around": path.parent}[where]
    result = quantize(array, 4)  # lazy: reads the store chunk by chunk
    with pytest.raises(ValueError, match="input"):
        export_zarr(result, target, overwrite=True)
    np.testing.assert_array_equal(zarr.open_array(str(path), mode="r")[:], astronaut)


def test_a_cancelled_export_leaves_no_partial_store_and_keeps_the_previous(tmp_path, source):
    _, array = source
    path = tmp_path / "out.zarr"
    first = quantize(array, 3)
    export_zarr(first, path)
    before = zarr.open_group(str(path), mode="r")["labels/clusters/0"][:]
    bands = iter_export_zarr(quantize(array, 6), path, overwrite=True)
    assert next(bands)[0] == 1  # one band written...
    bands.close()  # ...then cancelled
    group = zarr.open_group(str(path), mode="r")
    assert group.attrs["napari_kquant"]["params"]["k"] == 3
    np.testing.assert_array_equal(group["labels/clusters/0"][:], before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zarr", "source.zarr"]


def test_a_failed_export_leaves_nothing(tmp_path, coffee, monkeypatch):
    import dask.array as da

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(da, "store", broken)
    with pytest.raises(OSError, match="disk full"):
        export_zarr(quantize(coffee, 3), tmp_path / "out.zarr")
    assert list(tmp_path.iterdir()) == []


def test_the_export_is_ome_zarr_that_ome_zarr_py_reads(tmp_path, coffee):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader

    result = quantize(coffee, 5, seed=0)
    path = export_zarr(result, tmp_path / "coffee.ome.zarr")
    nodes = list(Reader(parse_url(str(path)))())
    image = next(n for n in nodes if n.load(Multiscales) and not n.load(Label))
    assert [a["name"] for a in image.metadata["axes"]] == ["c", "y", "x"]
    np.testing.assert_array_equal(np.asarray(image.data[0]), np.moveaxis(result.image, -1, 0))
    labels = next(n for n in nodes if n.load(Label))
    np.testing.assert_array_equal(np.asarray(labels.data[0]), result.labels)
    # label colours are the centres (uint8: centre / 255), properties the palette
    for value in range(1, 6):
        colour = np.asarray(labels.metadata["color"][value][:3]) * 255
        np.testing.assert_allclose(colour, np.rint(result.centers[value - 1]), atol=1e-6)
        row = labels.metadata["properties"][value]
        assert row["count"] == result.counts[value - 1]
        assert row["center_r"] == pytest.approx(result.centers[value - 1, 0])
    attrs = zarr.open_group(str(path), mode="r").attrs["napari_kquant"]
    from napari_kquant import Palette

    palette = Palette.from_dict(attrs["palette"])
    np.testing.assert_array_equal(palette.apply(coffee).labels, result.labels)
