"""Figures as inline SVG and HTML: what a browser draws in a few milliseconds.

A plotly chart costs this project's 2-core machine 60–150 ms of browser time each time it is
redrawn (and 1.2 s to load plotly.js on a page's first visit), so a slider that redraws three
of them cannot answer in 200 ms. The classroom figures are simple — lines, points, Gaussian
ellipses, contour lines, images — and are written here as SVG strings instead, shown with
``st.html``. Every number they draw comes from ``dvae_engine``; the figures only place it.

A :class:`Chart` is one set of axes: add series (``line``, ``markers``, ``ellipses``,
``contours``, ``band``, ``image``, reference lines, text), then ``to_html()``. Series keep
their names (``data-name``) and, for lines and points, their values (``data-x``/``data-y``),
so tests and screen readers see what a reader sees. Colours are the Okabe–Ito palette;
dashes tell series apart without colour.
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import math
from collections.abc import Sequence

import numpy as np

FONT_SIZE = 17  # px at the design width: readable on a 1280×720 projector
TEXT_COLOR = "#2a3f5f"
GRID_COLOR = "#E5ECF6"
AXIS_COLOR = "#444"
DASHES = {"solid": None, "dash": "9 5", "dot": "2 4", "dashdot": "9 4 2 4", "longdash": "15 6"}
MINUS = "\u2212"
_ids = itertools.count()


def esc(text) -> str:
    return html.escape(str(text), quote=True)


def fmt_number(value: float, digits: int = 4) -> str:
    """A compact number for data attributes and tooltips (``digits`` significant digits)."""
    if value is None or not np.isfinite(value):
        return "nan"
    return f"{float(value):.{digits}g}"


def data_list(values, digits: int = 5) -> str:
    return ",".join(fmt_number(v, digits) for v in np.asarray(values, dtype=np.float64).ravel())


def png_data_uri(pixels: np.ndarray) -> str:
    """A uint8 array ``(H, W)`` (grey), ``(H, W, 3)`` (RGB) or ``(H, W, 4)`` (RGBA) as a PNG data URI."""
    from PIL import Image

    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    mode = "L" if pixels.ndim == 2 else {3: "RGB", 4: "RGBA"}[pixels.shape[-1]]
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def nice_ticks(lo: float, hi: float, target: int = 6) -> tuple[np.ndarray, list[str]]:
    """Round tick values (steps of 1, 2, 2.5 or 5 × 10^k) inside [lo, hi] and their labels."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi <= lo:
        return np.array([lo]), [tick_label(lo, 2)]
    raw = (hi - lo) / max(target, 1)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    factor = next(f for f in (1, 2, 2.5, 5, 10) if f * magnitude >= raw * (1 - 1e-9))
    step = factor * magnitude
    first = math.ceil(lo / step - 1e-9) * step
    ticks = np.arange(first, hi + step * 1e-6, step)
    decimals = max(0, -math.floor(math.log10(step) + 1e-9) + (1 if factor == 2.5 else 0))
    return ticks, [tick_label(t, decimals) for t in ticks]


