"""Section 4 of the "Is it a bound?" page: the bridge L⁽ᴷ⁾ / U⁽ᴷ⁾ on the tiny model and on a checkpoint.

Widgets → :mod:`dvae_engine.semi_implicit` (real models, behind a button) or the cached
:func:`ui.cache.boundlab_bridge` (tiny model) → figures in :mod:`ui.bridge_figures`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from dvae_engine.checkpoint import CheckpointError
from dvae_engine.semi_implicit import bridge_report, default_ks
from ui import cache

DOC = Path(__file__).resolve().parents[1] / "docs" / "semi_implicit.md"
INTRO = (
    "Draw x̃₀, x̃₁, …, x̃_K independently from p(x̃|x) and z ~ q(z|x̃₀), and score z against a **mixture** of "
    "encoders instead of its own one:\n"
    "* **L⁽ᴷ⁾** = E[log p(x,z) − log((1/(K+1)) Σ_{k=0..K} q(z|x̃_k))], the generating x̃₀ included "
    "(semi-implicit VI, Yin & Zhou 2018). **L⁽⁰⁾ is the DVAE objective as trained** (the joint reading), and "
    "L⁽ᴷ⁾ **rises** with K to L_cvae, the ELBO of the mixture posterior q̃(z|x);\n"
    "* **U⁽ᴷ⁾** = E[log p(x,z) − log((1/K) Σ_{k=1..K} q(z|x̃_k))], x̃₀ left out. **U⁽¹⁾ is the critique's "
    "independent reading**, and U⁽ᴷ⁾ **falls** with K to L_cvae.\n\n"
    "So **L_dvae = L⁽⁰⁾ ≤ L⁽ᴷ⁾ ≤ L_cvae ≤ U⁽ᴷ⁾ ≤ U⁽¹⁾ = L_dvae(independent)**, and log p(x) ≥ L_cvae: the "
    "paper's objective is a lower bound; the independent reading bounds L_cvae from **above** — not log p(x) — "
    "and can sit above log p(x). Exactly, L_cvae − L⁽ᴷ⁾ = E KL(r_{K+1} ‖ q̃) and U⁽ᴷ⁾ − L_cvae = E KL(q̃ ‖ r_K), "
    "r_n the mixture of n sampled encoders; at K = 0 the first is the price of training with the cheap "
    "objective, **L_cvae − L_dvae = E_x̃ KL(q(z|x̃) ‖ q̃(z|x))**. The objectives *dvae-mix* and *diwae-mix* "
    "(Train page) train with L⁽ᴹ⁻¹⁾ and its importance-weighted form."
)


@st.cache_data(show_spinner=False)
def derivations_markdown() -> str:
    """docs/semi_implicit.md, for the page's expander (its first heading dropped)."""
    if not DOC.is_file():
        return "The derivations live in `docs/semi_implicit.md` (not found next to this app)."
    text = DOC.read_text()
    return text.split("\n", 1)[1] if text.startswith("# ") else text


def tiny_model_section(exact: dict | None, note: str | None, mc: dict) -> None:
    """Metrics and the figure for the tiny model: sampled sequences, exact ones, exact L_cvae and log p(x)."""
    from ui import bridge_figures  # plotly: imported when a result is shown, not on every visit of the page
    truth = exact if exact is not None else mc
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("log p(x) (exact)", f"{truth['log_px']:.4f}")
    c2.metric("L_cvae (exact)", f"{truth['cvae']:.4f}")
    gap = exact["cvae"] - exact["lower0"] if exact is not None else mc["expected_kl"]
    c3.metric("L_cvae − L_dvae = E KL(q(z|x̃) ‖ q̃) (exact)", f"{gap:.4f}")
    if exact is not None:
        above = exact["upper1"] - exact["log_px"]
        c4.metric("U⁽¹⁾ (independent reading) − log p(x) (exact)", f"{above:+.4f}",
                  help="positive: the independent reading is above log p(x) — not a bound")
    else:
        c4.metric("U⁽¹⁾ (independent reading), sampled", f"{mc['upper'][0]:.4f} ± {mc['upper_stderr'][0]:.4f}")
        st.info(f"No exact sequences for this model: {note}", icon=":material/info:")
    st.plotly_chart(bridge_figures.bridge_figure(
        mc["ks"], mc["lower"], mc["upper"], exact["lower0"] if exact is not None else mc["lower0"],
        lower_stderr=mc["lower_stderr"], upper_stderr=mc["upper_stderr"], log_px=truth["log_px"],
        log_px_label="log p(x) (exact)", exact=exact,
        title="Tiny model: the sampled sequences close in on the exact L_cvae from both sides"),
        key="bl_br_tiny_chart")
    st.caption("Nats per example. Bands: ±2 Monte Carlo standard errors of the sampled estimators (nested prefixes "
               "of one draw, so each curve is smooth in K). The L⁽⁰⁾ line is the joint reading (exact where the "
               "exact sequences are shown).")


