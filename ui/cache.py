"""All of the app's Streamlit caching, in one place.

* ``st.cache_resource`` for things that must not be copied per rerun: the job
  registry (shared by every session), loaded models, full datasets (tensors of
  up to 150 MB, treated as read-only), checkpoint summaries (read on every rerun).
* ``st.cache_data`` for small derived values (checkpoint listings, image subsets).

Checkpoint folders: the shipped, pretrained models live in ``checkpoints/``
(read-only in the app: they can be downloaded but not deleted or renamed);
runs trained or uploaded in the app go to ``checkpoints/user/<owner>/`` (the root is
``$DVAE_USER_CHECKPOINT_DIR`` if set), private to the browser that made them — see
:mod:`dvae_engine.store` for the ids (``mnist-vae``, ``user/<name>``, …) that pages,
URLs and widget keys use, and :mod:`ui.identity` for who the owner is.
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
import torch

from dvae_engine import checkpoint as ckpt
from dvae_engine.data import (
    DATASET_IMAGE_SHAPES,
    Dataset,
    DatasetNotFoundError,
    available_offline,
    load_dataset,
    random_rows,
)
from dvae_engine.jobs import JobRegistry
from dvae_engine.store import KINDS, MODEL_KINDS, CheckpointStore, Entry

ROOT = Path(__file__).resolve().parents[1]
MAX_CONCURRENT_JOBS = int(os.environ.get("DVAE_MAX_JOBS", "2"))
# Training threads yield to page reruns (a class moving sliders) and train in the idle time.
JOB_NICE = int(os.environ.get("DVAE_JOB_NICE", "10"))


def shipped_dir() -> Path:
    return Path(os.environ.get("DVAE_CHECKPOINT_DIR", ROOT / "checkpoints"))


def user_dir() -> Path:
    path = Path(os.environ.get("DVAE_USER_CHECKPOINT_DIR", shipped_dir() / "user"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@st.cache_resource
def job_registry() -> JobRegistry:
    """One registry for the whole server: jobs survive reruns, page switches and refreshes."""
    return JobRegistry(user_dir(), max_concurrent=MAX_CONCURRENT_JOBS, nice=JOB_NICE)


@st.cache_resource(show_spinner="Loading dataset…")
def dataset(name: str, binarization: str = "static") -> Dataset:
    """A full dataset (raises DatasetNotFoundError when its files are missing offline)."""
    return load_dataset(name, binarization=binarization, download=False)


def try_dataset(name: str, binarization: str = "static") -> tuple[Dataset | None, str | None]:
    """``(dataset, None)`` or ``(None, message)`` when it is not on disk."""
    try:
        return dataset(name, binarization), None
    except DatasetNotFoundError as err:
        return None, str(err)


@st.cache_data
def offline_datasets() -> dict[str, bool]:
    return available_offline()


@st.cache_data(show_spinner=False)
def test_images(name: str, count: int = 2000) -> torch.Tensor | None:
    """A fixed random subset of a dataset's clean test split (the test split may be sorted by class)."""
    subset = _test_subset(name, count)
    return None if subset is None else subset.clone()


@st.cache_resource(show_spinner=False, max_entries=8)
def _test_subset(name: str, count: int = 2000) -> torch.Tensor | None:
    """:func:`test_images` shared, not copied: for the pages' row lookups (read-only)."""
    test = _test_split(name)
    return None if test is None else random_rows(test, count)


@st.cache_resource(show_spinner=False, max_entries=8)
def _test_split(name: str) -> torch.Tensor | None:
    """The test split alone (:func:`dvae_engine.data.load_test_split`: MNIST's in 0.1 s, against about 1 s for the
    whole dataset, which the Home page's picture does not need on a cold server); None when it is not on disk."""
    from dvae_engine.data import load_test_split

    try:
        return load_test_split(name, download=False)
    except DatasetNotFoundError:
        return None


@st.cache_resource(show_spinner="Loading model…", max_entries=32)
def _load(path: str, mtime: float) -> ckpt.Checkpoint:
    return ckpt.load_checkpoint(path)


def load_model(path: str | Path) -> ckpt.Checkpoint:
    """A checkpoint loaded once per file version (the cache key includes its modification time)."""
    path = Path(path)
    return _load(str(path), path.stat().st_mtime)


def store() -> CheckpointStore:
    """The checkpoint folders, by owner (cheap: no caching needed)."""
    return CheckpointStore(shipped_dir(), user_dir())


def _owner() -> str:
    from ui import identity

    return identity.owner_key()


def _stamp(folder: Path) -> int:
    try:
        return folder.stat().st_mtime_ns
    except OSError:
        return 0


