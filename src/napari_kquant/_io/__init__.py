"""Outputs on disk: safe writes, palette files, zarr export (no napari, no Qt)."""
