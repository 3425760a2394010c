"""The paper's experiments as Ray Tune experiments: one trial per (cell, seed), from a laptop to a cluster.

    python -m experiments.tune run table1 --epochs 3280 --lr-schedule iwae --seeds 0 1 2 3 4 5 6 7 8 9
    python -m experiments.tune run table1 ... --address auto        # on a running Ray cluster
    python -m experiments.tune table experiments/ray_results/<name>  # tables of a finished or partial experiment

Every trial trains one run epoch by epoch with the engine's exact resume
(:func:`dvae_engine.training.train` with ``resume=``): after each epoch it reports the epoch's
metrics to Tune and, every ``checkpoint_every`` epochs, a checkpoint holding the full run state
(weights, Adam, random state), so a worker that dies is retried from its last checkpoint
(``FailureConfig(max_failures=...)``) and an interrupted experiment resumes where it stopped
(``Tuner.restore``): finished trials are not trained again, and a resumed run gives the same
numbers as an uninterrupted one. After the last epoch the trial evaluates its model on clean test
data (:func:`experiments.harness.evaluate_run`) and reports the table row.

With ``sweep=True`` a trial instead trains a whole group of one seed's compatible cells at once
with the vmap sweep (:func:`dvae_engine.sweep.train_sweep`) on one device; such a trial has no
mid-run checkpoint (the sweep cannot resume) and restarts from scratch if its worker dies.

Without ``address`` (or ``$RAY_ADDRESS``) a local Ray is started for the experiment and stopped
after it. Trials ask for ``cpus_per_trial`` CPUs (and set torch's threads to match) and, where the
cluster has GPUs, a fraction of one (many small models share a GPU).

Ray is imported only inside the functions that need it: :mod:`dvae_engine` never imports it, and
the app reads experiment folders with :mod:`experiments.experiment_io` (plain JSON).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python experiments/tune.py` as well as `python -m experiments.tune`
    sys.path.insert(0, str(ROOT))

from experiments.experiment_io import (  # noqa: E402
    EXPERIMENT_FILE,
    FORMAT,
    FORMAT_VERSION,
    HEARTBEAT_SECONDS,
    PARAMS_FILE,
    RESULT_FILE,
    STATUS_FILE,
    ExperimentError,
    experiment_cells,
    read_experiment,
    table_meta,
)

DEFAULT_STORAGE = ROOT / "experiments" / "ray_results"
GPUS_PER_TRIAL = 0.125  # a one-stochastic-layer MLP uses a sliver of a GPU: 8 trials share one by default
LIVE_DROPPED = ("config", "date", "hostname", "node_ip", "checkpoint_dir_name", "should_checkpoint", "done",
                "time_since_restore", "time_this_iter_s")  # Tune's bookkeeping the live files need not repeat
IDENTITY_KEYS = ("epochs", "dataset", "train_examples", "eval_examples", "importance_samples", "repeats")
# what a cluster's workers do not need from this folder (runtime_env working_dir)
SHIP_EXCLUDES = [".git", "checkpoints", "runs", "tests", "docs", "bench", "experiments/ray_results",
                 "experiments/results", "**/__pycache__", "*.pt", "*.npz"]


def require_ray():
    """Import Ray, or exit with the install command."""
    try:
        import ray
        from ray import tune
    except ImportError:
        raise SystemExit("Ray Tune is not installed. Install the experiment extras: "
                         "python3 -m pip install -e '.[experiments]'  (or run the script with --no-ray)") from None
    return ray, tune


# ---------------------------------------------------------------------------------------------------------------
# inside a trial (a Ray worker)

_DATASETS: dict = {}


def _dataset(name: str, binarization: str, data_dir: str | None):
    """A dataset loaded once per worker process."""
    from dvae_engine.data import load_dataset

    key = (name, binarization, data_dir)
    if key not in _DATASETS:
        _DATASETS[key] = load_dataset(name, data_dir, binarization)
    return _DATASETS[key]


def _payload_from(checkpoint) -> dict | None:
    from dvae_engine.checkpoint import load_payload

    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        return load_payload(Path(folder) / "run.pt")


def _report_with_payload(tune, metrics: dict, payload: dict) -> None:
    from dvae_engine.checkpoint import save_payload

    with tempfile.TemporaryDirectory(prefix="dvae-ckpt-") as folder:
        save_payload(payload, Path(folder) / "run.pt")
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))


def _epoch_row(report) -> dict:
    from dvae_engine.training import HISTORY_KEYS

    return {**{k: getattr(report, k) for k in HISTORY_KEYS}, "epochs": report.epochs}


def _maybe_crash(fault: dict | None, epoch: int, batch: int) -> None:
    """Fault injection for the retry tests: the worker process exits once, inside epoch ``after_epoch + 1``.

    ``fault = {"after_epoch": n, "marker": path}``; the marker file makes it happen once only.
    """
    if fault and epoch == fault["after_epoch"] + 1 and batch >= 1 and not Path(fault["marker"]).exists():
        Path(fault["marker"]).write_text(f"worker {os.getpid()} exited in epoch {epoch}, batch {batch}\n")
        os._exit(1)


def cell_trial(params: dict) -> None:
    """Tune function trainable: one (cell, seed) run, reported per epoch, checkpointed, evaluated at the end.

    ``params["trial"]`` holds ``cell``, ``seed``, ``config`` (a TrainConfig dict with that seed),
    ``eval_examples``, ``importance_samples``, ``repeats``, ``threads``, ``checkpoint_every``,
    ``data_dir`` and, for tests only, ``fault``.
    """
    import torch
    from ray import tune

    from dvae_engine.checkpoint import make_payload
    from dvae_engine.data import random_rows
    from dvae_engine.training import TrainConfig, TrainingDivergedError, train
    from experiments.harness import Cell, evaluate_run

    p = params["trial"]
    torch.set_num_threads(int(p.get("threads", 1)))
    config = TrainConfig.from_dict(p["config"])
    dataset = _dataset(config.dataset, config.binarization, p.get("data_dir"))
    payload = _payload_from(tune.get_checkpoint())
    every = max(1, int(p.get("checkpoint_every", 1)))
    fault = p.get("fault")

    while True:
        stop = threading.Event()
        held: list = []

        def on_epoch(report, stop=stop, held=held) -> None:
            if report.epoch % every == 0 or report.epoch == report.epochs:
                held.append(report)  # reported below, with the checkpoint
                stop.set()  # train() stops before the next epoch's first batch, its position saved
            else:
                tune.report(_epoch_row(report))

        on_batch = (lambda b: _maybe_crash(fault, b.epoch, b.batch)) if fault else None
        try:
            result = train(config, dataset, resume=payload, stop_event=stop, on_epoch=on_epoch, on_batch=on_batch,
                           batch_report_every=1 if fault else 20)
        except TrainingDivergedError as err:
            result = err.result
        payload = make_payload(result, dataset.image_shape)
        if held:
            _report_with_payload(tune, _epoch_row(held[-1]), payload)
        if result.status != "stopped":
            break

    x_test = random_rows(dataset.test, p["eval_examples"]) if p["eval_examples"] else dataset.test
    run = evaluate_run(Cell(p["cell"], config), config, result, x_test, dataset, p["importance_samples"],
                       p["repeats"], log=lambda *_: None)
    run.pop("history")
    tune.report({"final": True, "epoch": result.epochs_done, "run": run})


def group_trial(params: dict) -> None:
    """Tune function trainable: a group of compatible runs trained together by the vmap sweep on one device.

    ``params["trial"]["members"]`` lists ``{"cell", "seed", "config"}``; each epoch reports every
    member's metrics under ``members``; the final row holds one evaluated run per member.
    """
    import torch
    from ray import tune

    from dvae_engine.data import random_rows
    from dvae_engine.sweep import train_sweep
    from dvae_engine.training import HISTORY_KEYS, TrainConfig
    from experiments.harness import Cell, evaluate_run

    p = params["trial"]
    torch.set_num_threads(int(p.get("threads", 1)))
    members = p["members"]
    configs = [TrainConfig.from_dict(m["config"]) for m in members]
    dataset = _dataset(configs[0].dataset, configs[0].binarization, p.get("data_dir"))
    buffer: dict[str, dict] = {}
    current: list[int | None] = [None]

    def flush() -> None:
        if buffer:
            tune.report({"epoch": current[0], "members": dict(buffer)})
            buffer.clear()

    def on_epoch(i: int, report) -> None:
        if current[0] is not None and report.epoch != current[0]:
            flush()  # a member that diverged no longer reports: close the epoch when the next one starts
        current[0] = report.epoch
        buffer[str(i)] = {k: getattr(report, k) for k in HISTORY_KEYS}
        if len(buffer) == len(configs):
            flush()

    results = train_sweep(configs, dataset, on_epoch=on_epoch)
    flush()
    x_test = random_rows(dataset.test, p["eval_examples"]) if p["eval_examples"] else dataset.test
    runs = []
    for member, config, result in zip(members, configs, results):
        run = evaluate_run(Cell(member["cell"], config), config, result, x_test, dataset, p["importance_samples"],
                           p["repeats"], log=lambda *_: None)
        run.pop("history")
        runs.append({**run, "cell": member["cell"]})
    tune.report({"final": True, "epoch": max(r.epochs_done for r in results), "runs": runs})


# ---------------------------------------------------------------------------------------------------------------
# the driver


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9=.]+", "-", text).strip("-")[:60]


def trial_dirname(trial) -> str:
    """``<index>-<cell>-s<seed>`` (or ``<index>-group-s<seed>``): readable trial folders."""
    p = trial.config["trial"]
    label = p["cell"] if p.get("kind") == "cell" else f"group-{len(p['members'])}"
    return f"{p['index']:04d}-{_slug(label)}-s{p['seed']}"


def trial_specs(cells: Sequence, seeds: Sequence[int], *, sweep: bool, eval_examples: int, importance_samples: int,
                repeats: int, threads: int, checkpoint_every: int, data_dir: str | None) -> list[dict]:
    """One trial per (cell, seed), or with ``sweep`` one per seed and group of compatible cells."""
    from dvae_engine.sweep import plan_groups

    common = {"eval_examples": eval_examples, "importance_samples": importance_samples, "repeats": repeats,
              "threads": threads, "checkpoint_every": checkpoint_every, "data_dir": data_dir}
    specs: list[dict] = []
    for seed in seeds:
        configs = [c.config.replace(seed=seed) for c in cells]
        if sweep:
            for group in plan_groups(configs):
                members = [{"cell": cells[i].label, "seed": seed, "config": configs[i].to_dict()}
                           for i in group.indices]
                specs.append({"kind": "group", "seed": seed, "members": members, **common})
        else:
            specs += [{"kind": "cell", "cell": c.label, "seed": seed, "config": config.to_dict(), **common}
                      for c, config in zip(cells, configs)]
    for i, spec in enumerate(specs):
        spec["index"] = i
    return specs


def experiment_spec(cells: Sequence, seeds: Sequence[int], meta: dict, name: str, grid: str, sweep: bool) -> dict:
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "name": name, "grid": grid,
            "mode": "sweep" if sweep else "cell", "seeds": list(seeds), "meta": {**meta, "seeds": list(seeds)},
            "cells": [{"label": c.label, "row": c.row or c.label, "column": c.column,
                       "paper": None if c.paper is None else list(c.paper), "config": c.config.to_dict()}
                      for c in cells]}


def _same_experiment(old: dict, new: dict) -> str | None:
    """Why ``old`` (on disk) and ``new`` are different experiments, or None when ``new`` resumes ``old``."""
    if [(c["label"], c["config"]) for c in old.get("cells", [])] != [(c["label"], c["config"]) for c in new["cells"]]:
        return "its cells or their configurations differ"
    if old.get("seeds") != new["seeds"]:
        return f"its seeds are {old.get('seeds')}, not {new['seeds']}"
    if old.get("mode") != new["mode"]:
        return f"it ran as {old.get('mode')!r} trials, not {new['mode']!r}"
    diff = [k for k in IDENTITY_KEYS if old.get("meta", {}).get(k) != new["meta"].get(k)]
    return f"its budget differs ({', '.join(diff)})" if diff else None


def __getattr__(name: str):
    """``StatusFile`` is built on first use (it subclasses Ray's Callback) and then importable by name,
    so a pickled experiment (Tune's ``tuner.pkl``) finds it again when restored."""
    if name == "StatusFile":
        _, tune = require_ray()
        return _status_callback_class(tune)
    raise AttributeError(name)


def _write_json(path: Path, data: dict) -> None:
    """Write atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str))
    os.replace(tmp, path)


def _status_callback_class(tune):
    if "StatusFile" in globals():
        return globals()["StatusFile"]

    class StatusFile(tune.Callback):
        """Live files for watching an experiment without Ray (Tune syncs its own result files only now and then).

        ``dvae-status.json``: the driver's heartbeat and every trial's Tune status; per trial folder,
        ``dvae-params.json`` (the trial's spec) and ``dvae-result.jsonl`` (every report, flushed as it comes).
        """

        def __init__(self, folder: str) -> None:
            self.folder = folder
            self._last = 0.0
            self._trials: list = []

        def _write(self, state: str = "running") -> None:
            trials = {}
            for t in self._trials:
                trials[t.trial_id] = t.status
                trials[trial_dirname(t)] = t.status
            data = {"state": state, "updated": time.time(), "driver_pid": os.getpid(), "trials": trials}
            _write_json(Path(self.folder) / STATUS_FILE, data)
            self._last = time.time()

        def setup(self, **info) -> None:
            self._write()

        def on_step_end(self, iteration, trials, **info) -> None:
            self._trials = trials
            if time.time() - self._last >= HEARTBEAT_SECONDS:
                self._write()

        def _now(self, iteration, trials, trial, **info) -> None:
            self._trials = trials
            self._write()

        on_trial_complete = on_trial_error = on_trial_recover = _now

        def on_trial_start(self, iteration, trials, trial, **info) -> None:
            trial_dir = Path(self.folder) / trial_dirname(trial)
            _write_json(trial_dir / PARAMS_FILE, {**trial.config["trial"], "trial_id": trial.trial_id})
            self._now(iteration, trials, trial)

        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            row = {k: v for k, v in result.items() if k not in LIVE_DROPPED}
            with (Path(self.folder) / trial_dirname(trial) / RESULT_FILE).open("a") as f:
                f.write(json.dumps(row, default=str) + "\n")

        def on_experiment_end(self, trials, **info) -> None:
            self._trials = trials
            done = all(t.status == "TERMINATED" for t in trials)
            self._write("finished" if done else "stopped")

    StatusFile.__module__, StatusFile.__qualname__ = __name__, "StatusFile"
    globals()["StatusFile"] = StatusFile
    return StatusFile


def cluster_description(ray, cpus_per_trial: float, gpus_per_trial: float) -> str:
    import torch

    res = ray.cluster_resources()
    per_trial = f"{cpus_per_trial:g} CPU" + (f" + {gpus_per_trial:g} GPU" if gpus_per_trial else "")
    return (f"Ray {ray.__version__} on {int(res.get('CPU', 0))} CPUs / {res.get('GPU', 0):g} GPUs "
            f"({len(ray.nodes())} node(s)), {per_trial} per trial, torch {torch.__version__}")


def run_experiment(
    cells: Sequence,
    seeds: Sequence[int],
    meta: dict,
    *,
    name: str,
    grid: str = "",
    storage: str | os.PathLike = DEFAULT_STORAGE,
    address: str | None = None,
    num_cpus: int | None = None,
    cpus_per_trial: float = 1,
    gpus_per_trial: float | None = None,
    sweep: bool = False,
    max_failures: int = 3,
    max_concurrent: int | None = None,
    checkpoint_every: int = 1,
    repeats: int = 8,
    data_dir: str | None = None,
    fresh: bool = False,
    verbose: int = 1,
    fault: dict | None = None,
    log=print,
) -> Path:
    """Run (or resume) the grid ``cells`` × ``seeds`` as a Ray Tune experiment; returns its folder.

    ``meta`` holds the budget (epochs, dataset, train/eval examples, importance samples). The folder
    ``storage/name`` is resumed when it holds the same experiment (cells, seeds, budget): finished
    trials are kept, unfinished and errored ones continue from their last checkpoint. A folder
    holding another experiment raises :class:`ExperimentError` unless ``fresh`` (which deletes it).
    ``fault`` (tests only) makes the first trial's worker exit once mid-run.
    """
    ray, tune = require_ray()
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    storage = Path(storage).expanduser().resolve()
    folder = storage / name
    meta = {**meta, "repeats": repeats}
    spec = experiment_spec(cells, seeds, meta, name, grid, sweep)
    if (folder / EXPERIMENT_FILE).is_file() and not fresh:
        why = _same_experiment(json.loads((folder / EXPERIMENT_FILE).read_text()), spec)
        if why:
            raise ExperimentError(f"{folder} holds another experiment ({why}); pass another --experiment-name, "
                                  "or --fresh to delete it and start over")
    elif folder.exists() and fresh:
        shutil.rmtree(folder)

    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no TensorBoard files: JSON and CSV only
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    address = address or os.environ.get("RAY_ADDRESS") or None
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            # the cluster's workers get this project's code (its Python packages must be installed there)
            ray.init(address=address, runtime_env={"working_dir": str(ROOT), "excludes": SHIP_EXCLUDES},
                     log_to_driver=verbose > 0)
        else:
            ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=verbose > 0,
                     runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(
                         [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}})
    try:
        if gpus_per_trial is None:
            has_gpu = ray.cluster_resources().get("GPU", 0) > 0
            gpus_per_trial = (1.0 if sweep else GPUS_PER_TRIAL) if has_gpu else 0.0
        threads = max(1, int(cpus_per_trial))
        spec["meta"]["machine"] = cluster_description(ray, cpus_per_trial, gpus_per_trial)
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(folder / EXPERIMENT_FILE, spec)
        specs = trial_specs(cells, seeds, sweep=sweep, eval_examples=meta["eval_examples"],
                            importance_samples=meta["importance_samples"], repeats=repeats, threads=threads,
                            checkpoint_every=checkpoint_every, data_dir=data_dir)
        if fault is not None and specs:
            specs[0]["fault"] = fault
        trainable = tune.with_resources(group_trial if sweep else cell_trial,
                                        {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
        status_file = _status_callback_class(tune)  # defined before a restore unpickles the experiment
        if tune.Tuner.can_restore(str(folder)):
            log(f"resuming {folder}: finished trials are kept, the others continue from their last checkpoint")
            tuner = tune.Tuner.restore(str(folder), trainable=trainable, resume_errored=True)
        else:
            log(f"starting {folder}: {len(specs)} trials")
            tuner = tune.Tuner(
                trainable,
                param_space={"trial": tune.grid_search(specs)},
                tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent, trial_dirname_creator=trial_dirname,
                                            trial_name_creator=trial_dirname, reuse_actors=True),
                run_config=tune.RunConfig(
                    name=name, storage_path=str(storage), verbose=verbose,
                    failure_config=tune.FailureConfig(max_failures=max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                    callbacks=[JsonLoggerCallback(), CSVLoggerCallback(), status_file(str(folder))],
                ),
            )
        tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
    view = read_experiment(folder)
    done = len(view.finished()) == view.total_runs
    status = json.loads((folder / STATUS_FILE).read_text()) if (folder / STATUS_FILE).is_file() else {}
    _write_json(folder / STATUS_FILE, {**status, "updated": time.time(), "state": "finished" if done else "stopped"})
    if not done:
        log(f"stopped with {len(view.finished())} of {view.total_runs} runs evaluated; the same command resumes it")
    return folder


def write_experiment_tables(folder: str | os.PathLike, out_dir: str | os.PathLike, name: str) -> Path:
    """The RESULTS-format tables (csv, md, json) of a finished or partial experiment; returns the .md path."""
    from experiments.harness import write_tables

    view = read_experiment(folder)
    return write_tables(experiment_cells(view), Path(out_dir), name, table_meta(view))[1]


# ---------------------------------------------------------------------------------------------------------------
# command line


def add_ray_arguments(parser: argparse.ArgumentParser, default_name: str) -> None:
    """The options every reproduction script shares for running on Ray."""
    group = parser.add_argument_group("Ray Tune")
    group.add_argument("--ray", action=argparse.BooleanOptionalAction, default=True,
                       help="run as a Ray Tune experiment (--no-ray: one process, the plain harness)")
    group.add_argument("--address", default=None,
                       help="a running Ray cluster ('auto', 'ray://host:10001'); default $RAY_ADDRESS, "
                            "else a local Ray started for this run")
    group.add_argument("--storage", type=Path, default=DEFAULT_STORAGE,
                       help="where experiments live (a shared path or URI on a cluster)")
    group.add_argument("--experiment-name", default=None,
                       help=f"experiment folder under --storage (default {default_name}-<dataset>-<epochs>ep)")
    group.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    group.add_argument("--cpus-per-trial", type=float, default=1)
    group.add_argument("--gpus-per-trial", type=float, default=None,
                       help=f"fraction of a GPU per trial (default {GPUS_PER_TRIAL} where the cluster has GPUs, "
                            "1 for --sweep trials, else 0)")
    group.add_argument("--max-concurrent", type=int, default=None, help="trials running at once (default: "
                                                                        "as many as the resources allow)")
    group.add_argument("--max-failures", type=int, default=3, help="retries of a trial whose worker died")
    group.add_argument("--checkpoint-every", type=int, default=1, help="epochs between trial checkpoints")


def experiment_name(args, grid: str) -> str:
    return args.experiment_name or f"{grid}-{args.dataset}-{args.epochs}ep"


def run_with_ray(cells: Sequence, meta: dict, args, grid: str, table_name: str) -> Path:
    """Run ``cells`` as a Tune experiment with the script's options, then write the tables; returns the .md."""
    folder = run_experiment(
        cells, meta["seeds"], meta, name=experiment_name(args, grid), grid=grid, storage=args.storage,
        address=args.address, num_cpus=args.num_cpus, cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial, sweep=bool(args.sweep), max_failures=args.max_failures,
        max_concurrent=args.max_concurrent, checkpoint_every=args.checkpoint_every, fresh=args.fresh)
    md = write_experiment_tables(folder, args.out, table_name)
    print(f"experiment folder: {folder}  (watch it on the app's Experiments page)")
    return md


def _grid_cells(grid: str, args) -> list:
    from experiments.grids import GRIDS

    builder = GRIDS[grid]
    accepted = inspect.signature(builder).parameters
    grid_args = {k: v for k, v in {"dataset": args.dataset, "layers": args.layers,
                                   "noise_levels": args.noise_levels}.items() if v is not None and k in accepted}
    common = {"epochs": args.epochs, "lr": args.lr, "lr_schedule": args.lr_schedule, "device": args.device,
              "max_train_examples": args.max_train_examples, "max_valid_examples": args.max_valid_examples}
    for key in ("hidden_units", "latent_dim", "batch_size"):
        if getattr(args, key) is not None:
            common[key] = getattr(args, key)
    return builder(**grid_args, **common)


def main(argv=None) -> None:
    from experiments.grids import GRIDS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run (or resume) a grid as a Ray Tune experiment, then write its tables")
    run.add_argument("grid", choices=sorted(GRIDS))
    run.add_argument("--dataset", default=None, help="mnist (default; frey for table2) or digits (smoke runs)")
    run.add_argument("--epochs", type=int, default=50)
    run.add_argument("--seeds", type=int, nargs="+", default=[0])
    run.add_argument("--layers", type=int, nargs="+", default=None)
    run.add_argument("--noise-levels", type=float, nargs="+", default=None)
    run.add_argument("--lr", type=float, default=1e-3)
    run.add_argument("--lr-schedule", default="constant", choices=("constant", "iwae", "cosine"))
    run.add_argument("--hidden-units", type=int, default=None)
    run.add_argument("--latent-dim", type=int, default=None)
    run.add_argument("--batch-size", type=int, default=None)
    run.add_argument("--device", default="auto")
    run.add_argument("--max-train-examples", type=int, default=None)
    run.add_argument("--max-valid-examples", type=int, default=2000)
    run.add_argument("--eval-examples", type=int, default=2000, help="random clean test rows (0: all)")
    run.add_argument("--importance-samples", type=int, default=5000)
    run.add_argument("--out", type=Path, default=ROOT / "experiments" / "results")
    run.add_argument("--sweep", action="store_true", help="one trial per seed and group of compatible cells (vmap)")
    run.add_argument("--fresh", action="store_true", help="delete an experiment of the same name and start over")
    add_ray_arguments(run, "<grid>")
    table = sub.add_parser("table", help="write the RESULTS-format tables of a finished or partial experiment")
    table.add_argument("folder", type=Path)
    table.add_argument("--out", type=Path, default=ROOT / "experiments" / "results")
    table.add_argument("--name", default=None, help="file name of the tables (default: the experiment's name)")
    args = parser.parse_args(argv)

    if args.command == "table":
        md = write_experiment_tables(args.folder, args.out, args.name or read_experiment(args.folder).name)
        print(md.read_text())
        return

    from dvae_engine.data import load_dataset
    from experiments.harness import machine_description, run_grid, write_tables

    cells = _grid_cells(args.grid, args)
    args.dataset = cells[0].config.dataset
    train_n = {}
    for c in cells:  # sizes only: the trials load their own data
        key = (c.config.dataset, c.config.binarization)
        if key not in train_n:
            data = load_dataset(*key[:1], binarization=key[1])
            train_n[key] = (min(args.max_train_examples or len(data.train), len(data.train)), len(data.test), data)
    first = next(iter(train_n.values()))
    meta = {"epochs": args.epochs, "seeds": args.seeds, "dataset": args.dataset, "train_examples": first[0],
            "eval_examples": min(args.eval_examples or first[1], first[1]),
            "importance_samples": args.importance_samples, "device": args.device}
    if args.ray:
        md = run_with_ray(cells, meta, args, args.grid, experiment_name(args, args.grid))
    else:
        started = time.time()
        for key, (_, _, data) in train_n.items():
            group = [c for c in cells if (c.config.dataset, c.config.binarization) == key]
            run_grid(group, data, args.seeds, meta["eval_examples"], args.importance_samples, sweep=args.sweep)
        md = write_tables(cells, args.out, experiment_name(args, args.grid),
                          {**meta, "machine": machine_description(args.device), "seconds": time.time() - started})[1]
    print(md.read_text())


if __name__ == "__main__":
    from experiments.tune import main as _main  # run from the importable module: Ray pickles its functions by name

    _main()
