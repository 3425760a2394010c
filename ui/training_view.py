"""What the training pages (Home, Train, Bound vs M, Checkpoints) share: who is asking, labels, figures.

* :func:`owner_id` — the key of this browser's owner token (see :mod:`ui.identity`: a
  cookie, never the URL), which owns its training jobs and checkpoint files.
* Labels: :func:`progress_text`, :func:`metric_rows` (every number says what it is, in
  nats per example), :func:`config_rows`.
* Plotly figures (interactive, imported only when drawn): :func:`history_figure` (live training
  curves), :func:`sparkline`, :func:`bound_vs_m_figure` (the paper's Figure 1).
* :func:`dvae_diagram` (the Home picture): inline SVG (:mod:`ui.svgplot`), so the first page a
  visitor sees needs neither plotly's Python import nor its JavaScript bundle.

Colours are the Okabe–Ito palette (colour-blind safe). No arithmetic on model outputs
happens here: figures only draw numbers the engine computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from dvae_engine.cli import format_eta
from dvae_engine.evaluation import headline_nll
from dvae_engine.jobs import JobSnapshot
from dvae_engine.training import TrainConfig
from ui.figures import PALETTE, html_download, image_bytes
from ui.svgplot import esc, figure_html, png_data_uri

if TYPE_CHECKING:
    import plotly.graph_objects as go

OKABE_ITO = PALETTE  # the colour-blind-safe palette of ui/figures.py
NATS = "nats per example"
OBJECTIVE_LABELS = {
    "vae": "VAE",
    "iwae": "IWAE",
    "dvae": "DVAE",
    "diwae": "DIWAE",
    "dvae-mix": "DVAE-mix (semi-implicit: z scored against the M copies' mixture)",
    "diwae-mix": "DIWAE-mix (importance-weighted, mixture of the M copies)",
    "noisy-vae": "Noisy-data VAE (reconstructs x̃)",
    "augment-vae": "Data augmentation, VAE (paper Sec. 4)",
    "augment-iwae": "Data augmentation, IWAE (paper Sec. 4)",
}
TRAIN_OBJECTIVE_NAMES = {
    "vae": "VAE ELBO",
    "iwae": "IWAE bound",
    "dvae": "DVAE objective (Eq. 11, corrupted x̃)",
    "diwae": "DIWAE objective (Eq. 12, corrupted x̃)",
    "dvae-mix": "DVAE-mix objective (semi-implicit bound, mixture of the M copies)",
    "diwae-mix": "DIWAE-mix objective (balance-heuristic IW bound, mixture of the M copies)",
    "noisy-vae": "ELBO of the corrupted x̃",
}
STATUS_LABELS = {
    "queued": ":gray[queued]",
    "running": ":blue[running]",
    "evaluating": ":blue[evaluating]",
    "finished": ":green[finished]",
    "stopped": ":orange[stopped]",
    "diverged": ":red[diverged]",
    "failed": ":red[failed]",
}


# --- who is asking ---------------------------------------------------------------------------

def owner_id() -> str:
    """The server-side key of this browser's owner (a hash of the token in its cookie; never in the URL)."""
    from ui import identity

    return identity.owner_key()


# --- labels ----------------------------------------------------------------------------------

def progress_text(job: JobSnapshot) -> str:
    """e.g. ``Epoch 3 of 10 · batch 40/120 · 5,210 examples/s · about 0:42 left``.

    While evaluating: ``Evaluating on 1,000 clean test images · step 3 of 3: log p(x), k=1000 ·
    350 of 1,000 · about 0:20 left``.
    """
    if job.status == "queued":
        position = f" (position {job.queue_position})" if job.queue_position else ""
        return f"waiting for a free training slot{position}"
    eta = job.eta_seconds
    left = f"about {format_eta(eta)} left" if eta is not None else "estimating time left…"
    if job.status == "evaluating":
        parts = [f"Evaluating on {job.eval_examples:,} clean test images"]
        if job.eval_step:
            parts.append(f"step {job.eval_step} of {job.eval_steps}: {job.eval_stage}")
            parts.append(f"{job.eval_done:,} of {job.eval_total:,}")
        parts.append(left)
        return " · ".join(parts)
    parts = [f"Epoch {min(job.epoch + 1, job.epochs)} of {job.epochs}"]
    if job.batches_per_epoch:
        parts.append(f"batch {job.batch}/{job.batches_per_epoch}")
    if job.examples_per_sec:
        parts.append(f"{job.examples_per_sec:,.0f} examples/s")
    parts.append(left)
    return " · ".join(parts)


