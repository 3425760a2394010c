"""Checkpoints page: owned lists, labelled metrics, validated upload, rename, delete; collisions never break it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import streamlit as st
from page_helpers import as_browser, markdown_tables
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[2] / "app.py")
OTHER_TOKEN = "ffffffffffffffffffffffffffffffff"


@pytest.fixture
def user(monkeypatch, tiny_checkpoints, tmp_path) -> Path:
    """This browser's folder, holding one copy of a fixture checkpoint; shipped = the tiny fixture folder."""
    root = tmp_path / "user"
    folder = root / as_browser(monkeypatch)
    folder.mkdir(parents=True)
    shutil.copy(tiny_checkpoints / "digits-vae-2d.pt", folder / "mine.pt")
    monkeypatch.setenv("DVAE_CHECKPOINT_DIR", str(tiny_checkpoints))
    monkeypatch.setenv("DVAE_USER_CHECKPOINT_DIR", str(root))
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
    return sorted(p.name for p in folder.iterdir() if p.is_file())


def texts(elements) -> str:
    return "\n".join(e.value for e in elements)


def test_lists_shipped_and_own_runs_with_labelled_metrics(user, tiny_checkpoints):
    at = open_checkpoints()
    listed = texts(at.markdown)
    for stem in ("digits-vae-2d", "digits-dvae-2d", "digits-diwae-4d"):
        assert f"**{stem}** · shipped" in listed
    assert "**mine** · yours" in listed
    assert at.header[0].value == "4 checkpoint(s)"
    what = [row["what"] for table in markdown_tables(at) for row in table if "what" in row]
    assert "−ELBO on clean test data (k = 1, exact KL)" in what
    # the number models are compared by comes first, the plain estimate is a labelled second row
    assert any(w.startswith("−log p(x), importance-sampled (k = 100), defensive mixture") for w in what)
    assert any(w.startswith("−log p(x), importance-sampled (k = 100), plain proposal q(z|x)") for w in what)
    assert len(at.get("download_button")) == 4
    # shipped files cannot be renamed or deleted: only the user's run has those buttons, keyed by its id
    assert sorted(b.key for b in at.button) == ["delete-user/mine", "do-rename-user/mine"]


def test_another_browsers_files_are_invisible_and_older_shared_ones_read_only(user, tiny_checkpoints):
    from ui import identity

    other = user.parent / identity.key_of(OTHER_TOKEN)
    other.mkdir()
    shutil.copy(tiny_checkpoints / "digits-dvae-2d.pt", other / "secret.pt")
    shutil.copy(tiny_checkpoints / "digits-dvae-2d.pt", user.parent / "old-run.pt")  # before per-owner folders
    at = open_checkpoints()
    listed = texts(at.markdown)
    assert "secret" not in listed
    assert "**old-run** · older shared run · read-only" in listed
    assert sorted(b.key for b in at.button) == ["delete-user/mine", "do-rename-user/mine"]


def test_a_file_named_like_a_shipped_model_cannot_break_the_page(user, tiny_checkpoints):
    data = (tiny_checkpoints / "digits-dvae-2d.pt").read_bytes()
    at = open_checkpoints()
    # upload a valid file under a shipped model's name, then rename the other one to a shipped name too
    at.file_uploader(key="ckpt_upload").set_value(("digits-dvae-2d.pt", data, "application/octet-stream")).run()
    assert not at.exception
    assert "saved among your checkpoints as `digits-dvae-2d.pt`" in texts(at.success)
    at.text_input(key="rename-user/mine").input("digits-vae-2d").run()
    at.button(key="do-rename-user/mine").click().run()
    assert not at.exception
    assert names(user) == ["digits-dvae-2d.pt", "digits-vae-2d.pt"]
    listed = texts(at.markdown)
    assert "**digits-vae-2d** · shipped" in listed and "**digits-vae-2d** · yours" in listed
    assert "**digits-dvae-2d** · yours" in listed
    assert at.header[0].value == "5 checkpoint(s)"
    assert len(at.get("download_button")) == 5
    # every other page still opens, and offers both files under distinct ids
    for page in ("pages/posterior.py", "pages/reconstructions.py", "pages/samples.py", "pages/is_it_a_bound.py",
                 "pages/home.py", "pages/bound_vs_m.py"):
        at.switch_page(page).run()
        assert not at.exception, page
    at.switch_page("pages/posterior.py").run()
    options = at.selectbox(key="model_a").options
    assert any(o.startswith("digits-vae-2d (yours) —") for o in options)
    assert any(o.startswith("digits-vae-2d —") for o in options)