@functools.lru_cache(maxsize=256)
def _listing(shipped: str, user_root: str, owner: str, kinds: tuple[str, ...],
             stamps: tuple[int, ...]) -> tuple[tuple[Entry, ...], dict[str, Entry]]:
    entries = tuple(CheckpointStore(shipped, user_root).entries(owner, kinds))
    return entries, {str(e.path): e for e in entries}


def _entries(kinds: tuple[str, ...]) -> tuple[tuple[Entry, ...], dict[str, Entry]]:
    """The listing, re-read only when one of its folders changed (a file added, renamed or removed)."""
    folders = store()
    owner = _owner()
    watched = [folders.shipped_dir, folders.user_root]
    if owner:
        watched += [folders.folder(owner), folders.folder(owner, "diagnostic")]
    return _listing(str(folders.shipped_dir), str(folders.user_root), owner, tuple(kinds),
                    tuple(_stamp(f) for f in watched))


def checkpoint_entries(kinds: tuple[str, ...] = MODEL_KINDS) -> list[Entry]:
    """The checkpoints this browser may see: shipped ones, its own, older shared ones (never others')."""
    return list(_entries(kinds)[0])


def checkpoint_files() -> list[Path]:
    """Every model this browser can open: shipped ones first, then its own (newest first); no diagnostics."""
    return [entry.path for entry in checkpoint_entries()]


def checkpoint_entry(path: str | Path) -> Entry | None:
    """The entry (id, kind, label) of a checkpoint file this browser may see."""
    entry = _entries(KINDS)[1].get(str(path))
    return entry if entry is not None else store().entry_for_path(_owner(), path)


def checkpoint_id(path: str | Path) -> str:
    """The id of a checkpoint file for URLs and widget keys: ``mnist-vae`` (shipped) or ``user/<name>`` (yours)."""
    entry = checkpoint_entry(path)
    return entry.id if entry is not None else Path(path).stem


def checkpoint_label(path: str | Path) -> str:
    """A checkpoint's name as people read it: ``mnist-vae``, ``mnist-vae (yours)``."""
    entry = checkpoint_entry(path)
    return entry.label if entry is not None else Path(path).stem


def is_shipped(path: str | Path) -> bool:
    return Path(path).resolve().parent == shipped_dir().resolve()


# --- "Is it a bound?" page: the exact tiny-model lab (dvae_engine.boundlab) ----------------------

@st.cache_data(show_spinner=False, max_entries=32)
def boundlab_model(num_pixels: int, latent_dim: int, seed: int, encoder: str, encoder_scale: float,
                   encoder_sigma: float):
    """A seeded random tiny model (the posterior-matched encoder costs ~0.1–1 s, so it is kept)."""
    from dvae_engine import boundlab

    return boundlab.random_tiny_model(num_pixels, latent_dim, seed, encoder=encoder, encoder_scale=encoder_scale,
                                      encoder_sigma=encoder_sigma)


@st.cache_resource(show_spinner=False, max_entries=6)
def _lab_basis(model_args: tuple, x_code: int):
    """The lab's grid work that no noise level changes (:func:`boundlab.lab_basis`; up to ~16 MB), shared."""
    from dvae_engine import boundlab

    return boundlab.lab_basis(boundlab_model(*model_args), x_code)


@st.cache_data(show_spinner=False, max_entries=64)
def _lab_sweep(model_args: tuple, x_code: int, noise: str, levels: tuple[float, ...]) -> dict:
    from dvae_engine import boundlab

    return boundlab.noise_sweep(boundlab_model(*model_args), x_code, noise, levels,
                                basis=_lab_basis(model_args, x_code))


@st.cache_data(show_spinner=False, max_entries=128)
def boundlab_exact(model_args: tuple, x_code: int, noise: str, level: float,
                   levels: tuple[float, ...]) -> tuple[dict, dict, dict]:
    """The exact lab at ``level`` and over ``levels``: (exact quantities, exact sweep, latent densities). The
    basis and the sweep are kept apart, so a move of the noise level alone costs one mixing of the components."""
    from dvae_engine import boundlab

    return boundlab.lab_view(boundlab_model(*model_args), x_code, noise, level, levels, max_components=12,
                             basis=_lab_basis(model_args, x_code), sweep=_lab_sweep(model_args, x_code, noise, levels))


