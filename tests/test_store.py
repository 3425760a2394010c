"""Checkpoint ownership (dvae_engine.store): namespaces, per-owner folders, server-side checks, safe names."""

from __future__ import annotations

import os
import shutil
import stat

import pytest

from dvae_engine import checkpoint as ckpt
from dvae_engine.store import CheckpointStore, StoreError, check_name, slugify

ALICE, BOB = "a" * 32, "b" * 32


@pytest.fixture
def store(tmp_path, tiny_checkpoints) -> CheckpointStore:
    shipped = tmp_path / "shipped"
    shutil.copytree(tiny_checkpoints, shipped)
    return CheckpointStore(shipped, tmp_path / "user")


@pytest.fixture
def data(tiny_checkpoints) -> bytes:
    return (tiny_checkpoints / "digits-dvae-2d.pt").read_bytes()


def test_shipped_and_user_names_live_in_different_namespaces(store, data):
    mine = store.store_upload(ALICE, "digits-dvae-2d.pt", data)
    assert mine.id == "user/digits-dvae-2d" and mine.kind == "user" and mine.label == "digits-dvae-2d (yours)"
    ids = [e.id for e in store.entries(ALICE)]
    assert ids.count("digits-dvae-2d") == 1 and "user/digits-dvae-2d" in ids and len(set(ids)) == len(ids)
    assert store.resolve(ALICE, "digits-dvae-2d").kind == "shipped"
    assert store.resolve(ALICE, "shipped/digits-dvae-2d").kind == "shipped"  # the explicit form works too
    assert store.resolve(ALICE, "user/digits-dvae-2d").path == mine.path


def test_owners_never_see_or_touch_each_others_files(store, data):
    mine = store.store_upload(ALICE, "mine.pt", data)
    assert [e.id for e in store.entries(BOB) if e.kind == "user"] == []
    assert store.resolve(BOB, "user/mine") is None  # bob's "user/mine" would be bob's own file
    for action in (lambda: store.rename(BOB, "user/mine", "x"), lambda: store.delete(BOB, "user/mine"),
                   lambda: store.read_bytes(BOB, "user/mine")):
        with pytest.raises(StoreError):
            action()
    assert mine.path.exists()
    assert store.read_bytes(ALICE, "user/mine") == data
    with pytest.raises(StoreError, match="not one of your checkpoints"):
        store.delete(ALICE, "digits-dvae-2d")  # shipped: read-only for everyone
    with pytest.raises(StoreError):
        store.rename("", "user/mine", "x")  # no owner, no private files


@pytest.mark.parametrize("entry_id", ["user/../user/mine", "user/../../shipped/x", "../mine", "user/", "/etc/passwd",
                                      "user/mine/..", "diagnostic/../mine", "legacy/../" + "a" * 32 + "/mine"])
def test_ids_cannot_escape_their_folder(store, data, entry_id):
    store.store_upload(ALICE, "mine.pt", data)
    assert store.resolve(BOB, entry_id) is None
    assert store.resolve(ALICE, entry_id) is None


def test_older_files_without_an_owner_are_public_and_read_only(store, data):
    store.user_root.mkdir(parents=True, exist_ok=True)
    (store.user_root / "old.pt").write_bytes(data)
    for owner in (ALICE, BOB):
        entry = store.resolve(owner, "legacy/old")
        assert entry is not None and not entry.private
        with pytest.raises(StoreError):
            store.delete(owner, "legacy/old")
    assert store.read_bytes(BOB, "legacy/old") == data


def test_diagnostics_are_private_and_not_models(store, data):
    folder = store.folder(ALICE, "diagnostic")
    folder.mkdir(parents=True)
    (folder / "nan.pt").write_bytes(data)
    assert all(e.kind != "diagnostic" for e in store.entries(ALICE))
    assert [e.id for e in store.entries(ALICE, ("diagnostic",))] == ["diagnostic/nan"]
    assert store.entries(BOB, ("diagnostic",)) == []
    store.delete(ALICE, "diagnostic/nan")
    assert not (folder / "nan.pt").exists()


def test_rename_refuses_bad_or_taken_names_with_a_suggestion_that_is_itself_valid(store, data):
    store.store_upload(ALICE, "a.pt", data)
    store.store_upload(ALICE, "b.pt", data)
    with pytest.raises(StoreError, match="already have a checkpoint named 'b'"):
        store.rename(ALICE, "user/a", "b")
    for bad in ("", "..", "../../etc/x", ".hidden", "with space", "x" * 81, "-lead", "a/b", "ü"):
        with pytest.raises(StoreError, match="not a usable name") as caught:
            store.rename(ALICE, "user/a", bad)
        suggestion = str(caught.value).rsplit("e.g. ", 1)[1].strip("'")
        check_name(suggestion)  # the suggested name is accepted
    renamed = store.rename(ALICE, "user/a", "mnist-vae")  # a shipped model's name: no collision
    assert renamed.id == "user/mnist-vae" and renamed.path.parent == store.folder(ALICE)


@pytest.mark.parametrize("text", ["../../etc/passwd", "..", "a/../../b", "/abs/path", "~/x", "C:\\\\x", "...", "",
                                  "ÄÖÜ", "-x-", "x" * 300, "name.pt", "a..b"])
def test_slugify_always_gives_a_valid_name(text):
    slug = slugify(text)
    assert check_name(slug) == slug
    assert "/" not in slug and ".." not in slug


def test_upload_files_get_the_ordinary_permissions_and_the_umask_is_never_changed(store, data, monkeypatch):
    current = os.umask(0o022)
    os.umask(current)

    def forbidden(mask):
        raise AssertionError("the process umask must not be changed (other threads create files meanwhile)")

    monkeypatch.setattr(os, "umask", forbidden)
    entry = store.store_upload(ALICE, "perm.pt", data)
    saved = ckpt.save_payload(ckpt.load_payload(entry.path), store.folder(ALICE) / "again.pt")
    for path in (entry.path, saved):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~current
    assert sorted(p.name for p in store.folder(ALICE).iterdir()) == ["again.pt", "perm.pt"]  # no temporaries
