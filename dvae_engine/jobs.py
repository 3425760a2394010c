"""Background training jobs: a thread per run, a stop event, and a progress snapshot.

The registry is plain Python (no UI code): the app polls :meth:`JobRegistry.snapshot`
on each rerun, and the training thread only writes its snapshot under a lock.
Finished and stopped runs are saved as checkpoints in their owner's folder (see
:mod:`dvae_engine.store`); a diverged run, or one stopped before its first epoch
ended, is saved as a *diagnostic* file (``<owner>/diagnostics/``), never offered as a
model. Only a job's owner may stop or dismiss it (``stop(job_id, owner=...)``).
At most ``max_concurrent`` jobs train at once; with ``submit(..., queue=True)``
further jobs wait in a first-in, first-out queue (at most ``max_queued``) and
start as slots free up. After training, a run is evaluated on clean test data
(``evaluation="standard"``, ``"quick"`` or ``"none"``) with progress counts and a
time estimate in its snapshot.

Low-level helpers for a checkpoint folder (:func:`store_checkpoint_bytes`,
:func:`rename_checkpoint`, :func:`delete_checkpoint`) validate files with the safe
loader and never silently overwrite.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .data import Dataset, load_dataset, random_rows
from .evaluation import evaluate, exact_log_px_2d, summarize, training_objective_kwargs
from .store import DIAGNOSTICS, StoreError, check_name, free_path, link_new, owner_folder, slugify
from .store import store_checkpoint_bytes as store_checkpoint_bytes  # re-exported (older imports)
from .training import BatchProgress, EpochReport, TrainConfig, TrainingDivergedError, train

ACTIVE = ("queued", "running")
EVALUATIONS = ("standard", "quick", "none")


class JobLimitError(RuntimeError):
    """Too many jobs are running at once."""


class JobAccessError(PermissionError):
    """The job does not exist, or belongs to someone else."""


@dataclass
class JobSnapshot:
    """A copy of one job's state, safe to read from any thread."""

    id: str
    owner: str
    name: str
    config: TrainConfig
    status: str = "queued"  # queued | running | evaluating | finished | stopped | diverged | failed
    epoch: int = 0  # completed epochs
    epochs: int = 0
    batch: int = 0
    batches_per_epoch: int = 0
    examples_per_sec: float = 0.0
    elapsed: float = 0.0
    history: dict = field(default_factory=dict)
    message: str = ""
    checkpoint_path: str | None = None
    metrics: dict = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    queue_position: int | None = None  # 1 = next to start; None when not waiting in the queue
    evaluation: str = "standard"  # standard | quick | none: the test evaluation after training
    diagnostic: bool = False  # saved as a diagnostic file (diverged, or nothing learned): never a model
    started: float | None = None  # wall clock when it left the queue and began (data loading included)
    ended: float | None = None  # wall clock when its file was saved (or it failed)
    train_seconds: float | None = None  # from ``started`` to the end of training
    eval_started: float | None = None
    eval_examples: int = 0  # clean test examples the evaluation scores
    eval_stage: str = ""  # what the evaluation computes now, e.g. "log p(x), k=1000"
    eval_step: int = 0  # 1-based stage number
    eval_steps: int = 0
    eval_done: int = 0  # examples done in this stage
    eval_total: int = 0
    eval_fraction: float = 0.0  # of the whole evaluation, weighted by each stage's cost

    @property
    def progress(self) -> float:
        """Fraction of the training done, in [0, 1]."""
        if self.status == "finished" or self.status == "evaluating":
            return 1.0
        total = self.epochs * max(self.batches_per_epoch, 1)
        return min(1.0, (self.epoch * max(self.batches_per_epoch, 1) + self.batch) / max(total, 1))

    @property
    def eta_seconds(self) -> float | None:
        """Seconds of training left (running) or of evaluation left (evaluating); None while unknown."""
        if self.status == "evaluating":
            if self.eval_started is None or self.eval_fraction <= 0.02:
                return None
            spent = time.time() - self.eval_started
            return spent * (1 - self.eval_fraction) / self.eval_fraction
        done = self.progress
        if self.status not in ("running",) or done <= 0:
            return None
        return self.elapsed * (1 - done) / done

    @property
    def wall_seconds(self) -> float:
        """Seconds since the run began (or from its start to its end once ended), evaluation included."""
        if self.started is None:
            return 0.0
        return (self.ended if self.ended is not None else time.time()) - self.started

    @property
    def eval_seconds(self) -> float | None:
        """Seconds the evaluation took (so far); None when it did not run."""
        if self.eval_started is None:
            return None
        return (self.ended if self.ended is not None else time.time()) - self.eval_started

    @property
    def queue_seconds(self) -> float:
        """Seconds spent waiting for a training slot."""
        return max(0.0, (self.started if self.started is not None else time.time()) - self.created)

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running", "evaluating")


