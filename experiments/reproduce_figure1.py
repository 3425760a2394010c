"""Reproduce the paper's Figure 1: DVAE and DIWAE with M = 1, 5, 10 corrupted copies, bound over epochs.

    python experiments/reproduce_figure1.py --epochs 50                       # Ray Tune: one trial per run
    python experiments/reproduce_figure1.py --epochs 50 --no-ray              # the vmap sweep, in this process
    python experiments/reproduce_figure1.py --dataset digits --epochs 3   # smoke run

Writes ``experiments/results/figure1.{json,csv,html,png}``: per epoch, the
training objective (on corrupted inputs, nats per example) and the clean
validation bound (ELBO for DVAE; IWAE with M·K samples for DIWAE).
The PNG needs kaleido and a Chrome/Chromium; the HTML and data are always written.
With Ray (the default; see experiments/tune.py) every run is a trial that can be watched on
the app's Experiments page, and ``figure1-table.{csv,md,json}`` (each run evaluated on clean
test data) are written too.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dvae_engine.data import load_dataset  # noqa: E402
from dvae_engine.sweep import train_sweep  # noqa: E402
from experiments import grids  # noqa: E402
from experiments.experiment_io import HISTORY_KEYS, read_experiment  # noqa: E402
from experiments.harness import machine_description  # noqa: E402
from experiments.tune import add_ray_arguments, experiment_name, run_experiment, write_experiment_tables  # noqa: E402

COLOURS = {1: "#0072B2", 5: "#E69F00", 10: "#009E73"}  # Okabe–Ito


def build_figure(runs: list[dict], title: str):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = ("Training objective (corrupted inputs)", "Clean validation bound (DVAE: ELBO; DIWAE: IWAE, M·K samples)")
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles)
    for run in runs:
        dash = "solid" if run["objective"] == "dvae" else "dash"
        name = f"{run['objective'].upper()} M={run['M']}"
        h = run["history"]
        valid = h["valid_iwae"] if run["objective"] == "diwae" else h["valid_elbo"]
        for col, values in ((1, h["train_objective"]), (2, valid)):
            fig.add_trace(go.Scatter(x=h["epoch"], y=values, name=name, legendgroup=name, showlegend=col == 1,
                                     line=dict(color=COLOURS.get(run["M"], "#CC79A7"), dash=dash)), row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text="nats per example")
    fig.update_layout(title=title, template="plotly_white", font=dict(size=15), height=480, width=1100)
    return fig


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--noise-level", type=float, default=0.10)
    parser.add_argument("--num-corruptions", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--encoder-layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-train-examples", type=int, default=None)
    parser.add_argument("--max-valid-examples", type=int, default=2000)
    parser.add_argument("--eval-examples", type=int, default=500, help="with Ray: clean test rows each run is "
                                                                           "evaluated on (0: all)")
    parser.add_argument("--importance-samples", type=int, default=1000, help="with Ray: k of the -log p(x) estimate")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--sweep", action="store_true", help="with Ray: the whole figure as one vmap trial")
    parser.add_argument("--fresh", action="store_true", help="with Ray: delete an experiment of the same name")
    add_ray_arguments(parser, "figure1")
    args = parser.parse_args(argv)

    dataset = load_dataset(args.dataset, binarization="static")
    cells = grids.figure1(dataset=args.dataset, num_corruptions=args.num_corruptions, noise_level=args.noise_level,
                          encoder_layers=args.encoder_layers, num_samples=args.num_samples, epochs=args.epochs,
                          device=args.device, max_train_examples=args.max_train_examples,
                          max_valid_examples=args.max_valid_examples)
    configs = [c.config.replace(seed=args.seed) for c in cells]
    train_n = min(args.max_train_examples or len(dataset.train), len(dataset.train))
    if args.ray:
        meta = {"epochs": args.epochs, "seeds": [args.seed], "dataset": args.dataset, "train_examples": train_n,
                "eval_examples": min(args.eval_examples or len(dataset.test), len(dataset.test)),
                "importance_samples": args.importance_samples}
        folder = run_experiment(
            cells, [args.seed], meta, name=experiment_name(args, "figure1"), grid="figure1", storage=args.storage,
            address=args.address, num_cpus=args.num_cpus, cpus_per_trial=args.cpus_per_trial,
            gpus_per_trial=args.gpus_per_trial, sweep=args.sweep, max_failures=args.max_failures,
            max_concurrent=args.max_concurrent, checkpoint_every=args.checkpoint_every, fresh=args.fresh)
        write_experiment_tables(folder, args.out, "figure1-table")
        view = read_experiment(folder)
        histories = {r.cell: r.history for r in view.runs}
        runs = [{"objective": c.config.objective, "M": c.config.num_corruptions, "K": c.config.num_samples,
                 "config": config.to_dict(), "history": histories.get(c.label) or {k: [] for k in HISTORY_KEYS}}
                for c, config in zip(cells, configs)]
    else:
        results = train_sweep(configs, dataset, on_epoch=lambda i, r: print(
            f"{configs[i].describe()}: epoch {r.epoch} objective {r.train_objective:.2f} valid {r.valid_elbo:.2f}",
            flush=True))
        runs = [{"objective": c.objective, "M": c.num_corruptions, "K": c.num_samples, "config": c.to_dict(),
                 "history": r.history} for c, r in zip(configs, results)]
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"dataset": args.dataset, "epochs": args.epochs, "train_examples": train_n,
            "machine": machine_description(args.device), "noise_level": args.noise_level}
    (args.out / "figure1.json").write_text(json.dumps({"meta": meta, "runs": runs}, indent=1))
    with (args.out / "figure1.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["objective", "M", "K", "epoch", "train_objective", "valid_elbo", "valid_iwae", "seconds"])
        for run in runs:
            h = run["history"]
            for i, epoch in enumerate(h["epoch"]):
                writer.writerow([run["objective"], run["M"], run["K"], epoch, h["train_objective"][i],
                                 h["valid_elbo"][i], h["valid_iwae"][i], h["seconds"][i]])
    title = (f"Figure 1 reproduction: {args.dataset}, salt-and-pepper {100 * args.noise_level:g}%, "
             f"{args.epochs} epochs on {train_n} examples")
    fig = build_figure(runs, title)
    fig.write_html(args.out / "figure1.html", include_plotlyjs="cdn")
    try:
        fig.write_image(args.out / "figure1.png", scale=1)
    except Exception as err:  # noqa: BLE001 — kaleido needs a browser; the HTML and data are enough
        print(f"PNG not written ({type(err).__name__}: {err}); the HTML and data are", file=sys.stderr)
    print(f"wrote {args.out / 'figure1.html'}")


if __name__ == "__main__":
    main()
