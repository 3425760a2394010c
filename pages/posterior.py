"""Posterior: the mixture posterior q̃(z|x) = E_{p(x̃|x)}[q(z|x̃)] of the paper's Proposition 1.

One clean input x, N corrupted copies x̃ₙ ~ p(x̃|x), each encoded to a Gaussian
q(z|x̃ₙ); their equal-weight mixture approximates q̃(z|x). It is drawn in a
2-D plane (PCA of encoder means, or t-SNE of the means) beside the clean
q(z|x), for two encoders side by side. For 2-D latent models the true
posterior p(z|x) ∝ p(x|z)p(z) is evaluated on a grid and compared with both.
"""

import functools

import streamlit as st

from dvae_engine import analysis
from ui import cache, figures, inputs, params
from ui.boot import run_through_app

run_through_app()  # a shared link on a fresh server must still go through app.py

st.title("Posterior: the mixture q̃(z|x)")
st.markdown(
    "A DVAE's encoder never sees the clean x during training, only corrupted copies x̃. Averaged over the "
    "corruption, its posterior is the **mixture** q̃(z|x) = E<sub>p(x̃|x)</sub>[q(z|x̃)] (Proposition 1 of the "
    "paper): one Gaussian per corrupted copy. Move the noise level and watch the components spread; compare a "
    "VAE-trained and a DVAE-trained encoder side by side.",
    unsafe_allow_html=True,
)

paths = cache.checkpoint_files()
if not paths:
    inputs.no_models_message()
    st.stop()

# --- settings: the two encoders (a change here reruns the whole page) --------------------------------
stems = [cache.checkpoint_id(p) for p in paths]  # ids: "mnist-vae" (shipped), "user/<name>" (yours)
with st.sidebar:
    st.header("Posterior settings")
    model_stem = params.get("model", cache.checkpoint_id(inputs.default_model(paths)), choices=stems)
    path_a = st.selectbox("Encoder A", paths, index=stems.index(model_stem), format_func=inputs.label,
                          key="model_a", on_change=inputs.forget_noise)
    id_a = stems[paths.index(path_a)]
    partners = inputs.compatible(path_a, paths)
    partner = inputs.default_partner(path_a, partners)
    partner_stems = ["none"] + [stems[paths.index(p)] for p in partners]
    compare_stem = params.get("compare", stems[paths.index(partner)] if partner else "none", choices=partner_stems)
    compare_stem = st.selectbox("Encoder B (same dataset)", partner_stems, index=partner_stems.index(compare_stem),
                                key=f"model_b_{id_a}",
                                format_func=lambda s: "none" if s == "none" else inputs.label(paths[stems.index(s)]))
    params.put(model=id_a, compare=compare_stem)

checkpoint = inputs.load(path_a)
if checkpoint is None:
    st.stop()
chosen = [(path_a, checkpoint)]
if compare_stem != "none":
    path_b = paths[stems.index(compare_stem)]
    checkpoint_b = inputs.load(path_b)
    if checkpoint_b is not None:
        chosen.append((path_b, checkpoint_b))

dataset_name = checkpoint.config.dataset
mean_image = cache.train_mean_image(dataset_name)