def preload_lazy_imports() -> None:
    """Make PyTorch import, in the calling thread, what it otherwise imports on a run's first step.

    Building the first optimizer imports ``torch._dynamo`` (with sympy), which calls
    ``ast.parse`` about a hundred times. On CPython 3.11 ``ast.parse`` is not thread-safe
    ("SystemError: AST constructor recursion depth mismatch"), so doing those imports in a
    training thread while the app's server compiles a page script can break either side.
    """
    weight = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.Adam([weight])
    weight.sum().backward()
    optimizer.step()


def lower_thread_priority(nice: int, idle: bool = False) -> None:
    """Lower the calling thread's scheduling priority by ``nice`` (Linux: a thread id names just this thread, and the
    OpenMP workers it starts inherit it); elsewhere, or without permission, nothing happens. ``idle`` also puts it
    in Linux's SCHED_IDLE class: it then runs only on a core nothing else wants (nice 19 still takes a share)."""
    thread_id = threading.get_native_id()
    if nice > 0 and hasattr(os, "setpriority"):
        try:
            os.setpriority(os.PRIO_PROCESS, thread_id, min(19, os.getpriority(os.PRIO_PROCESS, thread_id) + nice))
        except OSError:
            pass
    if idle and hasattr(os, "SCHED_IDLE"):
        try:
            os.sched_setscheduler(thread_id, os.SCHED_IDLE, os.sched_param(0))
        except OSError:
            pass


