"""Bound vs M page: saved runs draw at once; launching queues the runs past the limit and draws their curves."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import streamlit as st
from page_helpers import as_browser
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 600  # a safety net for tiny runs on a busy machine, not an assertion


@pytest.fixture
def user(monkeypatch, tiny_checkpoints, tmp_path) -> Path:
    """This browser's own checkpoint folder (``<user root>/<owner key>``)."""
    folder = tmp_path / "user"
    monkeypatch.setenv("DVAE_CHECKPOINT_DIR", str(tiny_checkpoints))
    monkeypatch.setenv("DVAE_USER_CHECKPOINT_DIR", str(folder))
    st.cache_data.clear()
    st.cache_resource.clear()
    yield folder / as_browser(monkeypatch)
    from ui import cache

    registry = cache.job_registry()
    for job in registry.list():
        registry.stop(job.id)
        registry.wait(job.id, TIMEOUT)
    st.cache_resource.clear()


def open_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/bound_vs_m.py")
    at.run()
    assert not at.exception
    return at


def figure(at: AppTest) -> dict:
    charts = at.get("plotly_chart")
    assert len(charts) == 1
    return json.loads(charts[0].proto.spec)


def legend_names(fig: dict) -> list[str]:
    return [t["name"] for t in fig["data"] if t.get("showlegend", True)]


def test_without_runs_it_explains_what_to_do(user):
    at = open_page()
    assert any("Launch the runs above" in i.value for i in at.info)
    assert at.button(key="bvm_launch").label == "Launch 6 run(s)"  # DVAE and DIWAE × M = 1, 5, 10
    assert at.query_params["Ms"] == "1,5,10" and at.query_params["models"] == "DVAE,DIWAE"


def test_saved_runs_draw_at_once_with_labelled_axes(user, digits):
    from dvae_engine.checkpoint import save_checkpoint
    from dvae_engine.training import TrainConfig, train

    user.mkdir(parents=True)
    for objective in ("dvae", "diwae"):
        for m in (1, 5):
            config = TrainConfig(dataset="digits", objective=objective, noise="salt-pepper", noise_level=0.1,
                                 num_corruptions=m, hidden_units=16, latent_dim=2, epochs=2,
                                 max_train_examples=100, device="cpu")
            save_checkpoint(train(config, digits), user / f"bvm-20250101-120000-{objective}-m{m}.pt",
                            digits.image_shape)
    at = open_page()  # a fresh session picks the newest saved batch by itself
    assert len(at.multiselect(key="bvm_saved").value) == 4
    fig = figure(at)
    assert sorted(legend_names(fig)) == ["DIWAE M=1", "DIWAE M=5", "DVAE M=1", "DVAE M=5"]
    assert fig["layout"]["yaxis"]["title"]["text"] == "training objective (nats per example)"
    assert fig["layout"]["yaxis2"]["title"]["text"] == "clean validation ELBO (nats per example)"
    dashes = {t["name"]: t["line"]["dash"] for t in fig["data"]}
    assert dashes["DVAE M=1"] == "solid" and dashes["DIWAE M=1"] == "dash"
    assert all(len(t["x"]) == 2 for t in fig["data"])
    # the selection is in the URL, so the link reopens the same figure
    assert set(at.query_params["runs"].split(",")) == {f"user/{p.stem}" for p in user.glob("*.pt")}


def test_launch_queues_runs_past_the_limit_and_draws_them(user, monkeypatch):
    from ui import cache

    monkeypatch.setattr(cache, "MAX_CONCURRENT_JOBS", 1)
    at = open_page()
    at.multiselect(key="bvm_models").set_value(["DVAE"])
    at.multiselect(key="bvm_ms").set_value([1, 5])
    at.number_input(key="bvm_epochs").set_value(2)
    at.number_input(key="bvm_latent").set_value(2)
    at.number_input(key="bvm_max_examples").set_value(100)
    at.run()
    at.button(key="bvm_launch").click().run()
    assert not at.exception and not at.error
    deadline = time.monotonic() + TIMEOUT
    while sum("Finished" in s.value for s in at.success) < 2:
        assert time.monotonic() < deadline, "the two runs did not finish"
        time.sleep(0.3)
        at.run()
        assert not at.exception
    assert sorted(legend_names(figure(at))) == ["DVAE M=1", "DVAE M=5"]
    assert len(list(user.glob("bvm-*-dvae-m*.pt"))) == 2
