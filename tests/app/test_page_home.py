"""Home page: the picture, the device, the datasets, and links into the pretrained models."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from page_helpers import figures, markdown_tables
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def open_home(monkeypatch, shipped: Path, user: Path) -> AppTest:
    no_data = user.parent / "no-data"  # offline classroom: only scikit-learn's digits are at hand
    no_data.mkdir(exist_ok=True)
    monkeypatch.setenv("DVAE_DATA_DIR", str(no_data))
    monkeypatch.setenv("DVAE_CHECKPOINT_DIR", str(shipped))
    monkeypatch.setenv("DVAE_USER_CHECKPOINT_DIR", str(user))
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    return at


@pytest.fixture
def home(monkeypatch, tiny_checkpoints, tmp_path) -> AppTest:
    return open_home(monkeypatch, tiny_checkpoints, tmp_path / "user")


def test_home_is_the_default_page_and_renders(home):
    assert not home.exception
    assert home.title[0].value == "DVAE Explorer"
    assert any("mixture" in m.value and "q(z|x̃)" in m.value for m in home.markdown)


def test_home_draws_the_picture_with_a_shipped_dvae_model(home):
    caption = " ".join(c.value for c in home.caption)
    assert "digits test image" in caption and "digits-dvae-2d" in caption  # decoder mean of the fixture's DVAE
    assert "One DVAE training step" in figures(home)[0]  # the picture, drawn as SVG


def test_home_lists_every_shipped_model_with_links_carrying_its_name(home, tiny_checkpoints):
    stems = sorted(p.stem for p in tiny_checkpoints.glob("*.pt"))
    assert sorted(s.value for s in home.subheader) == stems
    links = home.get("page_link")
    targets = {(link.proto.page, link.proto.query_string) for link in links}
    for stem in stems:
        assert any(page.endswith("posterior") and f"model={stem}" in query for page, query in targets), stem
        assert any(page.endswith("reconstructions") and f"model={stem}" in query for page, query in targets), stem
    # each card states its test number with what it is
    assert sum("importance-sampled" in m.value and "nats per example" in m.value for m in home.markdown) == 3


def test_home_reports_device_and_offline_datasets(home):
    texts = " ".join(e.value for e in [*home.info, *home.success])
    assert "CPU" in texts or "GPU" in texts
    table = next(t for t in markdown_tables(home) if "on disk" in t[0])
    assert [row["dataset"] for row in table] == ["mnist", "binarized-mnist", "frey", "fashion-mnist", "digits"]
    on_disk = {row["dataset"]: row["on disk"] for row in table}
    assert on_disk["digits"] == "yes" and on_disk["mnist"] == "no"
    # a missing dataset says which file is missing and how to get it
    assert any("frey_rawface.mat" in c.value and "DVAE_DATA_DIR" in c.value for c in home.caption)


def test_home_without_checkpoints_points_to_train(monkeypatch, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    at = open_home(monkeypatch, empty, tmp_path / "user")
    assert not at.exception
    assert any("No pretrained models" in i.value for i in at.info)
    assert any(link.proto.page.endswith("train") for link in at.get("page_link"))


def evidence(diff: float, half: float, seeds: int = 3) -> dict:
    return {"seeds": seeds, "images": 500, "difference": [diff, half], "paired_p": 0.01,
            "images_where_denoising_is_better": 300}


def test_the_denoising_verdict_is_read_off_the_interval_over_seeds():
    from ui.training_view import denoising_verdicts

    lines = denoising_verdicts({"a": evidence(-1.0, 0.5), "b": evidence(1.0, 0.5), "c": evidence(0.2, 0.5),
                                "d": evidence(0.2, float("nan"), seeds=1)})
    assert ["denoising helps" in lines[0], "denoising hurts" in lines[1], "no difference" in lines[2],
            "no verdict" in lines[3]] == [True] * 4
    assert "-1.00 nats ± 0.50" in lines[0] and "over 3 seed(s)" in lines[0] and "300 of them" in lines[0]


def test_home_states_the_answer_to_does_denoising_help_from_the_results_file(monkeypatch, tiny_checkpoints,
                                                                            tmp_path):
    import json

    results = tmp_path / "results"
    results.mkdir()
    (results / "denoising.json").write_text(json.dumps(
        {"budget": "Budget: 20 epochs.", "comparisons": {"MNIST, VAE vs DVAE": evidence(0.9, 0.3)}}))
    monkeypatch.setenv("DVAE_RESULTS_DIR", str(results))
    at = open_home(monkeypatch, tiny_checkpoints, tmp_path / "user")
    assert not at.exception
    assert "Does denoising help?" in [h.value for h in at.header]
    assert any("MNIST, VAE vs DVAE: **denoising hurts**" in m.value for m in at.markdown)
    assert any("Budget: 20 epochs." in c.value for c in at.caption)
