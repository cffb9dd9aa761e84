"""The physical calibration an image file records (tifffile; no napari).

OME-TIFF ``PhysicalSize{X,Y,Z}`` and their units, ImageJ's ``spacing`` and ``unit``,
and the baseline TIFF resolution tags (pixels per inch or centimetre), read as a
:class:`~napari_kquant._core.placement.Placement` of the image's spatial axes. Other
formats (PNG, JPEG) record none: the placement is then empty (1 pixel per unit).
"""

from __future__ import annotations

from pathlib import Path

from .._core.placement import Placement

TIFF = (".tif", ".tiff")
# TIFF ResolutionUnit: 2 inch, 3 centimetre, in micrometres
RESOLUTION_UNIT_UM = {2: 25_400.0, 3: 10_000.0}


def file_placement(path, spatial_ndim: int) -> Placement:
    """The pixel size (and units) ``path`` records for its last ``spatial_ndim`` axes."""
    path = Path(path)
    if path.suffix.lower() not in TIFF:
        return Placement()
    import tifffile

    with tifffile.TiffFile(path) as tif:
        if tif.is_ome:
            found = _ome(tif.ome_metadata or "")
        elif tif.is_imagej:
            found = _imagej(tif)
        else:
            found = _resolution(tif.pages[0])
    if found is None:
        return Placement()
    sizes, units = found  # (z, y, x) or (y, x), largest first
    sizes, units = sizes[-spatial_ndim:], units[-spatial_ndim:]
    return Placement(scale=tuple(sizes), units=tuple(units))


def _ome(xml: str):
    """(sizes, units) of the first image's Pixels element."""
    import tifffile

    pixels = tifffile.xml2dict(xml).get("OME", {}).get("Image", {})
    if isinstance(pixels, list):
        pixels = pixels[0]
    pixels = pixels.get("Pixels", {})
    sizes, units = [], []
    for axis in ("Z", "Y", "X"):
        size = pixels.get(f"PhysicalSize{axis}")
        if size is None:
            if axis == "Z":
                continue
            return None
        sizes.append(float(size))
        units.append(str(pixels.get(f"PhysicalSize{axis}Unit", "µm")))
    return sizes, units


def _imagej(tif):
    """(sizes, units) from ImageJ's metadata and the resolution tags."""
    found = _resolution(tif.pages[0], per_unit=True)
    if found is None:
        return None
    (y, x), _ = found
    meta = tif.imagej_metadata or {}
    unit = str(meta.get("unit", "pixel")).replace("\\u00B5", "µ")
    if unit == "micron":
        unit = "µm"
    sizes = [y, x]
    if "spacing" in meta:
        sizes.insert(0, float(meta["spacing"]))
    return sizes, [unit] * len(sizes)


def _resolution(page, per_unit: bool = False):
    """(sizes, units) of the X/YResolution tags, in µm (or per ImageJ's unit)."""
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None
    size = []
    for name in ("YResolution", "XResolution"):
        numerator, denominator = tags[name].value
        if not numerator:
            return None
        size.append(denominator / numerator)  # units per pixel
    if per_unit:
        return size, [None, None]
    unit = tags["ResolutionUnit"].value if "ResolutionUnit" in tags else 1
    if int(unit) not in RESOLUTION_UNIT_UM:
        return None  # no absolute unit: only an aspect ratio
    factor = RESOLUTION_UNIT_UM[int(unit)]
    return [s * factor for s in size], ["µm", "µm"]
