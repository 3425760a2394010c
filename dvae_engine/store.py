"""Who may see and change which checkpoint file: shipped models, per-owner folders, diagnostics.

Layout::

    <shipped>/                 shipped, pretrained models: public and read-only
    <user root>/<owner>/       one owner's trained and uploaded checkpoints (private)
    <user root>/<owner>/diagnostics/   that owner's diverged or untrained runs (private, never a model)
    <user root>/*.pt           files saved before per-owner folders existed: public, read-only

An *owner* is an opaque key (the app uses a hash of a per-browser token; the token itself
is never stored). Files are addressed by ids, never by paths from a user:

* ``mnist-vae`` (or ``shipped/mnist-vae``) — a shipped model;
* ``user/<name>`` — the asking owner's own file (each owner resolves it in their own folder,
  so another owner's files cannot be named at all);
* ``diagnostic/<name>`` — the asking owner's diagnostic file;
* ``legacy/<name>`` — an ownerless file from before per-owner folders.

Shipped and user names live in different namespaces, so a user file called ``mnist-vae``
never collides with the shipped one. Every method that reads or changes a private file
takes the owner and resolves the id inside that owner's folder: the ownership check is
the lookup itself, done on the server.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from . import checkpoint as ckpt

KINDS = ("shipped", "user", "diagnostic", "legacy")
MODEL_KINDS = ("shipped", "user", "legacy")  # what model choosers offer (never diagnostics)
PRIVATE_KINDS = ("user", "diagnostic")
DIAGNOSTICS = "diagnostics"
OWNER_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
NAME_RULE = "start with a letter or digit, then use letters, digits, '.', '-' and '_' only (at most 80 characters)"


class StoreError(ValueError):
    """A request the store refuses (bad name, taken name, unknown or foreign file); the message says why."""


def slugify(text: str) -> str:
    """``text`` as a valid checkpoint name (see :data:`NAME_PATTERN`), or ``"run"`` if nothing usable is left."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).lower()
    slug = re.sub(r"\.{2,}", ".", slug)  # no '..' anywhere
    slug = re.sub(r"^[^a-z0-9]+", "", slug).removesuffix(".pt")[:80].rstrip("-.")
    return slug if NAME_PATTERN.fullmatch(slug) else "run"


def check_name(name: str) -> str:
    """``name`` without a ``.pt`` suffix if it is a valid checkpoint name; raises :class:`StoreError` otherwise."""
    stem = str(name).strip().removesuffix(".pt")
    if NAME_PATTERN.fullmatch(stem):
        return stem
    suggestion = slugify(stem)
    example = f"e.g. {suggestion!r}" if suggestion != "run" else "e.g. 'lecture-3'"
    raise StoreError(f"{str(name)[:80]!r} is not a usable name: {NAME_RULE}; {example}")


def owner_folder(root: str | Path, owner: str) -> Path:
    """``root/owner`` for a valid owner key; ``root`` itself for the empty owner (scripts, tests)."""
    root = Path(root)
    if not owner:
        return root
    if not OWNER_PATTERN.fullmatch(owner):
        raise StoreError("an owner key is 1-64 letters, digits, '-' or '_'")
    return root / owner


def free_path(folder: str | Path, stem: str, suffix: str = ".pt") -> Path:
    """``folder/stem.pt``, or ``folder/stem-2.pt``, ``-3``, … : the first name not taken yet."""
    folder = Path(folder)
    path = folder / f"{stem}{suffix}"
    n = 2
    while path.exists():
        path = folder / f"{stem}-{n}{suffix}"
        n += 1
    return path


def link_new(tmp: Path, folder: Path, stem: str) -> Path:
    """Hard-link ``tmp`` as ``folder/<stem>.pt`` (or ``-2``, ``-3``…): never replaces an existing file."""
    while True:
        path = free_path(folder, stem)
        try:
            os.link(tmp, path)
            return path
        except FileExistsError:
            continue


@dataclass(frozen=True)
class Entry:
    """One checkpoint file as one asker sees it."""

    id: str
    path: Path
    kind: str  # shipped | user | diagnostic | legacy

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def private(self) -> bool:
        """True for the asker's own files (they may rename, delete and download them)."""
        return self.kind in PRIVATE_KINDS

    @property
    def label(self) -> str:
        """The name with whose it is: ``mnist-vae``, ``mnist-vae (yours)``, ``x (diagnostic, yours)``."""
        return {"shipped": self.name, "user": f"{self.name} (yours)", "diagnostic": f"{self.name} (diagnostic, yours)",
                "legacy": f"{self.name} (older shared run)"}[self.kind]