def _init(key: str, value) -> None:
    if key not in st.session_state:
        st.session_state[key] = value


def real_model_section() -> None:
    """Pick a checkpoint, run the estimators behind a button, show averages, the gap and one example."""
    files = cache.checkpoint_files()
    if not files:
        st.info("No checkpoints yet: train a model on the Train page (or upload one on the Checkpoints page).")
        return
    names = [p.stem for p in files]
    _init("bl_br_model", st.session_state.get("bl_model", names[0]))
    if st.session_state["bl_br_model"] not in names:
        st.session_state["bl_br_model"] = names[0]
    chosen = st.selectbox("Checkpoint", names, key="bl_br_model")
    path = files[names.index(chosen)]
    try:
        checkpoint = cache.load_model(path)
    except CheckpointError as err:
        st.warning(f"This checkpoint cannot be read: {err}")
        return
    config, model = checkpoint.config, checkpoint.model
    data, message = cache.try_dataset(config.dataset)
    if data is None:
        st.warning(f"The {config.dataset} test set is not on disk, so the bridge cannot run offline. {message}")
        return
    exact_2d = model.latent_dim == 2
    c1, c2, c3, c4 = st.columns(4)
    num_examples = c1.number_input("Clean test examples", 2, 500, value=20, step=5, key="bl_br_n")
    max_k = c2.selectbox("Largest K", (16, 64, 256, 1024), index=2, key="bl_br_kmax",
                         help="K = 1, 2, 4, … up to this; each replicate encodes K+1 corrupted copies")
    repeats = c3.number_input("Replicates per example", 4, 256, value=16, step=4, key="bl_br_repeats",
                              help="independent draws of (x̃₀..x̃_K, z): the Monte Carlo error comes from these")
    importance_samples = c4.selectbox("Importance samples for log p(x)", (1000, 5000), key="bl_br_k",
                                      disabled=exact_2d,
                                      help="2-D latent spaces use the exact log p(x) (quadrature) instead")
    run_key = (str(path), path.stat().st_mtime, int(num_examples), int(max_k), int(repeats),
               int(importance_samples))
    if st.button("Run the bridge on this checkpoint", key="bl_br_run", type="primary"):
        x = cache.test_images(config.dataset, int(num_examples))
        bar = st.progress(0.0, text="Encoding corrupted copies…")
        mean_image = data.train_mean() if config.noise == "mean-image" else None
        result = bridge_report(
            model, x, config, ks=default_ks(int(max_k)), repeats=int(repeats), seed=0,
            importance_samples=int(importance_samples), exact_2d=exact_2d, mean_image=mean_image,
            progress=lambda name, done, total: bar.progress(
                (done / total) * (0.7 if name.startswith("L") else 0.3) + (0.0 if name.startswith("L") else 0.7),
                text=f"{name}: {done} / {total} examples"))
        bar.empty()
        st.session_state["bl_br_real"] = (run_key, result, x)
    stored = st.session_state.get("bl_br_real")
    if stored is None or stored[0] != run_key:
        return
    _show_real(stored[1], stored[2], config, data.image_shape)


