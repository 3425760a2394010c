"""Figures and labels of the "Is it a bound?" page. They only draw numbers :mod:`dvae_engine.boundlab` computed.

Okabe–Ito colours (colour-blind safe) plus line dashes, so no quantity is told apart by hue alone.
"""

from __future__ import annotations

import numpy as np
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


def label(name: str, num_corruptions: int | None = None, num_samples: int | None = None) -> str:
    """The quantity's display name (DIWAE with its M and K filled in)."""
    text = STYLE[name][0]
    if name == "diwae" and num_corruptions is not None:
        text = text.replace("M, K", f"M={num_corruptions}, K={num_samples}")
    return text


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str = NATS, height: int = 420) -> go.Figure:
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


def sweep_figure(sweep: dict, diwae: dict, level: float, num_corruptions: int, num_samples: int,
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
    return _layout(fig, "Objectives against the noise level (one clean x)", f"noise level ν ({noise_label})")


def gaps_figure(sweep: dict, diwae: dict, level: float, num_corruptions: int, num_samples: int) -> go.Figure:
    """log p(x) minus each objective: below zero means the objective exceeds log p(x) (not a bound)."""
    x = np.asarray(sweep["level"])
    fig = go.Figure()
    for name in ("cvae", "elbo", "dvae_joint", "dvae_independent"):
        text, colour, dash = STYLE[name]
        fig.add_trace(go.Scatter(x=x, y=sweep[f"gap_{name}"], name=f"log p(x) − {text}", mode="lines",
                                 line=dict(color=colour, dash=dash, width=2)))
    text, colour, dash = STYLE["diwae"]
    fig.add_trace(go.Scatter(x=x, y=sweep["log_px"] - diwae["mean"], mode="lines",
                             name=f"log p(x) − {label('diwae', num_corruptions, num_samples)}",
                             line=dict(color=colour, dash=dash, width=2)))
    text, colour, _ = STYLE["expected_kl"]
    fig.add_trace(go.Scatter(x=x, y=sweep["expected_kl"], name=f"{text} = L_cvae − L_dvae(joint)",
                             mode="lines", line=dict(color=colour, width=4), opacity=0.5))
    fig.add_hline(y=0, line=dict(color=BLACK, width=1))
    fig.add_vline(x=level, line=dict(color="grey", dash="dot"))
    fig.add_annotation(x=x[-1], y=0, text="below 0: above log p(x), not a bound", showarrow=False,
                       xanchor="right", yanchor="top", font=dict(color=VERMILLION))
    return _layout(fig, "Gaps to log p(x)", "noise level ν", f"log p(x) − objective ({NATS})")


def _bits(row) -> str:
    return "".join(str(int(b)) for b in row)


def densities_figure(dens: dict) -> go.Figure:
    """p(z|x), q̃(z|x) and the heaviest weighted components p(x̃|x) q(z|x̃): lines (1-D) or contours (2-D)."""
    axes = dens["axes"]
    fig = go.Figure()
    if len(axes) == 1:
        z = axes[0]
        for i, (comp, weight, bits) in enumerate(zip(dens["components"], dens["component_weights"],
                                                     dens["component_bits"])):
            fig.add_trace(go.Scatter(
                x=z, y=comp, mode="lines", line=dict(color=ORANGE, width=1), opacity=0.7,
                name=f"p(x̃|x)·q(z|x̃), x̃ = {_bits(bits)} (weight {weight:.3g})", legendgroup="components",
                showlegend=i < 4))
        fig.add_trace(go.Scatter(x=z, y=dens["mixture"], name="q̃(z|x) = Σ p(x̃|x) q(z|x̃)", mode="lines",
                                 line=dict(color=BLUE, width=3)))
        fig.add_trace(go.Scatter(x=z, y=dens["posterior"], name="p(z|x) (exact posterior)", mode="lines",
                                 line=dict(color=BLACK, width=2, dash="dash")))
        visible = np.flatnonzero((dens["mixture"] > 1e-4 * dens["mixture"].max())
                                 | (dens["posterior"] > 1e-4 * dens["posterior"].max()))
        fig.update_xaxes(range=[z[visible[0]], z[visible[-1]]])
        return _layout(fig, "Posterior densities on the latent axis", "z", "density", height=400)
    z1, z2 = axes
    for name, density, colour in (("p(z|x) (exact posterior)", dens["posterior"], BLACK),
                                  ("q̃(z|x) (mixture)", dens["mixture"], BLUE)):
        fig.add_trace(go.Contour(
            x=z1, y=z2, z=density.T, name=name, showscale=False, showlegend=True,
            contours=dict(coloring="lines", start=density.max() * 0.05, end=density.max() * 0.95,
                          size=density.max() * 0.15),
            line=dict(width=2, dash="dash" if colour == BLACK else "solid"), colorscale=[[0, colour], [1, colour]]))
    locs, weights = dens["component_locs"], dens["component_weights"]
    fig.add_trace(go.Scatter(
        x=locs[:, 0], y=locs[:, 1], mode="markers", name="q(z|x̃) means (size ∝ p(x̃|x))",
        marker=dict(color=ORANGE, size=8 + 30 * np.sqrt(weights / weights.max()), line=dict(color=BLACK, width=1)),
        text=[f"x̃ = {_bits(b)}, p(x̃|x) = {w:.3g}" for b, w in zip(dens["component_bits"], weights)],
        hoverinfo="text"))
    mass = dens["posterior"] + dens["mixture"]
    rows, cols = np.nonzero(mass > 1e-3 * mass.max())
    fig.update_xaxes(range=[z1[rows.min()], z1[rows.max()]])
    fig.update_yaxes(range=[z2[cols.min()], z2[cols.max()]])
    return _layout(fig, "Posterior densities in the 2-D latent space (contours)", "z₁", "z₂", height=480)


def counterexample_figure(sweep: dict, a_now: float) -> go.Figure:
    """Ranganath's counterexample against q(z=1|x̃=0) = 1 − a: the independent reading blows up."""
    x = 1.0 - np.asarray(sweep["a"])
    fig = go.Figure()
    for name in ("log_px", "cvae", "dvae_joint", "dvae_independent", "diwae"):
        text, colour, dash = STYLE[name]
        if name == "log_px":
            text = "log p(x) = 0"
        if name == "diwae":
            text = "E[DIWAE(M, K)] (exact, by enumeration)"
        fig.add_trace(go.Scatter(x=x, y=sweep[name], name=text, mode="lines",
                                 line=dict(color=colour, dash=dash, width=2.5)))
    fig.add_vline(x=1.0 - a_now, line=dict(color="grey", dash="dot"), annotation_text=f"1 − a = {1 - a_now:g}")
    return _layout(fig, "Ranganath's counterexample: only the independent reading exceeds log p(x)",
                   "q(z=1 | x̃=0) = 1 − a  (and q(z=1 | x̃=1) = a)")


def objective_scatter(result: dict, objective_label: str) -> go.Figure:
    """Per-example objective (y) against log p(x) (x), the diagonal y = x drawn.

    log p(x) is the exact (quadrature) value when the result has it (2-D latents), else importance-sampled
    from the defensive mixture proposal.
    """
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
    return _layout(fig, "Training objective vs log p(x), per clean test example",
                   (f"log p(x), exact by quadrature on a grid ({NATS})" if exact else
                    f"log p(x), importance-sampled (mixture proposal, k = {result['importance_samples']}) ({NATS})"),
                   f"{objective_label}, mean of {result['repeats']} draws ({NATS})", height=520)