def duration_text(job: JobSnapshot) -> str:
    """``in 66 s (training 5 s, evaluation 61 s)``: wall-clock time from the run's start, evaluation included."""
    total = f"in {format_seconds(job.wall_seconds)}"
    parts = []
    if job.train_seconds is not None:
        parts.append(f"training {format_seconds(job.train_seconds)}")
    if job.eval_seconds is not None:
        parts.append(f"evaluation {format_seconds(job.eval_seconds)}")
    if job.queue_seconds >= 1:
        parts.append(f"after {format_seconds(job.queue_seconds)} in the queue")
    return total + (f" ({', '.join(parts)})" if parts else "")


def format_seconds(seconds: float) -> str:
    """``42 s`` below a minute, else ``1:05`` (m:ss) or ``1:02:05``."""
    return f"{seconds:.0f} s" if seconds < 59.5 else format_eta(seconds)


def metric_label(key: str, metrics: dict) -> str | None:
    """What a stored metric is, in words; ``None`` for bookkeeping keys."""
    split = metrics.get("split", "test")
    if key == "neg_elbo":
        return f"−ELBO on clean {split} data (k = 1, exact KL)"
    if key == "nll_exact":
        return f"−log p(x), exact (quadrature over the 2-D latent plane) on clean {split} data"
    if key == "nll_mix":
        k = metrics.get("importance_samples")
        noise = metrics.get("mixture_noise")
        return (f"−log p(x), importance-sampled (k = {k}), defensive mixture proposal "
                f"(½ q(z|x) + ½ q(z|x̃), {noise} {metrics.get('mixture_level', 0):g}) on clean {split} data")
    if key == "nll_is":
        k = metrics.get("plain_samples") or metrics.get("importance_samples")
        return f"−log p(x), importance-sampled (k = {k}), plain proposal q(z|x) on clean {split} data"
    if key == "neg_train_objective":
        return f"−training objective (own noise, M and K) on clean {split} data"
    if key.startswith("neg_iwae_") and not key.endswith("_stderr"):
        return f"−IWAE bound (k = {key.removeprefix('neg_iwae_')}) on clean {split} data"
    if key == "selected_valid_elbo":
        return "validation ELBO of the kept epoch"
    return None


METRIC_ORDER = ("nll_exact", "nll_mix", "nll_is", "neg_elbo")


def metric_rows(metrics: dict) -> list[dict]:
    """Rows ``{"what", "value (nats per example)", "± std. error", "examples"}`` for :func:`markdown_table`.

    The number models are compared by comes first (exact, else the mixture estimate), then the plain estimate.
    """
    rows = []
    keys = [k for k in METRIC_ORDER if k in metrics] + [k for k in metrics if k not in METRIC_ORDER]
    for key in keys:
        value = metrics[key]
        label = metric_label(key, metrics)
        if label is None or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        stderr = metrics.get(f"{key}_stderr")
        rows.append({
            "what": label,
            f"value ({NATS})": round(float(value), 2),
            "± std. error": None if stderr is None else round(float(stderr), 2),
            "examples": metrics.get("exact_examples") if key == "nll_exact" and metrics.get("exact_examples")
            else metrics.get("nll_examples") if key.startswith("nll") and metrics.get("nll_examples")
            else metrics.get("num_examples"),
        })
    return rows


