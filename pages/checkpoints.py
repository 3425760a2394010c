"""Checkpoints: every saved run with its settings, test numbers and history; download, upload, rename, delete.

Shipped models are public and read-only; your runs and uploads are private to this browser
(see dvae_engine.store): only you see them, and renaming, deleting and downloading them is
checked against your owner key on the server. Each entry is drawn on its own, so one bad
file cannot break the page; widget keys come from unique ids, never from display names.
"""

import hashlib

import streamlit as st

from dvae_engine.checkpoint import MAX_UPLOAD_BYTES, CheckpointError
from dvae_engine.store import NAME_RULE, StoreError
from ui import cache, figures
from ui import training_view as view
from ui.boot import run_through_app

run_through_app()  # a shared link on a fresh server must still go through app.py

owner = view.owner_id()
store = cache.store()
st.title("Checkpoints")
st.caption("Shipped models can be downloaded but not changed. Your runs and uploads are **private to this browser**: "
           "nobody else sees, renames, deletes or downloads them, and a shared link never hands them over.")

# --- upload: validated with the engine's safe loader before anything is written ----------------------
with st.container(border=True):
    upload = st.file_uploader("Upload a checkpoint (.pt)", type=["pt"], key="ckpt_upload",
                              max_upload_size=MAX_UPLOAD_BYTES // 2**20,
                              help="Checked against this app's checkpoint format (sizes and shapes first, then "
                                   "read with torch.load(weights_only=True)); nothing is saved unless it passes. "
                                   "It is saved among your files, whatever its name.")
    if upload is not None and st.session_state.get("ckpt_upload_done", (None,))[0] != upload.file_id:
        try:
            saved = store.store_upload(owner, upload.name, upload.getvalue())
            outcome = ("success", f"Uploaded `{upload.name}`; saved among your checkpoints as `{saved.path.name}`.")
        except CheckpointError as err:
            outcome = ("error", f"`{upload.name}` was not added: {err}")
        st.session_state["ckpt_upload_done"] = (upload.file_id, outcome)
    if upload is not None:
        kind, text = st.session_state["ckpt_upload_done"][1]
        (st.success if kind == "success" else st.error)(text)

# --- messages from the last rename/delete (buttons run before the list is drawn) ----------------------
notice = st.session_state.pop("ckpt_notice", None)
if notice:
    (st.success if notice[0] == "success" else st.error)(notice[1])


def do_rename(entry_id: str, key: str) -> None:
    try:
        target = store.rename(view.owner_id(), entry_id, st.session_state.get(key, ""))
        st.session_state["ckpt_notice"] = ("success", f"Renamed `{entry_id}` to `{target.id}`.")
    except (StoreError, OSError) as err:
        st.session_state["ckpt_notice"] = ("error", f"Not renamed: {err}")


def do_delete(entry_id: str) -> None:
    st.session_state.pop("ckpt_confirm_delete", None)
    try:
        gone = store.delete(view.owner_id(), entry_id)
        st.session_state["ckpt_notice"] = ("success", f"Deleted `{gone.path.name}`.")
    except (StoreError, OSError) as err:
        st.session_state["ckpt_notice"] = ("error", f"Not deleted: {err}")


def ask_delete(entry_id: str) -> None:
    st.session_state["ckpt_confirm_delete"] = entry_id


def cancel_delete() -> None:
    st.session_state.pop("ckpt_confirm_delete", None)


def download(entry_id: str):
    """The file's bytes, read only when clicked, and only if this browser may see it (checked on the server)."""
    return lambda: store.read_bytes(owner, entry_id)


