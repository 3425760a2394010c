"""Bound vs M: the paper's Figure 1 — one configuration trained with M = 1, 5, 10 corrupted copies, DVAE and DIWAE."""

import time

import streamlit as st

from dvae_engine.corruption import NOISES
from dvae_engine.data import DATASETS
from dvae_engine.jobs import JobLimitError
from dvae_engine.training import TrainConfig
from ui import cache, figures, params
from ui import training_view as view
from ui.boot import run_through_app

run_through_app()  # a shared link on a fresh server must still go through app.py

MODELS = {"DVAE": "dvae", "DIWAE": "diwae"}
M_CHOICES = [1, 2, 5, 10, 20]
NOISE_CHOICES = [n for n in NOISES if n != "none"]
PREFIX = "bvm-"  # names of runs launched here: bvm-<batch>-<objective>-m<M>


def list_of(cast, choices):
    """A URL value like ``1,5,10`` as a list, every item one of ``choices``."""
    def parse(text: str) -> list:
        items = [cast(t) for t in text.split(",") if t]
        if any(i not in choices for i in items):
            raise ValueError(text)
        return items
    return parse


owner = view.owner_id()
registry = cache.job_registry()
offline = cache.offline_datasets()

st.title("Bound vs M")
st.markdown(
    "The paper's **Figure 1**: train the same model with **M = 1, 5 and 10** corrupted copies of each "
    "example and watch the bound during training, for the DVAE (Eq. 11, solid lines) and its importance-weighted "
    "form, the DIWAE (Eq. 12, dashed lines). Colours are the values of M. The left panel is each run's own "
    "training objective (a bound on log p(x) computed with corrupted inputs); the right panel is the clean "
    "validation ELBO, the same yardstick for every run. Both in nats per example; higher is better."
)

# --- configuration shared by every run ------------------------------------------------------------------
SETTINGS = {  # widget key: (URL key, default, cast, choices)
    "bvm_dataset": ("dataset", "digits", str, DATASETS),
    "bvm_noise": ("noise", "salt-pepper", str, NOISE_CHOICES),
    "bvm_level": ("level", 0.1, float, None),
    "bvm_k": ("K", 1, int, None),
    "bvm_latent": ("z", 10, int, None),
    "bvm_epochs": ("epochs", 30, int, None),
    "bvm_lr": ("lr", 1e-3, float, None),
    "bvm_seed": ("seed", 0, int, None),
    "bvm_max_examples": ("n", 0, int, None),
    "bvm_models": ("models", list(MODELS), list_of(str, list(MODELS)), None),
    "bvm_ms": ("Ms", [1, 5, 10], list_of(int, M_CHOICES), None),
}
for key, (url_key, default, cast, choices) in SETTINGS.items():
    view.seed_widget(key, params.get(url_key, None, cast=cast, choices=choices), default)

with st.container(border=True):
    cols = st.columns(4)
    dataset = cols[0].selectbox("Dataset", DATASETS, key="bvm_dataset",
                                format_func=lambda n: n if offline.get(n) else f"{n} (not on this machine)")
    noise = cols[0].selectbox("Noise type", NOISE_CHOICES, key="bvm_noise")
    level = cols[0].number_input("Noise level", min_value=0.0, step=0.01, format="%.3f", key="bvm_level")
    models = cols[1].multiselect("Models", list(MODELS), key="bvm_models")
    ms = cols[1].multiselect("M values (corrupted copies)", M_CHOICES, key="bvm_ms")
    num_samples = cols[1].number_input("K (samples of z per copy)", min_value=1, max_value=100, step=1, key="bvm_k")
    latent_dim = cols[2].number_input("Latent size", min_value=1, max_value=500, step=1, key="bvm_latent")
    epochs = cols[2].number_input("Epochs", min_value=1, max_value=5000, step=1, key="bvm_epochs")
    lr = cols[2].number_input("Learning rate", min_value=1e-7, max_value=1e3, step=1e-4, format="%.1e",
                              key="bvm_lr")
    seed = cols[3].number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="bvm_seed")
    max_examples = cols[3].number_input("Max training examples (0 = all)", min_value=0, step=100,
                                        key="bvm_max_examples")

view.remember(*SETTINGS)
params.put(**{url_key: (",".join(map(str, st.session_state[key])) if isinstance(st.session_state[key], list)
                        else st.session_state[key]) for key, (url_key, *_) in SETTINGS.items()})

configs = {}
try:
    for model in models:
        for m in sorted(ms):
            configs[(model, m)] = TrainConfig(
                dataset=dataset, objective=MODELS[model], noise=noise, noise_level=float(level),
                num_corruptions=int(m), num_samples=int(num_samples), latent_dim=int(latent_dim),
                epochs=int(epochs), lr=float(lr), seed=int(seed), max_train_examples=int(max_examples) or None,
            )
