"""Train: pick a configuration, start a background run, watch its bound, stop it, download the result."""

import streamlit as st

from dvae_engine.corruption import NOISES
from dvae_engine.data import DATASETS
from dvae_engine.jobs import JobLimitError
from dvae_engine.objectives import OBJECTIVE_INFO, OBJECTIVES, uses_noise
from dvae_engine.paper import departures_for
from dvae_engine.training import LR_SCHEDULES, TrainConfig, resolve_device
from ui import cache, params
from ui import training_view as view
from ui.boot import run_through_app

run_through_app()  # a shared link on a fresh server must still go through app.py

ENCODERS = {"1 layer": ("mlp", 1), "2 layers": ("mlp", 2), "GRU": ("gru", 2)}
# the paper's Sec. 4 data-augmentation baseline: VAE / IWAE on grey-level images re-binarized every pass
AUGMENTED = {"augment-vae": "vae", "augment-iwae": "iwae"}
MODEL_CHOICES = (*OBJECTIVES, *AUGMENTED)
NOISE_CHOICES = [n for n in NOISES if n != "none"]

owner = view.owner_id()
registry = cache.job_registry()
offline = cache.offline_datasets()
default_dataset = "mnist" if offline.get("mnist") else "digits"

st.title("Train a model")
st.caption("Training runs in the background: switch pages, refresh or close the tab, and come back — "
           "your runs stay here (they belong to the `owner` in the address bar).")

# --- the configuration (starting values from the URL, so a link reopens the same settings) --------------
SETTINGS = {  # widget key: (URL key, default, cast, choices)
    "train_dataset": ("dataset", default_dataset, str, DATASETS),
    "train_objective": ("objective", "dvae", str, MODEL_CHOICES),
    "train_noise": ("noise", "salt-pepper", str, NOISE_CHOICES),
    "train_level": ("level", 0.1, float, None),
    "train_m": ("M", 1, int, None),
    "train_k": ("K", 1, int, None),
    "train_encoder": ("encoder", "2 layers", str, list(ENCODERS)),
    "train_latent": ("z", 50, int, None),
    "train_epochs": ("epochs", 10, int, None),
    "train_lr": ("lr", 1e-3, float, None),
    "train_seed": ("seed", 0, int, None),
    "train_max_examples": ("n", 0, int, None),
}
for key, (url_key, default, cast, choices) in SETTINGS.items():
    view.seed_widget(key, params.get(url_key, None, cast=cast, choices=choices), default)

with st.container(border=True):
    col1, col2, col3 = st.columns(3)
    with col1:
        dataset = st.selectbox("Dataset", DATASETS, key="train_dataset",
                               format_func=lambda n: n if offline.get(n) else f"{n} (not on this machine)")
        model_choice = st.selectbox("Model", MODEL_CHOICES, key="train_objective",
                                    format_func=lambda o: view.OBJECTIVE_LABELS[o])
        augmented = model_choice in AUGMENTED
        objective = AUGMENTED.get(model_choice, model_choice)
        st.caption(OBJECTIVE_INFO[objective] if not augmented else
                   f"{view.OBJECTIVE_LABELS[model_choice]}: {objective.upper()} on clean inputs, the grey-level "
                   "images binarized afresh every epoch (paper, Sec. 4: 93.88 VAE, 92.51 IWAE)")
        encoder_choice = st.selectbox("Encoder", list(ENCODERS), key="train_encoder",
                                      help="An MLP with 1 or 2 hidden layers, or a GRU that reads the image in steps")
    noisy = uses_noise(objective)
    with col2:
        noise = st.selectbox("Noise type", NOISE_CHOICES, key="train_noise", disabled=not noisy)
        level = st.number_input("Noise level", min_value=0.0, step=0.01, format="%.3f", key="train_level",
                                disabled=not noisy,
                                help="a probability for salt-pepper, masking and mean-image; σ for gaussian")
        st.caption(NOISES[noise].description if noisy else f"{view.OBJECTIVE_LABELS[objective]} uses clean inputs")
        m_col, k_col = st.columns(2)
        num_corruptions = m_col.number_input("M (corrupted copies)", min_value=1, max_value=100, step=1,
                                             key="train_m", disabled=not noisy)
        num_samples = k_col.number_input("K (samples of z)", min_value=1, max_value=100, step=1, key="train_k")
    with col3:
        latent_dim = st.number_input("Latent size", min_value=1, max_value=500, step=1, key="train_latent")
        epochs = st.number_input("Epochs", min_value=1, max_value=5000, step=1, key="train_epochs")
        lr = st.number_input("Learning rate", min_value=1e-7, max_value=1e3, step=1e-4, format="%.1e",
                             key="train_lr")
        seed = st.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="train_seed")
    with st.expander("More settings"):
        more = st.columns(4)
        max_examples = more[0].number_input("Max training examples (0 = all)", min_value=0, step=100,
                                            key="train_max_examples", help="a quick run on a subset")
        hidden_units = more[1].number_input("Hidden units", min_value=1, max_value=4096, value=200, step=50,
                                            key="train_hidden")
        batch_size = more[2].number_input("Batch size", min_value=1, max_value=10000, value=100, step=50,
                                          key="train_batch")
        lr_schedule = more[3].selectbox("Learning-rate schedule", LR_SCHEDULES, key="train_schedule")
        binarization = more[0].selectbox("Binarization (grey-level data)", ["static", "dynamic"],
                                         key="train_binarization", disabled=augmented,
                                         help="dynamic: a fresh Bernoulli draw of every training image each epoch")
        binarization = "dynamic" if augmented else binarization
        device = more[1].selectbox("Device", ["auto", "cpu", "cuda", "mps"], key="train_device",
                                   help=f"auto = {resolve_device('auto')} here")
        compile_objective = more[2].checkbox(
            "Compile (torch.compile)", key="train_compile",
            help="Compiles the objective once (about 20 s) for faster steps: worth it for long runs only")
        adam_eps = more[0].number_input("Adam ε", min_value=1e-12, max_value=1.0, value=1e-8, format="%.0e",
                                        key="train_adam_eps", help="Burda et al. used 1e-4")
        output_bias = more[1].selectbox("Decoder output bias at start", ["default", "data-mean"],
                                        key="train_output_bias",
                                        help="data-mean: the logit of the training mean image (Burda et al.)")
        kl_warmup = more[2].number_input("KL warm-up epochs", min_value=0, max_value=1000, value=0, step=1,
                                         key="train_kl_warmup",
                                         help="β rises linearly from 0 to 1 over these epochs (0: none)")
        analytic_kl = more[3].checkbox(
            "Exact KL term", value=True, key="train_analytic_kl",
            help="ELBO-type objectives: use the exact −KL(q(z|x̃) ‖ p(z)) instead of its one-sample estimate "
                 "(same expectation, lower variance)")