def tick_label(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    if float(text) == 0:
        text = f"{0:.{decimals}f}"
    return text.replace("-", MINUS)


def _pad(lo: float, hi: float, share: float = 0.04) -> tuple[float, float]:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return -1.0, 1.0
    if hi - lo < 1e-12:
        half = max(abs(lo) * 0.05, 0.5)
        return lo - half, hi + half
    margin = (hi - lo) * share
    return lo - margin, hi + margin


def _star_path(x: float, y: float, r: float) -> str:
    points = []
    for k in range(10):
        radius = r if k % 2 == 0 else r * 0.45
        angle = math.pi / 2 + k * math.pi / 5
        points.append(f"{x + radius * math.cos(angle):.1f},{y - radius * math.sin(angle):.1f}")
    return "M" + " L".join(points) + "Z"


def _triangle_path(x: float, y: float, r: float) -> str:
    return f"M{x:.1f},{y - r:.1f} L{x + r * 0.9:.1f},{y + r * 0.6:.1f} L{x - r * 0.9:.1f},{y + r * 0.6:.1f}Z"


def marker_svg(symbol: str, x: float, y: float, size: float, color: str, outline: str | None,
               opacity: float = 1.0, extra: str = "") -> str:
    """One marker at pixel (x, y); ``size`` is its diameter in px."""
    stroke = f' stroke="{outline}" stroke-width="1"' if outline else ""
    alpha = f' fill-opacity="{opacity:.3g}"' if opacity < 1 else ""
    r = size / 2
    if symbol == "star":
        return f'<path d="{_star_path(x, y, r)}" fill="{color}"{stroke}{alpha}{extra}'
    if symbol == "triangle-up":
        return f'<path d="{_triangle_path(x, y, r)}" fill="{color}"{stroke}{alpha}{extra}'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{color}"{stroke}{alpha}{extra}'


def legend_swatch(kind: str, color: str, dash: str | None = None, width: float = 2.5, symbol: str = "circle",
                  opacity: float = 1.0) -> str:
    """A small SVG sample of a series for the legend."""
    if kind == "line":
        pattern = DASHES.get(dash or "solid")
        dash_attr = f' stroke-dasharray="{pattern}"' if pattern else ""
        body = (f'<line x1="2" y1="8" x2="38" y2="8" stroke="{color}" stroke-width="{min(width, 5):.3g}"'
                f' stroke-linecap="round" opacity="{max(opacity, 0.35):.3g}"{dash_attr}/>')
    elif kind == "marker":
        body = marker_svg(symbol, 20, 8, 13, color, "white") + "/>"
    else:  # a filled area (band, density)
        body = f'<rect x="4" y="2" width="32" height="12" fill="{color}" opacity="{max(opacity, 0.35):.3g}"/>'
    return f'<svg width="40" height="16" viewBox="0 0 40 16" aria-hidden="true">{body}</svg>'


def legend_html(items: Sequence[tuple[str, str]], font_size: int = FONT_SIZE - 2) -> str:
    """``(swatch svg, label)`` pairs as a wrapping row of entries."""
    if not items:
        return ""
    entries = "".join(
        f'<span style="display:inline-flex;align-items:center;gap:.35em;white-space:nowrap">{swatch}'
        f'<span>{esc(label)}</span></span>' for swatch, label in items)
    return (f'<div class="legend" style="display:flex;flex-wrap:wrap;gap:.15em 1.2em;margin:.3em 0 0 .4em;'
            f'font-size:{font_size}px;line-height:1.35">{entries}</div>')


def figure_html(body: str, title: str | None = None, legend: str = "", name: str | None = None,
                max_width: int | None = None, font_size: int = FONT_SIZE) -> str:
    """Wrap an SVG (or an image grid) with its title above and legend below, on white."""
    heading = (f'<div class="title" style="font-size:{font_size + 3}px;font-weight:600;margin:0 0 .25em .2em">'
               f'{esc(title)}</div>' if title else "")
    width = f"max-width:{max_width}px;" if max_width else ""
    label = f' data-title="{esc(title)}"' if title else ""
    label += f' data-figure="{esc(name)}"' if name else ""
    return (f'<figure class="dvae-figure"{label} style="margin:0 0 .6em 0;{width}background:white;'
            f'color:{TEXT_COLOR};padding:.4em .3em;border-radius:4px;font-size:{font_size}px">'
            f'{heading}{body}{legend}</figure>')


def standalone_html(figure: str, title: str) -> str:
    """A figure as a self-contained HTML file (for the download buttons)."""
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{esc(title)}</title></head>'
            f'<body style="font-family:sans-serif;margin:1em">{figure}</body></html>')


