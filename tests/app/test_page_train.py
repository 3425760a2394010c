"""Train page: configuration, validation messages, a real background run on digits, stop, limits, owners."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import streamlit as st
from page_helpers import TOKEN, as_browser, markdown_tables
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
TIMEOUT = 180  # seconds a tiny digits run may take on a busy machine (a safety net, not an assertion)


@pytest.fixture
def env(monkeypatch, tiny_checkpoints, tmp_path):
    """Shipped = the tiny fixture checkpoints, no dataset files, fresh caches and registry; yields this
    browser's own checkpoint folder (``<user root>/<owner key>``)."""
    (tmp_path / "no-data").mkdir()
    monkeypatch.setenv("DVAE_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setenv("DVAE_CHECKPOINT_DIR", str(tiny_checkpoints))
    monkeypatch.setenv("DVAE_USER_CHECKPOINT_DIR", str(tmp_path / "user"))
    st.cache_data.clear()
    st.cache_resource.clear()
    yield tmp_path / "user" / as_browser(monkeypatch)
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
    assert "owner" not in at.query_params  # identity is a cookie, never part of a link
    summary = texts(at.markdown)
    assert "DVAE digits salt-pepper 10% M=1 K=1 2L z=50" in summary
    assert "learning rate 0.001 (constant schedule)" in summary and "batch size 100" in summary
    assert "200 hidden units" in summary and "seed 0" in summary and "quick evaluation" in summary
    # every number box names its allowed range where it stands
    assert at.number_input(key="train_latent").label == "Latent size (1 to 500)"
    assert at.number_input(key="train_lr").label == "Learning rate (1e-07 to 1000)"


def test_url_parameters_open_the_same_configuration(env):
    at = open_train({"objective": "diwae", "M": "5", "K": "3", "level": "0.15", "encoder": "GRU", "lr": "0.003"})
    assert at.selectbox(key="train_objective").value == "diwae"
    assert at.number_input(key="train_m").value == 5 and at.number_input(key="train_k").value == 3
    assert at.number_input(key="train_level").value == pytest.approx(0.15)
    assert at.selectbox(key="train_encoder").value == "GRU"
    assert "DIWAE digits salt-pepper 15% M=5 K=3 GRU z=50" in texts(at.markdown)
    assert "learning rate 0.003" in texts(at.markdown)
    assert not at.warning  # nothing in this link was refused


@pytest.mark.parametrize(("query", "key", "default", "said"), [
    ({"z": "0"}, "train_latent", 50, "z=0 is outside the allowed range, 1 to 500; using 50"),
    ({"epochs": "0"}, "train_epochs", 10, "epochs=0 is outside the allowed range, 1 to 5,000; using 10"),
    ({"epochs": "oops"}, "train_epochs", 10, "epochs=oops is not a whole number; using 10"),
    ({"level": "-1"}, "train_level", 0.1, "level=-1 is outside the allowed range, above 0 and at most 1; using 0.1"),
    ({"lr": "100000"}, "train_lr", 1e-3, "lr=100000 is outside the allowed range, 1e-07 to 1000; using 0.001"),
    ({"objective": "gan"}, "train_objective", "dvae", "objective=gan is not one of the allowed values"),
])
def test_a_link_value_out_of_range_is_announced_and_the_default_used(env, query, key, default, said):
    at = open_train(query)
    widget = at.selectbox(key=key) if key == "train_objective" else at.number_input(key=key)
    assert widget.value == default
    assert said in texts(at.warning)
    assert not at.button(key="train_start").disabled
    # the summary agrees with the boxes: the Model box says DVAE, and so does the summary
    assert "Will train **DVAE digits salt-pepper 10%" in texts(at.markdown)


def test_typed_values_out_of_range_are_errors_beside_the_box_never_clamped(env):
    at = open_train()
    at.number_input(key="train_lr").set_value(100000.0).run()
    assert at.number_input(key="train_lr").value == 100000.0  # kept as typed, not clamped or ignored
    assert "Learning rate must be 1e-07 to 1000; it is 100000." in texts(at.error)
    assert at.button(key="train_start").disabled
    assert "Will train" not in texts(at.markdown)
    at.number_input(key="train_lr").set_value(0.01).run()
    at.number_input(key="train_latent").set_value(0).run()
    assert "Latent size must be 1 to 500; it is 0." in texts(at.error)
    assert at.button(key="train_start").disabled
    at.number_input(key="train_latent").set_value(8).run()
    assert not at.error and not at.button(key="train_start").disabled
    assert "learning rate 0.01 " in texts(at.markdown) and "z=8" in texts(at.markdown)


def test_invalid_configuration_is_an_error_message_not_a_traceback(env):
    at = open_train()
    at.number_input(key="train_level").set_value(1.5).run()
    assert not at.exception
    assert "Noise level must be above 0 and at most 1; it is 1.5." in texts(at.error)
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
    outcome = texts(at.success)
    assert saved[0].name in outcome
    # the time reported is the whole run's, evaluation included, with its parts
    assert re.search(r"Finished 2 epoch\(s\) in \d+ s \(training \d+ s, evaluation \d+ s\)", outcome), outcome
    downloads = at.get("download_button")
    assert [d.proto.label for d in downloads] == ["Download figure (HTML)", "Download checkpoint"]
    # the live curves were drawn from the job's history, with labelled axes
    assert '"nats per example (higher is better)"' in at.get("plotly_chart")[0].proto.spec
    what = [row["what"] for table in markdown_tables(at) for row in table if "what" in row]
    assert any("importance-sampled" in w for w in what)
    assert any("(k = 100)" in w for w in what)  # the quick evaluation
    links = [link.proto.page for link in at.get("page_link")]
    assert links
    at.switch_page("pages/checkpoints.py").run()
    assert not at.exception
    assert f"**{saved[0].stem}** · yours" in texts(at.markdown)


def test_evaluation_shows_counts_and_time_left(env):
    from ui import cache

    at = open_train()
    set_tiny_run(at, epochs=1)
    at.radio(key="train_evaluation").set_value("standard").run()
    registry = cache.job_registry()
    registry.eval_examples, registry.eval_importance_samples = 300, 2000  # slow enough to watch
    at.button(key="train_start").click().run()
    seen = []

    def evaluating(a) -> bool:
        texts_now = [p.proto.text for p in a.get("progress")]
        seen.extend(t for t in texts_now if t.startswith("Evaluating"))
        return any("about" in t and "left" in t for t in seen) or "Finished" in texts(a.success)

    run_until(at, evaluating, "the evaluation to report progress")
    # ELBO, training objective, log p(x) by the mixture and the plain proposals, and exactly (2-D latent)
    assert any(re.search(r"Evaluating on 300 clean test images · step \d of 5: .* · [\d,]+ of 300", t)
               for t in seen), seen
    job = registry.list()[0]
    registry.wait(job.id, TIMEOUT)


def test_stop_ends_a_run_and_an_untrained_one_is_kept_as_a_diagnostic(env):
    at = open_train()
    set_tiny_run(at, epochs=1000, batch_size=1)
    at.number_input(key="train_max_examples").set_value(0).run()  # all 1197 digits: a long first epoch
    at.button(key="train_start").click().run()
    # stop at once: on a fast machine even 1197 one-example batches take only seconds
    stop = next(b for b in at.button if b.key.startswith("stop-"))
    stop.click().run()
    run_until(at, lambda a: "Stopped in epoch 1" in texts(a.info), "the run to stop")
    assert not list(env.glob("*.pt"))  # nothing learned: not offered as a model
    saved = list((env / "diagnostics").glob("*.pt"))
    assert len(saved) == 1 and f"kept as a **diagnostic** file `{saved[0].name}`" in texts(at.info)
    assert not at.get("page_link") or all("Open in" not in link.proto.label for link in at.get("page_link"))


def test_a_diverged_run_says_so_and_keeps_its_last_good_state_as_a_diagnostic(env):
    at = open_train()
    set_tiny_run(at)
    at.number_input(key="train_lr").set_value(1e3).run()
    at.button(key="train_start").click().run()
    run_until(at, lambda a: "Diverged" in texts(a.warning), "the run to diverge")
    assert "lower learning rate" in texts(at.warning)
    assert not list(env.glob("*.pt"))
    saved = list((env / "diagnostics").glob("*.pt"))
    assert len(saved) == 1 and f"kept as a **diagnostic** file `{saved[0].name}`" in texts(at.warning)
    assert [d.proto.label for d in at.get("download_button")] == ["Download checkpoint"]
    for page in ("pages/posterior.py", "pages/is_it_a_bound.py"):
        at.switch_page(page).run()
        assert not at.exception
        assert saved[0].stem not in str([w.options for w in at.selectbox])


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


def test_each_browser_sees_only_its_own_runs_and_a_new_tab_or_refresh_keeps_them(env, monkeypatch):
    alice = open_train({"owner": "0123456789abcdef"})  # an old link's ?owner= is ignored and dropped
    assert "owner" not in alice.query_params
    set_tiny_run(alice, epochs=1000, batch_size=1)
    alice.button(key="train_start").click().run()
    assert sum(b.key.startswith("stop-") for b in alice.button) == 1
    as_browser(monkeypatch, "b" * 32)  # another browser, opening alice's link with every query parameter
    bob = open_train(dict(alice.query_params))
    assert not any(b.key.startswith("stop-") for b in bob.button)
    assert "your runs" not in texts(bob.sidebar.caption).lower()
    as_browser(monkeypatch, TOKEN)  # alice's browser again: a new tab or a refresh
    refreshed = open_train()
    assert sum(b.key.startswith("stop-") for b in refreshed.button) == 1
    assert "1 of your runs is in progress" in texts(refreshed.sidebar.caption)


def test_the_server_refuses_to_stop_someone_elses_run(env, monkeypatch):
    from dvae_engine.jobs import JobAccessError
    from ui import cache, identity

    alice = open_train()
    set_tiny_run(alice, epochs=1000, batch_size=1)
    alice.button(key="train_start").click().run()
    job = cache.job_registry().list()[0]
    with pytest.raises(JobAccessError, match="someone else"):
        cache.job_registry().stop(job.id, owner=identity.key_of("b" * 32))
    assert cache.job_registry().snapshot(job.id).active


def test_a_stopped_run_resumes_from_its_card_and_finishes(env):
    at = open_train()
    set_tiny_run(at, epochs=2, batch_size=1)
    at.number_input(key="train_max_examples").set_value(0).run()  # 1197 one-example batches per epoch
    at.button(key="train_start").click().run()
    run_until(at, lambda a: any("batch" in p.proto.text for p in a.get("progress")), "the first batches")
    next(b for b in at.button if b.key.startswith("stop-")).click().run()
    run_until(at, lambda a: "Stopped in epoch" in texts(a.info), "the run to stop")
    resume = next(b for b in at.button if b.key.startswith("resume-"))
    assert resume.label == "Resume to 2 epochs"
    resume.click().run()
    run_until(at, lambda a: "Finished 2 epoch(s)" in texts(a.success), "the resumed run to finish")
    assert not at.error