view.remember(*SETTINGS)
params.put(**{url_key: st.session_state[key] for key, (url_key, *_) in SETTINGS.items()})

encoder, encoder_layers = ENCODERS[encoder_choice]
config = None
try:
    config = TrainConfig(
        dataset=dataset, binarization=binarization, objective=objective,
        noise=noise if noisy else "none", noise_level=float(level) if noisy else 0.0,
        num_corruptions=int(num_corruptions) if noisy else 1, num_samples=int(num_samples),
        encoder=encoder, encoder_layers=encoder_layers, hidden_units=int(hidden_units), latent_dim=int(latent_dim),
        batch_size=int(batch_size), lr=float(lr), lr_schedule=lr_schedule, epochs=int(epochs), seed=int(seed),
        device=device, max_train_examples=int(max_examples) or None, compile=bool(compile_objective),
        analytic_kl=bool(analytic_kl), adam_eps=float(adam_eps), output_bias=output_bias,
        kl_warmup_epochs=int(kl_warmup),
    )
    if augmented and not config.is_data_augmentation:
        raise ValueError(f"the data-augmentation baseline re-binarizes grey-level images; {dataset} has none "
                         "(choose mnist, fashion-mnist or digits)")
    resolve_device(device)
except ValueError as err:
    st.error(f"This configuration cannot be trained: {err}")
    config = None

missing_message = None
if not offline.get(dataset):
    _, missing_message = cache.try_dataset(dataset, binarization)
    if missing_message:
        st.error(f"The **{dataset}** dataset is not on this machine. {missing_message}")

if config is not None:
    st.markdown(f"Will train **{config.describe()}** for {config.epochs} epoch(s).")
    for note in departures_for(config):
        st.caption(f"Differs from the paper: {note}")
start = st.button("Start training", type="primary", icon=":material/play_arrow:", key="train_start",
                  disabled=config is None or missing_message is not None)
if start and config is not None:
    data, message = cache.try_dataset(config.dataset, config.binarization)
    if data is None:
        st.error(message)
    else:
        try:
            registry.submit(config, owner=owner, dataset=data)
            st.toast(f"Started {config.describe()}", icon=":material/play_arrow:")
        except JobLimitError as err:
            st.error(f"Not started: {err}. Runs are shared by everyone using this server.")

# --- this session's runs, refreshed every second while one is active ------------------------------------
st.header("Your runs")
jobs = registry.list(owner)
if not jobs:
    st.caption("Runs you start appear here with a progress bar and live curves of the training objective "
               "and the clean validation bound (both in nats per example, higher is better).")


def render() -> list:
    now = registry.list(owner)
    for job in now:
        view.render_job(job, registry)
    return now


view.live_jobs(render, jobs)