except ValueError as err:
    st.error(f"These runs cannot be trained: {err}")
    configs = {}
missing_message = None
if not offline.get(dataset):
    _, missing_message = cache.try_dataset(dataset)
    if missing_message:
        st.error(f"The **{dataset}** dataset is not on this machine. {missing_message}")

slots = registry.max_concurrent
st.caption(f"At most {slots} run(s) train at once on this server (shared by everyone using it); the others wait "
           "in a queue and start by themselves as slots free up. Stop any of them from the list below.")
launch = st.button(f"Launch {len(configs)} run(s)", type="primary", icon=":material/play_arrow:", key="bvm_launch",
                   disabled=not configs or missing_message is not None)
if launch and configs:
    data, message = cache.try_dataset(dataset)
    if data is None:
        st.error(message)
    else:
        batch = time.strftime("%Y%m%d-%H%M%S")
        launched = 0
        try:
            for (_, m), config in configs.items():
                # quick evaluation: this page compares bounds over epochs; a run's full test evaluation
                # (standard, minutes on a CPU) is one click away on the Train page
                registry.submit(config, owner=owner, dataset=data, queue=True, evaluation="quick",
                                name=f"{PREFIX}{batch}-{config.objective}-m{m}")
                launched += 1
        except JobLimitError as err:
            st.error(f"Launched {launched} of {len(configs)} runs; the rest were refused: {err}")
        st.session_state["bvm_batch"] = f"{PREFIX}{batch}-"

# --- which curves: this session's latest batch (live) plus any saved runs ------------------------------
files = cache.checkpoint_files()
infos = {p: cache.checkpoint_info(p) for p in files}
# by id ("user/<name>" for your runs, see dvae_engine.store); launched batches are recognised by file name
drawable = {cache.checkpoint_id(p): p for p, info in infos.items()
            if not info["error"] and info["history"].get("epoch")}
jobs = [j for j in registry.list(owner) if j.name.startswith(PREFIX)]
batch = st.session_state.get("bvm_batch") or (jobs[0].name[:len(PREFIX) + 16] if jobs else None)

url_runs = params.get("runs", None, cast=lambda s: [r for r in s.split(",") if r in drawable])
if "bvm_saved" not in st.session_state:
    if url_runs is not None:
        st.session_state["bvm_saved"] = url_runs
    elif not jobs:
        # a fresh session: draw the newest batch launched here that is on disk
        names = {s: p.stem for s, p in drawable.items()}
        batches = sorted({n[:len(PREFIX) + 16] for n in names.values() if n.startswith(PREFIX)})
        st.session_state["bvm_saved"] = [s for s in drawable if batches and names[s].startswith(batches[-1])]
    else:
        st.session_state["bvm_saved"] = []
st.session_state["bvm_saved"] = [s for s in st.session_state["bvm_saved"] if s in drawable]
saved = st.multiselect("Saved runs to draw (their stored histories draw at once)", list(drawable), key="bvm_saved",
                       format_func=lambda s: f"{s} — {infos[drawable[s]]['config'].describe()}")
params.put(runs=",".join(saved))


def curves_of(batch_jobs, saved_stems) -> list:
    curves, labels = [], set()
    live_paths = {j.checkpoint_path for j in batch_jobs if j.checkpoint_path}
    sources = [(j.config, j.history, True, j.name) for j in batch_jobs]
    sources += [(infos[drawable[s]]["config"], infos[drawable[s]]["history"], False, s) for s in saved_stems
                if str(drawable[s]) not in live_paths]
    for config, history, live, name in sources:
        label = f"{config.model_name} M={config.num_corruptions}"
        if label in labels:
            label = f"{label} · {name}"
        labels.add(label)
        curves.append(view.Curve(label, config.model_name, config.num_corruptions, history, live))
    return curves


def render() -> list:
    now = [j for j in registry.list(owner) if j.name.startswith(PREFIX)]
    batch_jobs = sorted((j for j in now if batch and j.name.startswith(batch)),
                        key=lambda j: (j.config.objective, j.config.num_corruptions))
    curves = curves_of(batch_jobs, saved)
    if curves and any(c.history.get("epoch") for c in curves):
        figure = view.bound_vs_m_figure(curves)
        st.plotly_chart(figure, key="bvm-figure")
        figures.html_download(figure, "bound-vs-M", "bvm-figure")
    elif batch_jobs:
        st.info("The curves appear after each run's first epoch.")
    else:
        st.info("Launch the runs above, or pick saved runs to draw.")
    if batch_jobs:
        st.subheader("This batch of runs")
        for job in batch_jobs:
            view.render_job(job, registry, curves=False)
    return now


view.live_jobs(render, jobs)
