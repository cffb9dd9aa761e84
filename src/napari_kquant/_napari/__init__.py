"""The napari adapter: layers to arrays and options, results to layers (no Qt)."""
