"""Make every page run inside app.py's navigation, even when Streamlit starts it on its own.

Streamlit (1.67) treats a folder named ``pages/`` next to the entry script as a
legacy multipage app until app.py has called ``st.navigation`` once in the
server process. Until then a request for ``/posterior`` — a shared link that
is the first request to a freshly started server, or every run of
``streamlit.testing``'s AppTest — executes ``pages/posterior.py`` by itself:
without our page config, navigation and per-browser owner id.

:func:`run_through_app`, called first on every page, spots that case, clears
the legacy flag and runs app.py in the same script run; app.py's navigation
routes back to this page (same URL, query parameters and widget events), and
the outer, legacy run then stops.
"""

from __future__ import annotations

import atexit
import gc
import runpy
import sys
import threading
from pathlib import Path

import streamlit as st

APP = Path(__file__).resolve().parents[1] / "app.py"


def run_through_app() -> None:
    """Run app.py (and through it this page) if Streamlit started this page as a legacy script."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a Streamlit without this internal has no legacy mode to escape
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        runpy.run_path(str(APP), run_name="__main__")
        st.stop()


_modules_at_freeze = 0  # len(sys.modules) when the long-lived objects were last frozen


def training_threads() -> int:
    """How many training jobs run in this server now (``dvae_engine.jobs`` names their threads ``train-<id>``).

    Counted from the threads themselves, so asking does not build the job registry (whose first
    optimizer imports torch._dynamo: seconds, on the first page a new server shows).
    """
    return sum(1 for thread in threading.enumerate() if thread.name.startswith("train-") and thread.is_alive())


def freeze_long_lived_objects() -> None:
    """Exempt the long-lived objects (modules, torch, loaded models…) from every later garbage collection.

    Python's full collection walks every tracked object; after ``import torch`` there are
    ~300 000, and Streamlit runs a full collection after every script run (``runner.postScriptGC``),
    so each one would cost ~0.2 s on a small CPU and stall every slider move. Called at the end of
    every script run: when the run imported modules (the server's first run; the first visit of a
    page that imports scipy.stats, plotly, …) the garbage is collected once and everything alive is
    frozen (``gc.freeze``), so later collections only look at what was created since. Freezing only
    on the first run was not enough: the ~800 modules later pages import stayed unfrozen and made every
    later post-run collection cost 40–85 ms (measured with a ``gc.callbacks`` timer).
    """
    global _modules_at_freeze
    if len(sys.modules) > _modules_at_freeze:
        if _modules_at_freeze == 0:
            atexit.register(gc.unfreeze)  # let interpreter shutdown see and free them as usual
        _modules_at_freeze = len(sys.modules)
        gc.collect()
        gc.freeze()