class CheckpointStore:
    """Checkpoint files by owner: shipped ones public and read-only, the rest private to their owner."""

    def __init__(self, shipped_dir: str | Path, user_root: str | Path) -> None:
        self.shipped_dir = Path(shipped_dir)
        self.user_root = Path(user_root)

    # --- folders ----------------------------------------------------------------------------
    def folder(self, owner: str, kind: str = "user") -> Path:
        """Where ``owner``'s files of ``kind`` (user or diagnostic) live."""
        if not owner:
            raise StoreError("no owner: private files need an owner key")
        base = owner_folder(self.user_root, owner)
        return base / DIAGNOSTICS if kind == "diagnostic" else base

    def _kind_folder(self, owner: str, kind: str) -> Path | None:
        if kind == "shipped":
            return self.shipped_dir
        if kind == "legacy":
            return self.user_root
        return self.folder(owner, kind) if owner else None

    # --- reading ----------------------------------------------------------------------------
    def entries(self, owner: str, kinds: tuple[str, ...] = MODEL_KINDS) -> list[Entry]:
        """The files ``owner`` may see, of these kinds: shipped by name, then private and legacy newest first."""
        found: list[Entry] = []
        for kind in kinds:
            folder = self._kind_folder(owner, kind)
            if folder is None or not folder.is_dir():
                continue
            paths = [p for p in folder.glob("*.pt") if p.is_file() and NAME_PATTERN.fullmatch(p.stem)]
            if kind == "shipped":
                paths.sort()
            else:
                paths.sort(key=_mtime, reverse=True)
            found += [Entry(self._id(kind, p.stem), p, kind) for p in paths]
        return found

    @staticmethod
    def _id(kind: str, name: str) -> str:
        return name if kind == "shipped" else f"{kind}/{name}"

    def resolve(self, owner: str, entry_id: str | None) -> Entry | None:
        """The entry ``entry_id`` names for ``owner``, or None (unknown, malformed, or not theirs)."""
        if not entry_id or not isinstance(entry_id, str):
            return None
        kind, _, name = entry_id.rpartition("/")
        kind = kind or "shipped"
        if kind not in KINDS or not NAME_PATTERN.fullmatch(name):
            return None
        folder = self._kind_folder(owner, kind)
        if folder is None:
            return None
        path = folder / f"{name}.pt"
        if not path.is_file():
            return None
        return Entry(self._id(kind, name), path, kind)

    def entry_for_path(self, owner: str, path: str | Path) -> Entry | None:
        """The entry of a file path (e.g. a job's checkpoint), if ``owner`` may see it."""
        path = Path(path)
        parent = path.parent.resolve()
        for kind in KINDS:
            folder = self._kind_folder(owner, kind)
            if folder is not None and parent == folder.resolve():
                return self.resolve(owner, self._id(kind, path.stem))
        return None

    def _own(self, owner: str, entry_id: str) -> Entry:
        entry = self.resolve(owner, entry_id) if owner else None
        if entry is None or not entry.private:
            raise StoreError(f"{str(entry_id)[:90]!r} is not one of your checkpoints: only your own files can be "
                             "changed (shipped models and other people's files are read-only or invisible)")
        return entry

    def read_bytes(self, owner: str, entry_id: str) -> bytes:
        """The file's bytes, for a download: public entries for anyone, private ones only for their owner."""
        entry = self.resolve(owner, entry_id)
        if entry is None:
            raise StoreError(f"{str(entry_id)[:90]!r} is not a checkpoint you can download")
        return entry.path.read_bytes()

    # --- changing ---------------------------------------------------------------------------
    def store_upload(self, owner: str, filename: str, data: bytes,
                     max_bytes: int = ckpt.MAX_UPLOAD_BYTES) -> Entry:
        """Validate ``data`` with the safe loader and save it among ``owner``'s files under a free name.

        Raises :class:`~dvae_engine.checkpoint.CheckpointError` (and writes nothing) for a file that
        is not a loadable checkpoint of this app or exceeds ``max_bytes``.
        """
        folder = self.folder(owner)
        path = store_checkpoint_bytes(folder, filename, data, max_bytes)
        return Entry(self._id("user", path.stem), path, "user")

    def rename(self, owner: str, entry_id: str, new_name: str) -> Entry:
        """Rename one of ``owner``'s files within its folder; never replaces another file."""
        entry = self._own(owner, entry_id)
        stem = check_name(new_name)
        target = entry.path.with_name(f"{stem}.pt")
        if target == entry.path:
            return entry
        try:
            os.link(entry.path, target)  # atomic "create if absent"
        except FileExistsError:
            raise StoreError(f"you already have a checkpoint named {stem!r}; pick another name") from None
        entry.path.unlink()
        return Entry(self._id(entry.kind, stem), target, entry.kind)

    def delete(self, owner: str, entry_id: str) -> Entry:
        """Delete one of ``owner``'s files."""
        entry = self._own(owner, entry_id)
        entry.path.unlink()
        return entry


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def store_checkpoint_bytes(folder: str | Path, filename: str, data: bytes,
                           max_bytes: int = ckpt.MAX_UPLOAD_BYTES) -> Path:
    """Validate ``data`` with the safe loader and save it in ``folder`` under a name not taken yet."""
    ckpt.load_checkpoint(data, max_bytes=max_bytes)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = ckpt.write_new_file(folder, "upload", lambda f: f.write(data))
    try:
        return link_new(tmp, folder, slugify(Path(str(filename)).stem))
    finally:
        tmp.unlink(missing_ok=True)
