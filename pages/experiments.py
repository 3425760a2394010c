"""Experiments: a Ray Tune run of the paper's grids as it fills — heat map, curves per seed, the paper beside ours."""

import time
from pathlib import Path

import streamlit as st

from experiments.experiment_io import METRICS, ExperimentError, experiment_cells, progress, table_meta
from experiments.harness import table_markdown
from ui import cache, params
from ui.boot import run_through_app
from ui.experiment_figures import cell_curves, heatmap

run_through_app()  # a shared link on a fresh server must still go through app.py

REFRESH_SECONDS = 5.0
OTHER = "another folder…"
METRIC_NAMES = {**METRICS, "valid": "−clean validation bound, last epoch (fills in while training)"}
COMMAND = ("python experiments/reproduce_table1.py --epochs 3280 --lr-schedule iwae "
           "--seeds 0 1 2 3 4 5 6 7 8 9 --eval-examples 0   # add --address auto on a Ray cluster")

st.title("Experiments")
st.markdown(
    "The paper's grids run as **Ray Tune** experiments, one trial per (cell, seed), on this machine or a cluster "
    "(`experiments/tune.py`). Open an experiment folder to see the grid fill in: a heat map of the cells, each "
    f"cell's curves for every seed, and the paper's value beside ours. While it runs, this page follows it "
    f"(every {REFRESH_SECONDS:g} s)."
)

root = cache.experiments_root()
found = cache.experiment_folders(str(root))
chosen = params.get("folder", found[0] if found else "")
options = [*found, OTHER]
index = options.index(chosen) if chosen in options else len(options) - 1
choice = st.selectbox("Experiment", options, index=index, key="exp-folder",
                      format_func=lambda p: p if p == OTHER else f"{Path(p).name}   ({Path(p).parent})",
                      help=f"Experiments found under `{root}` (set `DVAE_EXPERIMENTS_DIR` to list another folder)")
if choice == OTHER:
    folder = st.text_input("Experiment folder", value="" if chosen in found else chosen, key="exp-path",
                           placeholder="/path/to/ray_results/table1-mnist-3280ep").strip()
else:
    folder = choice

if not folder:
    st.info(f"No experiment under `{root}` yet. Start one, and open this page to watch it:")
    st.code(COMMAND, language="bash")
    st.stop()
try:
    opened = cache.experiment(folder)
except ExperimentError as err:
    st.error(f"Cannot open `{folder}`: {err}")
    st.stop()
params.put(folder=folder)


def show(folder: str, was_running: bool) -> None:
    view = cache.experiment(folder)
    if was_running and not view.running:
        st.rerun()  # the experiment ended (or its driver is gone): redraw once, without the auto-refresh
    counts = progress(view)
    total = view.total_runs
    meta = view.meta
    st.subheader(f"{view.name}")
    st.caption(f"Grid **{view.grid or '—'}**: {len(view.cells)} cells × {len(view.seeds)} seed(s). Budget: "
               f"{meta.get('epochs')} epochs on {meta.get('train_examples')} {meta.get('dataset')} training "
               f"examples; evaluated on {meta.get('eval_examples')} clean test examples with k = "
               f"{meta.get('importance_samples')}; {meta.get('machine', '')}. Folder: `{view.path}`")
    parts = [f"{counts['finished']} of {total} runs evaluated"]
    parts += [f"{counts[k]} {name}" for k, name in (("running", "training"), ("pending", "waiting"),
                                                     ("stopped", "stopped"), ("error", "failed")) if counts[k]]
    st.progress(counts["finished"] / max(total, 1), text=" · ".join(parts))
    if view.running:
        st.info(f"Running: the driver reported {max(0, int(time.time() - view.updated))} s ago; "
                "this view refreshes by itself.", icon=":material/autorenew:")
    elif view.state == "finished" and counts["finished"] == total:
        st.success("Finished: every run trained and evaluated.", icon=":material/check_circle:")
    else:
        st.warning("Not running (stopped, or its driver is gone). Run the same command again to resume it: finished "
                   "trials are kept, the others continue from their last checkpoint.", icon=":material/pause_circle:")

    metrics = list(METRIC_NAMES)
    default = "nll" if counts["finished"] else "valid"
    metric = params.get("metric", default, choices=metrics)
    metric = st.radio("Colour the grid by", metrics, index=metrics.index(metric), horizontal=True, key="exp-metric",
                      format_func=METRIC_NAMES.get)
    params.put(metric=metric)
    st.plotly_chart(heatmap(view, metric, METRIC_NAMES[metric]), width="stretch", key="exp-heatmap")
    st.caption("Each cell: our mean (± std over seeds), the paper's value (a −test bound; MNIST grids only) and "
               "how many seeds finished. Lower is better for every number here (nats per example).")

    labels = [c["label"] for c in view.cells]
    started = [label for label in labels if any(r.epochs_done for r in view.runs_of(label))]
    cell = params.get("cell", (started or labels)[0], choices=labels)
    cell = st.selectbox("Cell", labels, index=labels.index(cell), key="exp-cell")
    params.put(cell=cell)
    st.plotly_chart(cell_curves(view, cell), width="stretch", key="exp-curves")
    rows = [{"seed": r.seed, "status": r.status, "epochs": r.epochs_done, "restarts": r.restarts,
             **{name: (r.final or {}).get(key) for key, name in METRICS.items()},
             "objective > log p(x)": (r.final or {}).get("num_above")} for r in view.runs_of(cell)]
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch")
    else:
        st.caption("No run of this cell has started yet.")

    with st.expander("The table (RESULTS.md format)", expanded=counts["finished"] == total):
        st.markdown(table_markdown(experiment_cells(view), table_meta(view)))
        st.caption(f"The same as `python -m experiments.tune table {view.path}` writes (csv, md, json).")


st.fragment(run_every=REFRESH_SECONDS if opened.running else None)(show)(folder, opened.running)