def markdown_table(rows: Sequence[dict]) -> str:
    """Rows of the same keys as a Markdown table (``st.markdown``): small tables need neither pandas nor a data grid,
    whose first use costs a page's first visit about a second."""
    if not rows:
        return ""

    def cell(value) -> str:
        text = "" if value is None else str(value)
        return text.replace("|", "\\|").replace("\n", " ")

    keys = list(rows[0])
    lines = ["| " + " | ".join(cell(k) for k in keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(cell(row.get(k)) for k in keys) + " |" for row in rows]
    return "\n".join(lines)


def headline(metrics: dict, likelihood: str = "bernoulli") -> str:
    """The one number to show on a card, labelled, or a note that the run was not evaluated.

    For real-valued data (a Gaussian decoder) log p(x) is a log-density, usually positive: the card then
    shows log p(x) itself and says so, rather than a negative "−log p(x)".
    """
    best = headline_nll(metrics)
    if best is not None:
        key, value = best
        how = {"nll_exact": "exact, by quadrature",
               "nll_mix": f"importance-sampled, mixture proposal, k = {metrics.get('importance_samples')}",
               "nll_is": f"importance-sampled from q(z|x) alone, k = {metrics.get('importance_samples')}"}[key]
        if likelihood == "gaussian":
            return (f"log p(x) ≈ **{-value:+.2f}** {NATS} ({how}, clean test) — a log-*density* of real-valued "
                    "pixels: it can be positive, and higher is better")
        return f"−log p(x) ≈ **{value:.2f}** {NATS} ({how}, clean test; lower is better)"
    if "neg_elbo" in metrics:
        if likelihood == "gaussian":
            return f"ELBO = **{-metrics['neg_elbo']:+.2f}** {NATS} (clean test; a log-density bound, higher is better)"
        return f"−ELBO = **{metrics['neg_elbo']:.2f}** {NATS} (clean test)"
    return "not evaluated on test data"


def config_rows(config: TrainConfig) -> dict[str, str]:
    """The settings worth showing, as ``{setting: value}``."""
    noise = "none" if config.noise == "none" or config.noise_level == 0 else f"{config.noise} {config.noise_level:g}"
    encoder = "GRU" if config.encoder == "gru" else f"MLP, {config.encoder_layers} layer(s)"
    return {
        "model": f"{config.model_name} ({config.objective})",
        "dataset": config.dataset,
        "noise": noise,
        "M (corrupted copies)": str(config.num_corruptions),
        "K (samples per copy)": str(config.num_samples),
        "encoder": f"{encoder}, {config.hidden_units} units",
        "latent size": str(config.latent_dim),
        "epochs": str(config.epochs),
        "learning rate": f"{config.lr:g} ({config.lr_schedule})",
        "seed": str(config.seed),
        "training examples": "all" if config.max_train_examples is None else str(config.max_train_examples),
    }


# --- figures ---------------------------------------------------------------------------------

def _layout(fig: go.Figure, height: int, title: str | None = None) -> go.Figure:
    fig.update_layout(
        height=height, margin=dict(l=10, r=10, t=50 if title else 20, b=10), template="plotly_white",
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0), font=dict(size=14),
        title=dict(text=title) if title else None,
    )
    return fig


