"""DVAE against the mixture objectives: DVAE, DVAE-mix, DIWAE, DIWAE-mix at the same M, K, noise and budget.

    DVAE_DATA_DIR=/work/shared/data python experiments/semi_implicit.py \\
        --epochs 20 --seeds 0 --eval-examples 500 --threads 1

Every model trains on binarized MNIST with salt-and-pepper noise (10 % by default),
M = 5 corrupted copies and K = 1 sample per copy, the same seeds, epochs and data, with
the plain training loop. Each is then evaluated on the same random clean test rows:

* ``nll`` — −log p(x) by the comparison estimator of :func:`dvae_engine.evaluation.evaluate`
  (defensive-mixture importance sampling at the run's own noise, k = ``--importance-samples``),
  with ``nll_is`` the plain estimate from q(z|x) beside it, the clean ``neg_elbo`` and the
  run's own training objective on clean test inputs (``neg_train_objective``);
* paired differences to DVAE of the same seed, example by example on the same rows (mean ±
  standard error over the rows), so that model differences are not drowned by the spread
  of log p(x) over images;
* the bridge of :mod:`dvae_engine.semi_implicit` on the first ``--bridge-examples`` rows:
  L⁽⁰⁾ (the DVAE objective), L⁽ᴷ⁾ and U⁽ᴷ⁾ at K = ``--bridge-max-k`` and U⁽¹⁾ (the
  independent reading), i.e. the mixture ELBO L_cvae bracketed, and the KL gap L_cvae − L_dvae.

Writes ``experiments/results/semi_implicit.{json,md}``; a run that stops part-way keeps its
finished models in the JSON and continues from there when started again with the same budget
(more seeds can be added that way: ``--seeds 0 1`` after ``--seeds 0`` trains only seed 1).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dvae_engine.data import load_dataset, random_rows  # noqa: E402
from dvae_engine.evaluation import evaluate, training_objective_kwargs  # noqa: E402
from dvae_engine.semi_implicit import bridge_report, default_ks  # noqa: E402
from dvae_engine.training import TrainConfig, train  # noqa: E402
from experiments.harness import machine_description  # noqa: E402

OBJECTIVES = ("dvae", "dvae-mix", "diwae", "diwae-mix")
LABELS = {"dvae": "DVAE", "dvae-mix": "DVAE-mix", "diwae": "DIWAE", "diwae-mix": "DIWAE-mix"}


def build_configs(args) -> list[TrainConfig]:
    return [TrainConfig(dataset=args.dataset, objective=objective, noise="salt-pepper", noise_level=args.noise_level,
                        num_corruptions=args.num_corruptions, num_samples=args.num_samples, epochs=args.epochs,
                        seed=seed, max_train_examples=args.max_train, max_valid_examples=1000, device="cpu")
            for seed in args.seeds for objective in OBJECTIVES]


def budget(args) -> dict:
    keys = ("dataset", "epochs", "max_train", "noise_level", "num_corruptions", "num_samples", "eval_examples",
            "importance_samples", "bridge_examples", "bridge_max_k", "bridge_repeats")
    return {k: getattr(args, k) for k in keys}


def run_one(config: TrainConfig, dataset, x_test, args, log) -> dict:
    started = time.time()
    result = train(config, dataset, on_epoch=lambda r: log(
        f"    epoch {r.epoch}/{r.epochs}: objective {r.train_objective:.2f}, valid ELBO {r.valid_elbo:.2f} "
        f"({r.seconds:.0f} s)"))
    train_seconds = time.time() - started
    model = result.model
    mean_image = dataset.train_mean()
    metrics = evaluate(model, x_test, importance_samples=args.importance_samples, config=config,
                       training_objective=training_objective_kwargs(config, mean_image), per_example=True,
                       seed=config.seed)
    rows = metrics.pop("per_example")
    bridge = bridge_report(model, x_test[:args.bridge_examples], config, ks=default_ks(args.bridge_max_k),
                           repeats=args.bridge_repeats, seed=config.seed,
                           log_px=-rows["nll"][:args.bridge_examples])
    ks = list(bridge["ks"])
    run = {
        "objective": config.objective,
        "seed": config.seed,
        "describe": config.describe(),
        "status": result.status,
        "epochs": result.epochs_done,
        "train_seconds": train_seconds,
        "eval_seconds": time.time() - started - train_seconds,
        "final_train_objective": result.history["train_objective"][-1],
        "final_valid_elbo": result.history["valid_elbo"][-1],
        **{k: metrics[k] for k in ("nll", "nll_stderr", "nll_method", "nll_mix", "nll_is", "nll_is_stderr",
                                   "neg_elbo", "neg_elbo_stderr", "neg_train_objective",
                                   "neg_train_objective_stderr", "mixture_noise", "mixture_level")},
        "per_example_nll": rows["nll"].tolist(),
        "per_example_nll_is": rows["nll_is"].tolist(),
        "bridge": {
            "examples": bridge["num_examples"],
            "ks": ks,
            "lower0": float(bridge["mean_lower0"]), "lower0_se": float(bridge["mean_lower0_mc_stderr"]),
            "lower": bridge["mean_lower"].tolist(), "lower_se": bridge["mean_lower_mc_stderr"].tolist(),
            "upper": bridge["mean_upper"].tolist(), "upper_se": bridge["mean_upper_mc_stderr"].tolist(),
            "kl_gap_low": bridge["kl_gap_low"], "kl_gap_high": bridge["kl_gap_high"],
            "kl_gap_low_se": float(bridge["mean_lower_gain_mc_stderr"][-1]),
            "kl_gap_high_se": float(bridge["mean_upper_gain_mc_stderr"][-1]),
            "log_px": bridge["mean_log_px"],
        },
    }
    log(f"  {LABELS[config.objective]} seed {config.seed}: −log p(x) {run['nll']:.2f} (plain {run['nll_is']:.2f}), "
        f"−ELBO {run['neg_elbo']:.2f}, L_cvae in [{run['bridge']['lower'][-1]:.2f}, {run['bridge']['upper'][-1]:.2f}]"
        f", KL gap in [{run['bridge']['kl_gap_low']:.2f}, {run['bridge']['kl_gap_high']:.2f}]  "
        f"(train {train_seconds:.0f} s, eval {run['eval_seconds']:.0f} s)")
    return run


def paired(runs: list[dict], key: str = "per_example_nll", base_of=lambda objective: "dvae") -> dict:
    """Per seed, each objective's −log p(x) minus its base's (DVAE's by default) on the same rows: mean ± s.e.
    over rows."""
    out: dict = {}
    for run in runs:
        base_name = base_of(run["objective"])
        base = next((r for r in runs if r["seed"] == run["seed"] and r["objective"] == base_name), None)
        if base is None or run["objective"] == base_name:
            continue
        diff = torch.tensor(run[key]) - torch.tensor(base[key])
        out.setdefault(run["objective"], []).append(
            {"seed": run["seed"], "mean": float(diff.mean()), "stderr": float(diff.std() / math.sqrt(len(diff)))})
    return out


def write_outputs(meta: dict, runs: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    diffs = paired(runs)
    diffs_plain = paired(runs, "per_example_nll_is")
    mix_vs_plain = paired(runs, base_of=lambda objective: objective.removesuffix("-mix"))
    (out / "semi_implicit.json").write_text(json.dumps({"meta": meta, "runs": runs, "paired_vs_dvae": diffs,
                                                         "paired_vs_dvae_plain": diffs_plain,
                                                         "paired_mix_vs_plain_form": mix_vs_plain}, indent=1))
    b = meta["budget"]
    lines = [
        "# DVAE vs the mixture objectives (semi-implicit and importance-weighted), same M, K, noise, budget",
        "",
        f"{b.get('dataset', 'mnist')} (binarized), salt-and-pepper {100 * b['noise_level']:g} %, "
        f"M = {b['num_corruptions']}, "
        f"K = {b['num_samples']}, 2-layer MLP encoder, z = 50, Adam lr 1e-3, batch 100; "
        f"{b['epochs']} epochs on {b['max_train'] or 'all the'} training images; "
        f"seeds {sorted({r['seed'] for r in runs})}. "
        f"Machine: {meta['machine']}. Wall time {meta['seconds'] / 60:.0f} min.",
        "",
        f"Evaluated on the same {b['eval_examples']} random clean test images: −log p(x) by "
        f"`evaluate(..., config=...)` (defensive-mixture IS at the run's noise, k = {b['importance_samples']}); "
        "the plain IS estimate (q(z|x) alone, same k) beside it; the clean −ELBO; the run's own objective on "
        "clean test inputs. Nats per example, lower is better; ± is the standard error over test images.",
        "",
        "| objective | seed | −log p(x) | plain IS | −ELBO | −training objective | "
        "Δ −log p(x) vs DVAE (paired) | Δ −log p(x), -mix vs its plain form (paired) |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def delta(table: dict, run: dict) -> str:
        diff = next((d for d in table.get(run["objective"], []) if d["seed"] == run["seed"]), None)
        return "—" if diff is None else f"{diff['mean']:+.2f} ± {diff['stderr']:.2f}"

    for run in sorted(runs, key=lambda r: (r["seed"], OBJECTIVES.index(r["objective"]))):
        lines.append(f"| {LABELS[run['objective']]} | {run['seed']} | {run['nll']:.2f} ± {run['nll_stderr']:.2f} | "
                     f"{run['nll_is']:.2f} | {run['neg_elbo']:.2f} | {run['neg_train_objective']:.2f} | "
                     f"{delta(diffs, run)} | {delta(mix_vs_plain, run)} |")
    seeds = sorted({r["seed"] for r in runs})
    if len(seeds) > 1:
        lines += ["", f"Mean over seeds {seeds} (± half the range between seeds):", "",
                  "| objective | −log p(x) | Δ vs DVAE | −ELBO | −training objective |", "|---|---|---|---|---|"]
        for objective in OBJECTIVES:
            rows = [r for r in runs if r["objective"] == objective]
            if len(rows) < 2:
                continue
            ds = [d["mean"] for d in diffs.get(objective, [])]

            def mean_range(values):
                return f"{sum(values) / len(values):.2f} ± {(max(values) - min(values)) / 2:.2f}"

            lines.append(f"| {LABELS[objective]} | {mean_range([r['nll'] for r in rows])} | "
                         f"{mean_range(ds) if ds else '—'} | {mean_range([r['neg_elbo'] for r in rows])} | "
                         f"{mean_range([r['neg_train_objective'] for r in rows])} |")
    lines += [
        "",
        f"The bridge on the first {b['bridge_examples']} of those images ({b['bridge_repeats']} replicates each; "
        f"K = {b['bridge_max_k']}): L⁽⁰⁾ is the DVAE objective (joint reading), U⁽¹⁾ the independent reading, "
        "and L_cvae (the ELBO of the mixture posterior) lies between L⁽ᴷ⁾ and U⁽ᴷ⁾; the gap "
        "L_cvae − L_dvae = E KL(q(z|x̃) ‖ q̃(z|x)) lies between L⁽ᴷ⁾ − L⁽⁰⁾ and U⁽ᴷ⁾ − L⁽⁰⁾ (same draws). "
        "log p(x) is the −log p(x) estimate of the first table on those images. ± are Monte Carlo standard errors.",
        "",
        "| objective | seed | log p(x) | U⁽¹⁾ | U⁽ᴷ⁾ | L⁽ᴷ⁾ | L⁽⁰⁾ = L_dvae | KL gap L_cvae − L_dvae |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in sorted(runs, key=lambda r: (r["seed"], OBJECTIVES.index(r["objective"]))):
        br = run["bridge"]
        lines.append(
            f"| {LABELS[run['objective']]} | {run['seed']} | {br['log_px']:.2f} | {br['upper'][0]:.2f} | "
            f"{br['upper'][-1]:.2f} ± {br['upper_se'][-1]:.2f} | {br['lower'][-1]:.2f} ± {br['lower_se'][-1]:.2f} | "
            f"{br['lower0']:.2f} | [{br['kl_gap_low']:.2f}, {br['kl_gap_high']:.2f}] |")
    (out / "semi_implicit.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist", help="a binary dataset (digits: a quick check)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--max-train", type=int, default=None, help="training images (default: all 50 000)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--noise-level", type=float, default=0.1)
    parser.add_argument("--num-corruptions", type=int, default=5)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--eval-examples", type=int, default=1000)
    parser.add_argument("--importance-samples", type=int, default=5000)
    parser.add_argument("--bridge-examples", type=int, default=100)
    parser.add_argument("--bridge-max-k", type=int, default=256)
    parser.add_argument("--bridge-repeats", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results")
    parser.add_argument("--tables-only", action="store_true", help="rewrite the markdown from the JSON")
    args = parser.parse_args(argv)
    json_path = args.out / "semi_implicit.json"
    if args.tables_only:
        saved = json.loads(json_path.read_text())
        write_outputs(saved["meta"], saved["runs"], args.out)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = load_dataset(args.dataset, args.data_dir)
    x_test = random_rows(dataset.test, args.eval_examples) if args.eval_examples else dataset.test
    meta = {"budget": budget(args), "machine": machine_description("cpu"), "seconds": 0.0,
            "command": "python experiments/semi_implicit.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    runs: list[dict] = []
    if json_path.is_file():
        saved = json.loads(json_path.read_text())
        saved["meta"]["budget"] = {"dataset": "mnist", **saved["meta"]["budget"]}  # files written before --dataset
        if saved["meta"]["budget"] == meta["budget"]:  # the same budget: keep its runs (any seeds)
            runs, meta["seconds"] = saved["runs"], saved["meta"]["seconds"]
            meta["command"] = saved["meta"]["command"] + " ; " + meta["command"]
            print(f"continuing: {len(runs)} models already done")
    for config in build_configs(args):
        if any(r["objective"] == config.objective and r["seed"] == config.seed for r in runs):
            continue
        started = time.time()
        print(f"training {config.describe()} seed {config.seed}", flush=True)
        runs.append(run_one(config, dataset, x_test, args, lambda text: print(text, flush=True)))
        meta["seconds"] += time.time() - started
        write_outputs(meta, runs, args.out)
    write_outputs(meta, runs, args.out)


if __name__ == "__main__":
    main()
