"""Background training jobs: a thread per run, a stop event, and a progress snapshot.

The registry is plain Python (no UI code): the app polls :meth:`JobRegistry.snapshot`
on each rerun, and the training thread only writes its snapshot under a lock.
Finished, stopped and diverged runs are saved as checkpoints so nothing is lost.
At most ``max_concurrent`` jobs train at once; with ``submit(..., queue=True)``
further jobs wait in a first-in, first-out queue (at most ``max_queued``) and
start as slots free up.

The user checkpoint folder the registry writes to is managed here too
(:func:`store_checkpoint_bytes`, :func:`rename_checkpoint`, :func:`delete_checkpoint`):
files are validated with the safe loader and never silently overwritten.
"""

from __future__ import annotations

import atexit
import os
import re
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from . import checkpoint as ckpt
from .data import Dataset, load_dataset, random_rows
from .evaluation import evaluate, training_objective_kwargs
from .training import BatchProgress, EpochReport, TrainConfig, TrainingDivergedError, train

ACTIVE = ("queued", "running")


class JobLimitError(RuntimeError):
    """Too many jobs are running at once."""


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

    @property
    def progress(self) -> float:
        """Fraction of the run done, in [0, 1]."""
        if self.status == "finished":
            return 1.0
        total = self.epochs * max(self.batches_per_epoch, 1)
        return min(1.0, (self.epoch * max(self.batches_per_epoch, 1) + self.batch) / max(total, 1))

    @property
    def eta_seconds(self) -> float | None:
        done = self.progress
        if self.status not in ("running",) or done <= 0:
            return None
        return self.elapsed * (1 - done) / done

    @property
    def active(self) -> bool:
        return self.status in ("queued", "running", "evaluating")