def boundlab_diwae(model_args: tuple, x_code: int, noise: str, level: float, levels: tuple[float, ...],
                   num_corruptions: int, num_samples: int, exact: dict, sweep: dict) -> tuple[dict, dict]:
    """E[DIWAE(M, K)] at ``level`` and over ``levels``: exact for M = K = 1 (from ``exact`` and ``sweep``, the
    :func:`boundlab_exact` results), else Monte Carlo estimates, each cached on its own settings (a move of ν
    does not redo the sweep's)."""
    from dvae_engine import boundlab

    if num_corruptions == 1 and num_samples == 1:
        model = boundlab_model(*model_args)
        return (boundlab.diwae_expectation(model, x_code, noise, level, exact=exact),
                boundlab.diwae_sweep(model, x_code, noise, levels, exact_sweep=sweep))
    return (_diwae_point(model_args, x_code, noise, level, num_corruptions, num_samples),
            _diwae_sweep(model_args, x_code, noise, levels, num_corruptions, num_samples))


def _workers() -> int:
    """Threads for the lab's Monte Carlo draws: every core while no training job runs in this server and this is a
    page's run, else one (a prefetch leaves the other core to the page)."""
    from ui.boot import training_threads

    if training_threads() or threading.current_thread().name.startswith("prefetch"):
        return 1
    return os.cpu_count() or 1


def prefetch_boundlab_exact(model_args: tuple, x_code: int, noise: str, level: float,
                            levels: tuple[float, ...]) -> None:
    """Start computing :func:`boundlab_exact` for these settings in the background (a neighbouring model)."""
    args = (model_args, x_code, noise, level, levels)
    _prefetch(("boundlab_exact", *args), boundlab_exact, *args)


def prefetch_boundlab_model(model_args: tuple, x_code: int, noise: str, level: float, levels: tuple[float, ...],
                            num_corruptions: int, num_samples: int) -> None:
    """Start computing what a step to this model (another D, seed, spread or σ) shows: :func:`boundlab_exact` and,
    unless M = K = 1 (exact), the DIWAE estimates at this M and K (~0.1 s each at M = K = 12: a step would wait)."""
    prefetch_boundlab_exact(model_args, x_code, noise, level, levels)
    if (num_corruptions, num_samples) != (1, 1):
        _prefetch_diwae(model_args, x_code, noise, level, levels, num_corruptions, num_samples)


def _prefetch_diwae(model_args: tuple, x_code: int, noise: str, level: float, levels: tuple[float, ...],
                    num_corruptions: int, num_samples: int) -> None:
    """Start the two Monte Carlo estimates :func:`boundlab_diwae` needs at this M and K (not M = K = 1: exact)."""
    point = (model_args, x_code, noise, level, num_corruptions, num_samples)
    sweep = (model_args, x_code, noise, levels, num_corruptions, num_samples)
    _prefetch(("diwae_point", *point), _diwae_point, *point)
    _prefetch(("diwae_sweep", *sweep), _diwae_sweep, *sweep)


def prefetch_boundlab_diwae(model_args: tuple, x_code: int, noise: str, level: float, levels: tuple[float, ...],
                            num_corruptions: int, num_samples: int, max_corruptions: int, max_samples: int) -> None:
    """Start estimating :func:`boundlab_diwae` for M ± 1 and K ± 1 (the steps of the lab's number inputs), so that
    a step finds its Monte Carlo estimates ready; M = K = 1 is exact and needs none."""
    for m, k in ((num_corruptions + 1, num_samples), (num_corruptions, num_samples + 1),
                 (num_corruptions - 1, num_samples), (num_corruptions, num_samples - 1)):
        if 1 <= m <= max_corruptions and 1 <= k <= max_samples and (m, k) != (1, 1):
            _prefetch_diwae(model_args, x_code, noise, level, levels, m, k)


@st.cache_data(show_spinner=False, max_entries=128)
def _diwae_point(model_args: tuple, x_code: int, noise: str, level: float, num_corruptions: int,
                 num_samples: int) -> dict:
    from dvae_engine import boundlab

    return boundlab.diwae_expectation(boundlab_model(*model_args), x_code, noise, level, num_corruptions,
                                      num_samples, workers=_workers())


@st.cache_data(show_spinner="Estimating DIWAE over ν…", max_entries=64)
def _diwae_sweep(model_args: tuple, x_code: int, noise: str, levels: tuple[float, ...], num_corruptions: int,
                 num_samples: int) -> dict:
    from dvae_engine import boundlab

    return boundlab.diwae_sweep(boundlab_model(*model_args), x_code, noise, levels, num_corruptions, num_samples,
                                workers=_workers())


@st.cache_data(show_spinner=False, max_entries=32)
def boundlab_counterexample(a_values: tuple[float, ...], num_corruptions: int, num_samples: int) -> dict:
    """Ranganath's counterexample, exactly, for each a."""
    from dvae_engine import boundlab

    return boundlab.ranganath_sweep(a_values, num_corruptions, num_samples)


# --- Posterior, Reconstructions and Samples pages (dvae_engine.analysis) -------------------------

