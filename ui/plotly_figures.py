"""Plotly versions of the classroom figures, for the "Download figure (HTML)" buttons only.

The pages draw these figures as inline SVG (:mod:`ui.figures`, :mod:`ui.boundlab_figures`): a plotly chart
costs 60–150 ms of browser time per redraw on a small CPU, too much for a slider. A download is built once,
when clicked, so it keeps plotly's interactive figure (zoom, hover, PNG export) with the same labels and
numbers. Imported only when a download is built.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from ui.boundlab_figures import LINE_ORDER, NATS, STYLE, label
from ui.figures import CLEAN_COLOR, MIXTURE_COLOR, TRUE_COLOR

FONT_SIZE = 18
GREY = [[0.0, "black"], [1.0, "white"]]  # pixel value 0 → black, 1 → white, as the datasets store them



def _numpy(a) -> np.ndarray:
    if isinstance(a, (list, tuple)):
        return np.stack([_numpy(v) for v in a])
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


_AXIS = dict(gridcolor="#E5ECF6", linecolor="#444", zerolinecolor="#C8D4E3", automargin=True)


def layout(title: str | None = None, height: int | None = None, xaxis: dict | None = None,
           yaxis: dict | None = None, **extra) -> dict:
    """Large fonts, white background with light grid lines, legend below the plot; ``extra`` overrides.

    A plain dict for ``go.Figure(data, layout)``: one validation per figure.
    Spelled out rather than ``template="plotly_white"`` (copying a full
    template costs ~30 ms per figure) or chained ``update_*`` calls (each
    re-validates), which matters for a 200 ms budget per slider move.
    """
    base = dict(
        paper_bgcolor="white", plot_bgcolor="white",
        font=dict(size=FONT_SIZE, color="#2a3f5f"),
        title=dict(text=title, font=dict(size=FONT_SIZE + 2)) if title else None,
        height=height,
        margin=dict(l=10, r=10, t=60 if title else 20, b=10),
        legend=dict(orientation="h", yanchor="top", y=-0.12, xanchor="left", x=0),
        xaxis={**_AXIS, **(xaxis or {})},
        yaxis={**_AXIS, **(yaxis or {})},
    )
    return {**base, **extra}


def image_grid(
    rows: Sequence,
    image_shape: tuple[int, int],
    row_labels: Sequence[str],
    col_labels: Sequence[str] | None = None,
    cell_text: Sequence[Sequence[str] | None] | None = None,
    title: str | None = None,
    cell_px: int = 72,
) -> go.Figure:
    """Rows of images as one heatmap: ``rows[r]`` is ``(n_r, H·W)`` pixel values in [0, 1] (or a list of ``(H·W,)``).

    Pixels are drawn as bytes, round(255 · clip(value, 0, 1)), so values outside
    [0, 1] (Gaussian noise) show as black or white. ``row_labels`` name the
    rows on the left; ``col_labels`` the columns on top; ``cell_text[r][c]``
    (optional) is printed under image (r, c), e.g. a per-image number.
    """
    height, width = image_shape
    arrays = [_numpy(r).reshape(-1, height, width) for r in rows]
    n_cols = max((len(a) for a in arrays), default=0)
    gap_x = max(1, width // 8)
    has_text = cell_text is not None and any(t is not None for t in cell_text)
    gap_y = max(1, height // 8) + (int(round(height * 0.45)) if has_text else 0)
    # one byte per pixel (0–255) keeps the figure small (~8× less than float64 JSON per slider move);
    # gaps are 255, white like the paper around the plot
    tile = np.full((len(arrays) * (height + gap_y), n_cols * (width + gap_x)), 255, dtype=np.uint8)
    for r, images in enumerate(arrays):
        for c, image in enumerate(images):
            top, left = r * (height + gap_y), c * (width + gap_x)
            tile[top:top + height, left:left + width] = np.round(np.clip(image, 0.0, 1.0) * 255)

    annotations = [
        dict(x=c * (width + gap_x) + (width - 1) / 2, y=r * (height + gap_y) + height - 0.5, text=text,
             showarrow=False, yanchor="top", font=dict(size=FONT_SIZE - 4))
        for r, texts in enumerate(cell_text or []) for c, text in enumerate(texts or [])
    ]
    top = (45 if title else 10) + (35 if col_labels else 0)
    aspect = tile.shape[0] / max(tile.shape[1], 1)
    grid_layout = layout(
        height=int(min(1400, max(160, n_cols * cell_px * aspect + top + 10))),
        margin=dict(l=10, r=10, t=top, b=10),
        annotations=annotations,
        xaxis=dict(
            showgrid=False, zeroline=False, side="top", tickangle=0, tickfont=dict(size=FONT_SIZE - 4),
            constrain="domain", automargin=True,
            tickvals=[c * (width + gap_x) + (width - 1) / 2 for c in range(n_cols)] if col_labels else [],
            ticktext=list(col_labels) if col_labels else [],
        ),
        yaxis=dict(
            autorange="reversed", scaleanchor="x", constrain="domain", constraintoward="top", showgrid=False,
            zeroline=False, ticktext=list(row_labels), automargin=True,
            tickvals=[r * (height + gap_y) + (height - 1) / 2 for r in range(len(arrays))],
        ),
    )
    if title:  # pinned to the top of the figure, above the column labels
        grid_layout["title"] = dict(text=title, font=dict(size=FONT_SIZE + 2), yref="container", y=1.0,
                                    yanchor="top", pad=dict(t=10))
    return go.Figure(go.Heatmap(z=tile, colorscale=GREY, zmin=0, zmax=255, showscale=False, hoverinfo="skip"),
                     grid_layout)


def wrap(images, per_row: int) -> list:
    """Split a batch ``(n, D)`` into rows of ``per_row`` images for :func:`image_grid`."""
    images = _numpy(images)
    return [images[i:i + per_row] for i in range(0, len(images), per_row)]


def _ellipse_trace(ellipses: np.ndarray, color: str, name: str, width: float, showlegend: bool = True,
                   dash: str | None = None, opacity: float = 1.0) -> go.Scatter:
    """All outlines ``(n, P, 2)`` in one trace, separated by gaps (fast to draw)."""
    ellipses = ellipses.reshape(-1, *ellipses.shape[-2:]).astype(np.float32)
    padded = np.concatenate([ellipses, np.full((len(ellipses), 1, 2), np.nan, np.float32)], axis=1).reshape(-1, 2)
    return go.Scatter(x=padded[:, 0], y=padded[:, 1], mode="lines", line=dict(color=color, width=width, dash=dash),
                      name=name, hoverinfo="skip", showlegend=showlegend, connectgaps=False, opacity=opacity)


def _hpd_contour(z1, z2, coverage, color: str, name: str, dash: str | None = None) -> go.Contour:
    """Contours of an HPD-coverage field at 50% and 90% (see ``analysis.hpd_coverage``)."""
    return go.Contour(
        x=np.asarray(z1, np.float32), y=np.asarray(z2, np.float32), z=np.asarray(coverage, np.float32), name=name,
        showlegend=True, showscale=False, hoverinfo="skip",
        colorscale=[[0, color], [1, color]],
        contours=dict(start=0.5, end=0.9, size=0.4, coloring="lines", showlabels=True,
                      labelfont=dict(size=FONT_SIZE - 4, color=color)),
        line=dict(width=2.5, dash=dash),
    )


def posterior_figure(view, title: str | None = None, density: bool = True, true_grid=None, comparison=None,
                     hpd=None) -> go.Figure:
    """A mixture posterior in a 2-D plane.

    ``view`` is an ``analysis.ProjectedPosterior``: components as points with
    2σ ellipses, the clean q(z|x) as a star with its 2σ ellipse, and (with
    ``density``) a filled contour of the mixture draws. For a 2-D latent
    model pass ``true_grid`` (``PosteriorGrid``), ``comparison``
    (``PosteriorComparison``) and ``hpd`` (a function from log densities to
    HPD coverage fields, ``analysis.hpd_coverage``): the true p(z|x), q(z|x)
    and q̃(z|x) are then drawn as contours holding 50% and 90% of their mass.
    """
    traces = []
    if density and true_grid is None:
        samples = view.mixture_samples2.astype(np.float32)
        traces.append(go.Histogram2dContour(
            x=samples[:, 0], y=samples[:, 1], name="q̃(z|x) density (samples)", showlegend=True,
            colorscale=[[0, "rgba(255,255,255,0)"], [1, "rgba(213,94,0,0.55)"]], showscale=False,
            contours=dict(coloring="fill", showlines=False), ncontours=12, hoverinfo="skip",
        ))
    traces.append(_ellipse_trace(view.component_ellipses, MIXTURE_COLOR, "components q(z|x̃ₙ), 2σ", 1.0,
                                 opacity=max(0.15, min(0.8, 6.0 / len(view.component_ellipses)))))
    traces.append(go.Scatter(
        x=view.component_mean2[:, 0], y=view.component_mean2[:, 1], mode="markers", name="component means μ(x̃ₙ)",
        marker=dict(color=MIXTURE_COLOR, size=8, line=dict(color="white", width=1)),
        hovertemplate="μ(x̃ₙ): (%{x:.2f}, %{y:.2f})<extra></extra>",
    ))
    if true_grid is not None and comparison is not None and hpd is not None:
        traces += [
            _hpd_contour(true_grid.z1, true_grid.z2, hpd(true_grid.log_posterior), TRUE_COLOR,
                         "true p(z|x): 50% / 90% regions"),
            _hpd_contour(comparison.z1, comparison.z2, hpd(comparison.log_mixture), MIXTURE_COLOR,
                         "mixture q̃(z|x): 50% / 90%", dash="dot"),
            _hpd_contour(comparison.z1, comparison.z2, hpd(comparison.log_clean), CLEAN_COLOR,
                         "clean q(z|x): 50% / 90%", dash="dash"),
        ]
    else:
        traces.append(_ellipse_trace(view.clean_ellipse, CLEAN_COLOR, "clean q(z|x), 2σ", 3.0))
    traces.append(go.Scatter(
        x=[view.clean_mean2[0]], y=[view.clean_mean2[1]], mode="markers", name="clean mean μ(x)",
        marker=dict(color=CLEAN_COLOR, size=18, symbol="star", line=dict(color="white", width=1)),
        hovertemplate="μ(x): (%{x:.2f}, %{y:.2f})<extra></extra>",
    ))
    return go.Figure(traces, layout(
        title, height=680, legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0),
        xaxis=dict(title=dict(text=view.axis_titles[0]), zeroline=False),
        yaxis=dict(title=dict(text=view.axis_titles[1]), scaleanchor="x", scaleratio=1, zeroline=False),
    ))


def tsne_figure(component_points: np.ndarray, clean_point: np.ndarray, title: str | None = None) -> go.Figure:
    """t-SNE positions of the component means (points only: t-SNE cannot carry covariances)."""
    return go.Figure([
        go.Scatter(x=component_points[:, 0], y=component_points[:, 1], mode="markers",
                   name="component means μ(x̃ₙ)", marker=dict(color=MIXTURE_COLOR, size=10)),
        go.Scatter(x=[clean_point[0]], y=[clean_point[1]], mode="markers", name="clean mean μ(x)",
                   marker=dict(color=CLEAN_COLOR, size=18, symbol="star")),
    ], layout(
        title, height=680, legend=dict(orientation="h", yanchor="top", y=-0.18, xanchor="left", x=0),
        xaxis=dict(title=dict(text="t-SNE 1 (no units)"), zeroline=False),
        yaxis=dict(title=dict(text="t-SNE 2 (no units)"), zeroline=False),
    ))


# --- Is it a bound?: the sweep over ν ---------------------------------------------------------

def _bound_layout(fig: go.Figure, title: str, x_title: str, y_title: str = NATS, height: int = 420) -> go.Figure:
    fig.update_layout(
        title=dict(text=title), height=height, margin=dict(l=60, r=20, t=50, b=50),
        legend=dict(orientation="h", yanchor="top", y=-0.18, x=0), template="plotly_white",
    )
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return fig


def _band(fig: go.Figure, x, mean, stderr, colour: str, name: str) -> None:
    """A ±2 standard-error band around a Monte Carlo curve."""
    upper, lower = np.asarray(mean) + 2 * np.asarray(stderr), np.asarray(mean) - 2 * np.asarray(stderr)
    fig.add_trace(go.Scatter(
        x=np.concatenate([x, x[::-1]]), y=np.concatenate([upper, lower[::-1]]), fill="toself",
        fillcolor=colour, opacity=0.2, line=dict(width=0), hoverinfo="skip", showlegend=False, name=name))


def bound_sweep_figure(sweep: dict, diwae: dict, level: float, num_corruptions: int, num_samples: int,
                 noise_label: str) -> go.Figure:
    """Every quantity against the noise level ν, the current ν marked."""
    x = np.asarray(sweep["level"])
    fig = go.Figure()
    for name in LINE_ORDER:
        text, colour, dash = STYLE[name]
        if name == "diwae":
            y, text = diwae["mean"], label(name, num_corruptions, num_samples)
            if not diwae["exact"]:
                text += " — Monte Carlo estimate, ±2 s.e. band"
                _band(fig, x, diwae["mean"], diwae["stderr"], colour, text)
        else:
            y = sweep[name]
        fig.add_trace(go.Scatter(x=x, y=y, name=text, mode="lines+markers", marker=dict(size=5),
                                 line=dict(color=colour, dash=dash, width=2.5 if name == "log_px" else 2)))
    fig.add_vline(x=level, line=dict(color="grey", dash="dot"), annotation_text=f"ν = {level:g}")
    return _bound_layout(fig, "Objectives against the noise level (one clean x)", f"noise level ν ({noise_label})")