def history_figure(history: dict, config: TrainConfig, height: int = 360) -> go.Figure:
    """Training objective and clean validation bounds per epoch (higher is better)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    epochs = history.get("epoch", [])
    series = [
        ("train_objective", f"training objective: {TRAIN_OBJECTIVE_NAMES.get(config.objective, config.objective)}",
         OKABE_ITO[1], "dot"),
        ("valid_elbo", "clean validation ELBO (k = 1)", OKABE_ITO[0], "solid"),
        ("valid_iwae", f"clean validation IWAE bound (k = M·K = {config.num_corruptions * config.num_samples})",
         OKABE_ITO[2], "dash"),
    ]
    for key, name, colour, dash in series:
        values = history.get(key) or []
        if not values or all(v is None for v in values):
            continue
        fig.add_trace(go.Scatter(x=epochs, y=values, name=name, mode="lines+markers",
                                 line=dict(color=colour, dash=dash, width=3), marker=dict(size=5)))
    fig.update_xaxes(title_text="epoch", rangemode="tozero" if len(epochs) < 2 else "normal")
    fig.update_yaxes(title_text=f"{NATS} (higher is better)")
    return _layout(fig, height)


def sparkline(history: dict, key: str = "valid_elbo", height: int = 70) -> str:
    """A tiny line of one history series (default: clean validation ELBO per epoch), as inline SVG.

    SVG rather than plotly: the Checkpoints page shows one per run, and a dozen plotly charts made its
    first visit cost seconds of browser time on a small machine. Hovering shows the range it spans.
    """
    from ui.svgplot import Chart

    epochs = np.asarray(history.get("epoch", []), dtype=float)
    values = np.asarray([np.nan if v is None else v for v in history.get(key) or []], dtype=float)
    finite = values[np.isfinite(values)]
    tooltip = (f"clean validation ELBO per epoch: {finite[0]:.2f} → {finite[-1]:.2f} {NATS} over "
               f"{len(values)} epochs" if len(finite) else None)
    chart = Chart(width=320, height=height, axes=False, margin=(3, 3, 3, 3))
    chart.line(epochs[:len(values)], values, color=OKABE_ITO[0], width=2, show_legend=False, tooltip=tooltip)
    return chart.to_html()


@dataclass
class Curve:
    """One run's history for the Bound vs M figure."""

    label: str
    model_name: str  # DVAE, DIWAE, ...
    num_corruptions: int  # M
    history: dict
    live: bool = False


