"""Checkpoints page: list with labelled metrics, download, validated upload, rename, delete with confirmation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import streamlit as st
from page_helpers import markdown_tables
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")


@pytest.fixture
def user(monkeypatch, tiny_checkpoints, tmp_path) -> Path:
    """The user folder, holding one copy of a fixture checkpoint; shipped = the tiny fixture folder."""
    folder = tmp_path / "user"
    folder.mkdir()
    shutil.copy(tiny_checkpoints / "digits-vae-2d.pt", folder / "mine.pt")
    monkeypatch.setenv("DVAE_CHECKPOINT_DIR", str(tiny_checkpoints))
    monkeypatch.setenv("DVAE_USER_CHECKPOINT_DIR", str(folder))
    st.cache_data.clear()
    st.cache_resource.clear()
    return folder


def open_checkpoints() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/checkpoints.py")
    at.run()
    assert not at.exception
    return at


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def texts(elements) -> str:
    return "\n".join(e.value for e in elements)


def test_lists_shipped_and_user_runs_with_labelled_metrics(user, tiny_checkpoints):
    at = open_checkpoints()
    listed = texts(at.markdown)
    for stem in ("digits-vae-2d", "digits-dvae-2d", "digits-diwae-4d"):
        assert f"**{stem}** · shipped" in listed
    assert "**mine** · yours" in listed
    assert at.header[0].value == "4 checkpoint(s)"
    what = [row["what"] for table in markdown_tables(at) for row in table if "what" in row]
    assert "−ELBO on clean test data (k = 1, exact KL)" in what
    assert any(w.startswith("−log p(x), importance-sampled estimate (k = 100)") for w in what)
    assert len(at.get("download_button")) == 4
    # shipped files cannot be renamed or deleted: only the user's run has those buttons
    assert sorted(b.key for b in at.button) == ["delete-mine", "do-rename-mine"]


def test_garbage_upload_is_rejected_with_a_message_and_changes_nothing(user):
    at = open_checkpoints()
    at.file_uploader(key="ckpt_upload").set_value(("weights.pt", b"\x80\x04 definitely not a checkpoint", "x")).run()
    assert not at.exception
    assert "`weights.pt` was not added" in texts(at.error)
    assert names(user) == ["mine.pt"]
    assert at.header[0].value == "4 checkpoint(s)"


def test_real_upload_is_saved_without_overwriting(user, tiny_checkpoints):
    data = (tiny_checkpoints / "digits-dvae-2d.pt").read_bytes()
    at = open_checkpoints()
    at.file_uploader(key="ckpt_upload").set_value(("mine.pt", data, "application/octet-stream")).run()
    assert "saved as `mine-2.pt`" in texts(at.success)
    at.run()  # the same upload is not stored again on the next rerun
    assert names(user) == ["mine-2.pt", "mine.pt"]
    assert (user / "mine.pt").read_bytes() == (tiny_checkpoints / "digits-vae-2d.pt").read_bytes()
    assert "**mine-2** · yours" in texts(at.markdown)


def test_delete_asks_for_confirmation(user):
    at = open_checkpoints()
    at.button(key="delete-mine").click().run()
    assert names(user) == ["mine.pt"]
    assert "Delete `mine.pt` for good?" in texts(at.warning)
    at.button(key="cancel-delete-mine").click().run()
    assert names(user) == ["mine.pt"] and not at.warning
    at.button(key="delete-mine").click().run()
    at.button(key="confirm-delete-mine").click().run()
    assert not at.exception
    assert names(user) == []
    assert "Deleted `mine.pt`" in texts(at.success)
    assert at.header[0].value == "3 checkpoint(s)"


def test_rename_checks_the_name_and_never_overwrites(user):
    shutil.copy(user / "mine.pt", user / "other.pt")
    at = open_checkpoints()
    at.text_input(key="rename-mine").input("other").run()
    at.button(key="do-rename-mine").click().run()
    assert "already exists" in texts(at.error)
    at.text_input(key="rename-mine").input("../escape").run()
    at.button(key="do-rename-mine").click().run()
    assert "not a usable name" in texts(at.error)
    assert names(user) == ["mine.pt", "other.pt"]
    at.text_input(key="rename-mine").input("lecture-3").run()
    at.button(key="do-rename-mine").click().run()
    assert not at.exception
    assert names(user) == ["lecture-3.pt", "other.pt"]
    assert "**lecture-3** · yours" in texts(at.markdown)


def test_an_unreadable_file_in_the_folder_is_reported_not_fatal(user):
    (user / "broken.pt").write_bytes(b"PK\x03\x04 truncated")
    at = open_checkpoints()
    assert "Not readable" in texts(at.warning)
    assert at.button(key="delete-broken")  # it can still be removed
