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
import os
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


_modules_at_blas_limit = 0


def one_blas_thread() -> None:
    """Limit every BLAS library loaded so far (numpy's, scipy's…) to one thread (see app.py); rechecked only when
    modules were imported since the last call, which is when a new library can have come in (~1 ms a check)."""
    global _modules_at_blas_limit
    if len(sys.modules) != _modules_at_blas_limit:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1, user_api="blas")
        _modules_at_blas_limit = len(sys.modules)


_sockets_checked = False


def send_replies_at_once() -> None:
    """Turn off Nagle's algorithm (``TCP_NODELAY``) on this server's TCP sockets, once per server.

    Streamlit 1.67's server (uvicorn) listens on a socket made with ``socket.socket(family)``, whose protocol
    number is 0, and asyncio sets ``TCP_NODELAY`` only on sockets whose protocol is ``IPPROTO_TCP``. Without it, on
    a kept-alive connection each reply after the first waits for the browser to acknowledge the previous one, which
    the browser delays by up to 40 ms: every request for one of the frontend's ~100 script files (a slider move's
    messages go out in one burst and were not slower: unchanged in a browser A/B). Measured on this project's
    machine: 44 ms per request on a kept-alive connection against 1 ms on a fresh one (``bench/nagle.py``). The
    open sockets get the option here, and Linux and the BSDs copy it from the listening socket to the connections it
    accepts later.
    """
    global _sockets_checked
    if _sockets_checked:
        return
    _sockets_checked = True
    import socket
    import stat

    folder = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    try:
        descriptors = [int(name) for name in os.listdir(folder)]
    except OSError:  # no such folder (Windows): nothing to do
        return
    for fd in descriptors:
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            duplicate = socket.socket(fileno=os.dup(fd))  # a second handle on the same socket, closed below
        except OSError:  # closed meanwhile, or not a socket Python can wrap
            continue
        with duplicate:
            if duplicate.family in (socket.AF_INET, socket.AF_INET6) and duplicate.type == socket.SOCK_STREAM:
                try:
                    duplicate.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass


_warming = False


def warm_up_in_background() -> None:
    """Once per server, after its first script run: a background thread does the work that other pages' first
    visits would otherwise do while a user waits (importing their modules, loading every shipped model, the
    test images, the PCA planes, the true posteriors of the first test image), then freezes what it made out
    of later garbage collections. The caches it fills are Streamlit's, shared by every session."""
    global _warming
    if _warming:
        return
    _warming = True
    threading.Thread(target=_warm_up, name="warm-up", daemon=True).start()


def _warm_up() -> None:
    global _modules_at_freeze
    from dvae_engine.jobs import lower_thread_priority
    from ui.cache import PREFETCH_NICE

    # whoever is being served meanwhile goes first (not torch.set_num_threads(1): later script runs, each a new
    # thread, would inherit it)
    lower_thread_priority(PREFETCH_NICE)
    try:
        import scipy.ndimage  # noqa: F401 - the Posterior page's density shading (ui/svgplot.py): 0.18 s
        import streamlit.emojis  # noqa: F401 - the first st.warning with an icon imports it: 0.14 s

        from dvae_engine import analysis, boundlab, semi_implicit  # noqa: F401 - imported for their import cost
        from ui import boundlab_figures, bridge_view, cache, figures, inputs, training_view  # noqa: F401

        shipped = sorted(cache.shipped_dir().glob("*.pt"))
        infos = {path: cache.checkpoint_info(path) for path in shipped}
        readable = [path for path, info in infos.items() if not info.get("error")]
        datasets = {infos[path]["config"].dataset for path in readable}
        flat = {}  # dataset → its shipped 2-D models
        for name in datasets:
            if cache.test_image_count(name):
                cache.train_mean_image(name)
                first = cache.test_image_rows(name, 0, 1)[0].numpy()
                for path in readable:
                    if infos[path]["config"].dataset == name and cache.load_model(path).model.latent_dim == 2:
                        cache.prepare_posterior_panel(path, first)
                        flat.setdefault(name, []).append(path)
        for path in readable:
            cache.latent_projection(path)
        for name, paths in flat.items():  # then, in idle time, every test image's true posterior (~2 min of a core)
            cache.sweep_true_posteriors(paths[:cache.MAX_SWEPT_MODELS], name, 0)
    except Exception:  # noqa: BLE001 - only a head start: each page computes (and reports) what it needs itself
        pass
    _modules_at_freeze = len(sys.modules)
    gc.collect()
    gc.freeze()
