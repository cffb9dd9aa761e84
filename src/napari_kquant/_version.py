"""The version of napari-kquant, written once.

The build reads it (pyproject's ``[tool.hatch.version]``); ``napari_kquant.__version__``
and ``napari-kquant --version`` are this.
"""

__version__ = "0.2.0"