def _show_real(result: dict, x, config, image_shape) -> None:
    import pandas as pd  # imported when a result is shown: importing pandas costs a first visit ~0.5 s

    from ui import bridge_figures
    ks = np.asarray(result["ks"])
    exact = result["log_px_method"] == "exact"
    px_label = "log p(x), exact (quadrature)" if exact else "log p(x), mixture-IS estimate"
    k_max = int(ks[-1])
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("L_dvae = L⁽⁰⁾ (DVAE objective, joint reading)",
              f"{float(result['mean_lower0']):.2f} ± {float(result['mean_lower0_mc_stderr']):.2f}",
              help="mean over the examples ± its Monte Carlo standard error; nats per example")
    m2.metric(f"L_cvae lies in [L⁽{k_max}⁾, U⁽{k_max}⁾]",
              f"[{float(result['mean_lower'][-1]):.2f}, {float(result['mean_upper'][-1]):.2f}]",
              help="the ELBO of the mixture posterior q̃(z|x), bracketed by the two sequences at the largest K")
    m3.metric("KL gap L_cvae − L_dvae = E KL(q(z|x̃) ‖ q̃(z|x))",
              f"[{result['kl_gap_low']:.2f}, {result['kl_gap_high']:.2f}]",
              help=f"between L⁽{k_max}⁾ − L⁽⁰⁾ and U⁽{k_max}⁾ − L⁽⁰⁾ on the same draws: the price of training with "
                   "the cheap objective instead of the mixture ELBO")
    above = float(result["mean_upper"][0]) - result["mean_log_px"]
    m4.metric("U⁽¹⁾ (independent reading) − log p(x)", f"{above:+.2f}",
              help="U⁽ᴷ⁾ bounds L_cvae from above, not log p(x): positive means the independent reading is above "
                   "log p(x) here, i.e. it is not a lower bound")
    st.caption(f"Corruption: {result['noise']} {result['noise_level']:g} "
               + ("(the run's own)." if config.noise != "none" and config.noise_level > 0 else
                  "(a reference corruption: this run was trained without noise).")
               + f" {result['repeats']} replicates per example; log p(x): {px_label}"
               + ("" if exact else f", k = {result['importance_samples']}") + ". Nats per example.")
    st.plotly_chart(bridge_figures.bridge_figure(
        ks, result["mean_lower"].numpy(), result["mean_upper"].numpy(), float(result["mean_lower0"]),
        lower_stderr=result["mean_lower_mc_stderr"].numpy(), upper_stderr=result["mean_upper_mc_stderr"].numpy(),
        log_px=result["mean_log_px"], log_px_label=f"{px_label} (mean)",
        title=f"Averaged over {result['num_examples']} clean test examples"), key="bl_br_mean_chart")
    st.plotly_chart(bridge_figures.gap_bracket_figure(
        ks, result["mean_lower_gain"].numpy(), result["mean_upper_gain"].numpy(),
        result["mean_lower_gain_mc_stderr"].numpy(), result["mean_upper_gain_mc_stderr"].numpy()),
        key="bl_br_gap_chart")
    st.markdown("**One example**")
    pick, picture = st.columns([3, 1])
    index = pick.selectbox("Test example", list(range(result["num_examples"])), key="bl_br_example",
                           format_func=lambda i: f"#{i}: log p(x) = {float(result['log_px'][i]):.2f}")
    if image_shape and int(np.prod(image_shape)) == x.shape[1]:
        picture.image(x[index].reshape(image_shape).numpy().clip(0, 1), caption="clean x", width=96)
    st.plotly_chart(bridge_figures.bridge_figure(
        ks, result["lower"][index].numpy(), result["upper"][index].numpy(), float(result["lower0"][index]),
        lower_stderr=result["lower_stderr"][index].numpy(), upper_stderr=result["upper_stderr"][index].numpy(),
        log_px=float(result["log_px"][index]), log_px_label=px_label, title=f"Example #{index}"),
        key="bl_br_example_chart")
    table = pd.DataFrame({
        "log p(x)": result["log_px"].numpy(),
        "L⁽⁰⁾ = L_dvae": result["lower0"].numpy(),
        f"L⁽{k_max}⁾": result["lower"][:, -1].numpy(),
        f"U⁽{k_max}⁾": result["upper"][:, -1].numpy(),
        "U⁽¹⁾ (independent)": result["upper"][:, 0].numpy(),
        "KL gap, low": result["lower_gain"][:, -1].numpy(),
        "KL gap, high": result["upper_gain"][:, -1].numpy(),
    })
    with st.expander("Per-example numbers (nats per example)"):
        st.dataframe(table, key="bl_br_table")
