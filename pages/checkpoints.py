"""Checkpoints: every saved run with its settings, test numbers and history; download, upload, rename, delete."""

import streamlit as st

from dvae_engine.checkpoint import MAX_UPLOAD_BYTES, CheckpointError
from dvae_engine.jobs import delete_checkpoint, rename_checkpoint, store_checkpoint_bytes
from ui import cache
from ui import training_view as view
from ui.boot import run_through_app

run_through_app()  # a shared link on a fresh server must still go through app.py

view.owner_id()
st.title("Checkpoints")
st.caption("Shipped models (in `checkpoints/`) can be downloaded but not changed. Your runs and uploads live in "
           f"`{cache.user_dir()}`.")

# --- upload: validated with the engine's safe loader before anything is written ----------------------
with st.container(border=True):
    upload = st.file_uploader("Upload a checkpoint (.pt)", type=["pt"], key="ckpt_upload",
                              max_upload_size=MAX_UPLOAD_BYTES // 2**20,
                              help="Read with torch.load(weights_only=True) and checked against this app's "
                                   "checkpoint format; nothing is saved unless it passes.")
    if upload is not None and st.session_state.get("ckpt_upload_done", (None,))[0] != upload.file_id:
        try:
            saved = store_checkpoint_bytes(cache.user_dir(), upload.name, upload.getvalue())
            outcome = ("success", f"Uploaded `{upload.name}`; saved as `{saved.name}`.")
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


def do_rename(path, key):
    try:
        target = rename_checkpoint(path, st.session_state.get(key, ""))
        st.session_state["ckpt_notice"] = ("success", f"Renamed `{path.name}` to `{target.name}`.")
    except (ValueError, OSError) as err:
        st.session_state["ckpt_notice"] = ("error", f"Not renamed: {err}")


def do_delete(path):
    st.session_state.pop("ckpt_confirm_delete", None)
    try:
        delete_checkpoint(path)
        st.session_state["ckpt_notice"] = ("success", f"Deleted `{path.name}`.")
    except (ValueError, OSError) as err:
        st.session_state["ckpt_notice"] = ("error", f"Not deleted: {err}")


def ask_delete(path):
    st.session_state["ckpt_confirm_delete"] = str(path)


def cancel_delete():
    st.session_state.pop("ckpt_confirm_delete", None)


# --- the list ---------------------------------------------------------------------------------------
files = cache.checkpoint_files()
entries = cache.manifest()
st.header(f"{len(files)} checkpoint(s)")
if not files:
    st.info("No checkpoints yet. Train one on the Train page, or upload one above.")
for path in files:
    shipped = cache.is_shipped(path)
    info = cache.checkpoint_info(path)
    with st.container(border=True, key=f"ckpt-{path.stem}"):
        left, middle, right = st.columns([3, 4, 2])
        where = "shipped" if shipped else "yours"
        left.markdown(f"**{path.stem}** · {where} · {info['size'] / 2**20:.1f} MB")
        if info["error"]:
            left.warning(f"Not readable: {info['error']}")
        else:
            config, history = info["config"], info["history"]
            description = entries.get(path.name, {}).get("description")
            left.caption(f"{config.describe()}" + (f" — {description}" if description else ""))
            epochs = len(history.get("epoch", []))
            left.caption(f"{epochs} epoch(s) · ended {info['status'] or '?'} · saved {info['created'] or '?'}")
            with left.popover("Settings"):
                settings = view.config_rows(config)
                st.markdown(view.markdown_table([{"setting": k, "value": v} for k, v in settings.items()]))
            rows = view.metric_rows(info["metrics"])
            if rows:
                middle.markdown(view.markdown_table(rows))
            else:
                middle.caption("No test metrics stored (e.g. a stopped or diverged run).")
            if epochs:
                with right:
                    view.show(view.sparkline(history))
                right.caption(f"clean validation ELBO per epoch; last {history['valid_elbo'][-1]:.2f} {view.NATS}")
        actions = st.columns([2, 3, 2, 3])
        actions[0].download_button("Download", data=path.read_bytes(), file_name=path.name,
                                   mime="application/octet-stream", on_click="ignore", key=f"dl-{path.stem}",
                                   icon=":material/download:")
        if shipped:
            actions[1].caption("Shipped model: read-only.")
            continue
        rename_key = f"rename-{path.stem}"
        actions[1].text_input("New name", key=rename_key, placeholder="new name (letters, digits, . - _)",
                              label_visibility="collapsed")
        actions[2].button("Rename", key=f"do-rename-{path.stem}", on_click=do_rename, args=(path, rename_key))
        if st.session_state.get("ckpt_confirm_delete") == str(path):
            with actions[3]:
                st.warning(f"Delete `{path.name}` for good?")
                yes, no = st.columns(2)
                yes.button("Yes, delete", key=f"confirm-delete-{path.stem}", type="primary",
                           on_click=do_delete, args=(path,))
                no.button("Cancel", key=f"cancel-delete-{path.stem}", on_click=cancel_delete)
        else:
            actions[3].button("Delete…", key=f"delete-{path.stem}", on_click=ask_delete, args=(path,),
                              icon=":material/delete:")
