"""Widgets shared by the model-inspection pages (Posterior, Reconstructions, Samples).

Picking a checkpoint, a noise type and level, and an input image (a test
image, an upload, a drawing, or a sample from the model when the dataset is
not on disk). Every choice that matters is mirrored in the URL with
:mod:`ui.params`. No math here: images go through ``analysis.prepare_image``.
"""

from __future__ import annotations

import base64
from pathlib import Path

import streamlit as st
import torch

from dvae_engine import analysis
from dvae_engine.checkpoint import Checkpoint, CheckpointError
from dvae_engine.corruption import NOISES
from ui import cache, params

NOISE_LABELS = {
    "salt-pepper": "salt-and-pepper (fraction ν of pixels set to 0 or 1)",
    "masking": "masking (each pixel zeroed with probability ν)",
    "gaussian": "Gaussian (x̃ = x + σε)",
    "mean-image": "mean-image salt-and-pepper (noise where the digits have ink)",
    "none": "none (x̃ = x)",
}
UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp", "gif", "webp", "tif", "tiff"]


def no_models_message() -> None:
    """Tell the user there is nothing to inspect yet, and where to get a model."""
    st.info(
        "No trained models yet. Train one on the **Train** page (a few epochs on `digits` take seconds), "
        "upload a checkpoint on the **Checkpoints** page, or put pretrained `.pt` files in `checkpoints/` "
        "(`python experiments/train_checkpoints.py`).",
        icon=":material/info:",
    )
    st.page_link("pages/train.py", label="Go to the Train page", icon=":material/model_training:")


def load(path: Path) -> Checkpoint | None:
    """The checkpoint at ``path``, or None after showing why it cannot be read."""
    try:
        return cache.load_model(path)
    except (CheckpointError, OSError) as err:
        st.error(f"Cannot open checkpoint {path.name}: {err}", icon=":material/error:")
        return None


def label(path: Path) -> str:
    """``name — DVAE mnist salt-pepper 10% …`` for a select box (``name (yours)`` for the user's own files)."""
    info = cache.checkpoint_info(path)
    name = cache.checkpoint_label(path)
    return name if info.get("error") else f"{name} — {info['config'].describe()}"


def dataset_hint(name: str, message: str | None) -> None:
    """Explain that the model's dataset is missing, how to get it, and what the page uses instead."""
    st.warning(
        f"The **{name}** dataset is not on disk, so this page uses images drawn or uploaded by you and "
        f"digits sampled from the model instead. To get the dataset: {message or 'see the Home page'}",
        icon=":material/cloud_off:",
    )


def forget_noise() -> None:
    """When the model changes: drop the noise choice (widgets and URL), so the new model starts at its own noise."""
    for key in [k for k in st.session_state if k == "noise" or str(k).startswith("level_")]:
        del st.session_state[key]
    for key in ("noise", "level"):
        if key in st.query_params:
            del st.query_params[key]


def level_grid(noise: str) -> tuple[float, float, str, str]:
    """``(high, step, format, label)`` of the noise-level slider: ν in [0, 1] by 0.01, σ in [0, 0.5] by 0.005.

    The format shows every digit of the step, so the number on the slider is the level in use.
    """
    if NOISES[noise].level_is_probability:
        return 1.0, 0.01, "%.2f", "Noise level ν (fraction of pixels)"
    return 0.5, 0.005, "%.3f", "Noise level σ (pixel values in [0, 1])"


def noise_controls(checkpoint: Checkpoint, has_mean_image: bool, container=st) -> tuple[str, float]:
    """Noise type and level widgets (defaults: the model's own training noise), mirrored in the URL.

    A level from the URL is rounded to the slider's step, so the slider shows exactly the level in use.
    Pages call :func:`forget_noise` when the model changes.
    """
    names = [n for n in NOISES if n != "mean-image" or has_mean_image]
    config = checkpoint.config
    trained_noisy = config.noise != "none" and config.noise_level > 0 and config.noise in names
    default_noise = config.noise if trained_noisy else ("gaussian" if checkpoint.model.spec.likelihood == "gaussian"
                                                        else "salt-pepper")
    noise = params.get("noise", default_noise, choices=names)
    noise = container.selectbox("Noise type p(x̃|x)", names, index=names.index(noise), key="noise",
                                format_func=lambda n: NOISE_LABELS.get(n, n))
    if noise == "none":
        params.put(noise=noise)
        return noise, 0.0
    high, step, number_format, text = level_grid(noise)
    default_level = config.noise_level if trained_noisy and config.noise == noise else (
        0.05 if noise == "gaussian" else 0.1)
    level = params.get("level", float(default_level), cast=float, low=0.0, high=high)
    level = round(round(level / step) * step, 6)  # on the slider's grid: what it shows is what is used
    level = container.slider(text, 0.0, high, value=float(level), step=step, key=f"level_{noise}",
                             format=number_format)
    params.put(noise=noise, level=float(level))
    return noise, float(level)


