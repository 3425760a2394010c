"""Read a Ray Tune experiment folder of :mod:`experiments.tune` with plain JSON: no Ray, no torch.

An experiment folder (``<storage>/<name>/``) holds what Tune writes (one folder per trial with
its checkpoints, ``params.json`` and ``result.json``, which Tune syncs from the driver only every
so often) and the files the driver of :mod:`experiments.tune` writes as things happen:

* ``dvae-experiment.json``: the grid (cells with their configs, places and paper values), the
  seeds and the budget, written before any trial starts;
* ``dvae-status.json``: the driver's heartbeat and each trial's Tune status, rewritten every few
  seconds while the experiment runs;
* per trial folder, ``dvae-params.json`` (its cell, seed and config) and ``dvae-result.jsonl``
  (one JSON line per report: the per-epoch metrics, then a final row with the evaluation).

Tune's own ``params.json`` / ``result.json`` are read where ours are missing.

:func:`read_experiment` turns a folder (finished, partial or still running) into an
:class:`ExperimentView`; :func:`grid_summary` gives the mean ± std over seeds per cell, and
:func:`experiment_cells` the :class:`experiments.harness.Cell` list that the RESULTS-format tables
are written from.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

EXPERIMENT_FILE = "dvae-experiment.json"
STATUS_FILE = "dvae-status.json"
PARAMS_FILE = "dvae-params.json"  # per trial: its spec (cell, seed, config), written when it starts
RESULT_FILE = "dvae-result.jsonl"  # per trial: every report as it comes (Tune's result.json is synced later)
FORMAT = "dvae-explorer-experiment"
FORMAT_VERSION = 1
HEARTBEAT_SECONDS = 5.0  # the driver rewrites its status file at least this often while it runs
STALE_SECONDS = 60.0  # a status file older than this belongs to a driver that is gone
HISTORY_KEYS = ("epoch", "train_objective", "valid_elbo", "valid_iwae", "seconds", "lr")
METRICS = {
    "nll": "−log p(x) (corrected estimator)",
    "neg_test_bound": "−test bound (the paper's quantity)",
    "neg_objective": "−training objective",
    "nll_plain": "−log p(x), plain IS from q(z|x)",
}


class ExperimentError(ValueError):
    """A folder is not a readable experiment of :mod:`experiments.tune`; the message says why."""


@dataclass
class RunView:
    """One (cell, seed) run as its trial left it: per-epoch history and, once evaluated, its table row."""

    cell: str
    seed: int
    status: str  # finished | running | pending | stopped | error
    history: dict[str, list] = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})
    final: dict | None = None  # the evaluated row (neg_test_bound, nll, nll_plain, neg_objective, num_above, ...)
    trial_id: str = ""
    folder: str = ""  # the trial's folder (its name under the experiment folder)
    restarts: int = 0  # times the trial was restored from a checkpoint (a retry or a resumed experiment)
    seconds: float = 0.0  # the trial's own time (training and evaluation), summed over its attempts

    @property
    def epochs_done(self) -> int:
        return len(self.history["epoch"])


@dataclass
class ExperimentView:
    """An experiment folder read at one moment."""

    path: Path
    name: str
    grid: str
    meta: dict
    cells: list[dict]  # {"label", "row", "column", "paper", "config"} in grid order
    seeds: list[int]
    runs: list[RunView]
    state: str  # running | finished | stopped | unknown
    updated: float | None  # time of the driver's last heartbeat

    @property
    def running(self) -> bool:
        """The driver is alive (its heartbeat is recent) and has not finished."""
        return self.state == "running" and self.updated is not None and time.time() - self.updated < STALE_SECONDS

    def runs_of(self, label: str) -> list[RunView]:
        return sorted((r for r in self.runs if r.cell == label), key=lambda r: r.seed)

    def finished(self, label: str | None = None) -> list[RunView]:
        return [r for r in self.runs if r.final is not None and (label is None or r.cell == label)]

    @property
    def total_runs(self) -> int:
        return len(self.cells) * len(self.seeds)


def is_experiment(path: str | os.PathLike) -> bool:
    return (Path(path) / EXPERIMENT_FILE).is_file()


def list_experiments(root: str | os.PathLike) -> list[Path]:
    """Experiment folders directly under ``root`` (or ``root`` itself), newest first."""
    root = Path(root)
    if is_experiment(root):
        return [root]
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and is_experiment(p)]
    return sorted(found, key=lambda p: (p / EXPERIMENT_FILE).stat().st_mtime, reverse=True)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ExperimentError(f"{path.name} could not be read ({type(err).__name__}: {err})") from None


def _result_rows(path: Path) -> list[dict]:
    """The JSON lines of a trial's result.json; a line being written (cut short) is skipped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _history(rows: list[dict]) -> dict[str, list]:
    """Per-epoch metrics from report rows; after a restore an epoch may be reported twice: the last one counts."""
    by_epoch: dict[int, dict] = {}
    for row in rows:
        if "epoch" in row and not row.get("final"):
            by_epoch[int(row["epoch"])] = row
    history: dict[str, list] = {k: [] for k in HISTORY_KEYS}
    for epoch in sorted(by_epoch):
        for key in HISTORY_KEYS:
            value = by_epoch[epoch].get(key)
            history[key].append(math.nan if value is None and key != "valid_iwae" else value)
    return history


