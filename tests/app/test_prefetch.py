"""The background prefetch of ``ui/cache.py``: the values a page will ask for next are computed once, and then found."""

from __future__ import annotations

import pytest
import streamlit as st

from dvae_engine import boundlab
from ui import cache

LEVELS = (0.0, 0.1, 0.2)
MODEL_ARGS = (3, 1, 0, "linear", 1.5, 0.5)  # D, L, seed, encoder, spread, σ


def wait_for_prefetches() -> None:
    """The prefetcher has one thread and runs in order: once this no-op has run, everything before it has."""
    cache._prefetcher.submit(lambda: None).result(timeout=120)


def test_stepping_m_or_k_finds_the_neighbours_estimates_ready(monkeypatch):
    st.cache_data.clear()
    computed = []
    point, sweep = boundlab.diwae_expectation, boundlab.diwae_sweep
    monkeypatch.setattr(boundlab, "diwae_expectation",
                        lambda *a, **k: computed.append(("point", a[4], a[5])) or point(*a, **k))
    monkeypatch.setattr(boundlab, "diwae_sweep",
                        lambda *a, **k: computed.append(("sweep", a[4], a[5])) or sweep(*a, **k))

    cache.prefetch_boundlab_diwae(MODEL_ARGS, 5, "bit-flip", 0.2, LEVELS, 2, 1, max_corruptions=20, max_samples=50)
    wait_for_prefetches()
    # M ± 1 and K ± 1 of (M, K) = (2, 1): (3, 1), (2, 2), (1, 1) is exact (no estimate) and K = 0 does not exist
    assert sorted(computed) == [("point", 2, 2), ("point", 3, 1), ("sweep", 2, 2), ("sweep", 3, 1)]
    assert not cache._prefetching  # nothing left marked as queued

    computed.clear()
    ahead = cache.boundlab_diwae(MODEL_ARGS, 5, "bit-flip", 0.2, LEVELS, 3, 1, exact={"log_px": 0.0}, sweep={})
    assert computed == []  # the step found both estimates cached
    model = boundlab.random_tiny_model(3, 1, 0, encoder="linear", encoder_scale=1.5, encoder_sigma=0.5)
    fresh = point(model, 5, "bit-flip", 0.2, 3, 1)
    assert ahead[0]["mean"] == fresh["mean"] and ahead[0]["stderr"] == fresh["stderr"]  # the same estimate


def test_stepping_d_finds_the_next_widths_diwae_estimates_ready(monkeypatch):
    st.cache_data.clear()
    computed = []
    point, sweep = boundlab.diwae_expectation, boundlab.diwae_sweep
    monkeypatch.setattr(boundlab, "diwae_expectation",
                        lambda *a, **k: computed.append(("point", a[0].num_pixels)) or point(*a, **k))
    monkeypatch.setattr(boundlab, "diwae_sweep",
                        lambda *a, **k: computed.append(("sweep", a[0].num_pixels)) or sweep(*a, **k))
    wider = (4, *MODEL_ARGS[1:])
    cache.prefetch_boundlab_model(wider, 5, "bit-flip", 0.2, LEVELS, 1, 1)  # M = K = 1: exact, no estimate
    wait_for_prefetches()
    assert computed == []
    cache.prefetch_boundlab_model(wider, 5, "bit-flip", 0.2, LEVELS, 3, 2)
    wait_for_prefetches()
    assert sorted(computed) == [("point", 4), ("sweep", 4)]
    exact, lab_sweep, _ = cache.boundlab_exact(wider, 5, "bit-flip", 0.2, LEVELS)
    cache.boundlab_diwae(wider, 5, "bit-flip", 0.2, LEVELS, 3, 2, exact=exact, sweep=lab_sweep)
    assert sorted(computed) == [("point", 4), ("sweep", 4)]  # the step found them


def test_a_full_queue_drops_prefetches_instead_of_piling_them_up(monkeypatch):
    monkeypatch.setattr(cache, "_prefetching", {("busy", i) for i in range(cache.MAX_PREFETCH_QUEUE)})
    ran = []
    cache._prefetch(("one more",), ran.append, 1)
    if cache._prefetcher is not None:
        wait_for_prefetches()
    assert ran == [] and ("one more",) not in cache._prefetching


def test_a_prepared_posterior_panel_is_what_the_page_then_finds(monkeypatch, tiny_checkpoints, digits):
    from dvae_engine import analysis, load_checkpoint

    st.cache_data.clear()
    path = tiny_checkpoints / "digits-vae-2d.pt"
    model = load_checkpoint(path).model
    x_clean = digits.test[5].numpy()
    fits = []
    fit = analysis.fit_clean_posterior
    monkeypatch.setattr(analysis, "fit_clean_posterior", lambda *a, **k: fits.append(1) or fit(*a, **k))

    cache.prepare_posterior_panel(path, x_clean)
    assert len(fits) == 1
    # the page: its own noise, copies and seed, the same image
    grid = cache.true_posterior(path, x_clean)
    mixture = analysis.mixture_posterior(model, digits.test[5], "salt-pepper", 0.3, num_copies=8, seed=2)
    found = cache.clean_posterior_fit(path, x_clean, grid, mixture)
    assert len(fits) == 1  # a cache hit
    # the clean fit is the same whatever the noise and the page's seed: its draws have a fixed seed of their own
    assert found == fit(model, grid, mixture, seed=cache.CLEAN_FIT_SEED)