def test_garbage_upload_is_rejected_with_a_plain_message_and_changes_nothing(user):
    at = open_checkpoints()
    at.file_uploader(key="ckpt_upload").set_value(("weights.pt", b"\x80\x04 definitely not a checkpoint", "x")).run()
    assert not at.exception
    message = texts(at.error)
    assert "`weights.pt` was not added" in message and "pickle" in message
    assert "0x" not in message and "Error" not in message
    at.file_uploader(key="ckpt_upload").set_value(("cut.pt", b"PK\x03\x04" + b"\0" * 200, "x")).run()
    message = texts(at.error)
    assert "damaged or incomplete" in message and "miniz" not in message.lower()
    assert names(user) == ["mine.pt"]
    assert at.header[0].value == "4 checkpoint(s)"


def test_real_upload_is_saved_without_overwriting(user, tiny_checkpoints):
    data = (tiny_checkpoints / "digits-dvae-2d.pt").read_bytes()
    at = open_checkpoints()
    at.file_uploader(key="ckpt_upload").set_value(("mine.pt", data, "application/octet-stream")).run()
    assert "saved among your checkpoints as `mine-2.pt`" in texts(at.success)
    at.run()  # the same upload is not stored again on the next rerun
    assert names(user) == ["mine-2.pt", "mine.pt"]
    assert (user / "mine.pt").read_bytes() == (tiny_checkpoints / "digits-vae-2d.pt").read_bytes()
    assert "**mine-2** · yours" in texts(at.markdown)


def test_delete_asks_for_confirmation(user):
    at = open_checkpoints()
    at.button(key="delete-user/mine").click().run()
    assert names(user) == ["mine.pt"]
    assert "Delete `mine.pt` for good?" in texts(at.warning)
    at.button(key="cancel-delete-user/mine").click().run()
    assert names(user) == ["mine.pt"] and not at.warning
    at.button(key="delete-user/mine").click().run()
    at.button(key="confirm-delete-user/mine").click().run()
    assert not at.exception
    assert names(user) == []
    assert "Deleted `mine.pt`" in texts(at.success)
    assert at.header[0].value == "3 checkpoint(s)"


def test_rename_checks_the_name_and_never_overwrites(user):
    shutil.copy(user / "mine.pt", user / "other.pt")
    at = open_checkpoints()
    at.text_input(key="rename-user/mine").input("other").run()
    at.button(key="do-rename-user/mine").click().run()
    assert "already have a checkpoint named 'other'" in texts(at.error)
    for bad, suggestion in (("../escape", "'escape'"), ("..", "'lecture-3'"), ("../../etc/x", "'etc-x'")):
        at.text_input(key="rename-user/mine").input(bad).run()
        at.button(key="do-rename-user/mine").click().run()
        message = texts(at.error)
        assert "not a usable name" in message and f"e.g. {suggestion}" in message, message
    assert names(user) == ["mine.pt", "other.pt"]
    at.text_input(key="rename-user/mine").input("lecture-3").run()
    at.button(key="do-rename-user/mine").click().run()
    assert not at.exception
    assert names(user) == ["lecture-3.pt", "other.pt"]
    assert "**lecture-3** · yours" in texts(at.markdown)


def test_an_unreadable_file_in_the_folder_is_reported_not_fatal(user):
    (user / "broken.pt").write_bytes(b"PK\x03\x04 truncated")
    at = open_checkpoints()
    assert "Not readable" in texts(at.warning)
    assert at.button(key="delete-user/broken")  # it can still be removed


def test_diagnostics_are_listed_apart_and_never_offered_as_models(user, tiny_checkpoints):
    (user / "diagnostics").mkdir()
    shutil.copy(tiny_checkpoints / "digits-dvae-2d.pt", user / "diagnostics" / "blew-up.pt")
    at = open_checkpoints()
    assert "**blew-up** · diagnostic · yours" in texts(at.markdown)
    assert at.header[0].value == "4 checkpoint(s)"  # diagnostics are not counted among the models
    assert at.button(key="delete-diagnostic/blew-up")
    at.switch_page("pages/posterior.py").run()
    assert not any("blew-up" in o for o in at.selectbox(key="model_a").options)