def test_image_rows(name: str, start: int, count: int) -> torch.Tensor | None:
    """Rows ``start:start+count`` of :func:`test_images` (a copy of those rows only); None offline."""
    images = _test_subset(name)
    return None if images is None else images[start:start + count].clone()


@st.cache_data(show_spinner=False)
def test_image_count(name: str) -> int:
    """How many rows :func:`test_images` offers (0 when the dataset is not on disk)."""
    images = test_images(name)
    return 0 if images is None else len(images)


@st.cache_data(show_spinner=False)
def train_mean_image(name: str) -> torch.Tensor | None:
    """The training split's mean image ``(D,)`` for the mean-image noise; None when the dataset is missing."""
    data, _ = try_dataset(name)
    return None if data is None else data.train_mean().clone()


@st.cache_data(show_spinner="Fitting the PCA plane on encoder means…", max_entries=32)
def _latent_projection(path: str, mtime: float):
    from dvae_engine import analysis

    checkpoint = load_model(path)
    images = test_images(checkpoint.config.dataset)
    if images is None:  # offline: the model's own samples stand in for the dataset
        images = analysis.model_inputs(checkpoint.model, 1000, seed=0)
    return analysis.fit_pca(analysis.encoder_means(checkpoint.model, images))


def latent_projection(path: str | Path):
    """The PCA plane of a model's encoder means on (up to 2000) test images, fitted once per file version."""
    path = Path(path)
    return _latent_projection(str(path), path.stat().st_mtime)


@st.cache_resource(show_spinner=False, max_entries=8)
def _decoder_grid(path: str, mtime: float):
    from dvae_engine import analysis

    return analysis.decoder_grid(load_model(path).model)


def decoder_grid(path: str | Path):
    """The model's decoder on a fixed coarse grid of its 2-D latent space (:func:`analysis.decoder_grid`, ~13 MB,
    read-only): the true posterior's search for any image is then one matrix-vector product. None if it does
    not apply."""
    path = Path(path)
    return _decoder_grid(str(path), path.stat().st_mtime)


# The Posterior page's 2-D models: every test image's true posterior is computed in the background (below), so a
# typed index finds it ready; these caches hold all of them for MAX_SWEPT_MODELS models (~30 KB a grid: ~130 MB).
SWEPT_IMAGES = 2000  # test_images' default count: the images the page offers
_POSTERIOR_ENTRIES = 2 * SWEPT_IMAGES + 64


@st.cache_data(show_spinner="Evaluating the true posterior on a grid…", max_entries=_POSTERIOR_ENTRIES)
def _true_posterior(path: str, mtime: float, x_clean):
    from dvae_engine import analysis

    return analysis.true_posterior_grid(load_model(path).model, torch.as_tensor(x_clean),
                                        decoder_grid=decoder_grid(path))


def true_posterior(path: str | Path, x_clean):
    """p(z|x) of a 2-D latent model on a grid for one image (numpy ``(D,)``); independent of the noise."""
    path = Path(path)
    return _true_posterior(str(path), path.stat().st_mtime, x_clean)


CLEAN_FIT_SEED = 0  # the clean q(z|x)'s draws: one fixed stream per image, whatever the page's seed


@st.cache_data(show_spinner=False, max_entries=_POSTERIOR_ENTRIES)
def _clean_posterior_fit(path: str, mtime: float, x_clean, _grid, _mixture) -> tuple[float, float]:
    from dvae_engine import analysis

    return analysis.fit_clean_posterior(load_model(path).model, _grid, _mixture, seed=CLEAN_FIT_SEED)


def clean_posterior_fit(path: str | Path, x_clean, grid, mixture) -> tuple[float, float]:
    """The clean q(z|x)'s KL divergences to and from the true posterior (:func:`analysis.fit_clean_posterior`) for
    one model and image (numpy ``(D,)``), with draws seeded by ``CLEAN_FIT_SEED``: q(z|x) does not depend on the
    noise, the copies or the page's seed (which seeds the corruption), so neither do these numbers.
    ``grid`` is :func:`true_posterior` of that image and ``mixture`` any mixture posterior of it (only its clean
    q(z|x), the same for all, is used; neither is part of the cache key)."""
    path = Path(path)
    return _clean_posterior_fit(str(path), path.stat().st_mtime, x_clean, grid, mixture)


_prefetcher = None
_prefetching: set = set()  # keys queued or running, so a class moving the same slider queues each value once
MAX_PREFETCH_QUEUE = 8  # beyond this a prefetch is dropped: it is only a head start
PREFETCH_NICE = 10  # the prefetch thread's priority below the pages' (Linux nice): it uses only idle time
_prefetch_thread_state = threading.local()


