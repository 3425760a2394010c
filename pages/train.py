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
st.caption("Training runs in the background: switch pages, refresh, open a new tab or close the browser and come "
           "back — your runs stay here. They belong to this browser (a cookie, not the address bar), so sharing a "
           "link shares the settings, never your runs.")

# --- the configuration (starting values from the URL, so a link reopens the same settings) --------------
# Every number has an allowed range, shown beside its box; a value outside it is an error, never clamped.
RANGES = {  # widget key: (low, high, low is exclusive)
    "train_level": (0.0, 1.0, True),
    "train_m": (1, 100, False),
    "train_k": (1, 100, False),
    "train_latent": (1, 500, False),
    "train_epochs": (1, 5000, False),
    "train_lr": (1e-7, 1e3, False),
    "train_seed": (0, 2**31 - 1, False),
    "train_max_examples": (0, 10_000_000, False),
    "train_hidden": (1, 4096, False),
    "train_batch": (1, 10_000, False),
}
EVALUATION_CHOICES = ["quick", "standard", "none"]
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
    "train_evaluation": ("eval", "quick", str, EVALUATION_CHOICES),
}
DEFAULTS = {"train_hidden": 200, "train_batch": 100}


def range_text(key: str) -> str:
    """``1 to 500`` (or ``above 0 and at most 1``): the allowed values of a number box."""
    low, high, exclusive = RANGES[key]
    fmt = (lambda v: f"{v:g}") if isinstance(low, float) else (lambda v: f"{v:,}")
    return f"above {fmt(low)} and at most {fmt(high)}" if exclusive else f"{fmt(low)} to {fmt(high)}"


def in_range(key: str, value) -> bool:
    low, high, exclusive = RANGES[key]
    return (value > low if exclusive else value >= low) and value <= high


link_problems = []  # values in the link that were not used: each one said out loud, with what is used instead
for key, (url_key, default, cast, choices) in SETTINGS.items():
    value, problem = params.check(url_key, cast, choices)
    if value is not None and key in RANGES and not in_range(key, value):
        raw = st.query_params.get(url_key)
        value, problem = None, f"{url_key}={raw} is outside the allowed range, {range_text(key)}"
    view.seed_widget(key, value, default)
    if problem is not None:
        used = st.session_state[key]
        link_problems.append(f"{problem}; using {used:g}" if isinstance(used, float) else f"{problem}; using {used}")
for key, default in DEFAULTS.items():
    view.seed_widget(key, None, default)
if link_problems:
    st.warning("Some settings in this link were not used:\n\n" + "\n".join(f"- {p}" for p in link_problems),
               icon=":material/link_off:")

problems: dict[str, str] = {}


def number(container, label: str, key: str, **kwargs):
    """A number box with its allowed range in the label and, below it, an error if the value is outside it.

    No min/max is given to Streamlit, so nothing is clamped or silently ignored: what was typed is checked here.
    """
    value = container.number_input(f"{label} ({range_text(key)})", key=key, **kwargs)
    if value is None or not in_range(key, value):
        problems[key] = f"{label} must be {range_text(key)}; it is {'empty' if value is None else f'{value:g}'}."
        container.error(problems[key], icon=":material/error:")
    return value


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
        if noisy:
            level = number(st, "Noise level", "train_level", step=0.01, format="%.3f",
                           help="a probability for salt-pepper, masking and mean-image; σ for gaussian")
        else:
            level = st.number_input("Noise level (not used)", key="train_level", step=0.01, format="%.3f",
                                    disabled=True)
        st.caption(NOISES[noise].description if noisy else f"{view.OBJECTIVE_LABELS[objective]} uses clean inputs")
        m_col, k_col = st.columns(2)
        if noisy:
            num_corruptions = number(m_col, "M, corrupted copies", "train_m", step=1)
        else:
            num_corruptions = m_col.number_input("M (not used)", key="train_m", step=1, disabled=True)
        num_samples = number(k_col, "K, samples of z", "train_k", step=1)
    with col3:
        latent_dim = number(st, "Latent size", "train_latent", step=1)
        epochs = number(st, "Epochs", "train_epochs", step=1)
        lr = number(st, "Learning rate", "train_lr", step=1e-4, format="%.1e")
        seed = number(st, "Seed", "train_seed", step=1)
    with st.expander("More settings", expanded=any(k in problems for k in ("train_max_examples", "train_hidden",
                                                                            "train_batch"))):
        more = st.columns(4)
        max_examples = number(more[0], "Max training examples, 0 = all", "train_max_examples", step=100,
                              help="a quick run on a subset")
        hidden_units = number(more[1], "Hidden units", "train_hidden", step=50)
        batch_size = number(more[2], "Batch size", "train_batch", step=50)
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
    quick_n, quick_k = registry.evaluation_sizes("quick")
    full_n, full_k = registry.evaluation_sizes("standard")
    evaluation_labels = {
        "quick": f"quick: {quick_n:,} test images, k = {quick_k:,} importance samples (for short runs)",
        "standard": f"standard: {full_n:,} test images, k = {full_k:,} importance samples (slower)",
        "none": "none: no test numbers (the run ends when training ends)",
    }
    evaluation = st.radio("Evaluation on clean test data after training", EVALUATION_CHOICES, key="train_evaluation",
                          format_func=evaluation_labels.get, horizontal=True,
                          help="Its time counts in the run's total; the card shows its progress and time left.")

