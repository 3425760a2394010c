"""Is it a bound? The DVAE objective against log p(x): exact on tiny models, a check on trained ones.

Widgets → :mod:`dvae_engine.boundlab` (through the caches in ``ui/cache.py``) → figures in
``ui/boundlab_figures.py``. The lab's settings live in the URL so a link reproduces the view.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import streamlit as st

from dvae_engine import boundlab
from dvae_engine.checkpoint import CheckpointError
from dvae_engine.evaluation import training_objective_kwargs
from ui import boundlab_figures as figs
from ui import bridge_view, cache, figures, params
from ui.boot import run_through_app

run_through_app()  # a shared link on a fresh server must still go through app.py

SWEEP_LEVELS = tuple(round(0.05 * i, 2) for i in range(21))
COUNTER_A_VALUES = tuple(float(a) for a in np.geomspace(2e-4, 0.5, 160))
ENCODERS = {"linear": "linear in x̃ (random, seeded)", "posterior": "matched to the exact posteriors p(z|x̃)"}
MAX_M, MAX_K = 20, 50  # the DIWAE number inputs' ranges
TABS = ("Exact lab", "Real models", "The bridge")  # sections 1–2, 3 and 4; the open one is in the URL
QUANTITIES = ("log_px", "elbo", "cvae", "dvae_joint", "dvae_independent", "diwae")


def init(key: str, value) -> None:
    """Seed a widget's state once (from the URL or the default), so widgets need no ``value=``."""
    if key not in st.session_state:
        st.session_state[key] = value


def default_x_code(width: int) -> int:
    """The clean x the lab starts from at D = ``width``: 1010… (as a code)."""
    return int(("10" * 5)[:width], 2)


def pixels_on(x_code: int, width: int) -> list[int]:
    """The pixels (1 … D, left to right as the bits are written) that are 1 in clean input ``x_code``."""
    return [i + 1 for i, bit in enumerate(format(x_code, f"0{width}b")) if bit == "1"]


def x_code_of(pixels, width: int) -> int:
    """:func:`pixels_on` undone."""
    return sum(1 << (width - i) for i in set(pixels))


# model_args' fields a step can change: index → (step, lowest, highest), as their widgets allow
MODEL_STEPS = {0: (1, 1, boundlab.MAX_PIXELS), 2: (1, 0, 1_000_000), 4: (0.1, 0.0, 4.0), 5: (0.05, 0.1, 2.0)}


def neighbouring_models(previous: tuple | None, current: tuple) -> list[tuple]:
    """The models one more step away, if ``current`` differs from ``previous`` in one stepped field: the next in
    the same direction first, then the one back past ``previous``' side."""
    changed = [i for i, (a, b) in enumerate(zip(previous or current, current)) if a != b]
    if len(changed) != 1 or changed[0] not in MODEL_STEPS:
        return []
    field = changed[0]
    step, low, high = MODEL_STEPS[field]
    direction = 1 if current[field] > previous[field] else -1
    models = []
    for sign in (direction, -direction):
        value = current[field] + sign * step
        value = round(value, 10) if isinstance(value, float) else value  # as lab_settings reads a float
        if low <= value <= high:
            models.append((*current[:field], value, *current[field + 1:]))
    return models


def randomise_seed() -> None:
    st.session_state["bl_seed"] = int(np.random.default_rng().integers(0, 10_000))


class LabSettings(NamedTuple):
    """The tiny model and corruption that sections 1, 2 and 4 share."""

    model_args: tuple  # (D, latent dimension, seed, encoder, spread, σ): boundlab.tiny_model's arguments
    x_code: int
    x_key: str  # the session-state key of the pixel toggles at this D
    noise: str
    level: float
    num_corruptions: int
    num_samples: int