def _prefetch(key: tuple, function, *args) -> None:
    """Compute ``function(*args)`` (an ``st.cache_data`` function; ``key`` names the value, hashable) in the one
    background thread, so the page that asks for it next finds it cached.

    One thread whatever the number of sessions, at nice +10, so it works in the time the pages being drawn
    (and the browser) leave; a page asking for a value still being computed waits for it (``st.cache_data``
    computes each value once) rather than starting again.
    """
    global _prefetcher
    from concurrent.futures import ThreadPoolExecutor

    if key in _prefetching or len(_prefetching) >= MAX_PREFETCH_QUEUE:
        return
    if _prefetcher is None:
        _prefetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")
    _prefetching.add(key)
    _prefetcher.submit(_run_prefetch, key, function, args)


def _run_prefetch(key, function, args) -> None:
    from dvae_engine.jobs import lower_thread_priority

    # Priority, not fewer threads, keeps this out of the pages' way: torch.set_num_threads here would also become
    # the thread count of every script run started after it (each rerun is a new thread, and new threads take the
    # last value set anywhere), leaving the pages' own torch work on one core.
    if not getattr(_prefetch_thread_state, "niced", False):  # once per thread: the pages' runs and the browser first
        lower_thread_priority(PREFETCH_NICE)
        _prefetch_thread_state.niced = True
    try:
        function(*args)
    except Exception:  # noqa: BLE001 — only a head start; the page computes (and reports) it when asked
        pass
    finally:
        _prefetching.discard(key)


def prepare_posterior_panel(path: str | Path, x_clean) -> None:
    """Compute what the Posterior page's panel of a 2-D model needs for one image (numpy ``(D,)``) whatever the
    noise and the seed: the true posterior and the clean q(z|x)'s fit to it (for the sweep and the warm-up)."""
    from dvae_engine import analysis

    grid = true_posterior(path, x_clean)
    clean = analysis.mixture_posterior(load_model(path).model, torch.as_tensor(x_clean), "salt-pepper", 0.0,
                                       num_copies=1)  # only its clean q(z|x) is used
    clean_posterior_fit(path, x_clean, grid, clean)


@dataclass
class _Sweep:
    """One 2-D model's pass over a dataset's test images, nearest to the last index asked for first."""

    path: Path
    dataset: str
    count: int
    centre: int
    done: set[int] = field(default_factory=set)
    distance: int = 0  # every image closer to ``centre`` than this is done

    def next_image(self) -> int | None:
        """The undone image nearest to ``centre`` (advancing ``distance``), or None when all are done."""
        while self.distance <= max(self.centre, self.count - 1 - self.centre):
            for index in (self.centre + self.distance, self.centre - self.distance):
                if 0 <= index < self.count and index not in self.done:
                    return index
            self.distance += 1
        return None


MAX_SWEPT_MODELS = 2  # the Posterior page compares two encoders; older sweeps are dropped
# The sweep starts an image only when no page has run for this long: a browser loading a page (its scripts, the
# files the server sends) and a class moving sliders go first. Its Python holds the interpreter lock in bursts,
# which slowed first visits of pages by ~0.3 s when it ran beside them.
SWEEP_IDLE_S = 3.0
_sweeps: OrderedDict[tuple, _Sweep] = OrderedDict()  # (path, mtime, dataset) → sweep, most recently asked last
_sweep_work = threading.Condition()
_sweeper: threading.Thread | None = None
_sweep_stop = threading.Event()
_sweeping = threading.Lock()  # held while an image is being computed


def sweep_true_posteriors(paths, dataset_name: str, index: int) -> None:
    """Compute, in one background thread for the whole server, the true posterior and the clean fit
    (:func:`prepare_posterior_panel`) of every test image for these 2-D models, nearest to ``index`` first, so that
    stepping or typing an index finds them ready. Each call re-centres the pass on ``index``; whatever is done
    stays cached. The thread runs only on an idle core (Linux's SCHED_IDLE) and while no page is running: ~30 ms
    per model and image, about two minutes of one core for two models' 2000 images."""
    global _sweeper
    count = min(test_image_count(dataset_name), SWEPT_IMAGES)
    with _sweep_work:
        for path in map(Path, paths):
            key = (str(path), path.stat().st_mtime, dataset_name)
            sweep = _sweeps.pop(key, None) or _Sweep(path, dataset_name, count, index)
            if sweep.centre != index:
                sweep.centre, sweep.distance = index, 0
            _sweeps[key] = sweep
        while len(_sweeps) > MAX_SWEPT_MODELS:
            _sweeps.popitem(last=False)
        if _sweeper is None:
            _sweeper = threading.Thread(target=_sweep_loop, name="prefetch-sweep", daemon=True)
            _sweeper.start()
            atexit.register(_stop_sweep)
        _sweep_work.notify()