view.remember(*SETTINGS, *DEFAULTS)
params.put(**{url_key: st.session_state[key] for key, (url_key, *_) in SETTINGS.items()
              if key not in problems and st.session_state.get(key) is not None})

encoder, encoder_layers = ENCODERS[encoder_choice]
config = None
if problems:
    st.error(f"This configuration cannot be trained yet: {len(problems)} setting(s) are outside their allowed range "
             "(see the messages beside them).", icon=":material/error:")
else:
    try:
        config = TrainConfig(
            dataset=dataset, binarization=binarization, objective=objective,
            noise=noise if noisy else "none", noise_level=float(level) if noisy else 0.0,
            num_corruptions=int(num_corruptions) if noisy else 1, num_samples=int(num_samples),
            encoder=encoder, encoder_layers=encoder_layers, hidden_units=int(hidden_units),
            latent_dim=int(latent_dim), batch_size=int(batch_size), lr=float(lr), lr_schedule=lr_schedule,
            epochs=int(epochs), seed=int(seed), device=device, max_train_examples=int(max_examples) or None,
            compile=bool(compile_objective), analytic_kl=bool(analytic_kl), adam_eps=float(adam_eps),
            output_bias=output_bias, kl_warmup_epochs=int(kl_warmup),
        )
        if augmented and not config.is_data_augmentation:
            raise ValueError(f"the data-augmentation baseline re-binarizes grey-level images; {dataset} has none "
                             "(choose mnist, fashion-mnist or digits)")
        resolve_device(device)
    except ValueError as err:
        st.error(f"This configuration cannot be trained: {str(err).removeprefix('invalid training config: ')}")
        config = None

missing_message = None
if not offline.get(dataset):
    _, missing_message = cache.try_dataset(dataset, binarization)
    if missing_message:
        st.error(f"The **{dataset}** dataset is not on this machine. {missing_message}")

if config is not None:
    examples = "all training examples" if config.max_train_examples is None else \
        f"at most {config.max_train_examples:,} training examples"
    kl = "exact KL term" if config.analytic_kl else "sampled KL term"
    warmup = f", KL warm-up over {config.kl_warmup_epochs} epoch(s)" if config.kl_warmup_epochs else ""
    st.markdown(
        f"Will train **{config.describe()}** for {config.epochs:,} epoch(s): learning rate {config.lr:g} "
        f"({config.lr_schedule} schedule), batch size {config.batch_size:,}, {config.hidden_units:,} hidden units, "
        f"seed {config.seed}, {examples}, {config.binarization} binarization, {kl}{warmup}, "
        f"Adam ε {config.adam_eps:g}, device {config.device}"
        f"{', compiled' if config.compile else ''}; then {evaluation_labels[evaluation].split(':')[0]} evaluation."
    )
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
            registry.submit(config, owner=owner, dataset=data, evaluation=evaluation)
            st.toast(f"Started {config.describe()}", icon=":material/play_arrow:")
        except JobLimitError as err:
            st.error(f"Not started: {err}. Runs are shared by everyone using this server.")

# --- this browser's runs, refreshed every second while one is active ------------------------------------
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