def lab_settings() -> LabSettings:
    """The lab's settings as its widgets hold them, seeded once from the URL (or the defaults).

    Read before anything is drawn (a fragment rerun starts with the moved widget's new value in session state), so
    every number and figure is computed first and the widgets and outputs go out together: the browser gets them in
    one burst and renders the page once (each render of this page costs the browser 15–20 ms on a small CPU). The
    bridge tab reads the same settings without drawing the lab: widgets not drawn in a run lose their state, and
    the URL (where the lab writes every setting) seeds them again.
    """
    init("bl_D", params.get("D", 4, cast=int, low=1, high=boundlab.MAX_PIXELS))
    init("bl_L", params.get("L", 1, cast=int, choices=(1, 2)))
    init("bl_noise", params.get("noise", "bit-flip", choices=boundlab.LAB_NOISES))
    init("bl_nu", params.get("nu", 0.2, cast=float, low=0.0, high=1.0))
    init("bl_seed", params.get("seed", 0, cast=int, low=0, high=1_000_000))
    init("bl_enc", params.get("enc", "linear", choices=tuple(ENCODERS)))
    init("bl_spread", params.get("spread", 1.5, cast=float, low=0.0, high=4.0))
    init("bl_sigma", params.get("sigma", 0.5, cast=float, low=0.1, high=2.0))
    init("bl_M", params.get("M", 1, cast=int, low=1, high=MAX_M))
    init("bl_K", params.get("K", 1, cast=int, low=1, high=MAX_K))
    state = st.session_state
    width = int(state["bl_D"])
    x_key = f"bl_x{width}"
    x_text = params.get("x", "10" * 5, cast=str)
    init(x_key, pixels_on(int(x_text, 2) if len(x_text) == width and set(x_text) <= {"0", "1"}
                          else default_x_code(width), width))
    # rounded to 10 decimals: a slider's 0.55 can arrive as 0.5500000000000002, and the neighbouring model computed
    # ahead (neighbouring_models) must be found under the same key
    model_args = (width, int(state["bl_L"]), int(state["bl_seed"]), state["bl_enc"],
                  round(float(state["bl_spread"]), 10), round(float(state["bl_sigma"]), 10))
    return LabSettings(model_args, x_code_of(state[x_key], width), x_key, state["bl_noise"], float(state["bl_nu"]),
                       int(state["bl_M"]), int(state["bl_K"]))


st.title("Is it a bound?")
st.markdown(
    "The paper (Im et al., Eq. 9 / Lemma 1) claims log p(x) ≥ L_dvae ≥ L_cvae, where L_cvae is the ELBO of the "
    "mixture posterior q̃(z|x) = Σ_x̃ p(x̃|x) q(z|x̃) (Proposition 1). Tran & Ranganath argue the DVAE objective "
    "need not bound log p(x) at all. Both are partly right, depending on how Eq. 8 is read:\n"
    "* **joint reading** (how Eq. 11 is sampled and trained: z ~ q(z|x̃) of the same x̃): exactly "
    "L_cvae − L_dvae = E_x̃ KL(q(z|x̃) ‖ q̃(z|x)) ≥ 0, so **log p(x) ≥ L_cvae ≥ L_dvae** — a lower bound, "
    "with the paper's order of the last two reversed;\n"
    "* **independent reading** (z ~ q̃(z|x) drawn independently of the x̃ inside the log): **not a bound** — "
    "it can exceed log p(x), without limit in Ranganath's counterexample.\n\n"
    "Below, every number of the tiny model is computed exactly (sums over all 2^D corrupted inputs, latent "
    "integrals on a fine grid), in nats per example, unless it says *Monte Carlo estimate*."
)

# --- (a) the exact tiny-model lab ----------------------------------------------------------------

