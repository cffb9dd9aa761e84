"""Lazy input (dask, zarr, multiscale), zarr export and dask.distributed, without Qt."""

import threading

import dask.array as da
import numpy as np
import pytest
import zarr
from skimage import data

from napari_kquant import export_zarr, quantize, sweep


def counting(array, chunks):
    """A dask view of ``array`` that counts the chunks it hands out."""
    calls = []
    lock = threading.Lock()

    def load(block, block_info=None):
        with lock:
            calls.append(block_info[0]["chunk-location"])
        return block

    return da.from_array(array, chunks=chunks).map_blocks(load, dtype=array.dtype), calls


@pytest.mark.parametrize(
    "case",
    ["rgb", "gray16", "float_nan", "features_z", "lab", "mask", "rgba"],
)
def test_dask_gives_the_numpy_result(case, astronaut):
    """Same data, same seed, a sample of every pixel: the same labels, centres, image."""
    options = {"seed": 0}
    image = astronaut
    chunks = (100, 130, -1)
    if case == "gray16":
        image = data.camera().astype(np.uint16) * 200
        chunks = (128, 200)
    elif case == "float_nan":
        image = data.camera() / 255.0
        image[::7, ::5] = np.nan
        chunks = (100, 100)
    elif case == "features_z":
        ihc = data.immunohistochemistry()
        image = np.stack([ihc[..., 0].astype(np.uint16) * 200, ihc[..., 2]], axis=0)
        chunks = (1, 200, 128)
        options.update(channel_axis=0, standardize=True)
    elif case == "lab":
        options["color_space"] = "lab"
    elif case == "mask":
        mask = np.zeros(astronaut.shape[:2], bool)
        mask[50:400, 100:300] = True
        options["mask"] = mask
    elif case == "rgba":
        image = np.dstack([astronaut, np.arange(512 * 512).reshape(512, 512) % 256]).astype(
            np.uint8
        )
    before = image.copy()
    lazy = quantize(da.from_array(image, chunks=chunks), 5, **options)
    eager = quantize(image, 5, **options)
    assert isinstance(lazy.labels, da.Array) and isinstance(lazy.image, da.Array)
    assert lazy.params["lazy"] is True and lazy.params["sampled"] == eager.counts.sum()
    np.testing.assert_array_equal(lazy.centers, eager.centers)
    np.testing.assert_array_equal(lazy.labels.compute(), eager.labels)
    np.testing.assert_array_equal(lazy.image.compute(), eager.image)
    np.testing.assert_array_equal(lazy.counts, eager.counts)
    np.testing.assert_array_equal(image, before)


def test_labels_and_image_together_label_each_block_once(monkeypatch):
    """One task per block: each chunk is read and labelled once, with no threads of ours."""
    import dask

    from napari_kquant._core import cancel, lazy

    image = np.ascontiguousarray(np.tile(data.astronaut(), (2, 3, 1))[:1000, :1400])
    palette = quantize(image[::4, ::4], 8, seed=0).palette
    eager = palette.apply(image)
    lazy_input, loads = counting(image, (256, 256, 3))
    labelled = []
    label_eager = lazy.label_eager

    def counted(block, *args, **kwargs):
        labelled.append(block.shape)
        return label_eager(block, *args, **kwargs)

    def no_pool():
        raise AssertionError("a thread pool inside a dask task")

    monkeypatch.setattr(lazy, "label_eager", counted)
    monkeypatch.setattr(cancel, "_shared_pool", no_pool)
    result = palette.apply(lazy_input)
    labels, quantized = dask.compute(result.labels, result.image)
    blocks = 4 * 6
    assert len(loads) == blocks and len(set(loads)) == blocks
    assert len(labelled) == blocks
    np.testing.assert_array_equal(labels, eager.labels)
    np.testing.assert_array_equal(quantized, eager.image)


@pytest.mark.parametrize("chunks", [(64, 64, 3), (512, 100, 3), (37, 511, 3)])
def test_a_sample_is_the_same_whatever_the_chunks(astronaut, chunks):
    lazy = quantize(da.from_array(astronaut, chunks=chunks), 6, sample_size=20_000, seed=3)
    eager = quantize(astronaut, 6, sample_size=20_000, seed=3)
    assert lazy.params["sampled"] == eager.params["sampled"] == 20_000
    np.testing.assert_array_equal(lazy.centers, eager.centers)
    np.testing.assert_array_equal(lazy.labels.compute(), eager.labels)
    again = quantize(da.from_array(astronaut, chunks=chunks), 6, sample_size=20_000, seed=3)
    np.testing.assert_array_equal(again.labels.compute(), lazy.labels.compute())
    # a fitted sample of 8% of the pixels is nearly as compact as the full fit
    full = quantize(astronaut, 6, seed=3)
    table = astronaut.reshape(-1, 3).astype(np.float64)
    sse = ((table - eager.centers[eager.labels.reshape(-1) - 1]) ** 2).sum()
    assert sse <= 1.03 * full.compactness


