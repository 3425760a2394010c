"""Reconstructions: clean inputs, one corrupted copy of each, and what each chosen model decodes from it.

Every model sees the same corrupted x̃; below each reconstruction is
log p(x|z) of the CLEAN input at z = the mean of q(z|x̃) (a reconstruction
log-likelihood in nats, not log p(x)). Users can add their own image by
uploading or drawing it.
"""

import streamlit as st
import torch

from dvae_engine import analysis
from ui import cache, figures, inputs, params
from ui import training_view as view
from ui.boot import run_through_app

run_through_app()  # a shared link on a fresh server must still go through app.py

st.title("Reconstructions")
st.markdown(
    "Top row: clean test images x. Second row: one corrupted copy x̃ ~ p(x̃|x) of each. Below: what each model "
    "reconstructs from x̃ (the mean image E[x|z] of its decoder). A denoising VAE was trained for exactly this; "
    "a plain VAE never saw noise. Under each reconstruction: **log p(x|z)** of the *clean* image, in nats."
)

paths = cache.checkpoint_files()
if not paths:
    inputs.no_models_message()
    st.stop()

# --- settings ---------------------------------------------------------------------------------------
checkpoints = inputs.choose_and_load_models(paths, "Reconstruction settings")
first = next(iter(checkpoints.values()))
dataset_name = first.config.dataset
mean_image = cache.train_mean_image(dataset_name)
available = cache.test_image_count(dataset_name)


@st.fragment
def reconstructions() -> None:
    """Noise, images and the figure. A control in here reruns only this function, not the model choice above."""
    with st.sidebar:
        noise, level = inputs.noise_controls(first, has_mean_image=mean_image is not None, container=st.sidebar)
        seed = int(st.number_input("Noise seed", 0, 10_000,
                                   value=params.get("seed", 0, cast=int, low=0, high=10_000), key="seed"))
        count = st.slider("Images", 4, 16, value=params.get("count", 12, cast=int, low=4, high=16), key="count")
        if available:
            start = int(st.number_input("First test image", 0, max(available - count, 0),
                                        value=params.get("start", 0, cast=int, low=0, high=max(available - count, 0)),
                                        key="start"))
        else:
            start = int(st.number_input("Sample seed (no dataset on disk)", 0, 9999,
                                        value=params.get("start", 0, cast=int, low=0, high=9999), key="start"))
        z_options = {"mean": "mean of q(z|x̃)", "sample": "one draw z ~ q(z|x̃)"}
        z_choice = st.radio("Decode", list(z_options), format_func=z_options.get, key="z_choice",
                            index=list(z_options).index(params.get("z", "mean", choices=list(z_options))))
        params.put(seed=seed, count=count, start=start, z=z_choice)

    # --- inputs: test images (or the model's own samples offline), plus the user's ---------------------
    if available:
        x_clean = cache.test_image_rows(dataset_name, start, count)
        column_labels = [f"#{start + i}" for i in range(len(x_clean))]
    else:
        inputs.dataset_hint(dataset_name, cache.try_dataset(dataset_name)[1])
        x_clean = analysis.model_inputs(first.model, count, seed=start)
        column_labels = [f"sample {i + 1}" for i in range(count)]

    with st.expander("Add your own image (upload or draw)", expanded=not available, icon=":material/draw:"):
        own_source = st.radio("Your image", ["none", "Upload", "Draw"], horizontal=True, key="own_source")
        own = None if own_source == "none" else inputs.user_image(first, own_source, key="own")
    if own is not None:
        x_clean = torch.cat([own[None], x_clean])
        column_labels = ["yours", *column_labels]

    # --- reconstruct with every model, on the same corrupted copies --------------------------------
    result = analysis.reconstruct({stem: ck.model for stem, ck in checkpoints.items()}, x_clean, noise, level,
                                  seed=seed, mean_image=mean_image, z_choice=z_choice)
    rows = [result.x_clean, result.x_noisy, *result.images.values()]
    row_labels = ["clean x", "corrupted x̃",
                  *[f"{stem} ({ck.config.model_name})" for stem, ck in checkpoints.items()]]
    cell_text = [None, None, *[[f"{v:.0f}" for v in values.tolist()] for values in result.log_likelihood.values()]]
    level_text = "" if noise == "none" else f", level {level:g}"
    grid_figure = figures.image_grid(rows, first.image_shape, row_labels, col_labels=column_labels,
                                     cell_text=cell_text, title=f"{inputs.NOISE_LABELS.get(noise, noise)}{level_text}",
                                     name="reconstructions")
    figures.show(grid_figure)
    figures.html_download(  # plotly, built only when clicked
        lambda: figures.plotly().image_grid(rows, first.image_shape, row_labels, col_labels=column_labels,
                                            cell_text=cell_text,
                                            title=f"{inputs.NOISE_LABELS.get(noise, noise)}{level_text}"),
        "reconstructions", "reconstructions")
    z_text = "the mean of q(z|x̃)" if z_choice == "mean" else "one draw z ~ q(z|x̃)"
    st.caption(f"Numbers under each reconstruction: log p(x|z) of the clean image x at z = {z_text}, in nats "
               "(a reconstruction log-likelihood, higher is better; not the model's log p(x)"
               + ("; for these real-valued images it is a log-density and can be positive" if
                  first.model.spec.likelihood == "gaussian" else "") + ").")

    st.subheader("Average over these images")
    st.markdown(view.markdown_table(  # a data grid's cells lagged each move by 200 ms
        [{"model": stem, "trained as": ck.config.describe(),
          "mean log p(x|z), nats per example": f"{result.mean_log_likelihood()[stem]:.2f}"}
         for stem, ck in checkpoints.items()]))


reconstructions()
