"""Shared machinery of the reproduction scripts: train a grid with the sweep, evaluate honestly, write tables.

Every model is evaluated on CLEAN test data with three numbers, each mean ± std
over seeds, in nats per example:

* ``neg_test_bound`` — the quantity the paper reports: the negative test bound
  of the model's own type on clean inputs (ELBO for VAE/DVAE rows, the IWAE
  bound with the run's K for IWAE/DIWAE rows);
* ``nll`` — −log p(x), the number models are compared by: importance sampling (k = 5000
  by default) from the defensive mixture proposal ½ q(z|x) + ½ mean of q(z|x̃) of
  :mod:`dvae_engine.evaluation` (exact quadrature for 2-D latents), with ``nll_plain``
  the plain estimate from q(z|x) alone beside it;
* ``neg_objective`` — the run's training objective on clean test inputs with its
  own corruption, M and K (the quantity optimised), with ``gap`` = log p(x) minus
  its value and ``num_above`` = examples where the objective exceeds log p(x) (the
  ``nll`` estimate) by more than 3 Monte Carlo standard errors
  (see :func:`dvae_engine.boundlab.objective_vs_loglik`).
"""

from __future__ import annotations

import csv
import json
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from dvae_engine.boundlab import objective_vs_loglik
from dvae_engine.data import Dataset, random_rows
from dvae_engine.evaluation import evaluate, training_objective_kwargs
from dvae_engine.objectives import is_importance_weighted
from dvae_engine.sweep import plan_groups, train_sweep
from dvae_engine.training import TrainConfig, resolve_device, train


@dataclass
class Cell:
    """One row of a results table: a configuration (minus its seed) and what the paper reports for it."""

    label: str
    config: TrainConfig
    paper: tuple[float, float] | None = None  # (mean, std) from dvae_engine.paper
    runs: list[dict] = field(default_factory=list)


def machine_description(device: str) -> str:
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        return f"{torch.cuda.get_device_name(resolved)} (CUDA), torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    return f"CPU {cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}"


def run_grid(
    cells: Sequence[Cell],
    dataset: Dataset,
    seeds: Sequence[int],
    eval_examples: int,
    importance_samples: int,
    repeats: int = 8,
    log=print,
    *,
    sweep: bool = True,
    on_cell_done=None,
) -> float:
    """Train every cell for every seed, evaluate each model as soon as it is trained; returns seconds.

    ``sweep=True`` batches the compatible cells of a seed (one group of the sweep at a time; fastest on a
    GPU); ``sweep=False`` trains them one by one with the plain loop (faster on a small CPU). Cells that
    already hold a run for a seed (restored with :func:`restore_runs`) are skipped, and
    ``on_cell_done()`` is called after each evaluated model, so an interrupted grid loses at most the
    group in training.
    """
    started = time.time()
    x_test = random_rows(dataset.test, eval_examples) if eval_examples else dataset.test
    for seed in seeds:
        pending = [i for i, c in enumerate(cells) if not any(r["seed"] == seed for r in c.runs)]
        if not pending:
            continue
        log(f"seed {seed}: training {len(pending)} models" + (f" ({len(cells) - len(pending)} done before)"
                                                             if len(pending) < len(cells) else ""))
        configs = {i: cells[i].config.replace(seed=seed) for i in pending}
        batches = ([[pending[j] for j in g.indices] for g in plan_groups(list(configs.values()))] if sweep
                   else [[i] for i in pending])
        for batch in batches:
            batch_configs = [configs[i] for i in batch]

            def report(j: int, r, batch=batch) -> None:
                if r.epoch == r.epochs or r.epoch % 10 == 0:
                    log(f"  {cells[batch[j]].label}: epoch {r.epoch}/{r.epochs} valid ELBO {r.valid_elbo:.2f}")

            if sweep:
                results = train_sweep(batch_configs, dataset, on_epoch=report)
            else:
                results = [train(batch_configs[0], dataset, on_epoch=lambda r: report(0, r))]
            for i, config, result in zip(batch, batch_configs, results):
                cells[i].runs.append(_evaluate_run(cells[i], config, result, x_test, dataset, importance_samples,
                                                   repeats, log))
                if on_cell_done is not None:
                    on_cell_done()
    return time.time() - started


def _evaluate_run(cell: Cell, config: TrainConfig, result, x_test, dataset: Dataset, importance_samples: int,
                  repeats: int, log) -> dict:
    device = next(result.model.parameters()).device
    kwargs = training_objective_kwargs(config, dataset.train_mean().to(device))
    k = config.num_samples * config.num_corruptions
    iw = is_importance_weighted(config.objective)
    bound = evaluate(result.model, x_test, importance_samples=0, iwae_samples=(k,) if iw else ())
    neg_bound = bound[f"neg_iwae_{k}"] if iw else bound["neg_elbo"]
    versus = objective_vs_loglik(result.model, x_test, kwargs, importance_samples=importance_samples,
                                 repeats=repeats, seed=config.seed, config=config,
                                 exact_2d=result.model.latent_dim == 2)
    run = {
        "seed": config.seed,
        "status": result.status,
        "epochs": result.epochs_done,
        "final_valid_elbo": result.history["valid_elbo"][-1] if result.history["valid_elbo"] else math.nan,
        "neg_test_bound": neg_bound,
        "nll": -float(versus["log_px"].mean()),
        "nll_method": versus["log_px_method"],
        "nll_plain": -float(versus["log_px_plain"].mean()),
        "neg_objective": -float(versus["objective"].mean()),
        "gap": versus["mean_gap"],
        "num_above": versus["num_above"],
        "history": result.history,
    }
    log(f"  {cell.label}: -bound {neg_bound:.2f}  -log p(x) {run['nll']:.2f} (plain {run['nll_plain']:.2f})  "
        f"-objective {run['neg_objective']:.2f}  above {run['num_above']}/{len(x_test)}")
    return run