def test_computing_a_view_touches_only_its_chunks():
    image = np.tile(data.coffee(), (4, 4, 1))  # 1600 x 2400, 4 x 6 chunks of 400
    source, calls = counting(image, (400, 400, 3))
    result = quantize(source, 8, sample_size=50_000)
    assert len(calls) == 24  # the fit sampled chunk by chunk, each once
    calls.clear()
    view = result.labels[:300, 500:700].compute()
    assert calls == [(0, 1, 0)]  # one chunk, not the image
    calls.clear()
    quantized = result.image[1000:1100, 2300:].compute()
    assert calls == [(2, 5, 0)]
    np.testing.assert_array_equal(
        view, quantize(image, 8, sample_size=50_000).labels[:300, 500:700]
    )
    assert quantized.shape == (100, 100, 3)


def test_zarr_in_zarr_out(tmp_path, astronaut):
    store = zarr.open_array(
        str(tmp_path / "in.zarr"),
        mode="w",
        shape=astronaut.shape,
        chunks=(128, 128, 3),
        dtype=np.uint8,
    )
    store[:] = astronaut
    source = zarr.open_array(str(tmp_path / "in.zarr"), mode="r")
    result = quantize(source, 4, seed=0)
    assert isinstance(result.labels, da.Array)
    assert result.labels.chunks[0][0] == 128
    seen = []
    path = export_zarr(result, tmp_path / "out.zarr", progress=lambda d, t: seen.append((d, t)))
    group = zarr.open_group(str(path), mode="r")
    np.testing.assert_array_equal(group["labels/clusters/0"][:], result.labels.compute())
    # OME-Zarr: the colour axis first (c, y, x)
    np.testing.assert_array_equal(group["0"][:], np.moveaxis(result.image.compute(), -1, 0))
    assert group["labels/clusters/0"].chunks == (128, 128)
    attrs = group.attrs["napari_kquant"]
    np.testing.assert_allclose(attrs["centers"], result.centers)
    assert attrs["params"]["k"] == 4 and attrs["params"]["lazy"] is True
    # 4 bands of chunks, each written to the image and the labels together (one task
    # per block makes both)
    assert seen[-1][0] == seen[-1][1] == 4
    assert attrs["palette"]["k"] == 4  # the whole palette travels with the store
    np.testing.assert_array_equal(source[:], astronaut)  # the source is untouched


def test_multiscale_in_multiscale_out(tmp_path, astronaut):
    big = np.tile(astronaut, (2, 2, 1))
    levels = [da.from_array(big[:: 2**i, :: 2**i], chunks=(256, 256, 3)) for i in range(3)]
    result = quantize(levels, 6, seed=0)
    assert result.params["multiscale"] is True and result.params["fit_level"] == 2
    assert [lbl.shape for lbl in result.labels] == [(1024, 1024), (512, 512), (256, 256)]
    assert [img.shape for img in result.image] == [lvl.shape for lvl in levels]
    # fitted on the lowest level: its labels are that level quantized on its own
    lowest = quantize(np.asarray(levels[2]), 6, seed=0)
    np.testing.assert_array_equal(result.centers, lowest.centers)
    np.testing.assert_array_equal(result.labels[2].compute(), lowest.labels)
    # the levels agree with each other where they sample the same pixels
    np.testing.assert_array_equal(result.labels[0][::4, ::4].compute(), result.labels[2].compute())
    on_level0 = quantize(levels, 6, seed=0, fit_level=0, sample_size=100_000)
    assert on_level0.params["fit_level"] == 0 and on_level0.params["sampled"] == 100_000
    path = export_zarr(result, tmp_path / "pyramid.zarr", image=False)
    group = zarr.open_group(str(path), mode="r")
    assert [group["labels/clusters"][str(i)].shape for i in range(3)] == [
        (1024, 1024),
        (512, 512),
        (256, 256),
    ]


def test_lazy_errors(astronaut):
    lazy = da.from_array(astronaut, chunks=128)
    with pytest.raises(ValueError, match="sample_size must be a positive integer"):
        quantize(lazy, 4, sample_size=0)
    with pytest.raises(ValueError, match="planes='each' needs the whole stack"):
        quantize(lazy, 4, planes="each")
    with pytest.raises(ValueError, match="fit_level=3 is not a level"):
        quantize([lazy, lazy[::2, ::2]], 4, fit_level=3)
    with pytest.raises(ValueError, match="a K sweep needs the image in memory"):
        sweep(lazy, [2, 3])
    with pytest.raises(ValueError, match="no pixel to cluster"):
        quantize(lazy, 4, mask=np.zeros((512, 512), bool))
    with pytest.raises(ValueError, match="mask has shape"):
        quantize(lazy, 4, mask=np.zeros((5, 5), bool))
    with pytest.raises(ValueError, match="distinct colours"):
        quantize(da.zeros((100, 100), chunks=50), 2)


def test_runs_unchanged_on_a_distributed_cluster(tmp_path, astronaut):
    distributed = pytest.importorskip("distributed")
    image = np.tile(astronaut, (2, 1, 1))
    local = quantize(da.from_array(image, chunks=(256, 256, 3)), 5, sample_size=30_000)
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        result = quantize(da.from_array(image, chunks=(256, 256, 3)), 5, sample_size=30_000)
        labels = result.labels.compute()
        path = export_zarr(result, tmp_path / "cluster.zarr")
        workers = client.run(lambda: 1)  # both worker processes answered
    assert len(workers) == 2
    np.testing.assert_array_equal(result.centers, local.centers)
    np.testing.assert_array_equal(labels, local.labels.compute())
    np.testing.assert_array_equal(zarr.open_group(str(path))["labels/clusters/0"][:], labels)