# A drawing pad as an inline Streamlit component (st.components.v2): works offline, needs no package.
_CANVAS_HTML = """
<div class="pad">
  <canvas width="280" height="280"></canvas>
  <div class="row"><button type="button">Clear</button>
    <span>Draw with the mouse or a finger; release to use it.</span></div>
</div>
"""
_CANVAS_CSS = """
.pad canvas { background: #000; border: 2px solid var(--st-border-color, #999); border-radius: 6px;
              touch-action: none; cursor: crosshair; width: 280px; height: 280px; }
.pad .row { display: flex; gap: .75rem; align-items: center; margin-top: .4rem; font-size: .9rem; }
.pad button { padding: .25rem .8rem; border-radius: 6px; border: 1px solid var(--st-border-color, #999);
              background: var(--st-secondary-background-color, #eee); color: inherit; cursor: pointer; }
"""
_CANVAS_JS = """
export default function(component) {
  const { parentElement, setStateValue } = component;
  const canvas = parentElement.querySelector("canvas");
  const button = parentElement.querySelector("button");
  const ctx = canvas.getContext("2d");
  const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  if (!canvas.dataset.ready) { clear(); canvas.dataset.ready = "1"; }
  let drawing = false, last = null;
  const at = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  };
  const down = (e) => { drawing = true; last = at(e); canvas.setPointerCapture(e.pointerId); move(e); };
  const move = (e) => {
    if (!drawing) return;
    const p = at(e);
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 22; ctx.lineCap = "round"; ctx.lineJoin = "round";
    ctx.beginPath(); ctx.moveTo(last[0], last[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
    last = p;
  };
  const up = () => { if (!drawing) return; drawing = false; setStateValue("image", canvas.toDataURL("image/png")); };
  const reset = () => { clear(); setStateValue("image", null); };
  canvas.addEventListener("pointerdown", down);
  canvas.addEventListener("pointermove", move);
  canvas.addEventListener("pointerup", up);
  canvas.addEventListener("pointercancel", up);
  button.addEventListener("click", reset);
  return () => {
    canvas.removeEventListener("pointerdown", down);
    canvas.removeEventListener("pointermove", move);
    canvas.removeEventListener("pointerup", up);
    canvas.removeEventListener("pointercancel", up);
    button.removeEventListener("click", reset);
  };
}
"""
_drawing_pad = st.components.v2.component("dvae_drawing_pad", html=_CANVAS_HTML, css=_CANVAS_CSS, js=_CANVAS_JS)


def drawing_pad(key: str) -> bytes | None:
    """A black 280×280 pad to draw on in white; the PNG bytes of the drawing, or None before any stroke."""
    result = _drawing_pad(key=key, default={"image": None}, on_image_change=lambda: None)
    data_url = getattr(result, "image", None)
    if not data_url or not isinstance(data_url, str) or "," not in data_url:
        return None
    try:
        return base64.b64decode(data_url.split(",", 1)[1], validate=True)
    except ValueError:
        return None


def user_image(checkpoint: Checkpoint, source: str, key: str) -> torch.Tensor | None:
    """An uploaded or drawn image prepared for ``checkpoint``'s model, ``(D,)``; None (with a message) otherwise."""
    binary = checkpoint.model.spec.likelihood == "bernoulli"
    if source == "Upload":
        upload = st.file_uploader("Upload an image (PNG, JPEG, …)", type=UPLOAD_TYPES, key=f"{key}_upload")
        if upload is None:
            st.caption("Any size: it is turned grey, resized to the model's "
                       f"{checkpoint.image_shape[0]}×{checkpoint.image_shape[1]} pixels"
                       + (", inverted if drawn on white, and thresholded (binary model)." if binary else "."))
            return None
        raw = upload.getvalue()
    else:
        raw = drawing_pad(f"{key}_pad")
        if raw is None:
            st.caption("Draw a digit on the black pad; it is centred and resized like MNIST's digits.")
            return None
    center = binary and st.checkbox("Centre and scale the ink like MNIST", value=True, key=f"{key}_center")
    try:
        return analysis.prepare_image(raw, checkpoint.image_shape, binary=binary,
                                      invert="auto" if binary else False, center=center)
    except ValueError as err:
        st.error(f"This image cannot be used: {err}", icon=":material/broken_image:")
        return None


def image_sources(has_dataset: bool) -> list[str]:
    """Where an input can come from; offline, the model's own samples come first so the page shows something."""
    return ["Test image", "Upload", "Draw", "Model sample"] if has_dataset else ["Model sample", "Upload", "Draw"]


