"""The Train page offers the mixture objectives (dvae-mix, diwae-mix) and explains why M = 1 is refused."""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")


def open_train(monkeypatch, tiny_checkpoints, tmp_path, query: dict) -> AppTest:
    (tmp_path / "no-data").mkdir()
    monkeypatch.setenv("DVAE_DATA_DIR", str(tmp_path / "no-data"))
    monkeypatch.setenv("DVAE_CHECKPOINT_DIR", str(tiny_checkpoints))
    monkeypatch.setenv("DVAE_USER_CHECKPOINT_DIR", str(tmp_path / "user"))
    st.cache_data.clear()
    st.cache_resource.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    at.switch_page("pages/train.py")
    at.run()
    assert not at.exception
    return at


def test_mixture_objectives_are_offered_labelled_and_validated(monkeypatch, tiny_checkpoints, tmp_path):
    at = open_train(monkeypatch, tiny_checkpoints, tmp_path, {"objective": "dvae-mix", "M": "1"})
    assert "dvae-mix" in at.selectbox(key="train_objective").options or \
        any("DVAE-mix" in o for o in at.selectbox(key="train_objective").options)
    errors = " ".join(e.value for e in at.error)
    assert "needs M (num_corruptions) >= 2" in errors and "exactly 'dvae'" in errors
    assert at.button(key="train_start").disabled
    at.number_input(key="train_m").set_value(5).run()
    assert not at.exception and not at.error
    assert any("DVAE-mix digits salt-pepper 10% M=5 K=1" in m.value for m in at.markdown)
    assert any("mixture" in c.value for c in at.caption)  # OBJECTIVE_INFO under the model choice
    at.selectbox(key="train_objective").set_value("diwae-mix").run()
    assert any("DIWAE-mix digits salt-pepper 10% M=5 K=1" in m.value for m in at.markdown)
    assert not at.button(key="train_start").disabled