@st.fragment
def exact_lab() -> None:
    """Sections 1 and 2: every control here reruns only this function (the numbers are cached per setting)."""
    settings = lab_settings()
    model_args, x_code, x_key, noise, level, num_corruptions, num_samples = settings
    width, latent_dim, seed, encoder, spread, sigma = model_args
    params.put(D=width, L=latent_dim, noise=noise, nu=level, seed=seed, enc=encoder, spread=spread, sigma=sigma,
               M=num_corruptions, K=num_samples, x=format(x_code, f"0{width}b"))
    state = st.session_state
    exact, sweep, densities = cache.boundlab_exact(model_args, x_code, noise, level, SWEEP_LEVELS)
    diwae, diwae_sweep = cache.boundlab_diwae(model_args, x_code, noise, level, SWEEP_LEVELS, num_corruptions,
                                              num_samples, exact, sweep)
    sweep_chart = figs.sweep_figure(sweep, diwae_sweep, level, num_corruptions, num_samples, noise)
    gaps_chart = figs.gaps_figure(sweep, diwae_sweep, level, num_corruptions, num_samples)
    densities_chart = figs.densities_figure(densities)

    st.header("1 · An exact lab on a tiny model")
    controls, outputs = st.columns([1, 3], gap="large")
    with controls:
        st.markdown("**Model**")
        st.slider("Pixels D (binary x)", 1, boundlab.MAX_PIXELS, key="bl_D")
        st.radio("Latent dimension", (1, 2), key="bl_L", horizontal=True)
        st.number_input("Seed", 0, 1_000_000, step=1, key="bl_seed")
        st.button("Randomise", on_click=randomise_seed, key="bl_randomise", icon=":material/casino:")
        st.radio("Encoder q(z|x̃)", tuple(ENCODERS), format_func=ENCODERS.get, key="bl_enc")
        st.slider("Encoder spread (scale of its means)", 0.0, 4.0, step=0.1, key="bl_spread",
                  disabled=encoder != "linear")
        st.slider("Encoder σ", 0.1, 2.0, step=0.05, key="bl_sigma", disabled=encoder != "linear",
                  help="Narrow, spread-out components make the independent reading exceed log p(x).")
        st.markdown("**Corruption and objective**")
        # a radio, not a selectbox: three short options, all in sight; and the browser loads a selectbox's ~10
        # script files only for it (this tab has no other), 0.13 s of a first visit of this page on a 2-core machine
        st.radio("Corruption p(x̃|x)", boundlab.LAB_NOISES, key="bl_noise",
                 help="; ".join(f"{k}: {v}" for k, v in boundlab.LAB_NOISE_INFO.items()))
        st.slider("Noise level ν", 0.0, 1.0, step=0.01, key="bl_nu")
        st.number_input("DIWAE: corrupted copies M", 1, MAX_M, step=1, key="bl_M")
        st.number_input("DIWAE: samples per copy K", 1, MAX_K, step=1, key="bl_K")
        # D toggles rather than a list of all 2^D inputs: at D = 10 that list (1024 options, sent on every move)
        # made each step of the D slider ~70 ms slower in the browser
        st.pills("Clean x: its pixels that are 1", list(range(1, width + 1)), selection_mode="multi", key=x_key,
                 help="Pixels numbered left to right as x is written (x = 1010 has pixels 1 and 3 on).")

    with outputs:
        st.markdown(f"At ν = {level:g} ({boundlab.LAB_NOISE_INFO[noise]}), for x = `{format(x_code, f'0{width}b')}` "
                    "— values in nats per example; the small number is the objective minus log p(x) "
                    "(:red[red] = above log p(x), i.e. not a bound):")
        # three rows of two: the full names fit on a 1280-pixel projector
        columns = [column for _ in range(3) for column in st.columns(2)]
        for column, name in zip(columns, QUANTITIES):
            value = diwae["mean"] if name == "diwae" else exact[name]
            gap = diwae["gap"] if name == "diwae" else (0.0 if name == "log_px" else exact[f"gap_{name}"])
            title = figs.label(name, int(num_corruptions), int(num_samples))
            kind = "exact" if name != "diwae" or diwae["exact"] else f"Monte Carlo estimate ± {diwae['stderr']:.4f}"
            column.metric(title, f"{value:.4f}", delta=None if name == "log_px" else f"{-gap:+.4f}",
                          delta_color="inverse", help=f"{boundlab.QUANTITY_INFO[name]}; {kind}; nats per example")
        st.markdown(
            f"E_x̃ KL(q(z|x̃) ‖ q̃(z|x)) = **{exact['expected_kl']:.4f}** nats = L_cvae − L_dvae(joint). "
            + ("The independent reading is **above log p(x)** here: it is not a bound."
               if exact["gap_dvae_independent"] < 0 else
               "Here the independent reading happens to stay below log p(x); try the linear encoder with a large "
               "spread and a small σ.")
        )
        if abs(exact["grid_mass"] - 1) > 1e-6:
            st.warning(f"The latent grid holds only {exact['grid_mass']:.6f} of q̃'s mass: the encoder's means lie "
                       "too far out for the grid on [−8, 8], so these numbers are not exact.")
        figures.show(sweep_chart)
        figures.html_download(  # plotly, built only when clicked
            lambda: figures.plotly().bound_sweep_figure(sweep, diwae_sweep, float(level), int(num_corruptions),
                                                        int(num_samples), noise),
            "objectives-vs-noise", "bl_sweep_chart")
        figures.show(gaps_chart)
        figures.show(densities_chart)
        st.caption(f"Orange: the {len(densities['component_weights'])} heaviest corrupted inputs' components "
                   f"p(x̃|x)·q(z|x̃); the others carry total weight {densities['other_weight']:.3g}.")
    # Someone stepping a model setting (D, the seed, the encoder's spread or σ: sliders and a number input, stepped
    # with the arrow keys) will likely step again: the two neighbouring models' exact lab, and their DIWAE estimates
    # at this M and K, start now in the background, the next step in the same direction first. Only after such a
    # step: during a ν slide they would take the CPU from it. (At D = 10 a new σ costs ~60 ms of server time.)
    previous_model, state["bl_previous_model"] = state.get("bl_previous_model"), model_args
    for other in neighbouring_models(previous_model, model_args):
        pixels = state.get(f"bl_x{other[0]}")  # the clean x the lab shows at that D (at this D: the one shown)
        other_x = default_x_code(other[0]) if pixels is None else x_code_of(pixels, other[0])
        cache.prefetch_boundlab_model(other, other_x, noise, level, SWEEP_LEVELS, num_corruptions, num_samples)
    # Someone stepping M or K (their number inputs step by one) will likely step again: the neighbours' Monte
    # Carlo estimates start now, in the background. Only then: during a ν slide they would take the CPU from it.
    previous_mk, state["bl_previous_mk"] = state.get("bl_previous_mk"), (num_corruptions, num_samples)
    if previous_mk is not None and previous_mk != (num_corruptions, num_samples):
        cache.prefetch_boundlab_diwae(model_args, x_code, noise, level, SWEEP_LEVELS, num_corruptions, num_samples,
                                      max_corruptions=MAX_M, max_samples=MAX_K)

    # --- (b) Ranganath's counterexample ----------------------------------------------------------------
    st.header("2 · Ranganath's counterexample")
    st.markdown(
        "A binary latent z ~ Bernoulli(½) with p(x|z) = 1, so p(x, z) = p(z) and **log p(x) = 0**; a corruption "
        "x̃ ~ Bernoulli(½) independent of x; an encoder with q(z=1|x̃=1) = a and q(z=1|x̃=0) = 1 − a. "
        "Then q̃(z|x) = Bernoulli(½) and L_cvae = 0 exactly."
    )
    if st.button("Load Ranganath's counterexample", key="bl_load_counter", type="primary"):
        st.session_state["bl_counter_loaded"] = True
    if st.session_state.get("bl_counter_loaded"):
        init("bl_a", 0.1)
        a = st.slider("a = q(z=1 | x̃=1)   (and q(z=1 | x̃=0) = 1 − a)", 0.001, 0.5, step=0.001, key="bl_a",
                      format="%.3f")
        one = boundlab.ranganath_counterexample(float(a), int(num_corruptions), int(num_samples))
        cols = [column for _ in range(2) for column in st.columns(3)]
        cols[0].metric("log p(x) (exact)", f"{one['log_px']:.4f}")
        cols[1].metric("L_cvae (exact)", f"{one['cvae']:.4f}")
        cols[2].metric("L_dvae, joint reading (exact)", f"{one['dvae_joint']:.4f}")
        cols[3].metric("L_dvae, independent reading (exact)", f"{one['dvae_independent']:.4f}",
                       delta=f"{one['dvae_independent']:+.4f} vs log p(x)", delta_color="inverse")
        cols[4].metric("E_x̃ KL(q(z|x̃) ‖ q̃) (exact)", f"{one['expected_kl']:.4f}")
        cols[5].metric(f"E[DIWAE(M={num_corruptions}, K={num_samples})] (exact)", f"{one['diwae']:.4f}")
        st.caption("All in nats per example. The independent reading is ½·log(1 / (4a(1 − a))): 0.5108 at a = 0.1, "
                   "and it grows without bound as 1 − a → 1, while the joint reading is −KL(Bernoulli(a) ‖ "
                   "Bernoulli(½)) ≤ 0 and DIWAE (sampled jointly) stays ≤ 0 for every M and K.")
        counter = cache.boundlab_counterexample(COUNTER_A_VALUES, int(num_corruptions), int(num_samples))
        figures.show(figs.counterexample_figure(counter, float(a)))