def _trial_seconds(rows: list[dict]) -> float:
    """The trial's time over all its attempts: time_total_s restarts from the checkpoint's value on a restore."""
    return float(rows[-1].get("time_total_s", 0.0)) if rows else 0.0


def _restarts(rows: list[dict]) -> int:
    return max(0, sum(1 for r in rows if r.get("iterations_since_restore") == 1) - 1)


def _status(has_final: bool, tune_status: str | None, driver_alive: bool) -> str:
    if has_final:
        return "finished"
    if tune_status == "ERROR":
        return "error"
    if driver_alive:
        return "running" if tune_status == "RUNNING" else "pending"
    return "stopped"


@dataclass
class TrialRecord:
    """What one trial folder says (independent of the driver's state): its runs as (cell, seed, history, final)."""

    folder: str
    trial_id: str
    runs: list[tuple[str, int, dict, dict | None]]
    restarts: int
    seconds: float


def trial_key(trial_dir: Path) -> tuple:
    """Size and time of a trial folder's files: equal keys, equal :func:`read_trial` (a cache key)."""
    key = []
    for name in (PARAMS_FILE, RESULT_FILE, "params.json", "result.json"):
        try:
            stat = (trial_dir / name).stat()
            key.append((name, stat.st_size, stat.st_mtime_ns))
        except OSError:
            key.append((name, None, None))
    return tuple(key)


def read_trial(trial_dir: Path) -> TrialRecord | None:
    """Read one trial folder; None when it is no trial (yet)."""
    params_file = next((trial_dir / n for n in (PARAMS_FILE, "params.json") if (trial_dir / n).is_file()), None)
    if params_file is None:
        return None
    try:
        params = json.loads(params_file.read_text())
    except (OSError, json.JSONDecodeError):
        return None  # being written
    params = params.get("trial", params)
    live = trial_dir / RESULT_FILE
    rows = _result_rows(live if live.is_file() else trial_dir / "result.json")
    trial_id = rows[-1].get("trial_id", "") if rows else params.get("trial_id", "")
    final = next((r for r in reversed(rows) if r.get("final")), None)
    runs = []
    if params.get("kind") == "group":
        for j, member in enumerate(params["members"]):
            member_rows = [{**row["members"][str(j)], "epoch": row["epoch"]} for row in rows
                           if isinstance(row.get("members"), dict) and str(j) in row["members"]]
            result = final["runs"][j] if final and j < len(final.get("runs", [])) else None
            runs.append((member["cell"], int(member["seed"]), _history(member_rows), result))
    elif "cell" in params:
        runs.append((params["cell"], int(params["seed"]), _history(rows), final.get("run") if final else None))
    if not runs:
        return None
    return TrialRecord(trial_dir.name, trial_id, runs, _restarts(rows), _trial_seconds(rows))