def draw_entry(entry, manifest: dict) -> None:
    """One checkpoint: name, whose, settings, metrics, history, and the actions its owner may take."""
    info = cache.checkpoint_info(entry.path)
    where = {"shipped": "shipped", "user": "yours", "diagnostic": "diagnostic · yours",
             "legacy": "older shared run · read-only"}[entry.kind]
    left, middle, right = st.columns([3, 4, 2])
    left.markdown(f"**{entry.name}** · {where} · {info['size'] / 2**20:.1f} MB")
    if info["error"]:
        left.warning(f"Not readable: {info['error']}")
    else:
        config, history = info["config"], info["history"]
        description = manifest.get(entry.path.name, {}).get("description") if entry.kind == "shipped" else None
        left.caption(f"{config.describe()}" + (f" — {description}" if description else ""))
        epochs = len(history.get("epoch", []))
        left.caption(f"{epochs} epoch(s) · ended {info['status'] or '?'} · saved {info['created'] or '?'}")
        if entry.kind == "diagnostic":
            left.caption(f"Kept for inspection: {info['message'] or 'this run learned nothing'}. "
                         "Not offered as a model.")
        with left.popover("Settings"):
            settings = view.config_rows(config)
            st.markdown(view.markdown_table([{"setting": k, "value": v} for k, v in settings.items()]))
        rows = view.metric_rows(info["metrics"])
        if rows:
            middle.markdown(view.markdown_table(rows))
        else:
            middle.caption("No test metrics stored (e.g. a stopped, diverged or unevaluated run).")
        valid = [v for v in history.get("valid_elbo", []) if v is not None]
        if epochs and valid:
            with right:
                figures.show(view.sparkline(history), key=f"ckpt-spark-{entry.id}")
            right.caption(f"clean validation ELBO per epoch; last {valid[-1]:.2f} {view.NATS}")
    actions = st.columns([2, 3, 2, 3])
    actions[0].download_button("Download", data=download(entry.id), file_name=entry.path.name,
                               mime="application/octet-stream", on_click="ignore", key=f"dl-{entry.id}",
                               icon=":material/download:")
    if not entry.private:
        actions[1].caption("Shipped model: read-only." if entry.kind == "shipped" else
                           "Saved before runs had owners: read-only here.")
        return
    if entry.kind == "user":
        rename_key = f"rename-{entry.id}"
        actions[1].text_input("New name", key=rename_key, placeholder="new name (letters, digits, . - _)",
                              label_visibility="collapsed", help=NAME_RULE)
        actions[2].button("Rename", key=f"do-rename-{entry.id}", on_click=do_rename, args=(entry.id, rename_key))
    if st.session_state.get("ckpt_confirm_delete") == entry.id:
        with actions[3]:
            st.warning(f"Delete `{entry.path.name}` for good?")
            yes, no = st.columns(2)
            yes.button("Yes, delete", key=f"confirm-delete-{entry.id}", type="primary",
                       on_click=do_delete, args=(entry.id,))
            no.button("Cancel", key=f"cancel-delete-{entry.id}", on_click=cancel_delete)
    else:
        actions[3].button("Delete…", key=f"delete-{entry.id}", on_click=ask_delete, args=(entry.id,),
                          icon=":material/delete:")


# --- the list ---------------------------------------------------------------------------------------
entries = store.entries(owner, ("shipped", "user", "legacy", "diagnostic"))
manifest = cache.manifest()
models = [e for e in entries if e.kind != "diagnostic"]
st.header(f"{len(models)} checkpoint(s)")
if not models:
    st.info("No checkpoints yet. Train one on the Train page, or upload one above.")
SECTIONS = {
    "shipped": ("Shipped models", None),
    "user": ("Yours", "Runs you trained or uploaded in this browser."),
    "legacy": ("Older shared runs", "Saved on this server before runs had owners; anyone can open them."),
    "diagnostic": ("Diagnostics (yours)", "Runs that diverged or stopped before learning anything: kept so you can "
                                          "look at them, never offered as models on the other pages."),
}
for kind, (title, caption) in SECTIONS.items():
    section = [e for e in entries if e.kind == kind]
    if not section:
        continue
    st.subheader(f"{title} ({len(section)})")
    if caption:
        st.caption(caption)
    for entry in section:
        box_key = "ckpt-" + hashlib.sha1(entry.id.encode()).hexdigest()[:12]
        with st.container(border=True, key=box_key):
            try:
                draw_entry(entry, manifest)
            except Exception as err:  # noqa: BLE001 — one bad file must never take the page down
                st.error(f"`{entry.path.name}` could not be shown ({type(err).__name__}). The other checkpoints "
                         "are not affected.")
