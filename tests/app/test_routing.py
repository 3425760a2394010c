"""Every page runs inside app.py's navigation, even when Streamlit starts the page file by itself.

Streamlit treats a folder named pages/ as a legacy multipage app until app.py has called
st.navigation once (and AppTest resets that before every run); ui/boot.py reroutes such runs
through app.py. app.py's mark: the per-browser owner token it keeps in session state (never in the URL).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(p.name for p in (ROOT / "pages").glob("*.py"))


@pytest.mark.parametrize("page", PAGES)
def test_page_runs_through_app_py(page, monkeypatch, tiny_checkpoints, tmp_path):
    monkeypatch.setenv("DVAE_CHECKPOINT_DIR", str(tiny_checkpoints))
    monkeypatch.setenv("DVAE_USER_CHECKPOINT_DIR", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    at.run()
    at.switch_page(f"pages/{page}")
    at.run()
    assert not at.exception
    assert len(at.session_state["_owner_token"]) == 32  # set by app.py (ui.identity), not by the page
    assert "owner" not in at.query_params
    assert "run_through_app()" in (ROOT / "pages" / page).read_text()
