"""The Ray Tune layer (experiments/tune.py) on a local Ray with 2 CPUs: same numbers as without Ray,
a killed worker retried from its checkpoint, an interrupted experiment resumed without retraining.

Each experiment is a tiny grid on scikit-learn's digits (16 hidden units, 4-D latents, a few
epochs); on CPU the engine is bit-reproducible, so the tables must be *equal*, not close.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from experiments import experiment_io
from experiments import tune as tune_layer
from experiments.grids import table1
from experiments.harness import run_grid, write_tables

ROOT = Path(__file__).resolve().parents[1]
SEEDS = [0, 1]
EVAL = dict(eval_examples=40, importance_samples=40)
META = {"epochs": 3, "seeds": SEEDS, "dataset": "digits", "train_examples": 1197, **EVAL}
LABELS = ("DVAE K=1, 1 layer, 10%", "DIWAE K=5, 1 layer, 0%")


def tiny_cells(epochs: int = 3):
    cells = table1(dataset="digits", layers=(1,), noise_levels=(0.0, 0.1), epochs=epochs, hidden_units=16,
                   latent_dim=4, device="cpu", max_valid_examples=100)
    return [c for c in cells if c.label in LABELS]


def table_rows(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open()))


def table_without_ray(tmp: Path, cells, seeds, name: str) -> tuple[list[dict], dict]:
    """The same runs trained in this process by the plain harness, one thread as in a 1-CPU trial."""
    from dvae_engine.data import load_dataset

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_grid(cells, load_dataset("digits"), seeds, EVAL["eval_examples"], EVAL["importance_samples"],
                 log=lambda *_: None, sweep=False)
    finally:
        torch.set_num_threads(threads)
    write_tables(cells, tmp, name, {**META, "epochs": cells[0].config.epochs, "seeds": seeds, "machine": "test",
                                    "seconds": 0.0})
    return table_rows(tmp / f"{name}.csv"), json.loads((tmp / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the in-process experiments of this module, shut down afterwards."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    yield ray
    ray.shutdown()
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[list[dict], dict]:
    return table_without_ray(tmp_path_factory.mktemp("no-ray"), tiny_cells(), SEEDS, "reference")


def run_tiny(local_ray, storage: Path, name: str, **kwargs) -> Path:
    folder = tune_layer.run_experiment(tiny_cells(), SEEDS, META, name=name, storage=storage, verbose=0,
                                       log=lambda *_: None, **kwargs)
    tune_layer.write_experiment_tables(folder, storage / "tables", name)
    return folder


def test_a_local_ray_experiment_gives_the_table_of_the_same_runs_without_ray(local_ray, reference, tmp_path):
    rows, tables = reference
    folder = run_tiny(local_ray, tmp_path, "plain")
    assert table_rows(tmp_path / "tables" / "plain.csv") == rows  # every digit of every number
    view = experiment_io.read_experiment(folder)
    assert view.state == "finished" and not view.running
    assert [(r.cell, r.seed, r.status, r.epochs_done) for r in view.runs] == [
        (label, seed, "finished", 3) for label in LABELS for seed in SEEDS]
    for cell in tables["cells"]:  # the per-epoch curves are those of the runs made without Ray too
        for run in cell["runs"]:
            ours = next(r for r in view.runs if r.cell == cell["label"] and r.seed == run["seed"])
            for key in ("train_objective", "valid_elbo", "valid_iwae"):
                assert ours.history[key] == run["history"][key]
    md = (tmp_path / "tables" / "plain.md").read_text()
    assert "| DVAE K=1, 1 layer, 10% | 96.12 ± 0.06 |" in md and md.count("| 2 |") == 2  # two seeds per cell


def test_a_killed_worker_is_retried_from_its_checkpoint_and_the_table_is_the_same(local_ray, reference, tmp_path):
    marker = tmp_path / "crashed.txt"
    folder = run_tiny(local_ray, tmp_path, "fault", max_failures=1, fault={"after_epoch": 1, "marker": str(marker)})
    assert "exited in epoch 2" in marker.read_text()  # the first trial's worker process died inside epoch 2
    view = experiment_io.read_experiment(folder)
    crashed = next(r for r in view.runs if r.trial_id and r.restarts)
    assert crashed.restarts == 1 and crashed.status == "finished" and crashed.epochs_done == 3
    assert table_rows(tmp_path / "tables" / "fault.csv") == reference[0]


def test_a_sweep_trial_trains_a_group_with_vmap_and_gives_the_harness_sweeps_numbers(local_ray, tmp_path):
    group = [c for c in table1(dataset="digits", layers=(1,), noise_levels=(0.0, 0.1), epochs=2, hidden_units=16,
                               latent_dim=4, device="cpu", max_valid_examples=100)
             if c.label in ("DVAE K=5, 1 layer, 0%", "DIWAE K=5, 1 layer, 10%")]  # one shape: one group per seed
    folder = tune_layer.run_experiment(group, SEEDS, {**META, "epochs": 2}, name="sweep", storage=tmp_path,
                                       sweep=True, verbose=0, log=lambda *_: None)
    view = experiment_io.read_experiment(folder)
    assert len({r.folder for r in view.runs}) == 2 and len(view.finished()) == 4  # 2 trials (seeds) of 2 runs
    assert all(r.history["epoch"] == [1, 2] for r in view.runs)
    tune_layer.write_experiment_tables(folder, tmp_path, "sweep")

    from dvae_engine.data import load_dataset

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        reference = [c.__class__(c.label, c.config, c.paper) for c in group]
        run_grid(reference, load_dataset("digits"), SEEDS, EVAL["eval_examples"], EVAL["importance_samples"],
                 log=lambda *_: None, sweep=True)
    finally:
        torch.set_num_threads(threads)
    write_tables(reference, tmp_path, "sweep-reference", {**META, "epochs": 2, "machine": "test", "seconds": 0.0})
    assert table_rows(tmp_path / "sweep.csv") == table_rows(tmp_path / "sweep-reference.csv")


def test_an_interrupted_experiment_resumes_without_retraining_finished_trials(tmp_path):
    cli = [sys.executable, "-m", "experiments.tune", "run", "table1", "--dataset", "digits", "--epochs", "40",
           "--layers", "1", "--noise-levels", "0.1", "--seeds", "0", "--hidden-units", "16", "--latent-dim", "4",
           "--max-valid-examples", "100", "--eval-examples", "40", "--importance-samples", "40", "--device", "cpu",
           "--num-cpus", "1", "--max-concurrent", "1", "--storage", str(tmp_path), "--experiment-name", "cut",
           "--out", str(tmp_path / "tables")]
    folder = tmp_path / "cut"
    driver = subprocess.Popen(cli, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240  # a safety net against a hung driver, not a timing assertion
        while not any('"final"' in f.read_text() for f in folder.glob(f"*/{experiment_io.RESULT_FILE}")):
            assert driver.poll() is None and time.monotonic() < deadline, "the driver ended before a trial finished"
            time.sleep(0.05)
        driver.send_signal(signal.SIGINT)  # Ctrl-C: Tune saves the experiment's state and stops
        assert driver.wait(timeout=120) == 0
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    cut = experiment_io.read_experiment(folder)
    finished = [folder / r.folder / experiment_io.RESULT_FILE for r in cut.runs if r.status == "finished"]
    assert cut.state == "stopped" and 1 <= len(finished) < 3
    before = [path.read_bytes() for path in finished]

    assert subprocess.run(cli, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0
    done = experiment_io.read_experiment(folder)
    assert done.state == "finished" and [r.status for r in done.runs] == ["finished"] * 3
    # not one more report: the trials finished before the interruption were not trained again
    assert [path.read_bytes() for path in finished] == before
    # and the numbers are those of an uninterrupted run, the interrupted trial included
    cells = table1(dataset="digits", layers=(1,), noise_levels=(0.1,), epochs=40, hidden_units=16, latent_dim=4,
                   device="cpu", max_valid_examples=100)
    assert table_rows(tmp_path / "tables" / "cut.csv") == table_without_ray(tmp_path, cells, [0], "cut-reference")[0]


def test_without_ray_the_engine_the_app_and_the_no_ray_path_work_and_the_ray_path_says_how_to_install(tmp_path):
    code = f"""
import sys
sys.modules["ray"] = None  # as if Ray were not installed
import dvae_engine, dvae_engine.cli, dvae_engine.jobs, dvae_engine.checkpoint
import experiments.experiment_io, experiments.harness, experiments.tune, ui.experiment_figures
from experiments import reproduce_table1
tiny = ["--dataset", "digits", "--epochs", "1", "--layers", "1", "--noise-levels", "0", "--eval-examples", "10",
        "--importance-samples", "10", "--max-valid-examples", "50", "--device", "cpu", "--out", {str(tmp_path)!r}]
reproduce_table1.main([*tiny, "--no-ray"])
try:
    reproduce_table1.main(tiny)
except SystemExit as exit:
    print("EXIT:", exit)
"""
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| DVAE K=1, 1 layer, 0% | 96.14 ± 0.09 |" in done.stdout  # the table of the in-process run
    assert "EXIT: Ray Tune is not installed" in done.stdout and "pip install -e '.[experiments]'" in done.stdout
    assert len(table_rows(tmp_path / "table1.csv")) == 3
