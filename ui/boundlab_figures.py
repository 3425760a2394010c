"""Figures and labels of the "Is it a bound?" page. They only draw numbers :mod:`dvae_engine.boundlab` computed.

The lab's figures, redrawn on every slider move, are SVG (:mod:`ui.svgplot`); the real-model scatter of
section 3, drawn once per button press, is plotly (zoom, hover).

Okabe–Ito colours (colour-blind safe) plus line dashes, so no quantity is told apart by hue alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ui.svgplot import Chart

if TYPE_CHECKING:
    import plotly.graph_objects as go

NATS = "nats per example"
BLACK, ORANGE, SKY, GREEN, YELLOW, BLUE, VERMILLION, PURPLE = (
    "#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7")

# name → (label, colour, dash)
STYLE = {
    "log_px": ("log p(x) (exact)", BLACK, "solid"),
    "elbo": ("L_elbo: ELBO with q(z|x), clean x", SKY, "dot"),
    "cvae": ("L_cvae: ELBO of the mixture q̃(z|x)", BLUE, "solid"),
    "dvae_joint": ("L_dvae, joint reading (Eq. 11 as trained)", GREEN, "dash"),
    "dvae_independent": ("L_dvae, independent reading (z ⊥ x̃)", VERMILLION, "dashdot"),
    "diwae": ("E[DIWAE(M, K)] (Eq. 12)", PURPLE, "longdash"),
    "expected_kl": ("E_x̃ KL(q(z|x̃) ‖ q̃(z|x))", ORANGE, "solid"),
}
LINE_ORDER = ("log_px", "cvae", "elbo", "dvae_joint", "dvae_independent", "diwae")
WIDTH = 560  # px: the lab's output column on a 1280-pixel-wide screen, so text is drawn at its own size
FULL_WIDTH = 820  # px: the page's main column at 1280 px


def label(name: str, num_corruptions: int | None = None, num_samples: int | None = None) -> str:
    """The quantity's display name (DIWAE with its M and K filled in)."""
    text = STYLE[name][0]
    if name == "diwae" and num_corruptions is not None:
        text = text.replace("M, K", f"M={num_corruptions}, K={num_samples}")
    return text


def _chart(title: str, x_title: str, y_title: str = NATS, height: int = 400, width: int = WIDTH, **kwargs) -> Chart:
    return Chart(width=width, height=height, title=title, x_title=x_title, y_title=y_title, **kwargs)


def sweep_figure(sweep: dict, diwae: dict, level: float, num_corruptions: int, num_samples: int,
                 noise_label: str) -> str:
    """Every quantity against the noise level ν, the current ν marked."""
    x = np.asarray(sweep["level"])
    chart = _chart("Objectives against the noise level (one clean x)", f"noise level ν ({noise_label})",
                   name="sweep")
    for name in LINE_ORDER:
        text, colour, dash = STYLE[name]
        if name == "diwae":
            y, text = diwae["mean"], label(name, num_corruptions, num_samples)
            if not diwae["exact"]:
                text += " — Monte Carlo estimate, ±2 s.e. band"
                upper = np.asarray(diwae["mean"]) + 2 * np.asarray(diwae["stderr"])
                lower = np.asarray(diwae["mean"]) - 2 * np.asarray(diwae["stderr"])
                chart.band(x, lower, upper, color=colour, opacity=0.2)
        else:
            y = sweep[name]
        chart.line(x, y, name=text, color=colour, dash=dash, width=3 if name == "log_px" else 2.2, markers=True,
                   marker_size=6)
    return chart.vline(level, label=f"ν = {level:g}").to_html()


def gaps_figure(sweep: dict, diwae: dict, level: float, num_corruptions: int, num_samples: int) -> str:
    """log p(x) minus each objective: below zero means the objective exceeds log p(x) (not a bound)."""
    x = np.asarray(sweep["level"])
    chart = _chart("Gaps to log p(x)", "noise level ν", f"log p(x) − objective ({NATS})", name="gaps")
    for name in ("cvae", "elbo", "dvae_joint", "dvae_independent"):
        text, colour, dash = STYLE[name]
        chart.line(x, sweep[f"gap_{name}"], name=f"log p(x) − {text}", color=colour, dash=dash, width=2.2)
    text, colour, dash = STYLE["diwae"]
    chart.line(x, np.asarray(sweep["log_px"]) - np.asarray(diwae["mean"]), color=colour, dash=dash, width=2.2,
               name=f"log p(x) − {label('diwae', num_corruptions, num_samples)}")
    text, colour, _ = STYLE["expected_kl"]
    chart.line(x, sweep["expected_kl"], name=f"{text} = L_cvae − L_dvae(joint)", color=colour, width=5,
               opacity=0.5)
    chart.include(x[[0, -1]], [0.0, 0.0])
    chart.hline(0.0, color=BLACK, label="below 0: above log p(x), not a bound")
    return chart.vline(level).to_html()


def _bits(row) -> str:
    return "".join(str(int(b)) for b in row)


def _thin(z: np.ndarray, curves: list[np.ndarray], keep: np.ndarray, max_points: int = 500):
    """The visible part of 1-D curves on a fine grid, at most ``max_points`` points (every n-th grid point)."""
    index = np.flatnonzero(keep)
    index = np.arange(index[0], index[-1] + 1)
    step = max(1, int(np.ceil(len(index) / max_points)))
    index = index[::step] if index[-1] in index[::step] else np.append(index[::step], index[-1])
    return z[index], [c[..., index] for c in curves]


