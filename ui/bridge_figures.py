"""Figures of the "bridge" section of the Is it a bound? page: L⁽ᴷ⁾ rising and U⁽ᴷ⁾ falling against K.

They only draw numbers :mod:`dvae_engine.boundlab` (exact tiny models) and
:mod:`dvae_engine.semi_implicit` (estimators on checkpoints) computed. Okabe–Ito colours plus
dashes and marker shapes, so no curve is told apart by hue alone.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ui.boundlab_figures import BLACK, BLUE, GREEN, NATS, ORANGE, VERMILLION

LOWER = "L⁽ᴷ⁾: z scored against the mixture of x̃₀..x̃_K (rises to L_cvae)"
UPPER = "U⁽ᴷ⁾: x̃₀ left out, mixture of x̃₁..x̃_K (falls to L_cvae)"


def _band(fig: go.Figure, x: np.ndarray, mean: np.ndarray, stderr: np.ndarray, colour: str, name: str) -> None:
    """A ±2 standard-error band (Monte Carlo error)."""
    upper, lower = mean + 2 * stderr, mean - 2 * stderr
    fig.add_trace(go.Scatter(
        x=np.concatenate([x, x[::-1]]), y=np.concatenate([upper, lower[::-1]]), mode="lines", fill="toself",
        fillcolor=colour, opacity=0.2, line=dict(width=0), hoverinfo="skip", showlegend=True, name=name))


def bridge_figure(
    ks,
    lower: np.ndarray,
    upper: np.ndarray,
    lower0: float,
    *,
    lower_stderr: np.ndarray | None = None,
    upper_stderr: np.ndarray | None = None,
    log_px: float | None = None,
    log_px_label: str = "log p(x)",
    exact: dict | None = None,
    title: str = "The bridge: L⁽ᴷ⁾ and U⁽ᴷ⁾ against K",
    estimate_label: str = "Monte Carlo estimate",
) -> go.Figure:
    """The two sequences against K (log axis), with L⁽⁰⁾ = L_dvae and log p(x) as horizontal lines.

    ``lower``/``upper`` (len(ks),) are the estimates (with ``*_stderr`` drawn as ±2 s.e. bands);
    ``exact`` (optional, a :func:`dvae_engine.boundlab.bridge_exact` result on its own ``ks``) adds the
    exact curves and the exact L_cvae.
    """
    x = np.asarray(ks, dtype=float)
    fig = go.Figure()
    if exact is not None:
        ex = np.asarray(exact["ks"], dtype=float)
        fig.add_hline(y=exact["cvae"], line=dict(color=BLUE, width=3),
                      annotation_text=f"L_cvae (exact) = {exact['cvae']:.4f}", annotation_position="bottom right")
        fig.add_trace(go.Scatter(x=ex, y=exact["lower"], mode="lines", name="L⁽ᴷ⁾ exact",
                                 line=dict(color=GREEN, width=1.5, dash="dot")))
        fig.add_trace(go.Scatter(x=ex, y=exact["upper"], mode="lines", name="U⁽ᴷ⁾ exact",
                                 line=dict(color=VERMILLION, width=1.5, dash="dot")))
    for values, stderr, name, colour, dash, symbol in (
            (lower, lower_stderr, LOWER, GREEN, "solid", "triangle-up"),
            (upper, upper_stderr, UPPER, VERMILLION, "dash", "triangle-down")):
        values = np.asarray(values, dtype=float)
        if stderr is not None:
            _band(fig, x, values, np.asarray(stderr, dtype=float), colour, f"±2 s.e. ({name.split(':')[0]})")
        fig.add_trace(go.Scatter(x=x, y=values, mode="lines+markers", name=f"{name} — {estimate_label}",
                                 line=dict(color=colour, dash=dash, width=2.5), marker=dict(symbol=symbol, size=8)))
    fig.add_hline(y=lower0, line=dict(color=GREEN, dash="dashdot", width=1.5),
                  annotation_text=f"L⁽⁰⁾ = L_dvae (joint reading, as trained) = {lower0:.3f}",
                  annotation_position="bottom left")
    if log_px is not None:
        fig.add_hline(y=log_px, line=dict(color=BLACK, width=2.5),
                      annotation_text=f"{log_px_label} = {log_px:.3f}", annotation_position="top left")
    # the y range: the lower sequence and log p(x) in full, U's first points may be far above (clip them)
    values = [lower0, *np.asarray(lower, dtype=float), *np.asarray(upper, dtype=float)[-max(1, len(upper) // 2):]]
    if log_px is not None:
        values.append(log_px)
    if exact is not None:
        values.append(exact["cvae"])
    low, high = min(values), max(values)
    span = max(high - low, 1e-3)
    top = high + 0.35 * span
    highest = float(np.max(upper))
    if highest <= high + 2 * span:  # U's first points fit without squashing the rest
        top = max(top, highest + 0.05 * span)
    else:
        fig.add_annotation(x=np.log10(x[0]), y=top, yanchor="top", xanchor="left", showarrow=False,
                           text=f"U⁽{int(x[0])}⁾ = {float(np.asarray(upper)[0]):.2f}: above the chart",
                           font=dict(color=VERMILLION))
    fig.update_yaxes(range=[low - 0.15 * span, top])
    fig.update_xaxes(type="log", title_text="K (corrupted copies in the mixture; log scale)")
    fig.update_layout(title=dict(text=title), height=480, margin=dict(l=60, r=20, t=50, b=50),
                      legend=dict(orientation="h", yanchor="top", y=-0.2, x=0), template="plotly_white",
                      yaxis_title=NATS)
    return fig


def gap_bracket_figure(ks, lower_gain: np.ndarray, upper_gain: np.ndarray, lower_stderr: np.ndarray,
                       upper_stderr: np.ndarray, exact_gap: float | None = None) -> go.Figure:
    """The KL gap L_cvae − L_dvae bracketed: L⁽ᴷ⁾ − L⁽⁰⁾ below it, U⁽ᴷ⁾ − L⁽⁰⁾ above it, log(K+1) as a ceiling."""
    x = np.asarray(ks, dtype=float)
    fig = go.Figure()
    for values, stderr, name, colour, dash in (
            (lower_gain, lower_stderr, "L⁽ᴷ⁾ − L⁽⁰⁾ (a lower bound on the gap)", GREEN, "solid"),
            (upper_gain, upper_stderr, "U⁽ᴷ⁾ − L⁽⁰⁾ (an upper bound on the gap)", VERMILLION, "dash")):
        values = np.asarray(values, dtype=float)
        _band(fig, x, values, np.asarray(stderr, dtype=float), colour, "±2 s.e.")
        fig.add_trace(go.Scatter(x=x, y=values, mode="lines+markers", name=name,
                                 line=dict(color=colour, dash=dash, width=2.5)))
    fig.add_trace(go.Scatter(x=x, y=np.log(x + 1), mode="lines", name="log(K+1): the most L⁽ᴷ⁾ can gain over L⁽⁰⁾",
                             line=dict(color=ORANGE, dash="dot", width=1.5)))
    if exact_gap is not None:
        fig.add_hline(y=exact_gap, line=dict(color=BLUE, width=3),
                      annotation_text=f"E KL(q(z|x̃) ‖ q̃(z|x)) exact = {exact_gap:.4f}")
    high = float(np.max(np.asarray(lower_gain))) if exact_gap is None else exact_gap
    high = max(high, float(np.asarray(upper_gain)[-1]))
    fig.update_yaxes(range=[min(0.0, float(np.min(lower_gain))) - 0.1 * max(high, 1e-3), 1.6 * max(high, 1e-3)])
    fig.update_xaxes(type="log", title_text="K (log scale)")
    fig.update_layout(title=dict(text="The price of the cheap objective: L_cvae − L_dvae = E KL(q(z|x̃) ‖ q̃(z|x)), "
                                      "bracketed"),
                      height=400, margin=dict(l=60, r=20, t=50, b=50), template="plotly_white",
                      legend=dict(orientation="h", yanchor="top", y=-0.2, x=0), yaxis_title=NATS)
    return fig