def cancel_sweeps() -> None:
    """Drop every sweep (what they computed stays cached) and wait for the image in progress, if any."""
    with _sweep_work:
        _sweeps.clear()
    with _sweeping:
        pass


def sweep_progress(path: str | Path, dataset_name: str) -> tuple[int, int] | None:
    """(images done, images in all) of a model's sweep, or None when it has none."""
    path = Path(path)
    with _sweep_work:
        sweep = _sweeps.get((str(path), path.stat().st_mtime, dataset_name))
        return None if sweep is None else (len(sweep.done), sweep.count)


def _next_sweep_image() -> tuple[_Sweep, int] | None:
    """The undone (sweep, image) nearest to its sweep's centre over all sweeps (so both encoders advance together)."""
    best = None
    for sweep in _sweeps.values():
        index = sweep.next_image()
        if index is not None and (best is None or abs(index - sweep.centre) < abs(best[1] - best[0].centre)):
            best = (sweep, index)
    return best


class _QuietBackground(logging.Filter):
    """Streamlit warns of a "missing ScriptRunContext" whenever a cached function is called outside a page run:
    for the background threads here that is every call, and nothing is wrong."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not threading.current_thread().name.startswith("prefetch")


_context_log = logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context")
if not any(isinstance(f, _QuietBackground) for f in _context_log.filters):
    _context_log.addFilter(_QuietBackground())


_last_page_seen = [0.0]  # time.monotonic() when a page's script run was last seen running


def _pages_running() -> bool:
    # a script run is a thread of its own in Streamlit; if that ever changes the sweep just stops waiting for them
    return any(t.name.startswith("ScriptRunner") for t in threading.enumerate())


_watching = threading.Event()  # set while the sweep has work: the watcher below runs only then


def _watch_pages() -> None:
    """Note when a page last ran, every 20 ms, for the sweep (which cannot look while it computes an image)."""
    while not _sweep_stop.is_set():
        _watching.wait()
        if _pages_running():
            _last_page_seen[0] = time.monotonic()
        _sweep_stop.wait(0.02)


def _stop_sweep() -> None:
    # at exit, before the interpreter tears down: a daemon thread killed inside torch aborts the process
    _sweep_stop.set()
    _watching.set()  # let the watcher see the stop
    with _sweep_work:
        _sweep_work.notify_all()
    if _sweeper is not None:
        _sweeper.join(timeout=10)


def _sweep_loop() -> None:
    from dvae_engine.jobs import lower_thread_priority

    lower_thread_priority(PREFETCH_NICE, idle=True)  # hours of it would be fine; a page's or browser's wait is not
    _last_page_seen[0] = time.monotonic()
    threading.Thread(target=_watch_pages, name="prefetch-sweep-watch", daemon=True).start()
    while not _sweep_stop.is_set():
        with _sweep_work:
            job = _next_sweep_image()
            while job is None and not _sweep_stop.is_set():
                _watching.clear()  # all done: no polling while there is nothing to do
                _sweep_work.wait()
                job = _next_sweep_image()
        if job is None:  # stopped
            return
        if not _watching.is_set():
            _last_page_seen[0] = time.monotonic()  # not watched meanwhile: assume a page just ran
            _watching.set()
        # A page goes first. The images next to the one shown only wait for its run to end (the step a class takes
        # next), the others for SWEEP_IDLE_S of quiet; the job is picked again after a wait (the index may move).
        quiet = 0.0 if abs(job[1] - job[0].centre) <= 1 else SWEEP_IDLE_S
        if _pages_running() or time.monotonic() - _last_page_seen[0] < quiet:
            _sweep_stop.wait(0.02)
            continue
        with _sweeping:
            with _sweep_work:
                if not any(s is job[0] for s in _sweeps.values()):  # cancelled meanwhile
                    continue
            sweep, index = job
            try:
                prepare_posterior_panel(sweep.path, test_image_rows(sweep.dataset, index, 1)[0].numpy())
            except Exception:  # noqa: BLE001 — only a head start; the page computes (and reports) it when asked
                pass
            with _sweep_work:
                sweep.done.add(index)


@st.cache_data(show_spinner=False, max_entries=16)
def _latent_plane(path: str, mtime: float, title: str, name: str) -> str:
    from dvae_engine import analysis
    from ui import figures

    checkpoint = load_model(path)
    grid_images, values = analysis.latent_grid_images(checkpoint.model, per_axis=12)
    return figures.image_grid(figures.wrap(grid_images, 12), checkpoint.image_shape, [f"{v:.2f}" for v in values[::-1]],
                              col_labels=[f"{v:.2f}" for v in values], title=title, cell_px=48, name=name)


def latent_plane(path: str | Path, title: str, name: str) -> str:
    """The decoded 2-D latent plane of a model as an image-grid figure (HTML). It depends on the model alone, so
    a change of the sample seed does not decode and encode its 144 images again."""
    path = Path(path)
    return _latent_plane(str(path), path.stat().st_mtime, title, name)


@st.cache_data(show_spinner="Running t-SNE…", max_entries=32)
def tsne_mixture(component_loc, clean_loc, seed: int):
    """t-SNE of the component means ``(N, latent)`` together with the clean mean ``(latent,)``: ``((N, 2), (2,))``."""
    import numpy as np

    from dvae_engine import analysis

    points = analysis.tsne_embed(np.vstack([component_loc, clean_loc[None]]), seed=seed)
    return points[:-1], points[-1]


# --- Home, Train, Bound vs M and Checkpoints pages -------------------------------------------

@st.cache_resource(show_spinner=False, max_entries=512)
def _checkpoint_info(path: str, mtime: float, size: int) -> dict:
    from dvae_engine.training import TrainConfig

    try:
        payload = ckpt.load_payload(path)
        config = TrainConfig.from_dict(payload["config"])
    except (ckpt.CheckpointError, TypeError, ValueError) as err:
        return {"error": str(err), "size": size}
    return {
        "error": None, "config": config, "size": size,
        "history": {k: list(v) for k, v in payload["history"].items()},
        "metrics": dict(payload.get("metrics") or {}),
        "status": payload.get("status", ""), "message": payload.get("message", ""),
        "created": payload.get("created", ""), "image_shape": tuple(payload.get("dataset_image_shape") or ()),
    }


def checkpoint_info(path: str | Path) -> dict:
    """A checkpoint's config, history, metrics and status without building its model (cached per file version).

    ``{"error": message, "size": bytes}`` when the file is not a readable checkpoint. The same dict
    is handed to every caller (``cache_resource``: model choosers call this for every option on
    every rerun, and a copy each time cost more than the rest of the rerun): read it, never change it.
    """
    stat = Path(path).stat()
    return _checkpoint_info(str(path), stat.st_mtime, stat.st_size)


@st.cache_data(show_spinner=False)
def _manifest(path: str, mtime: float) -> dict[str, dict]:
    import json

    try:
        models = json.loads(Path(path).read_text())["models"]
        return {entry["file"]: entry for entry in models if isinstance(entry, dict) and "file" in entry}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def manifest() -> dict[str, dict]:
    """``checkpoints/manifest.json`` by file name (description, test metrics); empty when absent."""
    path = shipped_dir() / "manifest.json"
    return _manifest(str(path), path.stat().st_mtime) if path.is_file() else {}


@st.cache_data(show_spinner=False, max_entries=2)
def _json_file(path: str, mtime: float) -> dict:
    return json.loads(Path(path).read_text())


def denoising_evidence() -> dict | None:
    """``experiments/results/denoising.json`` (the seeds comparison of plain vs denoising models), or None."""
    folder = os.environ.get("DVAE_RESULTS_DIR") or Path(__file__).resolve().parents[1] / "experiments" / "results"
    path = Path(folder) / "denoising.json"
    if not path.is_file():
        return None
    try:
        return _json_file(str(path), path.stat().st_mtime)
    except ValueError:
        return None


TEACHING_LEVEL = 0.10  # the noise level of the Home page's picture: 10 % salt-and-pepper


def picture_dataset() -> str:
    """The dataset the Home page draws its picture with: MNIST when it is on disk, else scikit-learn's digits."""
    return "mnist" if offline_datasets().get("mnist") else "digits"


