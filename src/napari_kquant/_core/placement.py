"""Placement: where an image's pixels sit in the world (core: standard library only).

The spatial axes' scale, translation, units and names, as a napari layer holds them
(``layer.scale``, ``translate``, ``units``, ``axis_labels``), a caller gives them, or an
input file's metadata says. Results keep the source's placement; exports write it
(NGFF ``coordinateTransformations`` and ``axes``), so measurements downstream come
out in the source's units.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NAMES = ("t", "z", "y", "x")  # the last N for N spatial axes, when none are given
TIME_NAMES = {"t", "time", "frame", "frames"}
# NGFF 0.5 space and time units (UDUNITS-2 names), and the spellings napari and files use
UNIT_NAMES = {
    "µm": "micrometer",
    "um": "micrometer",
    "μm": "micrometer",
    "micron": "micrometer",
    "nm": "nanometer",
    "mm": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "s": "second",
    "sec": "second",
    "ms": "millisecond",
    "min": "minute",
    "h": "hour",
}
NGFF_UNITS = {
    "angstrom", "attometer", "centimeter", "decimeter", "exameter", "femtometer", "foot",
    "gigameter", "hectometer", "inch", "kilometer", "megameter", "meter", "micrometer", "mile",
    "millimeter", "nanometer", "parsec", "petameter", "picometer", "terameter", "yard",
    "yoctometer", "yottameter", "zeptometer", "zettameter",
    "attosecond", "centisecond", "day", "decisecond", "exasecond", "femtosecond", "gigasecond",
    "hectosecond", "hour", "kilosecond", "megasecond", "microsecond", "millisecond", "minute",
    "nanosecond", "petasecond", "picosecond", "second", "terasecond", "yoctosecond",
    "yottasecond", "zeptosecond", "zettasecond",
}  # fmt: skip


def ngff_unit(unit) -> str | None:
    """``unit`` as an NGFF unit name (None for pixels, none, or a unit NGFF does not list)."""
    if unit is None:
        return None
    name = str(unit).strip()
    name = UNIT_NAMES.get(name, name)
    return name if name in NGFF_UNITS else None


@dataclass(frozen=True)
class Placement:
    """Scale, translation, unit and name of each spatial axis (None: the default).

    Examples
    --------
    >>> p = Placement(scale=(0.5, 0.25), translate=(10, 20), units=("µm", "µm"))
    >>> [(a["name"], a["type"], a["unit"]) for a in p.axes(2)]
    [('y', 'space', 'micrometer'), ('x', 'space', 'micrometer')]
    >>> p.scales(2), p.translations(2)
    ([0.5, 0.25], [10.0, 20.0])
    """

    scale: tuple | None = None
    translate: tuple | None = None
    units: tuple | None = None
    axis_names: tuple | None = None

    def _last(self, values, ndim: int, default):
        values = list(values) if values is not None else []
        values = (
            values[-ndim:] if len(values) >= ndim else [default] * (ndim - len(values)) + values
        )
        return values

    def scales(self, ndim: int) -> list[float]:
        """Each of the last ``ndim`` axes' pixel size (1 where unknown)."""
        return [float(v) for v in self._last(self.scale, ndim, 1.0)]

    def translations(self, ndim: int) -> list[float]:
        """Each of the last ``ndim`` axes' position of the first pixel (0 where unknown)."""
        return [float(v) for v in self._last(self.translate, ndim, 0.0)]

    def names(self, ndim: int) -> list[str]:
        """Axis names: the given ones (made unique), else the last of t, z, y, x."""
        given = [str(n) for n in self._last(self.axis_names, ndim, "")]
        defaults = list(DEFAULT_NAMES[-ndim:]) if ndim <= 4 else [f"dim_{i}" for i in range(ndim)]
        names = [g or d for g, d in zip(given, defaults, strict=True)]
        if len(set(names)) < len(names) or "c" in names:  # NGFF names must be unique
            names = defaults
        return names

    def axes(self, ndim: int) -> list[dict]:
        """NGFF axes of the spatial dimensions: name, type (time or space) and unit."""
        units = self._last(self.units, ndim, None)
        out = []
        for name, unit in zip(self.names(ndim), units, strict=True):
            axis = {"name": name, "type": "time" if name.lower() in TIME_NAMES else "space"}
            unit = ngff_unit(unit)
            if unit is not None:
                axis["unit"] = unit
            out.append(axis)
        return out