# --- (c) on real models ----------------------------------------------------------------------------

@st.fragment
def real_models() -> None:
    """Section 3: its controls rerun only this function."""
    st.header("3 · On real models")
    st.markdown(
        "For a trained checkpoint: per clean test example, the model's own training objective (DVAE / DIWAE at its "
        "own noise, M and K — the joint reading, averaged over repeated draws to estimate its expectation) against "
        "log p(x) estimated by importance sampling. Points above the diagonal by more than their Monte Carlo error "
        "would contradict the bound."
    )
    files = cache.checkpoint_files()
    if not files:
        st.info("No checkpoints yet: train a model on the Train page (or upload one on the Checkpoints page).")
    else:
        names = [cache.checkpoint_id(p) for p in files]  # ids: "mnist-vae" (shipped), "user/<name>" (yours)
        init("bl_model", params.get("model", names[0], choices=names))
        if st.session_state["bl_model"] not in names:
            st.session_state["bl_model"] = names[0]
        chosen = st.selectbox("Checkpoint", names, key="bl_model",
                              format_func=lambda i: cache.checkpoint_label(files[names.index(i)]))
        params.put(model=chosen)
        path = files[names.index(chosen)]
        try:
            checkpoint = cache.load_model(path)
        except CheckpointError as err:
            checkpoint = None
            st.warning(f"This checkpoint cannot be read: {err}")
        if checkpoint is not None:
            config = checkpoint.config
            st.caption(f"{config.describe()}: its training objective is the {config.model_name} objective.")
            data, message = cache.try_dataset(config.dataset)
            if data is None:
                st.warning(f"The {config.dataset} test set is not on disk, so this comparison cannot run offline. "
                           f"{message}")
            else:
                c1, c2, c3 = st.columns(3)
                num_examples = c1.number_input("Clean test examples", 10, 2000, value=200, step=10, key="bl_n")
                importance_samples = c2.selectbox("Importance samples k for log p(x)", (1000, 5000), key="bl_k")
                repeats = c3.number_input("Draws of the objective per example", 4, 128, value=16, step=4,
                                          key="bl_repeats")
                exact_2d = checkpoint.model.latent_dim == 2 and st.checkbox(
                    "Also compute the exact log p(x) by quadrature (2-D latent space; about 0.3 s per example)",
                    value=True, key="bl_exact_2d",
                    help="Importance sampling from q(z|x) can miss part of a 2-D posterior and then underestimates "
                         "log p(x) badly; a grid over the latent plane does not.")
                run_key = (str(path), path.stat().st_mtime, int(num_examples), int(importance_samples), int(repeats),
                           exact_2d)
                if st.button("Compare objective with log p(x)", key="bl_run_real", type="primary"):
                    x = cache.test_images(config.dataset, int(num_examples))
                    kwargs = training_objective_kwargs(config, data.train_mean())
                    bar = st.progress(0.0, text="Scoring clean test examples…")
                    result = boundlab.objective_vs_loglik(
                        checkpoint.model, x, kwargs, importance_samples=int(importance_samples), repeats=int(repeats),
                        progress=lambda done, total: bar.progress(done / total, text=f"{done} / {total} examples"),
                        exact_2d=exact_2d, config=config)
                    bar.empty()
                    st.session_state["bl_real"] = (run_key, result)
                stored = st.session_state.get("bl_real")
                if stored is not None and stored[0] == run_key:
                    result = stored[1]
                    objective_label = f"{config.model_name} training objective"
                    m1, m2, m3 = st.columns(3)
                    exact = result["log_px_method"] == "exact"
                    what = "exact log p(x)" if exact else "log p(x) (mixture-proposal estimate)"
                    m1.metric(f"Mean gap: {what} − objective",
                              f"{result['mean_gap']:.3f} ± {result['mean_gap_stderr']:.3f}",
                              help="nats per example; ± one standard error over the examples")
                    m2.metric(f"Examples above the diagonal by > {result['num_sigmas']:g} s.e.",
                              f"{result['num_above']} of {result['num_examples']}")
                    m3.metric(f"Above the plain q(z|x) estimate by > {result['num_sigmas']:g} s.e.",
                              f"{result['num_above_plain']} of {result['num_examples']}",
                              help="the same count against importance sampling from q(z|x) alone, which can be far "
                                   "too low for an encoder trained on corrupted inputs")
                    deficit = result["log_px"] - result["log_px_plain"]
                    st.info(
                        f"The plain estimate (proposals from q(z|x) alone) is {float(deficit.mean()):.2f} nats below "
                        f"the {'exact value' if exact else 'mixture-proposal estimate'} on average (up to "
                        f"{float(deficit.max()):.1f} nats on one example). Where it is far below, q(z|x) of the "
                        "clean x misses part of the posterior, and an objective can seem to beat a log p(x) it does "
                        "not beat.",
                        icon=":material/info:")
                    st.plotly_chart(figs.objective_scatter(result, objective_label), key="bl_real_chart",
                                    config=figures.PLOTLY_CONFIG)
                    how = ("exact, by quadrature on a grid over the 2-D latent plane" if exact else
                           f"importance sampling with k = {result['importance_samples']} from the defensive mixture "
                           f"½ q(z|x) + ½ mean of q(z|x̃) over 16 corrupted copies ({result['mixture_noise']} "
                           f"{result['mixture_level']:g}) — a stochastic lower bound, tight when the proposal covers "
                           "the posterior")
                    st.caption("Objective: mean of the repeated draws, error bars ± "
                               f"{result['num_sigmas']:g} Monte Carlo standard errors. log p(x): {how}. "
                               "Both in nats per example.")
                    columns = {
                        "training objective (mean of draws)": result["objective"].numpy(),
                        "Monte Carlo s.e.": result["objective_stderr"].numpy(),
                        "log p(x), mixture-proposal estimate": result["log_px_mix"].numpy(),
                        "log p(x), plain q(z|x) estimate": result["log_px_plain"].numpy(),
                        "clean ELBO": result["elbo"].numpy(),
                        "gap log p(x) − objective": result["gap"].numpy(),
                    }
                    if "log_px_exact" in result:
                        columns["log p(x), exact (quadrature)"] = result["log_px_exact"].numpy()
                    import pandas as pd  # here only: importing pandas costs the page's first visit ~0.5 s

                    table = pd.DataFrame(columns)
                    with st.expander("Per-example numbers (nats per example)"):
                        st.dataframe(table, key="bl_real_table")



