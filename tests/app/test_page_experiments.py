"""Experiments page on a recorded Ray Tune experiment (tests/data/experiments/): the grid as a heat map with the
paper's values and seed counts, each cell's curves per seed, the RESULTS table; a running copy refreshes itself."""

from __future__ import annotations

import json
import math
import shutil
import time
from pathlib import Path

import pytest
import streamlit as st
from page_helpers import APP, charts, values
from streamlit.testing.v1 import AppTest

from experiments import experiment_io as io
from experiments.harness import table_markdown

RECORDED_ROOT = Path(__file__).resolve().parents[1] / "data" / "experiments"
RECORDED = RECORDED_ROOT / "table1-mnist-smoke"


def open_experiments(monkeypatch, root: Path, query: dict | None = None) -> AppTest:
    monkeypatch.setenv("DVAE_EXPERIMENTS_DIR", str(root))
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params.update(query or {})
    at.switch_page("pages/experiments.py")
    at.run()
    assert not at.exception, at.exception
    return at


def heatmap_of(at: AppTest) -> dict:
    return next(f for f in charts(at) if f["data"][0]["type"] == "heatmap")["data"][0]


def test_the_recorded_grid_shows_as_a_heat_map_with_the_papers_values_and_seed_counts(monkeypatch):
    at = open_experiments(monkeypatch, RECORDED_ROOT)
    assert at.title[0].value == "Experiments"
    assert at.selectbox(key="exp-folder").value == str(RECORDED)
    assert at.get("progress")[0].proto.text.startswith("48 of 48 runs evaluated")
    assert any("Finished" in s.value for s in at.success)
    heat = heatmap_of(at)
    view = io.read_experiment(RECORDED)
    assert heat["y"] == [f"{r}, {n} layer{'s' if n > 1 else ''}" for n in (1, 2) for r in ("DVAE K=1", "DVAE K=5",
                                                                                               "DIWAE K=5")]
    assert heat["x"] == ["0%", "5%", "10%", "15%"]
    z = values(heat["z"]).reshape(6, 4)
    for i, row in enumerate(heat["y"]):
        for j, column in enumerate(heat["x"]):
            label = f"{row}, {column}"
            nll = [r.final["nll"] for r in view.runs_of(label)]
            assert len(nll) == 2 and z[i, j] == pytest.approx(sum(nll) / 2)  # −log p(x), mean over both seeds
            assert "2/2 seeds" in heat["text"][i][j]
    assert "paper 93.08" in heat["text"][5][1]  # DIWAE K=5, 2 layers, 5 %: the paper's 93.08 ± .08 beside ours
    # the RESULTS-format table, as `python -m experiments.tune table` writes it
    table = table_markdown(io.experiment_cells(view), io.table_meta(view)).strip()
    assert table in [m.value.strip() for m in at.markdown]
    assert "| DIWAE K=5, 2 layers, 5% | 93.08 ± 0.08 |" in table and table.count("| 2 |") == 24


def test_a_cells_curves_have_one_line_per_seed_and_the_papers_value(monkeypatch):
    at = open_experiments(monkeypatch, RECORDED_ROOT, {"cell": "DIWAE K=5, 2 layers, 5%"})
    curves = next(f for f in charts(at) if f["data"][0]["type"] == "scatter")
    names = [t["name"] for t in curves["data"]]
    assert names == ["seed 0 (finished)", "seed 0 (finished)", "seed 1 (finished)", "seed 1 (finished)"]
    run = io.read_experiment(RECORDED).runs_of("DIWAE K=5, 2 layers, 5%")[1]
    # the right panel is the clean validation IWAE bound of seed 1, negated (nats, lower is better)
    assert list(values(curves["data"][3]["y"])) == pytest.approx([-v for v in run.history["valid_iwae"]])
    assert any(s.get("type") == "line" and s["y0"] == 93.08 for s in curves["layout"]["shapes"])
    seeds = at.dataframe[0].value
    assert list(seeds["seed"]) == [0, 1] and set(seeds["status"]) == {"finished"}

    at.radio(key="exp-metric").set_value("neg_test_bound").run()
    heat = heatmap_of(at)
    cell = io.grid_summary(io.read_experiment(RECORDED), "neg_test_bound")[0]
    assert values(heat["z"]).reshape(6, 4)[0, 0] == pytest.approx(cell["mean"])
    assert at.query_params["metric"] == "neg_test_bound"


def running_copy(tmp_path: Path) -> Path:
    """The recorded experiment as if still running: a fresh heartbeat, and one run training (no final row yet)."""
    root = tmp_path / "experiments"
    folder = root / RECORDED.name
    shutil.copytree(RECORDED, folder)
    trial = next(p for p in sorted(folder.iterdir()) if p.is_dir())
    rows = (trial / io.RESULT_FILE).read_text().splitlines()
    (trial / io.RESULT_FILE).write_text("\n".join(r for r in rows if '"final"' not in r) + "\n")
    params = json.loads((trial / io.PARAMS_FILE).read_text())
    status = {"state": "running", "updated": time.time(), "trials": {params["trial_id"]: "RUNNING"}}
    (folder / io.STATUS_FILE).write_text(json.dumps(status))
    return root


def test_a_running_experiment_is_followed_without_any_action(monkeypatch, tmp_path):
    root = running_copy(tmp_path)
    at = open_experiments(monkeypatch, root)
    assert at.get("progress")[0].proto.text == "47 of 48 runs evaluated · 1 training"
    assert any("Running" in i.value and "refreshes by itself" in i.value for i in at.info)
    heat = heatmap_of(at)
    assert "1/2 seeds" in heat["text"][0][0]  # DVAE K=1, 1 layer, 0 %: one seed still training
    assert not math.isnan(values(heat["z"]).reshape(6, 4)[0, 0])  # the finished seed fills the cell already


def test_a_folder_that_is_no_experiment_is_refused_and_an_empty_root_says_how_to_start(monkeypatch, tmp_path):
    at = open_experiments(monkeypatch, tmp_path)
    assert any("No experiment under" in i.value for i in at.info)
    assert "reproduce_table1.py --epochs 3280" in at.code[0].value
    at.text_input(key="exp-path").input(str(tmp_path)).run()
    assert any("Cannot open" in e.value and "holds no dvae-experiment.json" in e.value for e in at.error)
    at.text_input(key="exp-path").input(str(RECORDED)).run()
    assert not at.error and heatmap_of(at)["x"] == ["0%", "5%", "10%", "15%"]
