"""Benchmark images: real photos from skimage.data and a 3840x2160 mosaic of them."""

from __future__ import annotations

import numpy as np
from skimage import data


def mosaic(height: int = 2160, width: int = 3840) -> np.ndarray:
    """A height x width RGB uint8 mosaic tiled from several skimage.data photos."""
    tiles = [
        data.astronaut(),
        data.coffee(),
        data.chelsea(),
        data.rocket(),
        data.retina()[::2, ::2],
    ]
    out = np.zeros((height, width, 3), np.uint8)
    y, i = 0, 0
    while y < height:
        x, row_height = 0, 0
        while x < width:
            tile = tiles[i % len(tiles)]
            i += 1
            h, w = min(tile.shape[0], height - y), min(tile.shape[1], width - x)
            out[y : y + h, x : x + w] = tile[:h, :w]
            x += w
            row_height = max(row_height, h)
        y += row_height
    return out


def noisy_gradient(height: int = 2160, width: int = 3840, sigma: float = 20.0) -> np.ndarray:
    """A smooth RGB gradient with Gaussian noise (sigma in uint8 levels): millions of colours."""
    rng = np.random.default_rng(0)
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    out = np.empty((height, width, 3), np.uint8)
    for c, base in enumerate((40 + 170 * x + 0 * y, 60 + 120 * y + 0 * x, 200 - 150 * (x + y) / 2)):
        noisy = base + rng.normal(0.0, sigma, (height, width)).astype(np.float32)
        out[..., c] = np.clip(np.rint(noisy), 0, 255)
    return out


def microscopy_12bit(size: int = 2048) -> np.ndarray:
    """A 12-bit gray fluorescence-like image: blurred blobs, Poisson shot noise, read noise."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    spots = np.zeros((size, size), np.float32)
    rows, cols = rng.integers(0, size, (2, size * 2))
    spots[rows, cols] = rng.uniform(0.3, 1.0, len(rows))
    signal = ndimage.gaussian_filter(spots, 6.0)
    signal *= 3000.0 / signal.max()
    signal += ndimage.gaussian_filter(rng.random((size, size), np.float32), 40.0) * 300 + 100
    photons = rng.poisson(signal).astype(np.float32) + rng.normal(0, 4, signal.shape)
    return np.clip(np.rint(photons), 0, 4095).astype(np.uint16)


def many_colour_images() -> dict[str, np.ndarray]:
    """Name -> image with many distinct values (noise, sensors): where summaries stop helping."""
    return {
        "stereo_motorcycle 500x741": data.stereo_motorcycle()[0],
        "hubble_deep_field 872x1000": data.hubble_deep_field(),
        "microscopy 12-bit gray 2048x2048": microscopy_12bit(),
        "noisy gradient 3840x2160 σ=20": noisy_gradient(),
    }


def benchmark_images() -> dict[str, np.ndarray]:
    """Name -> RGB uint8 image, smallest first."""
    return {
        "astronaut 512x512": data.astronaut(),
        "coffee 400x600": data.coffee(),
        "retina 1411x1411": data.retina(),
        "mosaic 3840x2160": mosaic(),
    }


CHUNK = 1024


def photo_tiles():
    """Real photos, each tiled up to a 1024 x 1024 RGB uint8 tile."""
    tiles = []
    for image in (data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.retina()):
        reps = (-(-CHUNK // image.shape[0]), -(-CHUNK // image.shape[1]), 1)
        tiles.append(np.ascontiguousarray(np.tile(image, reps)[:CHUNK, :CHUNK, :3]))
    return tiles


def generated(side: int):
    """A side x side RGB uint8 dask array made on the fly, chunk by chunk (1024 x 1024).

    Chunk (i, j) is photo tile (i + 2j) mod 5 rolled by (7i, 13j) pixels (the tiles of
    bench_scale's zarr). A module function, so that dask workers import it rather than
    receive the tiles with every task.
    """
    import dask.array as da

    edges = tuple(min(CHUNK, side - start) for start in range(0, side, CHUNK))
    return da.map_blocks(
        _generated_chunk,
        chunks=(edges, edges, (3,)),
        dtype=np.uint8,
        meta=np.empty((0, 0, 0), np.uint8),
    )


def _generated_chunk(block_info=None):
    (top, bottom), (left, right), _ = block_info[None]["array-location"]
    i, j = top // CHUNK, left // CHUNK
    tiles = _tiles()
    tile = np.roll(tiles[(i + 2 * j) % len(tiles)], (7 * i, 13 * j), axis=(0, 1))
    return tile[: bottom - top, : right - left]


_TILES = []


def _tiles():
    if not _TILES:
        _TILES.extend(photo_tiles())
    return _TILES
