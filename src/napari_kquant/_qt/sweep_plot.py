"""The elbow plot and palette of the Compare K dock (matplotlib in Qt)."""

from __future__ import annotations

from qtpy.QtCore import Qt

from .._core.sweep import Sweep


class SweepPlot:
    """Matplotlib canvas with the elbow plot and the shown K's palette.

    A click anywhere over the curve picks the nearest K (by its x position); hovering
    near a point shows its figures and a pointing hand.
    """

    HOVER_PX = 12  # how near (in pixels) the pointer must be to a point to show it
    EXPLAINED = (
        "compactness: the sum of squared distances of the pixels to their centres, in "
        "the clustering space (lower: tighter clusters). PSNR: peak signal-to-noise ratio "
        "of the quantized image against the source, in dB (higher: closer). The dotted "
        "line marks the elbow, where more K stops paying. Click a point to show that K."
    )

    HINT = "Run a sweep: compactness and\nPSNR against K appear here."
    LABEL_PX = 26  # a palette bar narrower than this (in pixels) shows no label

    def __init__(self, viewer=None):
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(3.2, 3.0), layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(200)
        self.canvas.setToolTip(self.EXPLAINED)
        self.curve, self.palette = self.figure.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]})
        self.psnr_axis = self.curve.twinx()
        self.line = None
        self.marker = None
        self.hover = None
        self.elbow = None
        self.ks: tuple = ()
        self.shown_k = None
        self._figures: dict = {}
        self.on_pick = None
        self._viewer = viewer
        self.colors = {"background": "white", "text": "black", "ring": "black"}
        if viewer is not None:
            viewer.events.theme.connect(self.follow_theme)
        self.follow_theme()
        self._hint()
        self.canvas.mpl_connect("button_press_event", self._clicked)
        self.canvas.mpl_connect("motion_notify_event", self._moved)

    def follow_theme(self, event=None):
        """Take napari's current theme's colours (the dock's), now and on every change."""
        if self._viewer is not None:
            from napari.utils.theme import get_theme

            theme = get_theme(self._viewer.theme)
            self.colors = {
                "background": theme.background.as_hex(),
                "text": theme.text.as_hex(),
                "ring": theme.text.as_hex(),
            }
        self._paint()

    def _paint(self):
        """Apply the theme's colours to the figure and its axes (again after a redraw)."""
        background, text = self.colors["background"], self.colors["text"]
        self.figure.set_facecolor(background)
        for axis in (self.curve, self.psnr_axis, self.palette):
            axis.set_facecolor(background)
            axis.tick_params(colors=text, which="both")
            axis.xaxis.label.set_color(text)
            axis.title.set_color(text)
            for spine in axis.spines.values():
                spine.set_color(text)
        if self.marker is not None:
            self.marker.set_markeredgecolor(self.colors["ring"])
        for line in self.curve.get_lines():
            if line.get_linestyle() == ":":  # the elbow
                line.set_color(text)
        self.canvas.draw_idle()

    def _hint(self):
        """Before the first sweep: a line saying what will appear, not empty 0-1 axes."""
        for axis in (self.curve, self.psnr_axis, self.palette):
            axis.clear()
            axis.set_axis_off()
        self.curve.text(
            0.5,
            0.5,
            self.HINT,
            ha="center",
            va="center",
            fontsize=8,
            color=self.colors["text"],
            transform=self.curve.transAxes,
        )
        self._paint()

    def draw(self, sweep: Sweep, title: str):
        """Compactness and PSNR against K, with the suggested elbow."""
        from matplotlib.ticker import EngFormatter, MaxNLocator

        ks, compactness, psnr = sweep.ks, sweep.compactness, sweep.psnr
        self.ks = tuple(ks)
        self.curve.clear()
        self.psnr_axis.clear()
        self.curve.set_axis_on()
        self.psnr_axis.set_axis_on()
        # clear() puts a twin axis back on the left
        self.psnr_axis.yaxis.tick_right()
        self.psnr_axis.yaxis.set_label_position("right")
        (self.line,) = self.curve.plot(ks, compactness, "o-", color="tab:blue")
        self.psnr_axis.plot(ks, psnr, "s--", color="tab:orange", markersize=3)
        self.curve.set_xlabel("K")
        self.curve.xaxis.set_major_locator(MaxNLocator(integer=True))
        # 1.2 G rather than an offset text "1e9" over the title
        self.curve.yaxis.set_major_formatter(EngFormatter(places=1, sep=""))
        # short labels: a narrow dock does not clip them (the tooltip explains)
        self.curve.set_ylabel("SSE", color="tab:blue")
        self.psnr_axis.set_ylabel("PSNR dB", color="tab:orange")
        self.elbow = sweep.elbow()
        if self.elbow is not None:
            self.curve.axvline(self.elbow, color="grey", linestyle=":")
            self.curve.set_title(f"{title}: elbow at K={self.elbow}", fontsize=9)
        (self.marker,) = self.psnr_axis.plot(
            [],
            [],
            "o",
            markersize=13,
            markerfacecolor="none",
            markeredgecolor="black",
            markeredgewidth=2,
            zorder=5,
        )
        self.marker.set_transform(self.curve.transData)  # drawn on top, placed on the curve
        self.hover = self.psnr_axis.annotate(
            "",
            (0, 0),
            xycoords=self.curve.transData,
            xytext=(8, 8),
            textcoords="offset points",
            fontsize=7,
            zorder=6,
            bbox={"boxstyle": "round", "fc": "lightyellow", "alpha": 0.9},
        )
        self.hover.set_visible(False)
        self._figures = dict(zip(ks, zip(compactness, psnr, strict=True), strict=True))
        self._paint()

    def highlight(self, k: int):
        """Ring the point of ``k`` on the curve."""
        if self.marker is None or k not in self._figures:
            return
        self.marker.set_data([k], [self._figures[k][0]])
        self.shown_k = k
        self.canvas.draw_idle()

    def draw_palette(self, result, colors):
        """The centre colours of ``result``, each as wide as its pixel fraction."""
        self.palette.clear()
        width_px = self.palette.get_window_extent().width or 1.0
        left = 0.0
        for label, (fraction, color) in enumerate(zip(result.fractions, colors, strict=True), 1):
            self.palette.barh(
                0, fraction, left=left, color=color[:3], edgecolor=self.colors["background"]
            )
            if fraction * width_px >= self.LABEL_PX:  # room for "12 / 14%"
                self.palette.text(
                    left + fraction / 2,
                    0,
                    f"{label}\n{fraction:.0%}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if sum(color[:3]) < 1.5 else "black",
                )
            left += fraction
        self.palette.set_xlim(0, 1)
        self.palette.set_axis_off()
        self.palette.set_title(f"palette K={result.k} (label, fraction)", fontsize=8)
        self._paint()

    def point_of(self, k: int) -> tuple[float, float]:
        """Display (pixel) coordinates of K's point on the curve, matplotlib's origin."""
        return tuple(self.curve.transData.transform((k, self._figures[k][0])))

    def nearest(self, x: float, y: float | None = None, within: float | None = None):
        """The K whose point is nearest to display position (x, y); x alone when y is None."""
        if not self.ks:
            return None
        points = {k: self.point_of(k) for k in self.ks}
        distance = {
            k: abs(px - x) if y is None else ((px - x) ** 2 + (py - y) ** 2) ** 0.5
            for k, (px, py) in points.items()
        }
        k = min(distance, key=distance.get)
        return k if within is None or distance[k] <= within else None

    def _clicked(self, event):
        if event.inaxes not in (self.curve, self.psnr_axis) or event.button != 1:
            return
        k = self.nearest(event.x)
        if k is not None and self.on_pick is not None:
            self.on_pick(k)

    def _moved(self, event):
        if self.hover is None:
            return
        over = event.inaxes in (self.curve, self.psnr_axis)
        k = self.nearest(event.x, event.y, self.HOVER_PX) if over else None
        visible = self.hover.get_visible()
        if k is None:
            if visible:
                self.hover.set_visible(False)
                self.canvas.unsetCursor()
                self.canvas.draw_idle()
            return
        compactness, psnr = self._figures[k]
        self.hover.xy = (k, compactness)
        self.hover.set_text(f"K={k}\ncompactness {compactness:.4g}\nPSNR {psnr:.1f} dB")
        self.hover.set_visible(True)
        self.canvas.setCursor(Qt.CursorShape.PointingHandCursor)
        self.canvas.draw_idle()