def read_experiment(path: str | os.PathLike, read_trial=read_trial) -> ExperimentView:
    """Read an experiment folder (finished, partial or running); raises :class:`ExperimentError` if it is none.

    ``read_trial`` reads one trial folder (the app passes a cached :func:`read_trial`).
    """
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ExperimentError(f"{path} is not a folder")
    if not is_experiment(path):
        raise ExperimentError(f"{path} holds no {EXPERIMENT_FILE}: not an experiment of experiments/tune.py")
    spec = _read_json(path / EXPERIMENT_FILE)
    if spec.get("format") != FORMAT:
        raise ExperimentError(f"{path / EXPERIMENT_FILE} is not a DVAE Explorer experiment file")
    if spec.get("format_version") != FORMAT_VERSION:
        raise ExperimentError(f"{EXPERIMENT_FILE} has format version {spec.get('format_version')!r}; "
                              f"this reader reads version {FORMAT_VERSION}")
    status = _read_json(path / STATUS_FILE) if (path / STATUS_FILE).is_file() else {}
    state, updated = status.get("state", "unknown"), status.get("updated")
    alive = state == "running" and updated is not None and time.time() - updated < STALE_SECONDS
    tune_status = status.get("trials", {})

    runs: dict[tuple[str, int], RunView] = {}
    for trial_dir in sorted(p for p in path.iterdir() if p.is_dir()):
        record = read_trial(trial_dir)
        if record is None:
            continue
        t_status = tune_status.get(record.trial_id) or tune_status.get(record.folder)
        for cell, seed, history, final in record.runs:
            runs[(cell, seed)] = RunView(cell, seed, _status(final is not None, t_status, alive), history, final,
                                         record.trial_id, record.folder, record.restarts,
                                         record.seconds / len(record.runs))
    labels = [c["label"] for c in spec["cells"]]
    ordered = sorted(runs.values(), key=lambda r: (labels.index(r.cell) if r.cell in labels else len(labels), r.seed))
    return ExperimentView(path, spec.get("name", path.name), spec.get("grid", ""), spec.get("meta", {}),
                          spec["cells"], list(spec.get("seeds", [])), ordered, state if state else "unknown", updated)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    n = len(values)
    mean = sum(values) / n
    return mean, (math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0)


def grid_summary(view: ExperimentView, metric: str = "nll") -> list[dict]:
    """Per cell: row, column, paper value, mean ± std of ``metric`` over finished seeds, and the seed counts.

    ``metric`` is a key of :data:`METRICS` (evaluated runs only) or ``"valid"``: the last clean
    validation bound of every run with at least one epoch (ELBO, or the IWAE bound for IW objectives),
    negated, which fills in while runs are still training.
    """
    out = []
    for cell in view.cells:
        runs = view.runs_of(cell["label"])
        if metric == "valid":
            iw = cell["config"].get("objective") in ("iwae", "diwae")
            values = [-(r.history["valid_iwae"] if iw else r.history["valid_elbo"])[-1] for r in runs if r.epochs_done]
        else:
            values = [float(r.final[metric]) for r in runs if r.final is not None and metric in r.final]
        mean, std = mean_std(values) if values else (None, None)
        out.append({"label": cell["label"], "row": cell.get("row") or cell["label"], "column": cell.get("column") or "",
                    "paper": cell.get("paper"), "mean": mean, "std": std, "n": len(values),
                    "finished": sum(r.final is not None for r in runs), "seeds": len(view.seeds),
                    "epochs_done": max((r.epochs_done for r in runs), default=0)})
    return out


def progress(view: ExperimentView) -> dict:
    """Counts of runs by status (pending includes runs whose trial has not started)."""
    counts = {"finished": 0, "running": 0, "pending": 0, "stopped": 0, "error": 0}
    for run in view.runs:
        counts[run.status] = counts.get(run.status, 0) + 1
    missing = view.total_runs - len(view.runs)
    counts["pending" if view.running else "stopped"] += max(missing, 0)
    return counts


def experiment_cells(view: ExperimentView) -> list:
    """The experiment's cells as :class:`experiments.harness.Cell` with their evaluated runs (for the tables)."""
    from dvae_engine.training import TrainConfig
    from experiments.harness import Cell

    cells = []
    for spec in view.cells:
        runs = []
        for run in view.finished(spec["label"]):
            row = dict(run.final)
            row["history"] = run.history
            runs.append(row)
        paper = tuple(spec["paper"]) if spec.get("paper") is not None else None
        runs.sort(key=lambda r: r["seed"])
        cells.append(Cell(spec["label"], TrainConfig.from_dict(spec["config"]), paper, runs,
                          row=spec.get("row", ""), column=spec.get("column", "")))
    return cells


def table_meta(view: ExperimentView) -> dict:
    """The budget line of the tables: the experiment's meta with the summed trial time."""
    return {**view.meta, "seconds": sum(r.seconds for r in view.runs)}
