"""Train page: configuration, validation messages, a real background run on digits, stop, limits, owners."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import streamlit as st
from page_helpers import figures, markdown_tables
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 180  # seconds a tiny digits run may take on a busy machine (a safety net, not an assertion)


@pytest.fixture
def env(monkeypatch, tiny_checkpoints, tmp_path):
    """Shipped = the tiny fixture checkpoints, user folder = tmp, no dataset files; fresh caches and registry."""
    (tmp_path / "no-data").mkdir()
    monkeypatch.setenv("DVAE_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setenv("DVAE_CHECKPOINT_DIR", str(tiny_checkpoints))
    monkeypatch.setenv("DVAE_USER_CHECKPOINT_DIR", str(tmp_path / "user"))
    st.cache_data.clear()
    st.cache_resource.clear()
    yield tmp_path / "user"
    from ui import cache

    registry = cache.job_registry()
    for job in registry.list():
        registry.stop(job.id)
        registry.wait(job.id, TIMEOUT)
    st.cache_resource.clear()


def open_train(query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    at.switch_page("pages/train.py")
    at.run()
    assert not at.exception
    return at


def set_tiny_run(at: AppTest, epochs: int = 2, batch_size: int = 100) -> None:
    at.selectbox(key="train_dataset").select("digits")
    at.number_input(key="train_epochs").set_value(epochs)
    at.number_input(key="train_latent").set_value(2)
    at.number_input(key="train_max_examples").set_value(200)
    at.number_input(key="train_hidden").set_value(32)
    at.number_input(key="train_batch").set_value(batch_size)
    at.run()


def run_until(at: AppTest, done, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while True:
        at.run()
        assert not at.exception
        if done(at):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        time.sleep(0.2)


def texts(elements) -> str:
    return "\n".join(e.value for e in elements)


def test_train_page_renders_with_defaults_and_puts_them_in_the_url(env):
    at = open_train()
    assert at.selectbox(key="train_dataset").value == "digits"  # MNIST is not on disk here
    assert at.selectbox(key="train_objective").value == "dvae"
    assert not at.button(key="train_start").disabled
    assert at.query_params["dataset"] == "digits" and at.query_params["objective"] == "dvae"
    assert len(at.query_params["owner"]) == 16
    assert "DVAE digits salt-pepper 10% M=1 K=1 2L z=50" in texts(at.markdown)


def test_url_parameters_open_the_same_configuration(env):
    at = open_train({"objective": "diwae", "M": "5", "K": "3", "level": "0.15", "encoder": "GRU", "epochs": "oops"})
    assert at.selectbox(key="train_objective").value == "diwae"
    assert at.number_input(key="train_m").value == 5 and at.number_input(key="train_k").value == 3
    assert at.number_input(key="train_level").value == pytest.approx(0.15)
    assert at.selectbox(key="train_encoder").value == "GRU"
    assert at.number_input(key="train_epochs").value == 10  # a malformed value falls back to the default
    assert "DIWAE digits salt-pepper 15% M=5 K=3 GRU z=50" in texts(at.markdown)


def test_invalid_configuration_is_an_error_message_not_a_traceback(env):
    at = open_train()
    at.number_input(key="train_level").set_value(1.5).run()
    assert not at.exception
    assert "probability" in texts(at.error) and "[0, 1]" in texts(at.error)
    assert at.button(key="train_start").disabled


def test_missing_dataset_says_which_file_and_how_to_get_it(env):
    at = open_train()
    at.selectbox(key="train_dataset").select("frey").run()
    at.selectbox(key="train_noise").select("gaussian").run()
    message = texts(at.error)
    assert "frey_rawface.mat" in message and "DVAE_DATA_DIR" in message
    assert at.button(key="train_start").disabled


def test_a_tiny_run_finishes_is_offered_for_download_and_appears_in_the_checkpoint_list(env):
    at = open_train()
    set_tiny_run(at)
    at.button(key="train_start").click().run()
    assert not at.error
    run_until(at, lambda a: "Finished" in texts(a.success), "the run to finish")
    saved = list(env.glob("*.pt"))
    assert len(saved) == 1
    assert saved[0].name in texts(at.success)
    downloads = at.get("download_button")
    assert [d.proto.label for d in downloads] == ["Download figure (HTML)", "Download checkpoint"]
    # the live curves were drawn from the job's history, with labelled axes
    assert ">nats per example (higher is better)</text>" in figures(at)[0]
    assert any("importance-sampled" in row["what"] for table in markdown_tables(at) for row in table if "what" in row)
    at.switch_page("pages/checkpoints.py").run()
    assert not at.exception
    assert saved[0].stem in texts(at.markdown)


def test_stop_ends_a_run_and_it_is_still_saved(env):
    at = open_train()
    set_tiny_run(at, epochs=1000, batch_size=1)
    at.button(key="train_start").click().run()
    run_until(at, lambda a: any("batch" in p.proto.text for p in a.get("progress")), "the first batches")
    stop = next(b for b in at.button if b.key.startswith("stop-"))
    stop.click().run()
    run_until(at, lambda a: "Stopped during epoch" in texts(a.info), "the run to stop")
    saved = list(env.glob("*.pt"))
    assert len(saved) == 1 and f"saved as `{saved[0].name}`" in texts(at.info)


def test_a_diverged_run_says_so_and_keeps_its_last_good_state(env):
    at = open_train()
    set_tiny_run(at)
    at.number_input(key="train_lr").set_value(1e3).run()
    at.button(key="train_start").click().run()
    run_until(at, lambda a: "Diverged" in texts(a.warning), "the run to diverge")
    assert "lower learning rate" in texts(at.warning)
    saved = list(env.glob("*.pt"))
    assert len(saved) == 1 and f"last good state is saved as `{saved[0].name}`" in texts(at.warning)
    assert [d.proto.label for d in at.get("download_button")] == ["Download checkpoint"]


def test_concurrency_limit_gives_a_clear_message(env, monkeypatch):
    from ui import cache

    monkeypatch.setattr(cache, "MAX_CONCURRENT_JOBS", 1)
    at = open_train()
    set_tiny_run(at, epochs=1000, batch_size=1)
    at.button(key="train_start").click().run()
    at.button(key="train_start").click().run()
    assert not at.exception
    assert "Not started" in texts(at.error) and "limit 1" in texts(at.error)
    assert sum(b.key.startswith("stop-") for b in at.button) == 1


def test_each_session_sees_only_its_own_runs_and_a_refresh_keeps_them(env):
    alice = open_train()
    set_tiny_run(alice, epochs=1000, batch_size=1)
    alice.button(key="train_start").click().run()
    assert sum(b.key.startswith("stop-") for b in alice.button) == 1
    bob = open_train()
    assert bob.query_params["owner"] != alice.query_params["owner"]
    assert not any(b.key.startswith("stop-") for b in bob.button)
    refreshed = open_train({"owner": alice.query_params["owner"]})  # a new session from alice's URL
    assert sum(b.key.startswith("stop-") for b in refreshed.button) == 1
