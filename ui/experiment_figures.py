"""Plotly figures of the Experiments page: the grid as a heat map, one cell's curves over epochs per seed."""

from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from experiments.experiment_io import ExperimentView, grid_summary

SEED_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
                "#999999", "#882255")  # Okabe–Ito, then two more


def _cell_text(cell: dict) -> str:
    if cell["mean"] is None:
        ours = "—"
    elif cell["n"] > 1:
        ours = f"{cell['mean']:.2f} ± {cell['std']:.2f}"
    else:
        ours = f"{cell['mean']:.2f}"
    paper = f"<br>paper {cell['paper'][0]:.2f}" if cell.get("paper") else ""
    return f"{ours}{paper}<br>{cell['finished']}/{cell['seeds']} seeds"


def heatmap(view: ExperimentView, metric: str, metric_name: str) -> go.Figure:
    """Rows: models; columns: noise levels (or M, or noise type); colour: our mean over seeds (lower is better)."""
    cells = grid_summary(view, metric)
    rows = list(dict.fromkeys(c["row"] for c in cells))
    columns = list(dict.fromkeys(c["column"] for c in cells))
    z = [[math.nan] * len(columns) for _ in rows]
    text = [[""] * len(columns) for _ in rows]
    labels = [[""] * len(columns) for _ in rows]
    for c in cells:
        i, j = rows.index(c["row"]), columns.index(c["column"])
        z[i][j] = math.nan if c["mean"] is None else c["mean"]
        text[i][j] = _cell_text(c)
        labels[i][j] = c["label"]
    fig = go.Figure(go.Heatmap(
        z=z, x=columns, y=rows, text=text, texttemplate="%{text}", customdata=labels, colorscale="Blues_r",
        colorbar=dict(title=dict(text="nats")), xgap=2, ygap=2,
        hovertemplate="%{customdata}<br>" + metric_name + ": %{text}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", title_text="model")
    fig.update_xaxes(side="top", title_text="noise level" if view.grid in ("table1", "table2", "table3", "")
                     else "")
    fig.update_layout(template="plotly_white", height=max(260, 70 * len(rows) + 120),
                      margin=dict(l=10, r=10, t=60, b=10), title=dict(text=f"{metric_name}, mean over finished seeds"))
    return fig


def cell_curves(view: ExperimentView, label: str) -> go.Figure:
    """One line per seed: −training objective and −clean validation bound over epochs; the paper's value dashed."""
    cell = next(c for c in view.cells if c["label"] == label)
    iw = cell["config"].get("objective") in ("iwae", "diwae")
    bound_name = "−IWAE bound" if iw else "−ELBO"
    fig = make_subplots(rows=1, cols=2, subplot_titles=("−training objective (corrupted inputs)",
                                                        f"clean validation {bound_name}"))
    for run in view.runs_of(label):
        colour = SEED_COLOURS[run.seed % len(SEED_COLOURS)]
        h = run.history
        valid = h["valid_iwae"] if iw else h["valid_elbo"]
        name = f"seed {run.seed} ({run.status})"
        for col, values in ((1, h["train_objective"]), (2, valid)):
            fig.add_trace(go.Scatter(x=h["epoch"], y=[None if v is None else -v for v in values], mode="lines",
                                     name=name, legendgroup=name, showlegend=col == 1, line=dict(color=colour)),
                          row=1, col=col)
    if cell.get("paper"):
        fig.add_hline(y=cell["paper"][0], line_dash="dash", line_color="#555555", row=1, col=2,
                      annotation_text=f"paper {cell['paper'][0]:.2f} (−test bound)", annotation_position="top left")
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="nats per example (lower is better)", row=1, col=1)
    fig.update_layout(template="plotly_white", height=380, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.25))
    return fig