@st.fragment
def posterior() -> None:
    """Input, noise and the figures. A control in here reruns only this function, not the encoder choice above."""
    with st.sidebar:
        x_clean, source_caption = inputs.input_image(checkpoint, key="posterior_input", container=st.sidebar)
        noise, level = inputs.noise_controls(checkpoint, has_mean_image=mean_image is not None, container=st.sidebar)
        num_copies = st.slider("Corrupted copies N", 2, 128, value=params.get("n", 32, cast=int, low=2, high=128),
                               key="num_copies")
        seed = int(st.number_input("Seed", 0, 10_000, value=params.get("seed", 0, cast=int, low=0, high=10_000),
                                   key="seed"))
        views = ["PCA", "t-SNE"] if checkpoint.model.latent_dim > 2 else ["latent axes"]
        view_kind = st.radio("2-D view", views, index=views.index(params.get("view", views[0], choices=views)),
                             key="view", horizontal=True)
        params.put(n=num_copies, seed=seed, view=view_kind)

    if cache.test_image_count(dataset_name) == 0:
        inputs.dataset_hint(dataset_name, cache.try_dataset(dataset_name)[1])
    if x_clean is None:
        return

    # Everything is computed (numbers and figures) before the outputs are drawn, so that they reach the browser
    # in one burst: one render there instead of one per panel while the next is still being computed here.
    # --- the corrupted copies --------------------------------------------------------------------
    mixtures = [analysis.mixture_posterior(ck.model, x_clean, noise, level, num_copies, seed, mean_image)
                for _, ck in chosen]
    shown = mixtures[0].x_noisy[:9]
    copies = figures.image_grid([[x_clean, *shown]], checkpoint.image_shape, ["x and x̃ₙ"],
                                col_labels=["clean x"] + [f"x̃{n + 1}" for n in range(len(shown))], name="copies")

    # --- one panel per encoder -------------------------------------------------------------------
    panels = []
    for (path, ck), mixture in zip(chosen, mixtures):
        title = f"{cache.checkpoint_label(path)} ({ck.config.model_name})"
        grid = comparison = None
        if ck.model.latent_dim == 2:
            grid = cache.true_posterior(path, x_clean.numpy())
            clean_fit = cache.clean_posterior_fit(path, x_clean.numpy(), grid, mixture)  # kept as ν, N, seed move
            comparison = analysis.compare_posteriors(ck.model, grid, mixture, seed=seed, clean_fit=clean_fit)
        if view_kind == "t-SNE":
            comp2, clean2 = cache.tsne_mixture(mixture.component_loc.numpy(), mixture.clean_loc.numpy(), seed)
            fig = figures.tsne_figure(comp2, clean2, title)
            download = functools.partial(lambda *a: figures.plotly().tsne_figure(*a), comp2, clean2, title)
        else:
            projected = analysis.project_posterior(mixture, cache.latent_projection(path), seed=seed)
            fig = figures.posterior_figure(projected, title, true_grid=grid, comparison=comparison,
                                           hpd=analysis.hpd_coverage)
            download = functools.partial(lambda *a, **k: figures.plotly().posterior_figure(*a, **k), projected,
                                         title, true_grid=grid, comparison=comparison, hpd=analysis.hpd_coverage)
        panels.append((path, ck, mixture, grid, comparison, fig, download))

    figures.show(copies)
    st.caption(f"Input: {source_caption}. The first {len(shown)} of N = {num_copies} corrupted copies "
               f"({inputs.NOISE_LABELS.get(noise, noise)}, level {level:g}, seed {seed}); "
               "every encoder sees the same copies.")
    columns = st.columns(2)  # half width even for one encoder: the plane stays square-ish on a projector
    for (path, ck, mixture, grid, comparison, fig, download), column in zip(panels, columns):
        with column:
            figures.show(fig)  # SVG on the page; the download is plotly's interactive figure, built when clicked
            figures.html_download(download, f"posterior-{path.stem}", f"posterior_{cache.checkpoint_id(path)}")
            st.caption(f"{ck.config.describe()} · latent size {ck.model.latent_dim}")
            if comparison is not None:
                st.markdown(
                    f"**Which approximation fits the true posterior better?** (this image; nats per example)\n\n"
                    f"| approximation | KL(p(z\\|x) ‖ q), grid | "
                    f"KL(q ‖ p(z\\|x)) = log p(x) − ELBO(q), {comparison.num_samples} samples |\n"
                    f"|---|---|---|\n"
                    f"| clean q(z\\|x) | {comparison.kl_true_clean:.3f} | {comparison.kl_clean_true:.3f} |\n"
                    f"| mixture q̃(z\\|x), N = {mixture.num_components} | {comparison.kl_true_mixture:.3f} | "
                    f"{comparison.kl_mixture_true:.3f} |\n\n"
                    f"log p(x) by quadrature on the grid: **{comparison.log_evidence:.2f} nats**. Lower KL is "
                    "better; 0 means the approximation is exact. The clean row's draws are the same whatever the "
                    "seed (q(z|x) does not depend on the corruption); the mixture's follow the seed."
                )
                if not grid.converged:
                    st.warning(f"The grid reached its finest size ({analysis.MAX_GRID_SIZE}²) with log p(x) still "
                               "moving between refinements: these grid numbers are approximate.",
                               icon=":material/warning:")

    index = inputs.test_image_index("posterior_input")
    flat = [path for path, ck in chosen if ck.model.latent_dim == 2]
    if index is not None and flat:  # every test image's true posterior, nearest first, so a new index finds it ready
        cache.sweep_true_posteriors(flat, dataset_name, index)
        done, total = min(cache.sweep_progress(path, dataset_name) or (0, 0) for path in flat)
        if done < total:
            st.caption(f"True posteriors computed ahead, in the background: {done} of {total} test images (nearest "
                       "to this index first). An image not yet reached takes a few tenths of a second longer.")

    if view_kind == "t-SNE":
        st.info("t-SNE places the component means only: it is a nonlinear map with no way to carry a covariance, "
                "so it draws no ellipses and no density, and distances between far-apart points mean little. "
                "Use PCA for the Gaussians themselves.", icon=":material/info:")
    elif checkpoint.model.latent_dim == 2:
        st.caption("2-D latent space, no projection. Black: the true posterior p(z|x) ∝ p(x|z)p(z) on a grid; "
                   "dashed blue: the clean q(z|x); dotted vermillion: the mixture q̃(z|x); each contour pair "
                   "encloses 50% and 90% of that density's mass. Thin vermillion ellipses: each component "
                   "q(z|x̃ₙ) at 2σ.")
    else:
        st.caption("Projection onto the top two principal directions of the encoder means of the model's test "
                   "images (a Gaussian projects exactly: mean W(μ − c), covariance W Σ Wᵀ). Vermillion: components "
                   "q(z|x̃ₙ) with their 2σ ellipses and the density of 2000 draws from the mixture (shading); "
                   "blue: the clean q(z|x).")


posterior()