def teaching_model(same_dataset_only: bool = False) -> Path | None:
    """The shipped DVAE the Home page teaches with: salt-and-pepper, trained nearest 10 %, on the picture's dataset.

    Posterior and Reconstructions open on it. Unless ``same_dataset_only``, a shipped salt-and-pepper
    DVAE of another dataset (MNIST first) stands in when the picture's dataset has none.
    """
    dataset = picture_dataset()
    candidates = []
    for path in checkpoint_files():
        info = checkpoint_info(path)
        if not is_shipped(path) or info["error"]:
            continue
        config = info["config"]
        if config.objective != "dvae" or config.noise != "salt-pepper":
            continue
        if same_dataset_only and config.dataset != dataset:
            continue
        candidates.append(((config.dataset != dataset, config.dataset != "mnist",
                            abs(config.noise_level - TEACHING_LEVEL), path.name), path))
    return min(candidates)[1] if candidates else None


def find_checkpoint(entry_id: str | None) -> Path | None:
    """The checkpoint file an id names (the ``?model=`` query parameter) for this browser, or None."""
    entry = store().resolve(_owner(), entry_id)
    return None if entry is None or entry.kind == "diagnostic" else entry.path


@st.cache_data(show_spinner=False, max_entries=16)
def diagram_example(dataset_name: str, checkpoint_path: str | None, noise: str, level: float,
                    num_copies: int = 3, index: int = 0) -> tuple:
    """Images for the Home picture: a clean test image, ``num_copies`` corrupted copies and,
    given a checkpoint, the decoder mean of the first copy's encoder mean. Numpy ``(H, W)`` arrays."""
    from dvae_engine.corruption import corrupt

    images = test_images(dataset_name, index + 1)  # the test split alone: no training split on a cold start
    if images is None:
        return None
    shape = DATASET_IMAGE_SHAPES[dataset_name]
    x_clean = images[index:index + 1]  # (1, D)
    generator = torch.Generator().manual_seed(index)
    x_noisy = corrupt(x_clean, noise, level, num_copies, generator)[:, 0]  # (M, D)
    x_out = None
    if checkpoint_path is not None:
        model = load_model(checkpoint_path).model
        with torch.no_grad():
            z_loc, _ = model.encode(x_noisy[:1])
            x_out = model.decode(z_loc)[0].reshape(shape).numpy()
    return (x_clean[0].reshape(shape).numpy(), [x.reshape(shape).numpy() for x in x_noisy], x_out)


