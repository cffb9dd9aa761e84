"""The engines registry: ``method`` -> how centres are found (core).

* ``fast`` (:mod:`napari_kquant._core.fast`): k-means on a weighted summary of the
  pixels (exact colour codes, a colour grid for large uint8 RGB, coded cells for
  uint16 and float images, or the rows of feature tables), coarse to fine, then
  exact labels.
* ``opencv`` (:mod:`napari_kquant._core.opencv`): ``cv2.kmeans`` on every pixel as
  float32, the OpenCV recipe exactly.

A new engine is one class with ``name``, ``label``, ``max_magnitude``,
``nearest_labels`` (whether a fit's labels are every pixel's nearest centre, as
applying its palette gives them), ``fits(job, ks, defer_labels)`` and
``working_bytes(...)``, and one entry here (a test checks the keys are Options'
method choices).
"""

from __future__ import annotations

from .fast.engine import FastKMeans
from .opencv import OpenCVKMeans

ENGINES = {engine.name: engine for engine in (FastKMeans(), OpenCVKMeans())}
