"""The fast engine: k-means on a weighted summary of the pixels, exact labels.

``contract`` (Fit, the Summary protocol, shared sizes), one module per summary
(``codes``, ``grid``, ``rows``), ``lloyd`` (the passes on weighted points),
``kernels`` (compiled loops) and ``engine`` (the stages and the registry entry).
"""