# --- "Is it a bound?" page, section 4: the bridge L⁽ᴷ⁾ / U⁽ᴷ⁾ (dvae_engine.boundlab, dvae_engine.semi_implicit) ---

BRIDGE_TINY_KS = tuple(2**i for i in range(11))  # 1 … 1024
BRIDGE_TINY_MAX_WORK = 4 * 10**8  # density evaluations of the exact quadrature (a few seconds) before MC only


@st.cache_data(show_spinner="Computing L⁽ᴷ⁾ and U⁽ᴷ⁾ for the tiny model…", max_entries=32)
def boundlab_bridge(model_args: tuple, x_code: int, noise: str, level: float, num_draws: int = 1000,
                    seed: int = 0) -> tuple[dict | None, str | None, dict]:
    """The tiny model's bridge: ``(exact or None, why not exact or None, Monte Carlo estimates)``.

    The exact values (:func:`dvae_engine.boundlab.bridge_exact`) are skipped, with the reason,
    when the quadrature would be too large for an interactive page; the sampled estimators
    (:func:`dvae_engine.boundlab.monte_carlo_bridge`, ``num_draws`` draws) always run.
    """
    from dvae_engine import boundlab

    model = boundlab_model(*model_args)
    try:
        exact, message = boundlab.bridge_exact(model, x_code, noise, level, BRIDGE_TINY_KS,
                                               max_work=BRIDGE_TINY_MAX_WORK), None
    except ValueError as err:
        point = boundlab.exact_quantities(model, x_code, noise, level)
        exact = None
        message = f"{err}. L_cvae = {point['cvae']:.4f} and log p(x) = {point['log_px']:.4f} are still exact."
    mc = boundlab.monte_carlo_bridge(model, x_code, noise, level, BRIDGE_TINY_KS, num_draws, seed)
    mc = {k: v for k, v in mc.items() if not k.endswith("_draws")}
    if exact is None:
        mc.update(cvae=point["cvae"], log_px=point["log_px"], expected_kl=point["expected_kl"])
    return exact, message, mc


# --- Ray Tune experiment folders (the Experiments page) ------------------------------------------------------
# Read as plain JSON (experiments/experiment_io.py): the app never imports Ray. A trial folder is parsed once per
# version of its files; the experiment's status file is read afresh every time (it is tiny).


def experiments_root() -> Path:
    """Where experiments are listed from: ``$DVAE_EXPERIMENTS_DIR``, else ``experiments/ray_results/``."""
    return Path(os.environ.get("DVAE_EXPERIMENTS_DIR") or ROOT / "experiments" / "ray_results")


@st.cache_data(show_spinner=False, ttl=10)
def experiment_folders(root: str) -> list[str]:
    """The experiment folders under ``root``, newest first."""
    from experiments.experiment_io import list_experiments

    return [str(p) for p in list_experiments(root)]


@st.cache_resource(show_spinner=False, max_entries=4096)
def _trial(folder: str, key: tuple):
    from experiments.experiment_io import read_trial

    return read_trial(Path(folder))


def _cached_trial(trial_dir: Path):
    from experiments.experiment_io import trial_key

    return _trial(str(trial_dir), trial_key(trial_dir))


def experiment(folder: str | Path):
    """The experiment at ``folder`` as it is now (raises ExperimentError when it is none); trials cached per version."""
    from experiments.experiment_io import read_experiment

    return read_experiment(folder, read_trial=_cached_trial)