# --- (d) the bridge: L⁽ᴷ⁾ and U⁽ᴷ⁾ ------------------------------------------------------------------
def bridge() -> None:
    """Section 4: the tiny model of section 1 (its settings read from the URL and session state) and a checkpoint."""
    st.header("4 · The bridge: from the paper's objective to the critique's")
    st.markdown(bridge_view.INTRO)
    with st.expander("The derivations, step by step (docs/semi_implicit.md)"):
        st.markdown(bridge_view.derivations_markdown())

    st.subheader("On the tiny model of section 1 (the exact lab's tab)")
    model_args, x_code, _, noise, level, _, _ = lab_settings()
    width = model_args[0]
    st.markdown(f"The same clean x = `{format(x_code, f'0{width}b')}` and corruption ({noise}, ν = {level:g}). "
                "Dotted: the exact sequences (quadrature over all corrupted inputs); solid with bands: the sampled "
                "estimators that the real-model part below uses, from 1000 draws of x̃₀..x̃₁₀₂₄ and z.")
    bridge_key = (model_args, x_code, noise, level)
    if st.button("Compute the bridge for this tiny model", key="bl_br_tiny_run", type="primary"):
        st.session_state["bl_br_tiny"] = bridge_key
    if st.session_state.get("bl_br_tiny") == bridge_key:
        bridge_view.tiny_model_section(*cache.boundlab_bridge(*bridge_key))
    elif st.session_state.get("bl_br_tiny") is not None:
        st.info("The settings of section 1 (the exact lab) changed: press the button to compute the bridge for them.",
                icon=":material/refresh:")

    st.subheader("On a trained model")
    bridge_view.real_model_section()


# Three tabs, and only the open one runs and is sent: with every section's widgets and figures at once, a first
# visit took 0.10 s longer (median of 12 paired visits, one server, this project's 2-core machine). The open tab
# is in the URL (``section=…``), so a shared link opens the same one.
lab_tab, real_tab, bridge_tab = st.tabs(TABS, key="section", bind="query-params")
if lab_tab.open:
    with lab_tab:
        exact_lab()
if real_tab.open:
    with real_tab:
        real_models()
if bridge_tab.open:
    with bridge_tab:
        bridge()