def default_torch_threads(max_concurrent: int) -> int:
    """CPU threads per training job when ``max_concurrent`` train at once: the machine's cores split between them."""
    return max(1, (os.cpu_count() or 1) // max(1, max_concurrent))


class JobRegistry:
    """Thread-safe store of training jobs; at most ``max_concurrent`` train at once.

    ``max_queued`` bounds the jobs waiting for a slot (``submit(..., queue=True)``).
    ``torch_threads`` is the number of CPU threads each training thread asks PyTorch for:
    ``None`` (default) splits the machine's cores between the ``max_concurrent`` slots, so
    concurrent runs do not oversubscribe the CPU (OpenMP slows down by an order of magnitude
    when they do); ``0`` leaves PyTorch's setting alone. ``nice`` (Linux) lowers the scheduling
    priority of each training thread by that much, so that on a shared server interactive work
    (page reruns) goes first and training takes the idle time; ``0`` leaves it alone.
    A model with a 2-D latent space also gets its exact log p(x) (quadrature) in the standard
    evaluation, on the first ``exact_eval_examples`` of the evaluated rows.
    """

    def __init__(
        self,
        checkpoint_dir: str | Path,
        max_concurrent: int = 2,
        data_dir: str | None = None,
        eval_examples: int = 1000,
        eval_importance_samples: int = 1000,
        max_queued: int = 12,
        torch_threads: int | None = None,
        quick_eval_examples: int = 200,
        quick_eval_importance_samples: int = 100,
        exact_eval_examples: int = 100,
        nice: int = 0,
    ) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        if torch_threads is None:
            torch_threads = default_torch_threads(max_concurrent)
        self.torch_threads = torch_threads
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.data_dir = data_dir
        self.eval_examples = eval_examples
        self.eval_importance_samples = eval_importance_samples
        self.quick_eval_examples = quick_eval_examples
        self.quick_eval_importance_samples = quick_eval_importance_samples
        self.exact_eval_examples = exact_eval_examples  # rows of a 2-D model's exact log p(x) (standard evaluation)
        self.nice = nice
        atexit.register(self.shutdown)
        self._lock = threading.Lock()
        self._jobs: dict[str, JobSnapshot] = {}
        self._stops: dict[str, threading.Event] = {}
        self._done: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._datasets: dict[str, Dataset | None] = {}
        self._resume: dict[str, dict] = {}  # job id -> the stopped run it continues
        self._pending: list[str] = []  # job ids waiting for a slot, first in first out

    # --- reading ---------------------------------------------------------------------------
    def snapshot(self, job_id: str) -> JobSnapshot:
        with self._lock:
            job = self._jobs[job_id]
            position = self._pending.index(job_id) + 1 if job_id in self._pending else None
            return replace(job, history={k: list(v) for k, v in job.history.items()}, metrics=dict(job.metrics),
                           queue_position=position)

    def list(self, owner: str | None = None) -> list[JobSnapshot]:
        with self._lock:
            ids = [j.id for j in self._jobs.values() if owner is None or j.owner == owner]
        return sorted((self.snapshot(i) for i in ids), key=lambda j: j.created, reverse=True)

    def running_count(self) -> int:
        """Jobs not yet ended: training, evaluating, or waiting in the queue."""
        with self._lock:
            return sum(1 for j in self._jobs.values() if j.active)

    def slots_in_use(self) -> int:
        """Jobs holding one of the ``max_concurrent`` training slots (queued ones excluded)."""
        with self._lock:
            return self._slots_in_use()

    def queued_count(self) -> int:
        with self._lock:
            return len(self._pending)

    def _slots_in_use(self) -> int:  # caller holds the lock
        return sum(1 for j in self._jobs.values() if j.active and j.id not in self._pending)

    # --- control ---------------------------------------------------------------------------
    def submit(self, config: TrainConfig, owner: str = "", name: str | None = None,
               dataset: Dataset | None = None, queue: bool = False, evaluation: str = "standard",
               resume: dict | None = None) -> str:
        """Start training ``config`` in a background thread; returns the job id.

        ``owner`` is an opaque key (letters, digits, '-', '_'): the job's file goes to that
        owner's folder and only that owner may stop or dismiss it. ``name`` is turned into a
        safe file name (no path separators; the file always lands inside the folder).
        ``evaluation`` is ``"standard"`` (``eval_examples`` test images, ``eval_importance_samples``
        importance samples), ``"quick"`` (the ``quick_*`` sizes) or ``"none"``.
        When ``max_concurrent`` jobs are already training, raises :class:`JobLimitError`,
        or with ``queue=True`` puts the job in the queue (status ``queued``) unless
        ``max_queued`` jobs already wait there. ``resume`` is the payload of a stopped run
        (:func:`dvae_engine.checkpoint.load_payload`): the job continues it exactly where it stopped,
        up to ``config.epochs``, and saves a new file (the stopped one stays).
        """
        if resume is not None:
            saved = TrainConfig.from_dict(resume["config"])
            if replace(saved, epochs=config.epochs, device=config.device) != config:
                raise ValueError("a resumed run keeps its own settings; only the epochs and the device may change")
            done = len(resume.get("history", {}).get("epoch", []))
            if config.epochs <= done:
                raise ValueError(f"this run has already trained {done} epoch(s); ask for more than that to resume it")
        if evaluation not in EVALUATIONS:
            raise ValueError(f"evaluation must be one of {', '.join(EVALUATIONS)}, not {evaluation!r}")
        owner_folder(self.checkpoint_dir, owner)  # raises for a malformed owner key
        # in the caller's thread, before any training thread exists; not in __init__, where it cost every new
        # server seconds on the first page that merely lists jobs
        preload_lazy_imports()
        job_id = uuid.uuid4().hex[:10]
        stamp = time.strftime("%Y%m%d-%H%M%S")
        with self._lock:
            busy = self._slots_in_use()
            waiting = busy >= self.max_concurrent
            if waiting and not queue:
                raise JobLimitError(
                    f"{busy} training job(s) are already running (limit {self.max_concurrent}); "
                    "stop one or wait for it to finish"
                )
            if waiting and len(self._pending) >= self.max_queued:
                raise JobLimitError(
                    f"{busy} training job(s) are running (limit {self.max_concurrent}) and "
                    f"{len(self._pending)} are waiting (queue limit {self.max_queued}); "
                    "stop some or wait for them to finish"
                )
            job = JobSnapshot(job_id, owner, slugify(name) if name else f"{slugify(config.describe())}-{stamp}",
                              config, epochs=config.epochs, evaluation=evaluation)
            if resume is not None:  # the curves start with the epochs already trained
                job.history = {k: list(v) for k, v in resume.get("history", {}).items()}
                job.epoch = len(job.history.get("epoch", []))
                self._resume[job_id] = resume
            self._jobs[job_id] = job
            self._stops[job_id] = threading.Event()
            self._done[job_id] = threading.Event()
            self._datasets[job_id] = dataset
            if waiting:
                job.message = "waiting for a free training slot"
                self._pending.append(job_id)
                return job_id
            thread = self._make_thread(job_id)
        thread.start()
        return job_id

    def _make_thread(self, job_id: str) -> threading.Thread:  # caller holds the lock
        thread = threading.Thread(target=self._run, args=(job_id, self._datasets.pop(job_id, None)),
                                  name=f"train-{job_id}", daemon=True)
        self._threads[job_id] = thread
        return thread

    def _start_queued(self) -> None:
        """Start queued jobs while slots are free."""
        starting = []
        with self._lock:
            while self._pending and self._slots_in_use() < self.max_concurrent:
                job_id = self._pending.pop(0)
                self._jobs[job_id].message = ""
                starting.append(self._make_thread(job_id))
        for thread in starting:
            thread.start()

    def _check_owner(self, job_id: str, owner: str | None) -> None:  # caller holds the lock
        job = self._jobs.get(job_id)
        if job is None:
            raise JobAccessError("this run is no longer in the list (it may have been dismissed)")
        if owner is not None and job.owner != owner:
            raise JobAccessError("this run belongs to someone else: only the browser that started it can change it")

    def stop(self, job_id: str, owner: str | None = None) -> None:
        """Ask a job to stop; it finishes its current batch, saves, and ends as ``stopped``.

        A job still waiting in the queue ends at once as ``stopped`` (nothing trained, nothing saved).
        With ``owner`` given (the app always gives it), raises :class:`JobAccessError` unless the job is theirs.
        """
        with self._lock:
            self._check_owner(job_id, owner)
            self._stops[job_id].set()
            if job_id not in self._pending:
                return
            self._pending.remove(job_id)
            job = self._jobs[job_id]
            job.status, job.message = "stopped", "stopped while waiting in the queue; nothing was trained"
            self._datasets.pop(job_id, None)
            self._done[job_id].set()

    def wait(self, job_id: str, timeout: float | None = None) -> JobSnapshot:
        """Block until the job has ended (or ``timeout`` seconds); returns its snapshot."""
        if self._done[job_id].wait(timeout):
            thread = self._threads.get(job_id)
            if thread is not None and thread is not threading.current_thread():
                # its last steps follow the done signal; an interpreter that exits while a thread
                # is still inside PyTorch can abort ("terminate called without an active exception")
                thread.join(5.0)
        return self.snapshot(job_id)

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop every job (running ones save as ``stopped``) and wait up to ``timeout`` seconds in all.

        Registered with :mod:`atexit`, so stopping the app's server keeps what was trained.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            # queued ones first, so that no stopping job hands its slot to one of them
            ids = list(self._pending) + [i for i in self._jobs if i not in self._pending]
        for job_id in ids:
            try:
                self.stop(job_id)
            except JobAccessError:  # dismissed meanwhile
                continue
        for job_id in ids:
            try:
                self.wait(job_id, max(0.0, deadline - time.monotonic()))
            except KeyError:  # dismissed meanwhile
                continue

    def forget(self, job_id: str, owner: str | None = None) -> None:
        """Drop a job that is no longer active from the list (its checkpoint stays).

        With ``owner`` given, raises :class:`JobAccessError` unless the job is theirs.
        """
        with self._lock:
            self._check_owner(job_id, owner)
            if self._jobs[job_id].active:
                raise RuntimeError("stop the job before removing it")
            for table in (self._jobs, self._stops, self._threads, self._done, self._datasets):
                table.pop(job_id, None)

    # --- the training thread -----------------------------------------------------------------
    def _update(self, job_id: str, **changes) -> None:
        with self._lock:
            job = self._jobs[job_id]
            for key, value in changes.items():
                setattr(job, key, value)

    def _run(self, job_id: str, dataset: Dataset | None) -> None:
        try:
            self._train(job_id, dataset)
        finally:
            self._done[job_id].set()
            self._start_queued()

    def _train(self, job_id: str, dataset: Dataset | None) -> None:
        if self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        lower_thread_priority(self.nice)
        job = self.snapshot(job_id)
        config = job.config
        started = time.time()
        self._update(job_id, status="running", started=started)

        def on_batch(p: BatchProgress) -> None:
            self._update(job_id, batch=p.batch, batches_per_epoch=p.batches_per_epoch,
                         examples_per_sec=p.examples_per_sec, elapsed=p.elapsed)

        def on_epoch(r: EpochReport) -> None:
            with self._lock:
                j = self._jobs[job_id]
                j.epoch, j.batch = r.epoch, 0
                for key in ("epoch", "train_objective", "valid_elbo", "valid_iwae", "seconds", "lr"):
                    j.history.setdefault(key, []).append(getattr(r, key))

        try:
            if dataset is None:
                dataset = load_dataset(config.dataset, self.data_dir, config.binarization)
            try:
                result = train(config, dataset, on_epoch=on_epoch, on_batch=on_batch, stop_event=self._stops[job_id],
                               resume=self._resume.pop(job_id, None))
            except TrainingDivergedError as err:
                result = err.result
            status = result.status
            self._update(job_id, train_seconds=time.time() - started)
            # a diverged run, or one that learned nothing, is kept for inspection but never offered as a model
            diagnostic = status == "diverged" or result.epochs_done == 0
            metrics = {}
            if not diagnostic and job.evaluation != "none":
                metrics = self._evaluate(job_id, result, dataset, job.evaluation)
            folder = owner_folder(self.checkpoint_dir, job.owner)
            if diagnostic:
                folder = folder / DIAGNOSTICS
            payload = ckpt.make_payload(result, dataset.image_shape, metrics)
            path = save_new_checkpoint(payload, folder, job.name)  # never overwrites an earlier file
            message = result.message
            if diagnostic and status != "diverged":
                message = (f"{message}; no epoch was completed, so nothing was learned" if message
                           else "no epoch was completed, so nothing was learned")
            self._update(job_id, status=status, message=message, checkpoint_path=str(path), metrics=metrics,
                         diagnostic=diagnostic, ended=time.time())
        except Exception as err:  # noqa: BLE001 — a failed job reports its error instead of dying silently
            detail = traceback.format_exception_only(type(err), err)[-1].strip()
            self._update(job_id, status="failed", message=detail, ended=time.time())

    def evaluation_sizes(self, evaluation: str) -> tuple[int, int]:
        """``(test examples, importance samples)`` of an evaluation kind."""
        if evaluation == "quick":
            return (min(self.quick_eval_examples, self.eval_examples),
                    min(self.quick_eval_importance_samples, self.eval_importance_samples))
        return self.eval_examples, self.eval_importance_samples

    def _evaluate(self, job_id: str, result, dataset: Dataset, evaluation: str = "standard") -> dict:
        examples, importance_samples = self.evaluation_sizes(evaluation)
        x_test = random_rows(dataset.test, examples)
        config = result.config
        device = next(result.model.parameters()).device
        objective = training_objective_kwargs(config, dataset.train_mean().to(device))
        # relative cost of each stage evaluate() reports (per example: forward passes of the decoder)
        weights = {"ELBO": 1.0, "training objective": float(config.num_corruptions * config.num_samples)}
        if importance_samples:  # the estimate models are compared by, and the plain one labelled beside it
            weights["log p(x), mixture"] = float(importance_samples)
            weights["log p(x), plain"] = float(importance_samples)
        # quadrature on a 2-D grid costs about 0.2 s a row on a small CPU: done on a subset of the rows
        exact_rows = min(examples, self.exact_eval_examples) if evaluation == "standard" else 0
        exact_rows = exact_rows if result.model.latent_dim == 2 else 0
        if exact_rows:
            weights["log p(x), exact"] = 2000.0 * exact_rows / max(examples, 1)
        total_weight = sum(weights.values())
        seen: list[str] = []

        def weight(stage: str) -> float:
            return next((w for key, w in weights.items() if stage.startswith(key)), 1.0)

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in seen:
                seen.append(stage)
            before = sum(weight(s) for s in seen[:-1])
            fraction = min(1.0, (before + weight(stage) * done / max(total, 1)) / total_weight)
            self._update(job_id, eval_stage=stage, eval_step=len(seen), eval_done=done, eval_total=total,
                         eval_fraction=fraction)

        self._update(job_id, status="evaluating", message="evaluating on clean test data", eval_started=time.time(),
                     eval_examples=len(x_test), eval_steps=len(weights), eval_step=0, eval_fraction=0.0)
        with torch.no_grad():
            metrics = evaluate(result.model, x_test, importance_samples=importance_samples,
                               training_objective=objective, progress=progress, config=config,
                               mean_image=dataset.train_mean().to(device))
            if exact_rows:
                rows = _reporting(x_test[:exact_rows].split(20), exact_rows, partial(progress, "log p(x), exact"))
                log_px = torch.cat([exact_log_px_2d(result.model, xb) for xb in rows])
                s = summarize(-log_px)
                metrics.update({"nll_exact": s["mean"], "nll_exact_stderr": s["stderr"], "exact_examples": exact_rows,
                                "nll": s["mean"], "nll_stderr": s["stderr"], "nll_method": "nll_exact"})
        metrics["split"] = "test"
        metrics["evaluation"] = evaluation
        return metrics


def _reporting(batches, total: int, report):
    """Yield ``batches`` (row blocks), calling ``report(done, total)`` after each."""
    done = 0
    for batch in batches:
        yield batch
        done += len(batch)
        report(done, total)


def save_new_checkpoint(payload: dict, folder: str | Path, stem: str) -> Path:
    """Save ``payload`` as ``folder/<stem>.pt`` (or ``-2``, ``-3``…): atomic, and never replaces a file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = ckpt.write_new_file(folder, "save", lambda f: torch.save(payload, f))
    try:
        return link_new(tmp, folder, slugify(stem))
    finally:
        tmp.unlink(missing_ok=True)


# --- the user checkpoint folder ------------------------------------------------------------------

def rename_checkpoint(path: str | Path, new_stem: str) -> Path:
    """Rename a checkpoint file within its folder; raises ``ValueError`` for a bad or taken name."""
    path = Path(path)
    stem = check_name(new_stem)
    target = path.with_name(f"{stem}.pt")
    if target == path:
        return path
    try:
        os.link(path, target)  # atomic "create if absent": an existing file is never replaced
    except FileExistsError:
        raise StoreError(f"a checkpoint named {target.name} already exists") from None
    path.unlink()
    return target


def delete_checkpoint(path: str | Path) -> None:
    """Delete one checkpoint file (``.pt`` only)."""
    path = Path(path)
    if path.suffix != ".pt":
        raise ValueError(f"{path.name} is not a checkpoint file")
    path.unlink()


__all__ = ["ACTIVE", "EVALUATIONS", "JobAccessError", "JobLimitError", "JobRegistry", "JobSnapshot",
           "delete_checkpoint", "free_path", "preload_lazy_imports", "rename_checkpoint", "save_new_checkpoint",
           "slugify", "store_checkpoint_bytes"]