def restore_runs(cells: Sequence[Cell], json_path: Path, meta: dict) -> float:
    """Put back the runs of an earlier, interrupted call with the same budget; returns its seconds.

    Runs are matched by label and only taken when the saved budget (epochs, data, evaluation) equals
    ``meta``'s, so a resumed table never mixes budgets.
    """
    if not json_path.exists():
        return 0.0
    saved = json.loads(json_path.read_text())
    keys = ("epochs", "dataset", "train_examples", "eval_examples", "importance_samples")
    if any(saved["meta"].get(k) != meta.get(k) for k in keys):
        return 0.0
    by_label = {c["label"]: c for c in saved["cells"]}
    for cell in cells:
        if cell.label in by_label and by_label[cell.label]["config"] == json.loads(json.dumps(cell.config.to_dict())):
            cell.runs = [r for r in by_label[cell.label]["runs"] if r["seed"] in meta["seeds"]]
    return float(saved["meta"].get("seconds", 0.0))


def _mean_std(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return mean, std


def _fmt(values: list[float]) -> str:
    mean, std = _mean_std(values)
    return f"{mean:.2f} ± {std:.2f}" if len(values) > 1 else f"{mean:.2f}"


def write_tables(cells: Sequence[Cell], out_dir: Path, name: str, meta: dict) -> tuple[Path, Path]:
    """Write ``<name>.csv`` (one row per cell and seed), ``<name>.md`` (mean ± std) and ``<name>.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / f"{name}.csv", out_dir / f"{name}.md"
    keys = ["seed", "status", "epochs", "final_valid_elbo", "neg_test_bound", "nll", "nll_plain", "neg_objective",
            "gap", "num_above"]
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "objective", "noise", "noise_level", "M", "K", "encoder_layers", "paper", *keys])
        for c in cells:
            for run in c.runs:
                writer.writerow([c.label, c.config.objective, c.config.noise, c.config.noise_level,
                                 c.config.num_corruptions, c.config.num_samples, c.config.encoder_layers,
                                 "" if c.paper is None else c.paper[0], *[run.get(k, "") for k in keys]])
    seeds = max((len(c.runs) for c in cells), default=0)
    lines = [
        f"| model | paper (−bound) | ours: −test bound | ours: −log p(x), mixture IS k={meta['importance_samples']} "
        f"| ours: −log p(x), plain IS from q(z\\|x) | ours: −training objective "
        f"| objective > log p(x) (examples) | seeds |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for c in cells:
        above = sum(r["num_above"] for r in c.runs)
        paper = "—" if c.paper is None else f"{c.paper[0]:.2f} ± {c.paper[1]:.2f}"
        if not c.runs:
            lines.append(f"| {c.label} | {paper} | not run yet | | | | | 0 |")
            continue
        exact = " (exact)" if any(r.get("nll_method") == "exact" for r in c.runs) else ""
        lines.append(
            f"| {c.label} | {paper} | {_fmt([r['neg_test_bound'] for r in c.runs])} | "
            f"{_fmt([r['nll'] for r in c.runs])}{exact} | {_fmt([r['nll_plain'] for r in c.runs])} | "
            f"{_fmt([r['neg_objective'] for r in c.runs])} | {above} / {meta['eval_examples'] * len(c.runs)} | "
            f"{len(c.runs)} |"
        )
    lines += [
        "",
        f"Budget: {meta['epochs']} epochs on {meta['train_examples']} training examples, {seeds} seed(s); "
        f"evaluated on {meta['eval_examples']} random clean test examples; {meta['machine']}; "
        f"{meta['seconds'] / 60:.1f} min in all. Numbers in nats per example (mean ± std over seeds). "
        "Paper values: the paper's table, mean ± std over its 10 runs.",
    ]
    md_path.write_text("\n".join(lines) + "\n")
    with (out_dir / f"{name}.json").open("w") as f:
        json.dump({"meta": meta, "cells": [{"label": c.label, "config": c.config.to_dict(), "paper": c.paper,
                                            "runs": c.runs} for c in cells]}, f, indent=1)
    return csv_path, md_path


def run_table(cells: Sequence[Cell], dataset: Dataset, meta: dict, out_dir: Path, name: str, *,
              sweep: bool | None = None, fresh: bool = False, log=print) -> Path:
    """Train, evaluate and write ``<name>.{csv,md,json}`` cell by cell, resuming an interrupted run.

    ``meta`` holds the budget (epochs, seeds, dataset, train/eval examples, importance samples, machine,
    device). The tables are rewritten after every evaluated model, so stopping loses at most one group.
    """
    earlier = 0.0 if fresh else restore_runs(cells, out_dir / f"{name}.json", meta)
    if sweep is None:
        sweep = resolve_device(meta.get("device", "auto")).type == "cuda"
    started = time.time()

    def write() -> Path:
        return write_tables(cells, out_dir, name, {**meta, "seconds": earlier + time.time() - started})[1]

    run_grid(cells, dataset, meta["seeds"], meta["eval_examples"], meta["importance_samples"], log=log,
             sweep=sweep, on_cell_done=write)
    return write()
