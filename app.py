"""DVAE Explorer: `streamlit run app.py`.

Routes to the pages in ``pages/``; each page reads top to bottom (widgets → config →
engine → plotly figures). Caching lives in ``ui/cache.py``.
"""

import streamlit as st
import torch

from ui import boot, cache, identity

st.set_page_config(page_title="DVAE Explorer", page_icon=":material/blur_on:", layout="wide")

# One torch thread per script run, and one BLAS thread for numpy. A run's arrays are small, and the browser (on a
# teacher's laptop) or the other sessions (on a class server) keep the other cores busy; two threads then wait on
# each other at every op: on this project's 2-core machine a true-posterior grid took 206 ms with two torch
# threads and 89 ms with one while one core was busy (65 and 77 ms idle), and the exact lab at D = 10 took 67 and
# 32 ms (p90) with two and one BLAS threads. Training jobs set their own count (dvae_engine.jobs).
torch.set_num_threads(1)
boot.one_blas_thread()
boot.send_replies_at_once()  # once per server: no 40 ms wait for the browser's acknowledgement between replies

# Who is asking: a token in a cookie (never in a URL), the same in every tab of this browser.
identity.ensure_browser_identity()

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/home:", url_path="home", default=True),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", url_path="train"),
    st.Page("pages/bound_vs_m.py", title="Bound vs M", icon=":material/show_chart:", url_path="bound-vs-m"),
    st.Page("pages/posterior.py", title="Posterior", icon=":material/scatter_plot:", url_path="posterior"),
    st.Page("pages/reconstructions.py", title="Reconstructions", icon=":material/image:", url_path="reconstructions"),
    st.Page("pages/samples.py", title="Samples", icon=":material/auto_awesome:", url_path="samples"),
    st.Page("pages/is_it_a_bound.py", title="Is it a bound?", icon=":material/balance:", url_path="is-it-a-bound"),
    st.Page("pages/checkpoints.py", title="Checkpoints", icon=":material/inventory_2:", url_path="checkpoints"),
    st.Page("pages/experiments.py", title="Experiments", icon=":material/grid_view:", url_path="experiments"),
]

page = st.navigation(PAGES)
try:
    # Your runs, from any page and any tab of this browser.
    active = [job for job in cache.job_registry().list(identity.owner_key()) if job.active]
    if active:
        st.sidebar.caption(f"{len(active)} of your runs {'is' if len(active) == 1 else 'are'} in progress.")
        st.sidebar.page_link("pages/train.py", label="Your runs", icon=":material/model_training:")
    page.run()
finally:
    boot.freeze_long_lived_objects()  # after runs that imported modules: later collections skip them
    boot.warm_up_in_background()  # once: what other pages' first visits need, computed before anyone asks