def wait_for_sweep(path, dataset_name: str, timeout: float = 300) -> None:
    import time

    deadline = time.monotonic() + timeout
    while (progress := cache.sweep_progress(path, dataset_name)) is None or progress[0] < progress[1]:
        assert time.monotonic() < deadline, f"the sweep did not finish: {progress}"
        time.sleep(0.05)


def test_the_sweep_readies_every_test_image_nearest_first(monkeypatch, tiny_checkpoints, digits):
    from dvae_engine import analysis

    st.cache_data.clear()
    monkeypatch.setattr(cache, "SWEEP_IDLE_S", 0.0)
    monkeypatch.setattr(cache, "SWEPT_IMAGES", 12)  # the first 12 test images, to keep this quick
    path = tiny_checkpoints / "digits-dvae-2d.pt"
    swept = []
    prepare = cache.prepare_posterior_panel
    monkeypatch.setattr(cache, "prepare_posterior_panel", lambda p, x: swept.append(x) or prepare(p, x))
    cache.sweep_true_posteriors([path], "digits", 8)
    wait_for_sweep(path, "digits")
    images = cache.test_images("digits")
    order = [next(i for i in range(12) if (images[i].numpy() == x).all()) for x in swept]
    assert order == [8, 9, 7, 10, 6, 11, 5, 4, 3, 2, 1, 0]  # outward from the index asked for, each image once

    grids = []
    grid_fn = analysis.true_posterior_grid
    monkeypatch.setattr(analysis, "true_posterior_grid", lambda *a, **k: grids.append(1) or grid_fn(*a, **k))
    x_clean = cache.test_image_rows("digits", 3, 1)[0].numpy()
    grid = cache.true_posterior(path, x_clean)
    cache.clean_posterior_fit(path, x_clean, grid, None)  # the mixture is not needed on a hit
    assert grids == []  # both found, not recomputed
    assert cache.sweep_progress(path, "digits") == (12, 12)


def test_a_sweep_keeps_only_the_last_models_asked_for(monkeypatch, tiny_checkpoints):
    monkeypatch.setattr(cache, "SWEEP_IDLE_S", 0.0)
    monkeypatch.setattr(cache, "SWEPT_IMAGES", 2)
    paths = [tiny_checkpoints / "digits-vae-2d.pt", tiny_checkpoints / "digits-dvae-2d.pt",
             tiny_checkpoints / "digits-diwae-4d.pt"]
    for path in paths:  # one at a time, as three visits of the page would
        cache.sweep_true_posteriors([path], "digits", 0)
    assert cache.sweep_progress(paths[0], "digits") is None  # dropped: the page compares two encoders
    for path in paths[1:]:
        wait_for_sweep(path, "digits")


def test_stepping_d_finds_the_neighbouring_widths_exact_lab_ready(monkeypatch):
    st.cache_data.clear()
    views = []
    lab_view = boundlab.lab_view
    monkeypatch.setattr(boundlab, "lab_view", lambda *a, **k: views.append(a[0].num_pixels) or lab_view(*a, **k))
    wider = (4, *MODEL_ARGS[1:])
    cache.prefetch_boundlab_exact(wider, 0b1010, "bit-flip", 0.2, LEVELS)
    wait_for_prefetches()
    assert views == [4]
    exact, sweep, densities = cache.boundlab_exact(wider, 0b1010, "bit-flip", 0.2, LEVELS)
    assert views == [4]  # found, not recomputed
    model = boundlab.random_tiny_model(4, 1, 0, encoder="linear", encoder_scale=1.5, encoder_sigma=0.5)
    assert exact["log_px"] == lab_view(model, 0b1010, "bit-flip", 0.2, LEVELS, max_components=12)[0]["log_px"]


def test_prefetches_run_below_the_pages_priority():
    import os
    import threading

    if not hasattr(os, "getpriority"):
        pytest.skip("thread priorities are a Linux feature")
    def priority() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    seen = []
    cache._prefetch(("priority probe",), lambda: seen.append(priority()))
    wait_for_prefetches()
    page = priority()
    assert seen == [min(19, page + cache.PREFETCH_NICE)]


def test_the_sweep_runs_only_on_idle_cores(monkeypatch, tiny_checkpoints):
    import os
    import threading

    if not hasattr(os, "SCHED_IDLE"):
        pytest.skip("SCHED_IDLE is a Linux scheduling class")
    monkeypatch.setattr(cache, "SWEEP_IDLE_S", 0.0)
    monkeypatch.setattr(cache, "SWEPT_IMAGES", 2)
    path = tiny_checkpoints / "digits-vae-2d.pt"
    cache.sweep_true_posteriors([path], "digits", 0)
    wait_for_sweep(path, "digits")
    sweeper = next(t for t in threading.enumerate() if t.name == "prefetch-sweep")
    assert os.sched_getscheduler(sweeper.native_id) == os.SCHED_IDLE


def test_the_sweep_waits_while_a_page_runs(monkeypatch, tiny_checkpoints):
    import threading

    monkeypatch.setattr(cache, "SWEEP_IDLE_S", 0.2)
    monkeypatch.setattr(cache, "SWEPT_IMAGES", 3)
    path = tiny_checkpoints / "digits-dvae-2d.pt"
    page_done = threading.Event()
    page = threading.Thread(target=page_done.wait, name="ScriptRunner.scriptThread")  # how Streamlit names a run
    page.start()
    try:
        cache.sweep_true_posteriors([path], "digits", 0)
        page_done.wait(1.0)  # five times the idle time the sweep waits for
        assert cache.sweep_progress(path, "digits") == (0, 3)  # nothing computed while the "page" ran
    finally:
        page_done.set()
        page.join()
    wait_for_sweep(path, "digits")  # and all of it once the page has finished