def bound_vs_m_figure(curves: Sequence[Curve], height: int = 480) -> go.Figure:
    """The paper's Figure 1: bound per epoch for M = 1, 5, 10, DVAE solid and DIWAE dashed.

    Left: the training objective each run maximises (on corrupted inputs); right: the
    clean validation ELBO, the same yardstick for every run.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.08, subplot_titles=(
        "training objective (bound on log p(x), corrupted x̃)", "clean validation ELBO (k = 1)"))
    ms = sorted({c.num_corruptions for c in curves})
    colour = {m: OKABE_ITO[i % len(OKABE_ITO)] for i, m in enumerate(ms)}
    dashes = {"DVAE": "solid", "DIWAE": "dash", "VAE": "dot", "IWAE": "dashdot"}
    for curve in curves:
        epochs = curve.history.get("epoch", [])
        style = dict(color=colour[curve.num_corruptions], dash=dashes.get(curve.model_name, "longdash"), width=3)
        group = f"{curve.label}"
        for col, key in ((1, "train_objective"), (2, "valid_elbo")):
            fig.add_trace(go.Scatter(
                x=epochs, y=curve.history.get(key) or [], name=curve.label, legendgroup=group, showlegend=col == 1,
                mode="lines", line=style,
                hovertemplate=f"{curve.label}<br>epoch %{{x}}: %{{y:.2f}} {NATS}<extra></extra>",
            ), row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text=f"training objective ({NATS})", row=1, col=1)
    fig.update_yaxes(title_text=f"clean validation ELBO ({NATS})", row=1, col=2)
    _layout(fig, height)
    fig.update_layout(legend=dict(y=-0.18, yanchor="top"), margin=dict(t=40, b=10))
    return fig


def dvae_diagram(x_clean: np.ndarray, x_noisy: Sequence[np.ndarray], x_out: np.ndarray | None,
                 noise_label: str, height: int = 330) -> str:
    """The DVAE in one picture: x → M corrupted copies x̃ → encoder → mixture q̃(z|x) → decoder → x.

    ``x_clean``, each ``x_noisy[m]`` and ``x_out`` (decoder means, or ``None``) are (H, W) images,
    drawn black ink on white. The posterior panel is a schematic: one Gaussian q(z|x̃⁽ᵐ⁾) per
    corrupted copy, in its colour. ``height`` is the drawing's height in px at full width.
    """
    unit = height / 4.1  # px per diagram unit; the diagram spans 12.4 × 4.1 units
    width, total_h = 12.4 * unit, 4.1 * unit

    def px(x):
        return x * unit

    def py(y):
        return (3.8 - y) * unit  # y up, as drawn before, from 3.8 at the top to −0.3 at the bottom

    colours = OKABE_ITO[: len(x_noisy)]
    out = []

    def image(img, x, y, size, border=None):
        ink = png_data_uri(image_bytes(1.0 - np.clip(img, 0.0, 1.0)))
        side = size * unit
        x0, y0 = px(x) - side / 2, py(y) - side / 2
        if border:
            out.append(f'<rect x="{x0 - 3:.1f}" y="{y0 - 3:.1f}" width="{side + 6:.1f}" height="{side + 6:.1f}" '
                       f'fill="{border}"/>')
        out.append(f'<image href="{ink}" x="{x0:.1f}" y="{y0:.1f}" width="{side:.1f}" height="{side:.1f}" '
                   f'preserveAspectRatio="none" style="image-rendering:pixelated"/>')

    def arrow(x0, x1, y=2.0):
        out.append(f'<path d="M{px(x0):.1f},{py(y):.1f} H{px(x1) - 9:.1f}" stroke="#555" stroke-width="2.5"/>'
                   f'<path d="M{px(x1):.1f},{py(y):.1f} l-13,-7 v14 z" fill="#555"/>')

    def label(x, y, lines, size=19):
        # a line is text, or (text, subscript, text): E with p(x̃|x) set below the line
        def line_svg(line):
            if isinstance(line, str):
                return esc(line)
            before, sub, after = line
            return (f'{esc(before)}<tspan baseline-shift="sub" font-size="75%">{esc(sub)}</tspan>'
                    f'<tspan baseline-shift="0">{esc(after)}</tspan>')

        tspans = "".join(f'<tspan x="{px(x):.1f}" dy="{0 if i == 0 else 1.2:.1f}em">{line_svg(line)}</tspan>'
                         for i, line in enumerate(lines))
        shift = -(len(lines) - 1) * 0.6
        out.append(f'<text x="{px(x):.1f}" y="{py(y):.1f}" text-anchor="middle" font-size="{size}" '
                   f'dominant-baseline="middle"><tspan dy="{shift:.1f}em"></tspan>{tspans}</text>')

    def box(x0, x1, lines):
        out.append(f'<rect x="{px(x0):.1f}" y="{py(2.55):.1f}" width="{px(x1) - px(x0):.1f}" '
                   f'height="{py(1.45) - py(2.55):.1f}" fill="#f2f2f2" stroke="#555" stroke-width="2" rx="4"/>')
        label((x0 + x1) / 2, 2.0, lines, 21)

    image(x_clean, 0.9, 2.0, 1.4, border="#bbbbbb")
    label(0.9, 0.95, ["clean x"])
    arrow(1.7, 2.45)
    label(2.05, 2.4, ["p(x̃|x)"], 19)
    for m, (img, colour) in enumerate(zip(x_noisy, colours)):
        image(img, 3.1, 3.1 - 1.05 * m, 0.9, border=colour)
    label(3.1, -0.05, [f"M = {len(x_noisy)} corrupted x̃", f"({noise_label})"], 18)
    arrow(3.75, 4.25)
    box(4.25, 5.85, ["encoder", "q(z|x̃)"])
    arrow(5.85, 6.35)
    for m, colour in enumerate(colours):  # schematic mixture: one ellipse per corrupted copy, overlapping
        cx, cy = 7.2 + 0.25 * (m - 1), 2.0 + 0.22 * ((m % 2) * 2 - 1) * (m > 0)
        out.append(f'<ellipse cx="{px(cx):.1f}" cy="{py(cy):.1f}" rx="{0.55 * unit:.1f}" ry="{0.42 * unit:.1f}" '
                   f'fill="{colour}" fill-opacity="0.25" stroke="{colour}" stroke-width="3"/>')
    label(7.2, 0.9, ["mixture posterior", ("q̃(z|x) = E", "p(x̃|x)", "[q(z|x̃)]")], 18)
    arrow(8.05, 8.55)
    box(8.55, 10.15, ["decoder", "p(x|z)"])
    arrow(10.15, 10.65)
    image(x_out if x_out is not None else x_clean, 11.45, 2.0, 1.4, border="#bbbbbb")
    label(11.45, 0.9, ["scores the clean x", "log p(x|z)"] if x_out is None else
          ["decoder mean", "(scored on clean x)"], 18)
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {total_h:.0f}" width="100%" '
           f'style="max-width:{width:.0f}px;height:auto;display:block;font-family:inherit" fill="#2a3f5f" '
           f'role="img" aria-label="One DVAE training step">{"".join(out)}</svg>')
    return figure_html(svg, name="dvae-diagram")


# --- widget state that survives page switches and refreshes -------------------------------------

def seed_widget(key: str, url_value, default) -> None:
    """Give widget ``key`` its starting value once: the URL's, else this session's last choice, else ``default``.

    Streamlit drops a widget's state when its page is left; :func:`remember` keeps a copy.
    """
    if key in st.session_state:
        return
    memory = st.session_state.get("_remembered", {})
    st.session_state[key] = url_value if url_value is not None else memory.get(key, default)


def remember(*keys: str) -> None:
    """Keep the current values of these widgets for when the page is opened again."""
    memory = st.session_state.setdefault("_remembered", {})
    for key in keys:
        if key in st.session_state:
            memory[key] = st.session_state[key]


# --- one training job, drawn (Train and Bound vs M pages) -------------------------------------------

def _job_action(registry, action: str, job_id: str) -> None:
    """Stop or dismiss a job for this browser's owner; the registry refuses anyone else's job."""
    from dvae_engine.jobs import JobAccessError

    try:
        getattr(registry, action)(job_id, owner=owner_id())
    except JobAccessError as err:
        st.session_state["_job_notice"] = f"Not done: {err}."


def _resume_job(registry, job_id: str) -> None:
    """Continue this browser's stopped run exactly where it stopped, up to the epochs it was started for."""
    from dvae_engine import checkpoint as ckpt
    from dvae_engine.jobs import JobAccessError, JobLimitError
    from ui import cache

    job = registry.snapshot(job_id)
    try:
        if job is None or job.owner != owner_id():
            raise JobAccessError("this run belongs to someone else: only the browser that started it can resume it")
        data, message = cache.try_dataset(job.config.dataset, job.config.binarization)
        if data is None:
            raise ValueError(message)
        payload = ckpt.load_payload(job.checkpoint_path)
        registry.submit(job.config, owner=job.owner, name=Path(job.checkpoint_path).stem, dataset=data,
                        evaluation=job.evaluation, resume=payload)
    except (JobAccessError, JobLimitError, ValueError, OSError) as err:
        st.session_state["_job_notice"] = f"Not resumed: {err}."


