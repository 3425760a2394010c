"""Who is asking (ui.identity) and what a link may carry (ui.params): identity never rides in a URL, a link's
unusable values are announced, and another browser's checkpoint cannot be named in a link."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest
import streamlit as st
from page_helpers import APP, TOKEN, as_browser
from streamlit.testing.v1 import AppTest


@pytest.fixture
def env(monkeypatch, tiny_checkpoints, tmp_path):
    monkeypatch.setenv("DVAE_CHECKPOINT_DIR", str(tiny_checkpoints))
    monkeypatch.setenv("DVAE_USER_CHECKPOINT_DIR", str(tmp_path / "user"))
    st.cache_data.clear()
    st.cache_resource.clear()
    return tmp_path / "user"


def open_page(page: str, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params.update(query or {})
    at.switch_page(page)
    at.run()
    assert not at.exception
    return at


def toasts(at: AppTest) -> str:
    return "\n".join(t.value for t in at.toast)


def test_the_cookie_gives_the_same_owner_in_every_tab_and_a_new_browser_a_new_one(env, monkeypatch):
    from ui import identity

    as_browser(monkeypatch)
    first = open_page("pages/home.py", {"owner": "0123456789abcdef"})
    second = open_page("pages/posterior.py")
    assert first.session_state["_owner_token"] == second.session_state["_owner_token"] == TOKEN
    assert "owner" not in first.query_params  # an old link's ?owner= is dropped, never adopted
    monkeypatch.setattr(identity, "browser_cookies", lambda: {})  # a browser without the cookie
    third = open_page("pages/home.py")
    assert third.session_state["_owner_token"] != TOKEN
    monkeypatch.setattr(identity, "browser_cookies", lambda: {identity.COOKIE: "not-a-token"})
    assert open_page("pages/home.py").session_state["_owner_token"] != "not-a-token"


def test_the_owner_key_is_a_hash_and_reveals_nothing_of_the_token():
    from ui import identity

    key = identity.key_of(TOKEN)
    assert len(key) == 32 and TOKEN not in key and key != identity.key_of("f" * 32)


def test_a_token_set_by_another_tab_first_is_adopted(env, monkeypatch):
    """Two tabs opened at once by a browser without the cookie: the one whose token the browser kept wins."""
    from ui import identity

    monkeypatch.setattr(identity, "browser_cookies", lambda: {})
    kept = "c" * 32
    monkeypatch.setattr(identity, "_cookie_component", lambda **kwargs: SimpleNamespace(token=kept))
    at = open_page("pages/home.py")
    assert at.session_state["_owner_token"] == kept


@pytest.mark.parametrize(("query", "said"), [
    ({"n": "1000"}, "n=1000 is above the largest allowed value, 128; using the default, 32"),
    ({"seed": "x"}, "seed=x is not a whole number; using the default, 0"),
    ({"model": "user/someone-elses"}, "model=user/someone-elses is not one of the allowed values"),
])
def test_an_unusable_link_value_is_announced_and_the_default_used(env, query, said):
    at = open_page("pages/posterior.py", query)
    assert said in toasts(at)


def test_a_link_to_someone_elses_checkpoint_opens_nothing_of_theirs(env, monkeypatch, tiny_checkpoints):
    from ui import identity

    theirs = env / identity.key_of("d" * 32)
    theirs.mkdir(parents=True)
    shutil.copy(tiny_checkpoints / "digits-dvae-2d.pt", theirs / "private-run.pt")
    as_browser(monkeypatch)
    at = open_page("pages/reconstructions.py", {"model": "user/private-run"})
    assert "not one of the allowed values" in toasts(at)
    assert not any("private-run" in o for box in at.selectbox for o in box.options)
    as_browser(monkeypatch, "d" * 32)  # its owner's browser opens the same link
    at = open_page("pages/reconstructions.py", {"model": "user/private-run"})
    assert at.selectbox(key="model_main").value.name == "private-run.pt"
    assert not at.toast