class Chart:
    """One pair of axes drawn as SVG; add series, then :meth:`to_html`.

    Sizes are pixels at the design width ``width``; the SVG scales down with its column
    (never up). Ranges default to the data's, padded by 4 %; ``equal_aspect`` keeps one
    unit of x as long as one unit of y (for latent spaces).
    """

    def __init__(self, width: int = 640, height: int = 420, title: str | None = None, x_title: str = "",
                 y_title: str = "", x_range: Sequence[float] | None = None, y_range: Sequence[float] | None = None,
                 equal_aspect: bool = False, margin: Sequence[int] | None = None, font_size: int = FONT_SIZE,
                 axes: bool = True, name: str | None = None, x_ticks: int = 6, y_ticks: int = 6) -> None:
        self.width, self.height, self.title, self.name = width, height, title, name
        self.x_title, self.y_title = x_title, y_title
        self.x_range, self.y_range = x_range, y_range
        self.equal_aspect, self.font_size, self.axes = equal_aspect, font_size, axes
        self.margin = margin
        self.x_ticks, self.y_ticks = x_ticks, y_ticks
        self._series: list[tuple[str, dict]] = []  # (kind, spec), drawn in order
        self._legend: list[tuple[str, str]] = []
        self._xs: list[np.ndarray] = []
        self._ys: list[np.ndarray] = []

    @property
    def legend_items(self) -> list[tuple[str, str]]:
        """The ``(swatch, label)`` pairs of the legend, e.g. to share one legend between panels."""
        return list(self._legend)

    # --- adding series -------------------------------------------------------------------------
    def include(self, x, y) -> Chart:
        """Make the automatic ranges hold these points (as if a series passed through them)."""
        self._extent(x, y)
        return self

    def _extent(self, x, y) -> None:
        x = np.asarray(x, dtype=np.float64).ravel()
        y = np.asarray(y, dtype=np.float64).ravel()
        self._xs.append(x[np.isfinite(x)])
        self._ys.append(y[np.isfinite(y)])

    def _legend_entry(self, name, show, swatch) -> None:
        if name and show:
            self._legend.append((swatch, name))

    def line(self, x, y, name: str | None = None, color: str = "#000", width: float = 2.0, dash: str = "solid",
             opacity: float = 1.0, markers: bool = False, marker_size: float = 6, show_legend: bool = True,
             record: bool = True, tooltip: str | None = None) -> Chart:
        """A polyline through (x, y); NaNs break it. ``record`` keeps the values in ``data-x``/``data-y``."""
        self._extent(x, y)
        self._series.append(("line", dict(x=np.asarray(x, float), y=np.asarray(y, float), name=name, color=color,
                                          width=width, dash=dash, opacity=opacity, markers=markers,
                                          marker_size=marker_size, record=record, tooltip=tooltip)))
        self._legend_entry(name, show_legend, legend_swatch("line", color, dash, width, opacity=opacity))
        return self

    def markers(self, x, y, name: str | None = None, color: str = "#000", size=8, symbol: str = "circle",
                outline: str | None = "white", opacity: float = 1.0, tooltips: Sequence[str] | None = None,
                show_legend: bool = True, error: Sequence[float] | None = None) -> Chart:
        """Points (``size`` a number or one per point, diameter in px), optional vertical error bars ±``error``."""
        x, y = np.asarray(x, float).ravel(), np.asarray(y, float).ravel()
        self._extent(x, y)
        if error is not None:
            err = np.asarray(error, float).ravel()
            self._extent(x, y + err)
            self._extent(x, y - err)
        self._series.append(("markers", dict(x=x, y=y, name=name, color=color, size=size, symbol=symbol,
                                             outline=outline, opacity=opacity, tooltips=tooltips, error=error)))
        self._legend_entry(name, show_legend, legend_swatch("marker", color, symbol=symbol))
        return self

    def ellipses(self, centers, covariances, num_std: float = 2.0, name: str | None = None, color: str = "#000",
                 width: float = 1.0, dash: str = "solid", opacity: float = 1.0, show_legend: bool = True) -> Chart:
        """Outlines of Gaussians at ``num_std`` standard deviations: centers ``(N, 2)``, covariances ``(N, 2, 2)``."""
        centers = np.asarray(centers, float).reshape(-1, 2)
        covariances = np.asarray(covariances, float).reshape(-1, 2, 2)
        values, vectors = np.linalg.eigh(covariances)  # ascending eigenvalues, (N, 2) and (N, 2, 2)
        radii = num_std * np.sqrt(np.maximum(values, 0.0))  # (N, 2)
        reach = np.sqrt((vectors ** 2 * radii[:, None, :] ** 2).sum(-1))  # (N, 2): half extent along x and y
        self._extent(np.concatenate([centers[:, 0] - reach[:, 0], centers[:, 0] + reach[:, 0]]),
                     np.concatenate([centers[:, 1] - reach[:, 1], centers[:, 1] + reach[:, 1]]))
        self._series.append(("ellipses", dict(centers=centers, radii=radii, vectors=vectors, name=name, color=color,
                                              width=width, dash=dash, opacity=opacity)))
        self._legend_entry(name, show_legend, legend_swatch("line", color, dash, width, opacity=opacity))
        return self

    def contours(self, x_axis, y_axis, field, levels: Sequence[float], name: str | None = None, color: str = "#000",
                 width: float = 2.0, dash: str = "solid", labels: Sequence[str] | None = None,
                 show_legend: bool = True, extent: bool = True) -> Chart:
        """Contour lines of ``field`` ``(len(y_axis), len(x_axis))`` at ``levels``, optionally labelled."""
        x_axis, y_axis = np.asarray(x_axis, float), np.asarray(y_axis, float)
        field = np.asarray(field, float)
        segments = [contour_segments(x_axis, y_axis, field, level) for level in levels]
        if extent:
            points = np.concatenate([s.reshape(-1, 2) for s in segments] or [np.zeros((0, 2))])
            self._extent(points[:, 0], points[:, 1])
        self._series.append(("contours", dict(segments=segments, labels=labels, name=name, color=color, width=width,
                                              dash=dash)))
        self._legend_entry(name, show_legend, legend_swatch("line", color, dash, width))
        return self

    def band(self, x, lower, upper, color: str = "#000", opacity: float = 0.2, name: str | None = None,
             show_legend: bool = False) -> Chart:
        """The area between two curves over x."""
        x = np.asarray(x, float)
        self._extent(x, lower)
        self._extent(x, upper)
        self._series.append(("band", dict(x=x, lower=np.asarray(lower, float), upper=np.asarray(upper, float),
                                          color=color, opacity=opacity, name=name)))
        self._legend_entry(name, show_legend, legend_swatch("area", color, opacity=opacity))
        return self

    def image(self, uri: str, x0: float, x1: float, y0: float, y1: float, name: str | None = None,
              color: str | None = None, show_legend: bool = True, smooth: bool = True) -> Chart:
        """An image (a data URI) stretched over [x0, x1] × [y0, y1] in data coordinates (row 0 at the top)."""
        self._series.append(("image", dict(uri=uri, x0=x0, x1=x1, y0=y0, y1=y1, name=name, smooth=smooth)))
        if color:
            self._legend_entry(name, show_legend, legend_swatch("area", color, opacity=0.5))
        return self

    def vline(self, x: float, color: str = "grey", dash: str = "dot", width: float = 1.5,
              label: str | None = None) -> Chart:
        self._series.append(("vline", dict(value=float(x), color=color, dash=dash, width=width, label=label)))
        return self

    def hline(self, y: float, color: str = "#000", dash: str = "solid", width: float = 1.0,
              label: str | None = None) -> Chart:
        self._series.append(("hline", dict(value=float(y), color=color, dash=dash, width=width, label=label)))
        return self

    def text(self, x: float, y: float, text: str, color: str = TEXT_COLOR, anchor: str = "middle",
             baseline: str = "middle", size: int | None = None) -> Chart:
        self._series.append(("text", dict(x=float(x), y=float(y), text=text, color=color, anchor=anchor,
                                          baseline=baseline, size=size)))
        return self

    # --- drawing -------------------------------------------------------------------------------
    def _ranges(self) -> tuple[tuple[float, float], tuple[float, float]]:
        def auto(values: list[np.ndarray], given) -> tuple[float, float]:
            if given is not None:
                return float(given[0]), float(given[1])
            data = np.concatenate(values) if values else np.zeros(0)
            return _pad(float(data.min()), float(data.max())) if data.size else (-1.0, 1.0)

        return auto(self._xs, self.x_range), auto(self._ys, self.y_range)

    def _margins(self, y_labels: list[str]) -> tuple[int, int, int, int]:
        if self.margin is not None:
            return tuple(self.margin)
        if not self.axes:
            return (4, 4, 4, 4)
        label_width = max((len(t) for t in y_labels), default=1) * 0.56 * (self.font_size - 2)
        left = int(label_width + 14 + (self.font_size * 1.6 if self.y_title else 0))
        bottom = int(self.font_size * 1.6 + (self.font_size * 1.6 if self.x_title else 0) + 6)
        return (left, 16, 12, bottom)

    def to_svg(self) -> str:
        (x_lo, x_hi), (y_lo, y_hi) = self._ranges()
        y_ticks, y_labels = nice_ticks(y_lo, y_hi, self.y_ticks)
        left, right, top, bottom = self._margins(y_labels)
        plot_w, plot_h = self.width - left - right, self.height - top - bottom
        if self.equal_aspect:
            scale = min(plot_w / (x_hi - x_lo), plot_h / (y_hi - y_lo))
            cx, cy = (x_lo + x_hi) / 2, (y_lo + y_hi) / 2
            x_lo, x_hi = cx - plot_w / scale / 2, cx + plot_w / scale / 2
            y_lo, y_hi = cy - plot_h / scale / 2, cy + plot_h / scale / 2
            y_ticks, y_labels = nice_ticks(y_lo, y_hi, self.y_ticks)
        x_ticks, x_labels = nice_ticks(x_lo, x_hi, self.x_ticks)
        sx = plot_w / (x_hi - x_lo)
        sy = plot_h / (y_hi - y_lo)

        def px(x):
            return left + (np.asarray(x, float) - x_lo) * sx

        def py(y):
            return top + plot_h - (np.asarray(y, float) - y_lo) * sy

        clip = f"clip{next(_ids)}"
        fs = self.font_size
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width} {self.height}" width="100%" '
               f'style="max-width:{self.width}px;height:auto;display:block;overflow:visible;font-family:inherit" '
               f'font-size="{fs - 2}" fill="{TEXT_COLOR}" role="img"'
               + (f' aria-label="{esc(self.title)}"' if self.title else "") + ">",
               f'<defs><clipPath id="{clip}"><rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}"/>'
               f'</clipPath></defs>']
        if self.axes:
            grid = []
            for t in x_ticks:
                grid.append(f"M{px(t):.1f},{top} V{top + plot_h}")
            for t in y_ticks:
                grid.append(f"M{left},{py(t):.1f} H{left + plot_w}")
            out.append(f'<path d="{" ".join(grid)}" stroke="{GRID_COLOR}" stroke-width="1" fill="none"/>')
            out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
                       f'stroke="{AXIS_COLOR}" stroke-width="1"/>')
            for t, text in zip(x_ticks, x_labels):
                out.append(f'<text x="{px(t):.1f}" y="{top + plot_h + fs + 2}" text-anchor="middle">{text}</text>')
            for t, text in zip(y_ticks, y_labels):
                out.append(f'<text x="{left - 6}" y="{py(t):.1f}" text-anchor="end" '
                           f'dominant-baseline="middle">{text}</text>')
            if self.x_title:
                out.append(f'<text class="x-title" x="{left + plot_w / 2:.1f}" y="{self.height - 6}" '
                           f'text-anchor="middle" font-size="{fs}">{esc(self.x_title)}</text>')
            if self.y_title:
                ty = top + plot_h / 2
                out.append(f'<text class="y-title" x="{fs}" y="{ty:.1f}" text-anchor="middle" font-size="{fs}" '
                           f'transform="rotate(-90 {fs} {ty:.1f})">{esc(self.y_title)}</text>')
        out.append(f'<g clip-path="url(#{clip})">')
        overlay = []
        for kind, spec in self._series:
            if kind in ("vline", "hline", "text"):
                overlay.append((kind, spec))
                continue
            out.append(getattr(self, f"_draw_{kind}")(spec, px, py, sx, sy))
        out.append("</g>")
        for kind, spec in overlay:
            out.append(getattr(self, f"_draw_{kind}")(spec, px, py, sx, sy, (left, top, plot_w, plot_h)))
        out.append("</svg>")
        return "".join(out)

    def to_html(self) -> str:
        return figure_html(self.to_svg(), self.title, legend_html(self._legend), self.name, self.width,
                           self.font_size)

    # --- series renderers ---------------------------------------------------------------------
    @staticmethod
    def _stroke(color, width, dash, opacity=1.0) -> str:
        pattern = DASHES.get(dash or "solid")
        out = f'fill="none" stroke="{color}" stroke-width="{width:.3g}" stroke-linejoin="round" stroke-linecap="round"'
        if pattern:
            out += f' stroke-dasharray="{pattern}"'
        if opacity < 1:
            out += f' stroke-opacity="{opacity:.3g}"'
        return out

    @staticmethod
    def _path(xs: np.ndarray, ys: np.ndarray) -> str:
        """An SVG path through the points, 0.1 px precision; a non-finite point breaks the line (a new "M")."""
        xs, ys = np.asarray(xs, float).ravel(), np.asarray(ys, float).ravel()
        finite = np.isfinite(xs) & np.isfinite(ys)
        # runs of finite points: [start, stop) pairs (vectorised: a density curve has thousands of points)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], finite.astype(np.int8), [0]])))
        runs = []
        for start, stop in zip(edges[::2], edges[1::2]):
            x, y = np.round(xs[start:stop], 1), np.round(ys[start:stop], 1)
            # at the 0.1 px the path is written with, a point strictly inside a horizontal or vertical stretch
            # (a density's flat tails: most of its thousands of grid points) lies on the line between its
            # neighbours: leave it out, the drawn line is the same and the page has far less to parse
            keep = np.ones(len(x), dtype=bool)
            if len(x) > 2:
                flat = ((y[1:-1] == y[:-2]) & (y[1:-1] == y[2:])) | ((x[1:-1] == x[:-2]) & (x[1:-1] == x[2:]))
                keep[1:-1] = ~flat
            points = map("{:.1f},{:.1f}".format, x[keep].tolist(), y[keep].tolist())
            runs.append("M" + " L".join(points))
        return " ".join(runs)

    def _draw_line(self, s, px, py, sx, sy) -> str:
        attrs = f' data-name="{esc(s["name"])}"' if s["name"] else ""
        if s["record"]:
            attrs += f' data-x="{data_list(s["x"])}" data-y="{data_list(s["y"])}" data-dash="{s["dash"]}"'
        title = f'<title>{esc(s["tooltip"] or s["name"])}</title>' if (s["tooltip"] or s["name"]) else ""
        out = [f'<g class="series line"{attrs}><path d="{self._path(px(s["x"]), py(s["y"]))}" '
               f'{self._stroke(s["color"], s["width"], s["dash"], s["opacity"])}>{title}</path>']
        if s["markers"]:
            out += [marker_svg("circle", x, y, s["marker_size"], s["color"], None) + "/>"
                    for x, y in zip(px(s["x"]), py(s["y"])) if np.isfinite(x) and np.isfinite(y)]
        out.append("</g>")
        return "".join(out)

    def _draw_markers(self, s, px, py, sx, sy) -> str:
        xs, ys = px(s["x"]), py(s["y"])
        sizes = np.broadcast_to(np.asarray(s["size"], float), xs.shape)
        attrs = f' data-name="{esc(s["name"])}"' if s["name"] else ""
        attrs += f' data-x="{data_list(s["x"])}" data-y="{data_list(s["y"])}"'
        out = [f'<g class="series markers"{attrs}>']
        if s["error"] is not None:
            err = np.asarray(s["error"], float).ravel()
            bars = " ".join(f"M{x:.1f},{py(v - e):.1f} V{py(v + e):.1f}" for x, v, e in zip(xs, s["y"], err))
            out.append(f'<path d="{bars}" {self._stroke(s["color"], 1, "solid")}/>')
        tooltips = s["tooltips"]
        for i, (x, y, size) in enumerate(zip(xs, ys, sizes)):
            tip = f"<title>{esc(tooltips[i])}</title>" if tooltips is not None else ""
            out.append(marker_svg(s["symbol"], x, y, size, s["color"], s["outline"], s["opacity"]) + f">{tip}"
                       + ("</path>" if s["symbol"] in ("star", "triangle-up") else "</circle>"))
        out.append("</g>")
        return "".join(out)

    def _draw_ellipses(self, s, px, py, sx, sy) -> str:
        out = [f'<g class="series ellipses" data-name="{esc(s["name"] or "")}" '
               f'{self._stroke(s["color"], s["width"], s["dash"], s["opacity"])}>']
        for (cx, cy), (r_minor, r_major), vectors in zip(s["centers"], s["radii"], s["vectors"]):
            # the major axis in pixels (y flipped); a Gaussian's outline stays an ellipse under axis scaling
            # only when sx == sy, which is why latent-space charts use equal_aspect
            vx, vy = vectors[0, 1] * sx, -vectors[1, 1] * sy
            angle = math.degrees(math.atan2(vy, vx))
            out.append(f'<ellipse cx="{px(cx):.1f}" cy="{py(cy):.1f}" rx="{r_major * sx:.2f}" '
                       f'ry="{r_minor * sy:.2f}" transform="rotate({angle:.1f} {px(cx):.1f} {py(cy):.1f})"/>')
        out.append("</g>")
        return "".join(out)

    def _draw_contours(self, s, px, py, sx, sy) -> str:
        out = [f'<g class="series contours" data-name="{esc(s["name"] or "")}">']
        labels = s["labels"] or [None] * len(s["segments"])
        for segments, label in zip(s["segments"], labels):
            if not len(segments):
                continue
            x, y = px(segments[..., 0]), py(segments[..., 1])  # (S, 2)
            d = " ".join(f"M{a:.1f},{b:.1f} L{c:.1f},{e:.1f}" for a, b, c, e in zip(x[:, 0], y[:, 0], x[:, 1],
                                                                                     y[:, 1]))
            out.append(f'<path d="{d}" {self._stroke(s["color"], s["width"], s["dash"])}/>')
            if label:
                i = int(np.argmax(x[:, 0]))  # the rightmost point of the contour
                out.append(f'<text x="{x[i, 0] + 3:.1f}" y="{y[i, 0]:.1f}" fill="{s["color"]}" '
                           f'font-size="{self.font_size - 4}" dominant-baseline="middle">{esc(label)}</text>')
        out.append("</g>")
        return "".join(out)

    def _draw_band(self, s, px, py, sx, sy) -> str:
        xs = np.concatenate([s["x"], s["x"][::-1]])
        ys = np.concatenate([s["upper"], s["lower"][::-1]])
        return (f'<path class="series band" d="{self._path(px(xs), py(ys))}Z" fill="{s["color"]}" '
                f'fill-opacity="{s["opacity"]:.3g}" stroke="none"/>')

    def _draw_image(self, s, px, py, sx, sy) -> str:
        x0, x1 = sorted((float(px(s["x0"])), float(px(s["x1"]))))
        y0, y1 = sorted((float(py(s["y0"])), float(py(s["y1"]))))
        rendering = "" if s["smooth"] else ' style="image-rendering:pixelated"'
        return (f'<image class="series image" data-name="{esc(s["name"] or "")}" href="{s["uri"]}" x="{x0:.1f}" '
                f'y="{y0:.1f}" width="{x1 - x0:.1f}" height="{y1 - y0:.1f}" preserveAspectRatio="none"{rendering}/>')

    def _draw_vline(self, s, px, py, sx, sy, box) -> str:
        left, top, plot_w, plot_h = box
        x = float(px(s["value"]))
        out = f'<path d="M{x:.1f},{top} V{top + plot_h}" {self._stroke(s["color"], s["width"], s["dash"])}/>'
        if s["label"]:
            anchor = "start" if x < left + plot_w * 0.8 else "end"
            shift = 4 if anchor == "start" else -4
            out += (f'<text x="{x + shift:.1f}" y="{top + self.font_size}" text-anchor="{anchor}" '
                    f'fill="{TEXT_COLOR}">{esc(s["label"])}</text>')
        return out

    def _draw_hline(self, s, px, py, sx, sy, box) -> str:
        left, top, plot_w, plot_h = box
        y = float(py(s["value"]))
        out = f'<path d="M{left},{y:.1f} H{left + plot_w}" {self._stroke(s["color"], s["width"], s["dash"])}/>'
        if s["label"]:
            out += (f'<text x="{left + plot_w - 4}" y="{y + 4:.1f}" text-anchor="end" dominant-baseline="hanging" '
                    f'fill="{s["color"]}">{esc(s["label"])}</text>')
        return out

    def _draw_text(self, s, px, py, sx, sy, box) -> str:
        size = f' font-size="{s["size"]}"' if s["size"] else ""
        return (f'<text x="{float(px(s["x"])):.1f}" y="{float(py(s["y"])):.1f}" text-anchor="{s["anchor"]}" '
                f'dominant-baseline="{s["baseline"]}" fill="{s["color"]}"{size}>{esc(s["text"])}</text>')


