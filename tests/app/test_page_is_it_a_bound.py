"""The "Is it a bound?" page: the exact lab reacts to its widgets, the counterexample, real checkpoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from page_helpers import figures
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
PAGE = "pages/is_it_a_bound.py"


def open_page(monkeypatch, shipped: Path, user: Path, query: dict | None = None) -> AppTest:
    monkeypatch.setenv("DVAE_CHECKPOINT_DIR", str(shipped))
    monkeypatch.setenv("DVAE_USER_CHECKPOINT_DIR", str(user))
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page(PAGE)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception
    return at


@pytest.fixture
def page(monkeypatch, tiny_checkpoints, tmp_path) -> AppTest:
    return open_page(monkeypatch, tiny_checkpoints, tmp_path / "user")


def metric_values(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def open_tab(at: AppTest, label: str) -> AppTest:
    """Click a tab (what the browser sends: the tab's label as the value of the tabs widget) and rerun."""
    at.session_state["section"] = label
    at.run()
    assert not at.exception
    return at


@pytest.fixture
def real_tab(page) -> AppTest:
    return open_tab(page, "Real models")


@pytest.fixture
def bridge_tab(page) -> AppTest:
    return open_tab(page, "The bridge")


def test_page_renders_the_exact_lab(page):
    assert page.title[0].value == "Is it a bound?"
    values = metric_values(page)
    assert "log p(x) (exact)" in values
    assert any(label.startswith("L_dvae, independent reading") for label in values)
    assert len(figures(page)) >= 3  # sweep, gaps, densities
    # the default view shows the independent reading above log p(x)
    independent = next(m for m in page.metric if m.label.startswith("L_dvae, independent"))
    assert independent.delta.startswith("+")
    assert any("not a bound" in m.value for m in page.markdown)


def test_noise_slider_changes_the_numbers_and_the_url(page):
    before = metric_values(page)
    page.slider(key="bl_nu").set_value(0.45).run()
    assert not page.exception
    after = metric_values(page)
    assert after["log p(x) (exact)"] == before["log p(x) (exact)"]  # log p(x) does not depend on the noise
    cvae = next(label for label in after if label.startswith("L_cvae"))
    assert after[cvae] != before[cvae]
    assert page.query_params["nu"] == ["0.45"] or page.query_params["nu"] == "0.45"


def test_diwae_with_m_and_k_is_labelled_a_monte_carlo_estimate(page):
    page.number_input(key="bl_M").set_value(2)
    page.number_input(key="bl_K").set_value(3).run()
    assert not page.exception
    diwae = next(m for m in page.metric if m.label.startswith("E[DIWAE"))
    assert "M=2, K=3" in diwae.label
    assert "Monte Carlo estimate" in diwae.help
    assert page.query_params["K"] in (["3"], "3")


def test_no_noise_collapses_the_readings(page):
    page.slider(key="bl_nu").set_value(0.0).run()
    values = list(metric_values(page).values())
    elbo, cvae, joint, independent = values[1:5]
    assert elbo == cvae == joint == independent


def test_state_is_read_from_the_url(monkeypatch, tiny_checkpoints, tmp_path):
    at = open_page(monkeypatch, tiny_checkpoints, tmp_path / "user",
                   {"D": "3", "L": "2", "noise": "salt-pepper", "nu": "0.3", "seed": "7", "x": "011"})
    assert at.slider(key="bl_D").value == 3
    assert at.radio(key="bl_L").value == 2
    assert at.radio(key="bl_noise").value == "salt-pepper"
    assert at.slider(key="bl_nu").value == pytest.approx(0.3)
    assert at.number_input(key="bl_seed").value == 7
    assert sorted(at.pills(key="bl_x3").value) == [2, 3]  # x = 011: pixels 2 and 3 are on


def test_malformed_url_falls_back_to_defaults(monkeypatch, tiny_checkpoints, tmp_path):
    at = open_page(monkeypatch, tiny_checkpoints, tmp_path / "user", {"D": "99", "nu": "x", "noise": "lava"})
    assert at.slider(key="bl_D").value == 4
    assert at.radio(key="bl_noise").value == "bit-flip"


def test_counterexample_button_shows_the_exact_numbers(page):
    assert not any("independent reading (exact)" in m.label for m in page.metric)
    page.button(key="bl_load_counter").click().run()
    assert not page.exception
    values = metric_values(page)
    assert values["L_dvae, independent reading (exact)"] == "0.5108"
    assert values["log p(x) (exact)"] == "0.0000"
    assert values["L_cvae (exact)"] == "0.0000"
    assert values["L_dvae, joint reading (exact)"] == "-0.3681"
    page.slider(key="bl_a").set_value(0.01).run()  # 1 − a = 0.99: ½ log(1 / (4 · 0.01 · 0.99)) = 1.6145
    assert metric_values(page)["L_dvae, independent reading (exact)"] == "1.6145"


def test_only_the_open_tab_runs_and_the_url_opens_a_tab(page, monkeypatch, tiny_checkpoints, tmp_path):
    assert [h.value for h in page.header] == ["1 · An exact lab on a tiny model", "2 · Ranganath's counterexample"]
    assert "bl_model" not in [s.key for s in page.selectbox] and "bl_br_model" not in [s.key for s in page.selectbox]
    open_tab(page, "Real models")
    assert [h.value for h in page.header] == ["3 · On real models"]
    assert not page.slider  # the lab's widgets are not drawn
    shared = open_page(monkeypatch, tiny_checkpoints, tmp_path / "user2", {"section": "The bridge"})
    assert [h.value for h in shared.header] == ["4 · The bridge: from the paper's objective to the critique's"]


def test_real_model_section_compares_objective_and_log_px(real_tab):
    page = real_tab
    page.selectbox(key="bl_model").set_value("digits-dvae-2d")
    page.number_input(key="bl_n").set_value(20)
    page.number_input(key="bl_repeats").set_value(4)
    page.run()
    page.button(key="bl_run_real").click().run()
    assert not page.exception
    values = metric_values(page)
    above = next(v for label, v in values.items() if label.startswith("Examples above the diagonal"))
    assert above.endswith("of 20")
    gap = next(v for label, v in values.items() if label.startswith("Mean gap"))
    assert float(gap.split("±")[0]) > 0  # log p(x) above the DVAE objective on average
    assert page.query_params["model"] in (["digits-dvae-2d"], "digits-dvae-2d")
    # a 2-D latent model is compared against the exact log p(x) (quadrature), on by default; with only
    # 4 draws per example the Monte Carlo error is itself rough, so allow a stray example or two
    assert any(label.startswith("Mean gap: exact log p(x)") for label in values)
    assert int(above.split()[0]) <= 2
    plain = next(v for label, v in values.items() if label.startswith("Above the plain q(z|x) estimate"))
    assert plain.endswith("of 20")
    assert any("below the exact value on average" in i.value for i in page.info)


def test_real_model_section_without_checkpoints(monkeypatch, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    at = open_page(monkeypatch, empty, tmp_path / "user", {"section": "Real models"})
    assert any("No checkpoints yet" in i.value for i in at.info)


# --- section 4: the bridge ---------------------------------------------------------------------------

def _chart(at: AppTest, title_start: str) -> dict:
    import json

    specs = [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]
    return next(s for s in specs if s["layout"].get("title", {}).get("text", "").startswith(title_start))


def test_bridge_on_the_tiny_model_shows_the_exact_l_cvae_and_both_sequences(page):
    lab_values = metric_values(page)
    section1_cvae = next(v for label, v in lab_values.items() if label.startswith("L_cvae: ELBO"))
    section1_kl = next(m.value for m in page.markdown if "E_x̃ KL(q(z|x̃) ‖ q̃(z|x)) = **" in m.value)
    open_tab(page, "The bridge")
    assert not any(m.label == "L_cvae (exact)" for m in page.metric)  # behind its button
    page.button(key="bl_br_tiny_run").click().run()
    assert not page.exception
    values = metric_values(page)
    assert values["L_cvae (exact)"] == section1_cvae  # the same exact number, two routes
    assert values["L_cvae − L_dvae = E KL(q(z|x̃) ‖ q̃) (exact)"] in section1_kl
    assert values["U⁽¹⁾ (independent reading) − log p(x) (exact)"].startswith("+")  # the default view: not a bound
    figure = _chart(page, "Tiny model")
    names = [t.get("name", "") for t in figure["data"]]
    assert "L⁽ᴷ⁾ exact" in names and "U⁽ᴷ⁾ exact" in names
    assert any(n.startswith("L⁽ᴷ⁾: z scored") for n in names) and any(n.startswith("U⁽ᴷ⁾: x̃₀ left") for n in names)
    assert figure["layout"]["xaxis"]["type"] == "log"
    # moving a section-1 setting asks for a recomputation instead of silently recomputing; the bridge reads the
    # moved setting although the lab's widgets were not drawn in between (the URL carries it)
    open_tab(page, "Exact lab")
    assert page.slider(key="bl_nu").value == 0.2
    page.slider(key="bl_nu").set_value(0.3).run()
    open_tab(page, "The bridge")
    assert any("settings of section 1 (the exact lab) changed" in i.value for i in page.info)
    assert not any(m.label == "L_cvae (exact)" for m in page.metric)
    assert any("ν = 0.3)" in m.value for m in page.markdown)
    open_tab(page, "Exact lab")
    assert page.slider(key="bl_nu").value == 0.3  # and the lab comes back as it was left


def test_bridge_on_a_checkpoint_brackets_the_gap_and_shows_one_example(bridge_tab):
    page = bridge_tab
    page.selectbox(key="bl_br_model").set_value("digits-dvae-2d")
    page.number_input(key="bl_br_n").set_value(4)
    page.selectbox(key="bl_br_kmax").set_value(16)
    page.number_input(key="bl_br_repeats").set_value(4)
    page.run()
    page.button(key="bl_br_run").click().run()
    assert not page.exception
    values = metric_values(page)
    low, high = (float(v) for v in values["KL gap L_cvae − L_dvae = E KL(q(z|x̃) ‖ q̃(z|x))"].strip("[]").split(","))
    assert low <= high
    cvae_low, cvae_high = (float(v) for v in values["L_cvae lies in [L⁽16⁾, U⁽16⁾]"].strip("[]").split(","))
    assert cvae_low <= cvae_high
    assert "U⁽¹⁾ (independent reading) − log p(x)" in values
    mean_chart = _chart(page, "Averaged over 4 clean test examples")
    assert mean_chart["layout"]["xaxis"]["type"] == "log"
    assert any("exact" in a.get("text", "") for a in mean_chart["layout"]["annotations"])  # 2-D: exact log p(x)
    _chart(page, "The price of the cheap objective")
    page.selectbox(key="bl_br_example").set_value(2).run()
    assert not page.exception
    _chart(page, "Example #2")


def test_bridge_section_without_checkpoints(monkeypatch, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for tab in ("Real models", "The bridge"):
        at = open_page(monkeypatch, empty, tmp_path / "user", {"section": tab})
        assert sum("No checkpoints yet" in i.value for i in at.info) == 1



def test_a_step_of_a_model_setting_computes_the_next_models_ahead(page, monkeypatch):
    from ui import cache

    ahead = []
    monkeypatch.setattr(cache, "prefetch_boundlab_model", lambda model_args, *a: ahead.append(model_args))
    page.slider(key="bl_sigma").set_value(0.55).run()
    assert not page.exception
    # σ 0.5 → 0.55: 0.6 first (the same direction), then 0.5; the other settings as they are
    assert ahead == [(4, 1, 0, "linear", 1.5, 0.6), (4, 1, 0, "linear", 1.5, 0.5)]
    ahead.clear()
    page.slider(key="bl_nu").set_value(0.3).run()  # not a model setting: nothing ahead
    assert ahead == []
    page.number_input(key="bl_seed").set_value(1).run()
    assert ahead == [(4, 1, 2, "linear", 1.5, 0.55), (4, 1, 0, "linear", 1.5, 0.55)]
    ahead.clear()
    page.number_input(key="bl_seed").set_value(0).run()
    assert ahead == [(4, 1, 1, "linear", 1.5, 0.55)]  # seed −1 does not exist
    ahead.clear()
    page.slider(key="bl_D").set_value(5).run()  # D: the next widths, each with its own clean x
    assert ahead == [(6, 1, 0, "linear", 1.5, 0.55), (4, 1, 0, "linear", 1.5, 0.55)]


def test_the_next_step_finds_its_model_computed(page, monkeypatch):
    import threading

    from dvae_engine import boundlab
    from ui import cache

    page.slider(key="bl_sigma").set_value(0.55).run()
    cache._prefetcher.submit(lambda: None).result(timeout=120)  # one thread, in order: everything before has run
    views = []  # the page's own computations (the prefetch thread meanwhile starts on the models after this step)
    lab_view = boundlab.lab_view

    def counted(*args, **kwargs):
        if not threading.current_thread().name.startswith("prefetch"):
            views.append(args[0])
        return lab_view(*args, **kwargs)

    monkeypatch.setattr(boundlab, "lab_view", counted)
    # a browser's slider can send 0.6000000000000001 for the next step: the page reads it as the model computed ahead
    page.slider(key="bl_sigma").set_value(0.55 + 0.05).run()
    assert not page.exception
    assert views == []