def render_job(job: JobSnapshot, registry, curves: bool = True) -> None:
    """A bordered card: status, progress, live curves, outcome message, metrics, download and links."""

    from ui import cache

    notice = st.session_state.pop("_job_notice", None)
    if notice:
        st.error(notice)
    with st.container(border=True):
        head, action = st.columns([6, 1], vertical_alignment="center")
        head.markdown(f"**{job.name}** · {STATUS_LABELS.get(job.status, job.status)}  \n{job.config.describe()}")
        if job.active:
            action.button("Stop", key=f"stop-{job.id}", on_click=_job_action, args=(registry, "stop", job.id),
                          icon=":material/stop_circle:", help="Stops after the current batch and saves the model")
        else:
            action.button("Dismiss", key=f"forget-{job.id}", on_click=_job_action, args=(registry, "forget", job.id),
                          help="Removes the run from this list; its checkpoint file stays")
        if job.status == "evaluating":
            st.progress(job.eval_fraction, text=progress_text(job))
        elif job.active:
            st.progress(job.progress, text=progress_text(job))
        if curves and job.history.get("epoch"):
            curves = history_figure(job.history, job.config)
            st.plotly_chart(curves, key=f"curves-{job.id}")
            html_download(curves, f"{job.name}-curves", f"curves-{job.id}")
        path = Path(job.checkpoint_path) if job.checkpoint_path else None
        message = job.message[:1].upper() + job.message[1:]
        epochs_done = len(job.history.get("epoch", []))
        diagnostic_note = ("kept as a **diagnostic** file `{name}` (Checkpoints page, under Diagnostics): "
                           "you can download it, but it is not offered as a model to explore.")
        if job.status == "finished":
            st.success(f"Finished {epochs_done} epoch(s) {duration_text(job)}. Saved as `{path.name}`.")
        elif job.status == "stopped" and job.diagnostic and path is not None:
            st.info(f"{message}. The untrained model is {diagnostic_note.format(name=path.name)}")
        elif job.status == "stopped":
            saved = f" The model as it was is saved as `{path.name}`." if path is not None else ""
            st.info(f"{message}.{saved}")
        elif job.status == "diverged":
            kept = f" Its last good state is {diagnostic_note.format(name=path.name)}" if path is not None else ""
            st.warning(f"Diverged: {job.message}{kept}")
        elif job.status == "failed":
            st.error(f"Failed: {job.message}")
        if job.status == "stopped" and path is not None and path.exists() and epochs_done < job.config.epochs:
            st.button(f"Resume to {job.config.epochs} epochs", key=f"resume-{job.id}", on_click=_resume_job,
                      args=(registry, job.id), icon=":material/play_arrow:",
                      help="Continues from the exact batch where it stopped, with its optimizer and random "
                           "state: the same run as one never stopped. Saved as a new file.")
        if job.metrics:
            st.markdown(markdown_table(metric_rows(job.metrics)))
        if path is not None:
            if not path.exists():
                st.caption(f"`{path.name}` has since been renamed or deleted (see the Checkpoints page).")
                return
            entry_id = f"{'diagnostic' if job.diagnostic else 'user'}/{path.stem}"
            owner = owner_id()
            cols = st.columns(3)
            cols[0].download_button("Download checkpoint", data=lambda: cache.store().read_bytes(owner, entry_id),
                                    file_name=path.name, mime="application/octet-stream", on_click="ignore",
                                    key=f"download-{job.id}", icon=":material/download:")
            if job.diagnostic:
                return
            cols[1].page_link("pages/posterior.py", label="Open in Posterior", icon=":material/scatter_plot:",
                              query_params={"model": entry_id})
            cols[2].page_link("pages/reconstructions.py", label="Open in Reconstructions", icon=":material/image:",
                              query_params={"model": entry_id})


