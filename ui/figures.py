"""Shared figures: image grids and posterior views, as HTML and SVG (see :mod:`ui.svgplot` for why not plotly).

Conventions for every figure here: the Okabe–Ito colour-blind-safe palette, large fonts for
projection in a lecture hall (17 px and up at the design width), labelled axes, a white
background whatever the theme, and :func:`html_download` for a self-contained HTML file. Show
them with :func:`show`. Figures only draw: every number they show is computed in ``dvae_engine``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ui.svgplot import FONT_SIZE, Chart, density_image, esc, figure_html, png_data_uri, standalone_html

# Okabe & Ito (2008), "Color Universal Design"
OKABE_ITO = {
    "black": "#000000",
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
}
PALETTE = [OKABE_ITO[k] for k in ("blue", "vermillion", "bluish_green", "orange", "reddish_purple", "sky_blue",
                                  "yellow", "black")]
CLEAN_COLOR = OKABE_ITO["blue"]  # the clean q(z|x)
MIXTURE_COLOR = OKABE_ITO["vermillion"]  # q̃(z|x) and its components
TRUE_COLOR = OKABE_ITO["black"]  # the true posterior p(z|x)


# ``st.html`` sanitises with DOMPurify's HTML profile, which strips SVG; this tiny inline component puts our own,
# escaped markup (ui/svgplot.py escapes every text it writes) into the page as it is, tooltips included.
_FIGURE_JS = """
export default function(component) {
  const { parentElement, data } = component;
  let root = parentElement.querySelector(":scope > .dvae-figure-root");
  if (!root) {
    root = document.createElement("div");
    root.className = "dvae-figure-root";
    parentElement.appendChild(root);
  }
  const html = (data && data.html) || "";
  if (root.__html !== html) {
    root.innerHTML = html;
    root.__html = html;
  }
}
"""
_figure_component = None


def show(figure_html_text: str, key: str | None = None) -> None:
    """Put a figure (HTML/SVG from this module, :mod:`ui.svgplot` or :mod:`ui.boundlab_figures`) on the page."""
    global _figure_component
    import streamlit as st

    if _figure_component is None:
        _figure_component = st.components.v2.component("dvae_figure", js=_FIGURE_JS, isolate_styles=False)
    _figure_component(data={"html": figure_html_text}, key=key)


PLOTLY_CONFIG = {
    "displaylogo": False,
    "toImageButtonOptions": {"format": "png", "scale": 2},
}  # for the plotly figures of the pages where no slider redraws them (Train, Bound vs M, Checkpoints, section 3)


def plotly():
    """:mod:`ui.plotly_figures` (the plotly versions, for downloads), imported on first use: plotly's import costs
    about half a second, which no page visit should pay for a button that may never be clicked."""
    from ui import plotly_figures

    return plotly_figures


def html_download(figure, name: str, key: str) -> None:
    """A small button that downloads a figure as a stand-alone HTML file (built only when clicked).

    ``figure`` is a plotly figure (saved interactive, plotly.js included), HTML/SVG text from this module,
    or a function returning either, called only when the button is clicked (the classroom pages pass one
    that builds the plotly version of their SVG figure, see :mod:`ui.plotly_figures`).
    """
    import streamlit as st

    def build() -> str:
        made = figure() if callable(figure) else figure
        if isinstance(made, str):
            return standalone_html(made, name)
        return made.to_html(include_plotlyjs=True, full_html=True)

    st.download_button("Download figure (HTML)", data=build, file_name=f"{name}.html", mime="text/html",
                       key=f"{key}-html", on_click="ignore", type="tertiary", icon=":material/download:")


def _numpy(a) -> np.ndarray:
    if isinstance(a, (list, tuple)):
        return np.stack([_numpy(v) for v in a])
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def image_bytes(image: np.ndarray) -> np.ndarray:
    """Pixel values in [0, 1] as bytes, round(255 · clip(value, 0, 1)): values outside [0, 1] show as black or white."""
    return np.round(np.clip(np.asarray(image, dtype=np.float64), 0.0, 1.0) * 255).astype(np.uint8)


def image_grid(
    rows: Sequence,
    image_shape: tuple[int, int],
    row_labels: Sequence[str],
    col_labels: Sequence[str] | None = None,
    cell_text: Sequence[Sequence[str] | None] | None = None,
    title: str | None = None,
    cell_px: int = 72,
    name: str | None = None,
) -> str:
    """Rows of images as an HTML grid: ``rows[r]`` is ``(n_r, H·W)`` pixel values in [0, 1] (or a list of ``(H·W,)``).

    Each image is a small grey PNG (see :func:`image_bytes`), scaled up without smoothing to
    ``cell_px`` pixels wide at most (narrower when the column is). ``row_labels`` name the rows on
    the left; ``col_labels`` the columns on top; ``cell_text[r][c]`` (optional) is printed under
    image (r, c), e.g. a per-image number. Every ``<img>`` carries ``data-row``/``data-col``.
    """
    height, width = image_shape
    arrays = [_numpy(r).reshape(-1, height, width) for r in rows]
    n_cols = max((len(a) for a in arrays), default=0)
    small = FONT_SIZE - 3
    cells = []
    if col_labels:
        cells.append("<div></div>")
        cells += [f'<div class="col-label" style="text-align:center;font-size:{small}px;overflow:hidden;'
                  f'white-space:nowrap">{esc(text)}</div>' for text in col_labels]
        cells += ["<div></div>"] * (n_cols - len(col_labels))
    for r, images in enumerate(arrays):
        cells.append(f'<div class="row-label" style="text-align:right;font-size:{small}px;line-height:1.2;'
                     f'max-width:13em;overflow-wrap:anywhere">{esc(row_labels[r]) if r < len(row_labels) else ""}'
                     "</div>")
        texts = (cell_text[r] if cell_text is not None and r < len(cell_text) else None) or []
        for c in range(n_cols):
            if c >= len(images):
                cells.append("<div></div>")
                continue
            label = esc(f"{row_labels[r] if r < len(row_labels) else ''} {col_labels[c] if col_labels else ''}")
            img = (f'<img src="{png_data_uri(image_bytes(images[c]))}" alt="{label.strip()}" data-row="{r}" '
                   f'data-col="{c}" width="{width}" height="{height}" style="width:100%;height:auto;'
                   f'image-rendering:pixelated;display:block;background:black">')
            under = (f'<div class="cell-text" style="text-align:center;font-size:{small}px;line-height:1.25">'
                     f'{esc(texts[c])}</div>' if c < len(texts) and texts[c] is not None else "")
            cells.append(f"<div>{img}{under}</div>")
    grid = (f'<div class="image-grid" style="display:grid;grid-template-columns:max-content '
            f'repeat({n_cols}, minmax(0, {cell_px}px));gap:5px 5px;align-items:center">{"".join(cells)}</div>')
    return figure_html(grid, title, name=name)


def wrap(images, per_row: int) -> list:
    """Split a batch ``(n, D)`` into rows of ``per_row`` images for :func:`image_grid`."""
    images = _numpy(images)
    return [images[i:i + per_row] for i in range(0, len(images), per_row)]


def posterior_figure(view, title: str | None = None, density: bool = True, true_grid=None, comparison=None,
                     hpd=None, size: int = 400) -> str:
    """A mixture posterior in a 2-D plane, as SVG.

    ``view`` is an ``analysis.ProjectedPosterior``: components as points with
    2σ ellipses, the clean q(z|x) as a star with its 2σ ellipse, and (with
    ``density``) the density of the mixture draws as shading. For a 2-D latent
    model pass ``true_grid`` (``PosteriorGrid``), ``comparison``
    (``PosteriorComparison``) and ``hpd`` (a function from log densities to
    HPD coverage fields, ``analysis.hpd_coverage``): the true p(z|x), q(z|x)
    and q̃(z|x) are then drawn as contours holding 50% and 90% of their mass.
    """
    chart = Chart(width=size, height=size, title=title, x_title=view.axis_titles[0], y_title=view.axis_titles[1],
                  equal_aspect=True, name="posterior")
    contours = true_grid is not None and comparison is not None and hpd is not None
    num = len(view.component_mean2)
    if density and not contours:
        samples = np.asarray(view.mixture_samples2, dtype=np.float64)
        lo = np.quantile(samples, 0.002, axis=0)
        hi = np.quantile(samples, 0.998, axis=0)
        span = np.maximum(hi - lo, 1e-6) * 0.08
        x_range, y_range = (lo[0] - span[0], hi[0] + span[0]), (lo[1] - span[1], hi[1] + span[1])
        chart.image(density_image(samples, x_range, y_range, (213, 94, 0)), *x_range, *y_range,
                    name="q̃(z|x) density (samples)", color=MIXTURE_COLOR)
        chart.include(np.array(x_range), np.array(y_range))
    chart.ellipses(view.component_mean2, view.component_cov2, name="components q(z|x̃ₙ), 2σ", color=MIXTURE_COLOR,
                   width=1.0, opacity=max(0.15, min(0.8, 6.0 / max(num, 1))))
    chart.markers(view.component_mean2[:, 0], view.component_mean2[:, 1], name="component means μ(x̃ₙ)",
                  color=MIXTURE_COLOR, size=9,
                  tooltips=[f"μ(x̃{n + 1}): ({x:.2f}, {y:.2f})" for n, (x, y) in enumerate(view.component_mean2)])
    if contours:
        levels, labels = (0.5, 0.9), ("50%", "90%")
        chart.contours(true_grid.z1, true_grid.z2, hpd(true_grid.log_posterior), levels, labels=labels,
                       name="true p(z|x): 50% / 90% regions", color=TRUE_COLOR, width=2.5)
        chart.contours(comparison.z1, comparison.z2, hpd(comparison.log_mixture), levels, labels=labels,
                       name="mixture q̃(z|x): 50% / 90%", color=MIXTURE_COLOR, width=2.5, dash="dot")
        chart.contours(comparison.z1, comparison.z2, hpd(comparison.log_clean), levels, labels=labels,
                       name="clean q(z|x): 50% / 90%", color=CLEAN_COLOR, width=2.5, dash="dash")
    else:
        chart.ellipses(view.clean_mean2[None], view.clean_cov2[None], name="clean q(z|x), 2σ", color=CLEAN_COLOR,
                       width=3.0)
    chart.markers([view.clean_mean2[0]], [view.clean_mean2[1]], name="clean mean μ(x)", color=CLEAN_COLOR, size=20,
                  symbol="star", tooltips=[f"μ(x): ({view.clean_mean2[0]:.2f}, {view.clean_mean2[1]:.2f})"])
    return chart.to_html()


def tsne_figure(component_points: np.ndarray, clean_point: np.ndarray, title: str | None = None,
                size: int = 400) -> str:
    """t-SNE positions of the component means (points only: t-SNE cannot carry covariances)."""
    chart = Chart(width=size, height=size, title=title, x_title="t-SNE 1 (no units)", y_title="t-SNE 2 (no units)",
                  name="tsne")
    chart.markers(component_points[:, 0], component_points[:, 1], name="component means μ(x̃ₙ)",
                  color=MIXTURE_COLOR, size=10, outline=None)
    chart.markers([clean_point[0]], [clean_point[1]], name="clean mean μ(x)", color=CLEAN_COLOR, size=20,
                  symbol="star")
    return chart.to_html()
