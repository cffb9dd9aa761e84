"""The core: options, validation, engines, colour spaces, the palette, fitting and applying.

numpy, OpenCV and dask only: nothing here imports napari or Qt.
"""