# --- contour lines by marching squares ---------------------------------------------------------

# edges of a cell: 0 bottom (a→b), 1 right (b→c), 2 top (d→c), 3 left (a→d); corners a=(i,j), b=(i+1,j),
# c=(i+1,j+1), d=(i,j+1). Cases by which corners lie above the level: bit 1 a, 2 b, 4 c, 8 d.
_SEGMENTS = {1: [(3, 0)], 2: [(0, 1)], 3: [(3, 1)], 4: [(1, 2)], 6: [(0, 2)], 7: [(3, 2)], 8: [(2, 3)],
             9: [(0, 2)], 11: [(1, 2)], 12: [(1, 3)], 13: [(0, 1)], 14: [(3, 0)]}


def contour_segments(x_axis: np.ndarray, y_axis: np.ndarray, field: np.ndarray, level: float) -> np.ndarray:
    """Line segments ``(S, 2, 2)`` (endpoint, xy) of ``field == level`` on the grid, linearly interpolated.

    ``field`` is ``(len(y_axis), len(x_axis))``. Saddle cells are split by the cell's mean value.
    """
    above = field > level
    case = above[:-1, :-1] * 1 + above[:-1, 1:] * 2 + above[1:, 1:] * 4 + above[1:, :-1] * 8
    # only the cells the contour crosses (a few per cent of them) go on: 1-D arrays in row-major order
    rows, cols = np.nonzero((case != 0) & (case != 15))
    case = case[rows, cols]
    a, b = field[rows, cols], field[rows, cols + 1]
    c, d = field[rows + 1, cols + 1], field[rows + 1, cols]
    x0, x1 = x_axis[cols], x_axis[cols + 1]
    y0, y1 = y_axis[rows], y_axis[rows + 1]

    def cross(v0, v1):
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (level - v0) / (v1 - v0)
        return np.clip(np.nan_to_num(t, nan=0.5), 0.0, 1.0)

    edges = [
        (x0 + cross(a, b) * (x1 - x0), y0),  # bottom
        (x1, y0 + cross(b, c) * (y1 - y0)),  # right
        (x0 + cross(d, c) * (x1 - x0), y1),  # top
        (x0, y0 + cross(a, d) * (y1 - y0)),  # left
    ]
    centre_above = (a + b + c + d) / 4 > level
    table = dict(_SEGMENTS)
    out = []

    def add(mask, e0, e1):
        if mask.any():
            p = np.stack([edges[e0][0][mask], edges[e0][1][mask]], axis=-1)
            q = np.stack([edges[e1][0][mask], edges[e1][1][mask]], axis=-1)
            out.append(np.stack([p, q], axis=1))

    for code, pairs in table.items():
        mask = case == code
        for e0, e1 in pairs:
            add(mask, e0, e1)
    # saddles: a and c above (5), or b and d above (10)
    for code, inside, outside in ((5, [(0, 1), (2, 3)], [(3, 0), (1, 2)]), (10, [(3, 0), (1, 2)], [(0, 1), (2, 3)])):
        mask = case == code
        for pairs, which in ((inside, centre_above), (outside, ~centre_above)):
            for e0, e1 in pairs:
                add(mask & which, e0, e1)
    return np.concatenate(out) if out else np.zeros((0, 2, 2))


def density_image(points: np.ndarray, x_range, y_range, rgb: tuple[int, int, int], max_alpha: float = 0.55,
                  bins: int = 64, smooth: float = 1.2) -> str:
    """A 2-D histogram of ``points`` ``(S, 2)`` over the ranges, lightly smoothed, as a translucent PNG (data URI).

    Opacity grows with the density (0 where there are no draws, ``max_alpha`` at the densest cell).
    """
    from scipy.ndimage import gaussian_filter

    counts, _, _ = np.histogram2d(points[:, 0], points[:, 1], bins=bins, range=[list(x_range), list(y_range)])
    density = gaussian_filter(counts.T[::-1], smooth)  # rows from the top (high y) down
    alpha = np.round(255 * max_alpha * density / max(density.max(), 1e-12)).astype(np.uint8)
    rgba = np.empty(alpha.shape + (4,), np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = alpha
    return png_data_uri(rgba)