def slugify(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower()[:80] or "run"


def free_path(folder: str | Path, stem: str, suffix: str = ".pt") -> Path:
    """``folder/stem.pt``, or ``folder/stem-2.pt``, ``-3``, … : the first name not taken yet."""
    folder = Path(folder)
    path = folder / f"{stem}{suffix}"
    n = 2
    while path.exists():
        path = folder / f"{stem}-{n}{suffix}"
        n += 1
    return path


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


class JobRegistry:
    """Thread-safe store of training jobs; at most ``max_concurrent`` train at once.

    ``max_queued`` bounds the jobs waiting for a slot (``submit(..., queue=True)``).
    ``torch_threads`` is the number of CPU threads each training thread asks PyTorch for:
    ``None`` (default) splits the machine's cores between the ``max_concurrent`` slots, so
    concurrent runs do not oversubscribe the CPU (OpenMP slows down by an order of magnitude
    when they do); ``0`` leaves PyTorch's setting alone.
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
    ) -> None:
        self.checkpoint_dir = Path(checkpoint_dir)
        if torch_threads is None:
            torch_threads = max(1, (os.cpu_count() or 1) // max(1, max_concurrent))
        self.torch_threads = torch_threads
        self.max_concurrent = max_concurrent
        self.max_queued = max_queued
        self.data_dir = data_dir
        self.eval_examples = eval_examples
        self.eval_importance_samples = eval_importance_samples
        atexit.register(self.shutdown)
        self._lock = threading.Lock()
        self._jobs: dict[str, JobSnapshot] = {}
        self._stops: dict[str, threading.Event] = {}
        self._done: dict[str, threading.Event] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._datasets: dict[str, Dataset | None] = {}
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
               dataset: Dataset | None = None, queue: bool = False) -> str:
        """Start training ``config`` in a background thread; returns the job id.

        When ``max_concurrent`` jobs are already training, raises :class:`JobLimitError`,
        or with ``queue=True`` puts the job in the queue (status ``queued``) unless
        ``max_queued`` jobs already wait there.
        """
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
            job = JobSnapshot(job_id, owner, name or f"{slugify(config.describe())}-{stamp}", config,
                              epochs=config.epochs)
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

    def stop(self, job_id: str) -> None:
        """Ask a job to stop; it finishes its current batch, saves, and ends as ``stopped``.

        A job still waiting in the queue ends at once as ``stopped`` (nothing trained, nothing saved).
        """
        with self._lock:
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
            self.stop(job_id)
        for job_id in ids:
            self.wait(job_id, max(0.0, deadline - time.monotonic()))

    def forget(self, job_id: str) -> None:
        """Drop a job that is no longer active from the list (its checkpoint stays)."""
        with self._lock:
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
        job = self.snapshot(job_id)
        config = job.config
        self._update(job_id, status="running")

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
                result = train(config, dataset, on_epoch=on_epoch, on_batch=on_batch, stop_event=self._stops[job_id])
            except TrainingDivergedError as err:
                result = err.result
            status = result.status
            metrics = {}
            if result.epochs_done > 0 and status != "diverged":
                self._update(job_id, status="evaluating", message="evaluating on clean test data")
                metrics = self._evaluate(result, dataset)
            # a fresh name: an earlier run's file with the same name is never overwritten
            path = ckpt.save_checkpoint(result, free_path(self.checkpoint_dir, job.name), dataset.image_shape, metrics)
            self._update(job_id, status=status, message=result.message, checkpoint_path=str(path), metrics=metrics)
        except Exception as err:  # noqa: BLE001 — a failed job reports its error instead of dying silently
            detail = traceback.format_exception_only(type(err), err)[-1].strip()
            self._update(job_id, status="failed", message=detail)

    def _evaluate(self, result, dataset: Dataset) -> dict:
        x_test = random_rows(dataset.test, self.eval_examples)
        device = next(result.model.parameters()).device
        objective = training_objective_kwargs(result.config, dataset.train_mean().to(device))
        with torch.no_grad():
            metrics = evaluate(result.model, x_test, importance_samples=self.eval_importance_samples,
                               training_objective=objective)
        metrics["split"] = "test"
        return metrics


# --- the user checkpoint folder ------------------------------------------------------------------

def store_checkpoint_bytes(folder: str | Path, filename: str, data: bytes,
                           max_bytes: int = ckpt.MAX_UPLOAD_BYTES) -> Path:
    """Validate ``data`` with the safe loader and save it in ``folder`` under a name not taken yet.

    Raises :class:`~dvae_engine.checkpoint.CheckpointError` (and writes nothing) when the
    bytes are not a loadable checkpoint of this app or exceed ``max_bytes``.
    """
    ckpt.load_checkpoint(data, max_bytes=max_bytes)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".upload.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        stem = slugify(Path(filename).stem)
        while True:
            path = free_path(folder, stem)
            try:
                os.link(tmp, path)  # fails if the name was taken meanwhile: never overwrites
                return path
            except FileExistsError:
                continue
    finally:
        Path(tmp).unlink(missing_ok=True)


def rename_checkpoint(path: str | Path, new_stem: str) -> Path:
    """Rename a checkpoint file within its folder; raises ``ValueError`` for a bad or taken name."""
    path = Path(path)
    stem = new_stem.strip().removesuffix(".pt")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}", stem):
        raise ValueError(
            f"{new_stem!r} is not a usable name: start with a letter or digit, then use letters, digits, "
            f"'.', '-' and '_' only (at most 80), e.g. {slugify(new_stem)!r}"
        )
    target = path.with_name(f"{stem}.pt")
    if target == path:
        return path
    try:
        os.link(path, target)  # atomic "create if absent": an existing file is never replaced
    except FileExistsError:
        raise ValueError(f"a checkpoint named {target.name} already exists") from None
    path.unlink()
    return target


def delete_checkpoint(path: str | Path) -> None:
    """Delete one checkpoint file (``.pt`` only)."""
    path = Path(path)
    if path.suffix != ".pt":
        raise ValueError(f"{path.name} is not a checkpoint file")
    path.unlink()