def live_jobs(render, jobs_now, every: float = 1.0) -> None:
    """Call ``render()`` in a fragment that re-runs every ``every`` seconds while any of ``jobs_now`` is active.

    When the set of active jobs changes (a run ended) the whole page re-runs once, so the timer
    stops and everything outside the fragment (e.g. checkpoint lists) catches up.
    """
    active = {j.id for j in jobs_now if j.active}

    @st.fragment(run_every=every if active else None)
    def panel() -> None:
        now = render()
        if {j.id for j in now if j.active} != active:
            st.rerun(scope="app")

    panel()


def denoising_verdicts(comparisons: dict) -> list[str]:
    """One sentence per plain-vs-denoising comparison, its verdict read off the interval over seeds."""
    lines = []
    for name, r in comparisons.items():
        diff, half = r["difference"]  # −log p(x): denoising − plain, nats; > 0 means denoising is worse
        if half != half:  # one seed: no interval
            verdict = "one seed only, so no verdict"
        elif diff + half < 0:
            verdict = "**denoising helps**"
        elif diff - half > 0:
            verdict = "**denoising hurts**"
        else:
            verdict = "**no difference detectable over seeds**"
        interval = f"{diff:+.2f} nats" + ("" if half != half else f" ± {half:.2f}")
        lines.append(f"- {name}: {verdict} — −log p(x) of the denoising model minus the plain one {interval} "
                     f"over {r['seeds']} seed(s); paired over {r['images']} test images, p = {r['paired_p']:.2g}, "
                     f"denoising better on {r['images_where_denoising_is_better']} of them.")
    return lines
