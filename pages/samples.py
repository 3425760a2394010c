"""Samples: what the decoder makes of z ~ p(z), and a walk through latent space between two inputs.

Prior samples are the mean images E[x|z] of draws z ~ N(0, I). For 2-D latent
models the whole latent plane is shown as a grid of decoded images. The
interpolation decodes a path between the encoder means of two inputs.
"""

import streamlit as st

from dvae_engine import analysis
from ui import cache, figures, inputs, params
from ui.boot import run_through_app

run_through_app()  # a shared link on a fresh server must still go through app.py

st.title("Samples")
st.markdown(
    "**From the prior:** draw z ~ p(z) = N(0, I) and show the decoder's mean image E[x|z]. "
    "**Interpolation:** encode two inputs, walk in a straight line (or along a great circle) between their "
    "encoder means μ(x_a) and μ(x_b), and decode every step."
)

paths = cache.checkpoint_files()
if not paths:
    inputs.no_models_message()
    st.stop()

# --- settings ---------------------------------------------------------------------------------------
checkpoints = inputs.choose_and_load_models(paths, "Sample settings")
first = next(iter(checkpoints.values()))
dataset_name = first.config.dataset
available = cache.test_image_count(dataset_name)

if not available:
    inputs.dataset_hint(dataset_name, cache.try_dataset(dataset_name)[1])


@st.fragment
def prior_samples() -> None:
    """Samples from the prior (and the latent plane of 2-D models); its controls rerun only this part."""
    with st.sidebar:
        seed = int(st.number_input("Seed", 0, 10_000, value=params.get("seed", 0, cast=int, low=0, high=10_000),
                                   key="seed"))
        count = st.select_slider("Prior samples per model", [8, 16, 24, 32, 48, 64],
                                 value=params.get("count", 32, cast=int, choices=[8, 16, 24, 32, 48, 64]),
                                 key="count")
        params.put(seed=seed, count=count)
    st.header("Samples from the prior")
    columns = st.columns(min(len(checkpoints), 2))
    for i, (stem, ck) in enumerate(checkpoints.items()):
        with columns[i % len(columns)]:
            samples = analysis.prior_samples(ck.model, count, seed=seed)
            rows = figures.wrap(samples, 8)
            figures.show(figures.image_grid(rows, ck.image_shape, [""] * len(rows),
                                            title=f"{stem} ({ck.config.model_name})", name=f"prior-{stem}"))
            st.caption(f"{count} mean images E[x|z], z ~ N(0, I), seed {seed}. {ck.config.describe()}")
            if ck.model.latent_dim == 2:
                figures.show(cache.latent_plane(ck.path, f"{stem}: the latent plane", f"plane-{stem}"))
                st.caption("The whole 2-D latent plane (z₁ across, z₂ down): decoded mean images on a grid of z "
                           "evenly spaced in prior probability (z = Φ⁻¹(p), p from 0.05 to 0.95), like Kingma & "
                           "Welling's Fig 4.")


@st.fragment
def interpolation() -> None:
    """A walk between the encoder means of two inputs; its controls rerun only this part."""
    with st.sidebar:
        st.subheader("Interpolation")
        limit = available - 1 if available else 9999
        what = "Test image" if available else "Model sample seed"
        index_a = int(st.number_input(f"{what} x_a", 0, limit, value=params.get("a", 0, cast=int, low=0, high=limit),
                                      key="index_a"))
        index_b = int(st.number_input(f"{what} x_b", 0, limit, value=params.get("b", 1, cast=int, low=0, high=limit),
                                      key="index_b"))
        steps = st.slider("Steps", 3, 12, value=params.get("steps", 8, cast=int, low=3, high=12), key="steps")
        spherical = st.toggle("Spherical path (slerp)", value=params.get("slerp", False, cast=bool), key="slerp")
        params.put(a=index_a, b=index_b, steps=steps, slerp=spherical)
    st.header("Interpolation between two inputs")
    if available:
        x_a = cache.test_image_rows(dataset_name, index_a, 1)[0]
        x_b = cache.test_image_rows(dataset_name, index_b, 1)[0]
        ends = f"{dataset_name} test images #{index_a} and #{index_b}"
    else:
        x_a = analysis.model_inputs(first.model, 1, seed=index_a)[0]
        x_b = analysis.model_inputs(first.model, 1, seed=index_b)[0]
        ends = f"samples of {next(iter(checkpoints))} (seeds {index_a} and {index_b})"
    rows, labels = [], []
    for stem, ck in checkpoints.items():
        path_images, _ = analysis.interpolate(ck.model, x_a, x_b, steps=steps, spherical=spherical)
        rows.append([x_a, *path_images, x_b])
        labels.append(f"{stem} ({ck.config.model_name})")
    step_labels = ["x_a", *[f"t={t / (steps - 1):.2f}" for t in range(steps)], "x_b"]
    title = "decode(slerp(μ(x_a), μ(x_b); t))" if spherical else "decode((1 − t) μ(x_a) + t μ(x_b))"
    figures.show(figures.image_grid(rows, first.image_shape, labels, col_labels=step_labels, title=title,
                                    name="interpolation"))
    st.caption(f"Ends: {ends}. First and last columns are the inputs; t = 0 and t = 1 decode their encoder means. "
               + ("The spherical path keeps the norm of z closer to that of typical prior draws."
                  if spherical else "Switch on the spherical path to stay nearer the prior's typical shell."))


prior_samples()
interpolation()
