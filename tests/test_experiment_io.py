"""The grids of the paper and the plain-JSON reader of experiment folders (no Ray needed for these)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from dvae_engine.paper import DATA_AUGMENTATION, FIGURE1, TABLE1, TABLE2, TABLE3
from experiments import experiment_io as io
from experiments import grids
from experiments.harness import table_markdown
from experiments.tune import experiment_spec, trial_specs

RECORDED = Path(__file__).parent / "data" / "experiments" / "table1-mnist-smoke"


def test_the_grids_hold_the_papers_cells_and_values():
    t1 = grids.table1()
    assert len(t1) == 24 and len({c.label for c in t1}) == 24
    assert {(c.row, c.column) for c in t1} == {(f"{r}, {n} layer{'s' if n > 1 else ''}", f"{p}%")
                                               for r, _, _ in grids.ROWS for n in (1, 2) for p in (0, 5, 10, 15)}
    by_label = {c.label: c for c in t1}
    assert by_label["DIWAE K=5, 2 layers, 5%"].paper == TABLE1[("DIWAE K=5", 2, 0.05)] == (93.08, .08)
    assert by_label["DVAE K=5, 1 layer, 15%"].config.num_samples == 5
    assert {c.config.noise for c in t1} == {"salt-pepper"}
    t2 = grids.table2()
    assert len(t2) == 12 and all(c.config.dataset == "frey" and c.config.noise == "gaussian" for c in t2)
    assert {c.paper for c in t2} == {TABLE2[k] for k in TABLE2 if k[1] == 1}
    t3 = grids.table3()
    assert len(t3) == 8 and {c.config.encoder for c in t3} == {"gru"}
    assert {c.paper for c in t3} == set(TABLE3.values())
    f1 = grids.figure1()
    assert [(c.row, c.config.num_corruptions) for c in f1] == [(n, m) for n in ("DVAE", "DIWAE") for m in (1, 5, 10)]
    assert {c.paper[0] for c in f1} == set(FIGURE1.values())
    aug = {c.row: c for c in grids.augmentation()}
    assert aug["VAE"].config.is_data_augmentation and aug["IWAE"].config.is_data_augmentation
    assert not aug["DVAE"].config.is_data_augmentation and aug["DIWAE"].paper == DATA_AUGMENTATION["DIWAE"]
    mean_image = grids.mean_image()
    assert len(mean_image) == 12 and {c.config.noise for c in mean_image} == {"salt-pepper", "mean-image"}


def test_one_trial_per_cell_and_seed_or_one_per_seed_and_group():
    cells = grids.table1(dataset="digits", layers=(1,), noise_levels=(0.0, 0.1))
    solo = trial_specs(cells, [0, 1], sweep=False, eval_examples=10, importance_samples=10, repeats=1, threads=1,
                       checkpoint_every=1, data_dir=None)
    assert len(solo) == 12 and [s["index"] for s in solo] == list(range(12))
    expected = {(c.label, s, s) for c in cells for s in (0, 1)}
    assert {(s["cell"], s["seed"], s["config"]["seed"]) for s in solo} == expected
    grouped = trial_specs(cells, [0, 1], sweep=True, eval_examples=10, importance_samples=10, repeats=1, threads=1,
                          checkpoint_every=1, data_dir=None)
    # per seed: K=1 (DVAE at 0 and 10 %) and K=5 (DVAE and DIWAE at 0 and 10 %) have different shapes
    assert sorted((g["seed"], len(g["members"])) for g in grouped) == [(0, 2), (0, 4), (1, 2), (1, 4)]


def write_experiment(folder: Path, cells, seeds, trials: list[tuple[str, int, list[dict]]], *, state="finished",
                     updated=None, tune_status=None) -> Path:
    """A synthetic experiment folder: the spec, the status file, and one trial folder per (cell, seed, rows)."""
    meta = {"epochs": 3, "dataset": "digits", "train_examples": 1197, "eval_examples": 10, "importance_samples": 10,
            "machine": "synthetic"}
    folder.mkdir(parents=True)
    (folder / io.EXPERIMENT_FILE).write_text(json.dumps(experiment_spec(cells, seeds, meta, "synthetic", "table1",
                                                                        False)))
    (folder / io.STATUS_FILE).write_text(json.dumps({"state": state, "updated": updated or time.time(),
                                                     "trials": tune_status or {}}))
    for i, (label, seed, rows) in enumerate(trials):
        trial = folder / f"{i:04d}-trial"
        trial.mkdir()
        (trial / io.PARAMS_FILE).write_text(json.dumps({"kind": "cell", "cell": label, "seed": seed,
                                                        "trial_id": f"t{i}"}))
        (trial / io.RESULT_FILE).write_text("".join(json.dumps({**r, "trial_id": f"t{i}"}) + "\n" for r in rows))
    return folder


def epoch(n: int, value: float, restart: bool = False, **extra) -> dict:
    return {"epoch": n, "train_objective": value, "valid_elbo": value - 1, "valid_iwae": None, "seconds": 0.1,
            "lr": 1e-3, "iterations_since_restore": 1 if restart else n, "time_total_s": float(n), **extra}


def final(seed: int, nll: float) -> dict:
    return {"final": True, "epoch": 3, "time_total_s": 4.0,
            "run": {"seed": seed, "status": "finished", "epochs": 3, "final_valid_elbo": -20.0,
                    "neg_test_bound": nll + 1, "nll": nll, "nll_method": "mixture", "nll_plain": nll + 0.5,
                    "neg_objective": nll + 0.7, "gap": 0.7, "num_above": 1}}


def test_a_partial_running_experiment_reads_with_restarts_counted_and_repeated_epochs_once(tmp_path):
    cells = grids.table1(dataset="digits", layers=(1,), noise_levels=(0.0,))  # three cells
    a, b, c = (cell.label for cell in cells)
    trials = [
        (a, 0, [epoch(1, -30), epoch(2, -29), epoch(3, -28), final(0, 27.0)]),
        # killed in epoch 3 after reporting it, restored from the checkpoint of epoch 2: epoch 3 comes twice
        (a, 1, [epoch(1, -31), epoch(2, -30), epoch(3, -99), epoch(3, -29, restart=True), final(1, 29.0)]),
        (b, 0, [epoch(1, -32), epoch(2, -31)]),  # still training
    ]
    folder = write_experiment(tmp_path / "exp", cells, [0, 1], trials, state="running",
                              tune_status={"t2": "RUNNING"})
    view = io.read_experiment(folder)
    assert view.running and view.total_runs == 6
    runs = {(r.cell, r.seed): r for r in view.runs}
    assert runs[(a, 1)].history["epoch"] == [1, 2, 3] and runs[(a, 1)].history["train_objective"] == [-31, -30, -29]
    assert runs[(a, 1)].restarts == 1 and runs[(a, 0)].restarts == 0
    assert runs[(b, 0)].status == "running" and runs[(b, 0)].final is None and runs[(b, 0)].epochs_done == 2
    assert io.progress(view) == {"finished": 2, "running": 1, "pending": 3, "stopped": 0, "error": 0}
    summary = {s["label"]: s for s in io.grid_summary(view, "nll")}
    assert summary[a]["mean"] == pytest.approx(28.0) and summary[a]["std"] == pytest.approx(2 ** 0.5)
    assert (summary[a]["n"], summary[a]["finished"], summary[a]["seeds"]) == (2, 2, 2)
    assert summary[b]["mean"] is None and summary[c]["n"] == 0
    live = {s["label"]: s for s in io.grid_summary(view, "valid")}  # fills in before any evaluation
    assert live[b]["mean"] == pytest.approx(32.0) and live[c]["mean"] is None
    table = table_markdown(io.experiment_cells(view), io.table_meta(view))
    assert f"| {a} | 96.14 ± 0.09 | 29.00 ± 1.41 | 28.00 ± 1.41 | 28.50 ± 1.41 | 28.70 ± 1.41 | 2 / 20 | 2 |" in table
    assert f"| {b} | 95.20 ± 0.07 | not run yet | | | | | 0 of 2 |" in table


def test_a_driver_that_stopped_reporting_leaves_a_stopped_experiment(tmp_path):
    cells = grids.table1(dataset="digits", layers=(1,), noise_levels=(0.0,))[:1]
    folder = write_experiment(tmp_path / "exp", cells, [0], [(cells[0].label, 0, [epoch(1, -30)])], state="running",
                              updated=time.time() - 10 * io.STALE_SECONDS, tune_status={"t0": "RUNNING"})
    view = io.read_experiment(folder)
    assert not view.running and view.runs[0].status == "stopped"


def test_folders_that_are_no_experiment_are_refused_with_the_reason(tmp_path):
    with pytest.raises(io.ExperimentError, match="not a folder"):
        io.read_experiment(tmp_path / "missing")
    with pytest.raises(io.ExperimentError, match="holds no dvae-experiment.json"):
        io.read_experiment(tmp_path)
    (tmp_path / io.EXPERIMENT_FILE).write_text("{not json")
    with pytest.raises(io.ExperimentError, match="could not be read"):
        io.read_experiment(tmp_path)
    (tmp_path / io.EXPERIMENT_FILE).write_text(json.dumps({"format": io.FORMAT, "format_version": 99}))
    with pytest.raises(io.ExperimentError, match="format version 99"):
        io.read_experiment(tmp_path)
    assert io.list_experiments(tmp_path / "missing") == []


def test_the_recorded_experiment_reads_whole(tmp_path):
    view = io.read_experiment(RECORDED)
    assert view.grid == "table1" and len(view.cells) == 24 and view.seeds == [0, 1]
    assert len(view.finished()) == 48 and not view.running and view.state == "finished"
    assert all(r.epochs_done == view.meta["epochs"] for r in view.runs)
    assert io.list_experiments(RECORDED.parent) == [RECORDED]
