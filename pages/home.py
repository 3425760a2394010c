"""Home: what a DVAE is, the device in use, the datasets on disk, and one click into the pretrained models."""

import streamlit as st
import torch

from dvae_engine.data import DATASET_INFO, DATASET_LIKELIHOOD, DATASETS
from dvae_engine.jobs import default_torch_threads
from dvae_engine.training import resolve_device
from ui import cache, figures
from ui import training_view as view
from ui.boot import run_through_app

run_through_app()  # a shared link on a fresh server must still go through app.py

view.owner_id()
st.title("DVAE Explorer")
st.caption("Denoising variational auto-encoders — Im, Ahn, Memisevic & Bengio, *Denoising Criterion for "
           "Variational Auto-Encoding Framework* (AAAI 2017, arXiv:1511.06406)")

st.markdown(
    "A **variational auto-encoder** (VAE) learns an encoder q(z|x) that maps an image x to a Gaussian over "
    "latent codes z, and a decoder p(x|z) that maps codes back to images, by maximising a lower bound on "
    "log p(x) (the ELBO). "
    "A **denoising VAE** (DVAE) first corrupts the input with a noise distribution p(x̃|x) — for example, "
    "flipping 10% of the pixels to black or white — and encodes the corrupted x̃, yet the decoder is still "
    "scored on the *clean* x. "
    "Averaged over the corruption, the encoder's posterior becomes a mixture of Gaussians, "
    "q̃(z|x) = E<sub>p(x̃|x)</sub>[q(z|x̃)], which is more flexible than the single Gaussian of a VAE. "
    "The training objective (Eq. 11 of the paper; Eq. 12 for its importance-weighted form, the DIWAE) "
    "averages log p(x,z) − log q(z|x̃) over M corrupted copies and K samples of z each. "
    "This app lets you train these models, watch the bound, see the mixture posterior, and compare "
    "reconstructions and samples with a plain VAE.",
    unsafe_allow_html=True,
)

# --- the picture: real images where a dataset is at hand --------------------------------------------
offline = cache.offline_datasets()
picture_dataset = cache.picture_dataset()
files = cache.checkpoint_files()
infos = {p: cache.checkpoint_info(p) for p in files}
PICTURE_LEVEL = cache.TEACHING_LEVEL
# a shipped DVAE of this dataset, the one trained nearest the picture's noise level (Posterior and
# Reconstructions open on it too)
model_for_picture = cache.teaching_model(same_dataset_only=True)
example = cache.diagram_example(picture_dataset, None if model_for_picture is None else str(model_for_picture),
                                "salt-pepper", PICTURE_LEVEL, num_copies=3, index=3)
if example is not None:
    x_clean, x_noisy, x_out = example
    figures.show(view.dvae_diagram(x_clean, x_noisy, x_out, f"salt-and-pepper, {PICTURE_LEVEL:.0%} of pixels"))
    source = f"a {picture_dataset} test image"
    if model_for_picture is not None:
        source += f"; the right-hand image is the decoder mean of model `{model_for_picture.stem}`"
    st.caption(f"One DVAE training step, drawn with {source}. The mixture panel is a schematic: one Gaussian "
               "q(z|x̃) per corrupted copy, in that copy's colour.")

# --- pretrained models ---------------------------------------------------------------------------------
st.header("Pretrained models")
shipped = [p for p in files if cache.is_shipped(p)]
user_runs = [p for p in files if getattr(cache.checkpoint_entry(p), "kind", "") == "user"]
entries = cache.manifest()
if not shipped:
    st.info("No pretrained models were found in `checkpoints/`. Train one on the **Train** page (a few epochs on "
            "`digits` take seconds), or upload a checkpoint on the **Checkpoints** page.")
    st.page_link("pages/train.py", label="Train a model", icon=":material/model_training:")
else:
    columns = st.columns(3)
    for i, path in enumerate(shipped):
        info = infos[path]
        entry = entries.get(path.name, {})
        with columns[i % 3].container(border=True):
            st.subheader(path.stem)
            if info["error"]:
                st.warning(f"This file cannot be read: {info['error']}")
                continue
            config = info["config"]
            st.markdown(entry.get("description") or config.describe())
            st.caption(f"{config.describe()} · {len(info['history'].get('epoch', []))} epochs")
            st.markdown(view.headline(info["metrics"], DATASET_LIKELIHOOD[config.dataset]))
            # one link per line: side by side, "Reconstructions" was cut off in a card a third of 1280 px wide
            st.page_link("pages/posterior.py", label="Posterior", icon=":material/scatter_plot:",
                         query_params={"model": path.stem})
            st.page_link("pages/reconstructions.py", label="Reconstructions", icon=":material/image:",
                         query_params={"model": path.stem})
# --- the paper's question, answered by our own measurements ----------------------------------------------
evidence = cache.denoising_evidence()
if evidence and evidence.get("comparisons"):
    st.header("Does denoising help?")
    for line in view.denoising_verdicts(evidence["comparisons"]):
        st.markdown(line)
    st.caption("Measured on clean test images with the corrected log-likelihood estimator (importance sampling "
               "from a defensive mixture of the clean and corrupted-input encoders); intervals are 95 % over "
               f"training seeds, p-values from a paired test over the same images. {evidence.get('budget', '')} "
               "Details and commands: RESULTS.md, “Does denoising help?”.")
if user_runs:
    st.caption(f"{len(user_runs)} run(s) of your own are on the Checkpoints page.")
    st.page_link("pages/checkpoints.py", label="Your checkpoints", icon=":material/inventory_2:")

# --- where it runs ------------------------------------------------------------------------------------
left, right = st.columns(2)
with left:
    st.header("Device")
    device = resolve_device("auto")
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        memory = torch.cuda.get_device_properties(device).total_memory / 2**30
        st.success(f"Training runs on the GPU: **{name}** ({memory:.0f} GiB), CUDA {torch.version.cuda}.")
    elif device.type == "mps":
        st.success("Training runs on the Apple GPU (MPS).")
    else:
        threads = default_torch_threads(cache.MAX_CONCURRENT_JOBS)
        st.info(f"Training runs on the **CPU** ({threads} thread{'s' if threads > 1 else ''} per job, "
                f"{cache.MAX_CONCURRENT_JOBS} jobs at once); no CUDA GPU is visible. "
                "Small models on `digits` train in seconds, on MNIST in minutes.")
    st.caption(f"PyTorch {torch.__version__} · CUDA available: {torch.cuda.is_available()}")
with right:
    st.header("Datasets on this machine")
    rows = []
    for name in DATASETS:
        here = offline.get(name, False)
        rows.append({"dataset": name, "on disk": "yes" if here else "no", "what": DATASET_INFO[name]})
    st.markdown(view.markdown_table(rows))
    missing = [name for name in DATASETS if not offline.get(name)]
    for name in missing:
        _, message = cache.try_dataset(name)
        if message:
            st.caption(f"**{name}**: {message}")