def densities_figure(dens: dict) -> str:
    """p(z|x), q̃(z|x) and the heaviest weighted components p(x̃|x) q(z|x̃): lines (1-D) or contours (2-D)."""
    axes = dens["axes"]
    if len(axes) == 1:
        visible = ((dens["mixture"] > 1e-4 * dens["mixture"].max())
                   | (dens["posterior"] > 1e-4 * dens["posterior"].max()))
        z, (components, mixture, posterior) = _thin(np.asarray(axes[0]), [np.asarray(dens["components"]),
                                                     np.asarray(dens["mixture"]), np.asarray(dens["posterior"])],
                                                    visible)
        chart = _chart("Posterior densities on the latent axis", "z", "density", height=400, name="densities",
                       x_range=(float(z[0]), float(z[-1])))
        for i, (comp, weight, bits) in enumerate(zip(components, dens["component_weights"], dens["component_bits"])):
            chart.line(z, comp, name=f"p(x̃|x)·q(z|x̃), x̃ = {_bits(bits)} (weight {weight:.3g})", color=ORANGE,
                       width=1.2, opacity=0.7, show_legend=i < 4, record=False)
        chart.line(z, mixture, name="q̃(z|x) = Σ p(x̃|x) q(z|x̃)", color=BLUE, width=3, record=False)
        chart.line(z, posterior, name="p(z|x) (exact posterior)", color=BLACK, width=2.2, dash="dash", record=False)
        return chart.to_html()
    z1, z2 = (np.asarray(a) for a in axes)
    mass = dens["posterior"] + dens["mixture"]
    rows, cols = np.nonzero(mass > 1e-3 * mass.max())
    chart = _chart("Posterior densities in the 2-D latent space (contours)", "z₁", "z₂", height=480,
                   name="densities", x_range=(float(z1[rows.min()]), float(z1[rows.max()])),
                   y_range=(float(z2[cols.min()]), float(z2[cols.max()])))
    for name, density, colour in (("p(z|x) (exact posterior)", dens["posterior"], BLACK),
                                  ("q̃(z|x) (mixture)", dens["mixture"], BLUE)):
        top = float(density.max())
        levels = np.arange(0.05, 0.951, 0.15) * top  # 5 % to 95 % of the peak, every 15 %
        # densities are indexed [z1, z2]; contours want rows along the y axis (z2)
        chart.contours(z1, z2, np.asarray(density).T, levels, name=name, color=colour, width=2,
                       dash="dash" if colour == BLACK else "solid", extent=False)
    locs, weights = dens["component_locs"], dens["component_weights"]
    chart.markers(locs[:, 0], locs[:, 1], name="q(z|x̃) means (size ∝ p(x̃|x))", color=ORANGE,
                  size=8 + 30 * np.sqrt(weights / weights.max()), outline=BLACK,
                  tooltips=[f"x̃ = {_bits(b)}, p(x̃|x) = {w:.3g}" for b, w in zip(dens["component_bits"], weights)])
    return chart.to_html()


def counterexample_figure(sweep: dict, a_now: float) -> str:
    """Ranganath's counterexample against q(z=1|x̃=0) = 1 − a: the independent reading blows up."""
    x = 1.0 - np.asarray(sweep["a"])
    chart = _chart("Ranganath's counterexample: only the independent reading exceeds log p(x)",
                   "q(z=1 | x̃=0) = 1 − a  (and q(z=1 | x̃=1) = a)", name="counterexample", width=FULL_WIDTH)
    for name in ("log_px", "cvae", "dvae_joint", "dvae_independent", "diwae"):
        text, colour, dash = STYLE[name]
        if name == "log_px":
            text = "log p(x) = 0"
        if name == "diwae":
            text = "E[DIWAE(M, K)] (exact, by enumeration)"
        chart.line(x, sweep[name], name=text, color=colour, dash=dash, width=2.5)
    return chart.vline(1.0 - a_now, label=f"1 − a = {1 - a_now:g}").to_html()


def objective_scatter(result: dict, objective_label: str) -> go.Figure:
    """Per-example objective (y) against log p(x) (x), the diagonal y = x drawn (plotly: zoom and hover to
    find an example; a button-started comparison, so no classroom latency is at stake).

    log p(x) is the exact (quadrature) value when the result has it (2-D latents), else importance-sampled
    from the defensive mixture proposal.
    """
    import plotly.graph_objects as go

    exact = result["log_px_method"] == "exact"
    x = result["log_px"].numpy()
    y = result["objective"].numpy()
    err = result["num_sigmas"] * result["objective_stderr"].numpy()
    above = (y - x) > err
    fig = go.Figure()
    for mask, name, colour in ((~above, "objective below log p(x), or within its Monte Carlo error", BLUE),
                               (above, f"objective above log p(x) by > {result['num_sigmas']:g} s.e.", VERMILLION)):
        if mask.any():
            fig.add_trace(go.Scatter(
                x=x[mask], y=y[mask], mode="markers", name=f"{name} ({int(mask.sum())})",
                marker=dict(color=colour, size=6, symbol="circle" if colour == BLUE else "triangle-up"),
                error_y=dict(type="data", array=err[mask], visible=True, thickness=1, color=colour)))
    low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    fig.add_trace(go.Scatter(x=[low, high], y=[low, high], mode="lines", name="diagonal: objective = log p(x)",
                             line=dict(color=BLACK, dash="dash")))
    fig.update_layout(
        title=dict(text="Training objective vs log p(x), per clean test example"), height=520,
        margin=dict(l=60, r=20, t=50, b=50), legend=dict(orientation="h", yanchor="top", y=-0.18, x=0),
        template="plotly_white",
    )
    fig.update_xaxes(title_text=(f"log p(x), exact by quadrature on a grid ({NATS})" if exact else
                                 f"log p(x), importance-sampled (mixture proposal, k = {result['importance_samples']})"
                                 f" ({NATS})"))
    fig.update_yaxes(title_text=f"{objective_label}, mean of {result['repeats']} draws ({NATS})")
    return fig