def input_image(checkpoint: Checkpoint, key: str = "input", container=st) -> tuple[torch.Tensor | None, str]:
    """One clean input ``(D,)`` for ``checkpoint`` and a caption saying where it came from.

    Sources: a test image by index (when the dataset is on disk), an upload,
    a drawing, or a sample from the model (offline fallback). Source and index go in the URL.
    """
    name = checkpoint.config.dataset
    count = cache.test_image_count(name)
    sources = image_sources(count > 0)
    source = params.get("src", sources[0], choices=sources)
    source = container.radio("Input image", sources, index=sources.index(source), key=f"{key}_src",
                             horizontal=True)
    params.put(src=source)
    if source in ("Test image", "Model sample"):
        limit = count - 1 if source == "Test image" else 9999
        index = params.get("idx", 0, cast=int, low=0, high=limit)
        index = int(container.number_input("Image index" if source == "Test image" else "Sample seed", 0, limit,
                                           value=index, step=1, key=f"{key}_idx_{source}"))
        params.put(idx=index)
        if source == "Test image":
            return cache.test_image_rows(name, index, 1)[0], f"{name} test image #{index}"
        return analysis.model_inputs(checkpoint.model, 1, seed=index)[0], f"a sample from the model (seed {index})"
    return user_image(checkpoint, source, key), f"your {'upload' if source == 'Upload' else 'drawing'}"


def test_image_index(key: str = "input") -> int | None:
    """The test-image index chosen with :func:`input_image` (same ``key``), or None for another source."""
    if st.session_state.get(f"{key}_src") != "Test image":
        return None
    index = st.session_state.get(f"{key}_idx_Test image")
    return None if index is None else int(index)


def compatible(path: Path, paths: list[Path]) -> list[Path]:
    """The other readable checkpoints trained on the same dataset as ``path`` (so they take the same images)."""
    info = cache.checkpoint_info(path)
    if info.get("error"):
        return []
    same = []
    for other in paths:
        other_info = cache.checkpoint_info(other)
        if other != path and not other_info.get("error") and other_info["config"].dataset == info["config"].dataset:
            same.append(other)
    return same


def default_partner(path: Path, candidates: list[Path]) -> Path | None:
    """A model to compare with: same latent size, trained the other way (with noise vs without), same number of
    samples K (a DVAE meets a VAE, a DIWAE an IWAE), and a different objective; ties go to the first listed."""
    config = cache.checkpoint_info(path)["config"]

    def denoising(c) -> bool:
        return c.noise != "none" and c.noise_level > 0

    def score(other: Path) -> tuple[bool, bool, bool, bool]:
        other_config = cache.checkpoint_info(other)["config"]
        return (other_config.latent_dim == config.latent_dim, denoising(other_config) != denoising(config),
                (other_config.num_samples > 1) == (config.num_samples > 1),
                other_config.model_name != config.model_name)

    return max(candidates, key=score, default=None)


def default_model(paths: list[Path]) -> Path:
    """The model a page opens on: the Home page's teaching DVAE (:func:`ui.cache.teaching_model`), else the first."""
    teaching = cache.teaching_model()
    return teaching if teaching in paths else paths[0]


def choose_models(paths: list[Path], container=st, max_others: int = 3) -> list[Path]:
    """A main model and up to ``max_others`` models of the same dataset to compare with (URL: model, others).

    Models are named by their ids (``mnist-vae`` shipped, ``user/<name>`` yours), so a file of yours
    with a shipped model's name never collides with it.
    """
    ids = [cache.checkpoint_id(p) for p in paths]
    model_id = params.get("model", cache.checkpoint_id(default_model(paths)), choices=ids)
    primary = container.selectbox("Model", paths, index=ids.index(model_id), format_func=label, key="model_main",
                                  on_change=forget_noise)
    primary_id = ids[paths.index(primary)]
    partners = compatible(primary, paths)
    partner = default_partner(primary, partners)
    partner_ids = [ids[paths.index(p)] for p in partners]
    wanted = params.get("others", ids[paths.index(partner)] if partner else "")
    default = [s for s in wanted.split(",") if s in partner_ids][:max_others]
    others = container.multiselect(
        "Compare with (same dataset)", partner_ids, default=default, key=f"others_{primary_id}",
        max_selections=max_others, format_func=lambda s: label(paths[ids.index(s)]),
    )
    params.put(model=primary_id, others=",".join(others))
    return [primary] + [paths[ids.index(s)] for s in others]


def choose_and_load_models(paths: list[Path], header: str) -> dict[str, Checkpoint]:
    """Sidebar model choice (see :func:`choose_models`), loaded; stops the page if none loads."""
    with st.sidebar:
        st.header(header)
        chosen_paths = choose_models(paths, container=st.sidebar)
    loaded = {cache.checkpoint_label(p): load(p) for p in chosen_paths}  # unique: "x" (shipped), "x (yours)"
    loaded = {name: ck for name, ck in loaded.items() if ck is not None}
    if not loaded:
        st.stop()
    return loaded
