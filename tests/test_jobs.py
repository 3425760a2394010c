"""The job registry: background training threads, stop, limits, queue, owners, failures; the user folder."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from dvae_engine import checkpoint as ckpt
from dvae_engine.jobs import (
    JobLimitError,
    JobRegistry,
    delete_checkpoint,
    free_path,
    rename_checkpoint,
    store_checkpoint_bytes,
)
from dvae_engine.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120  # seconds a tiny job may take on a busy 2-core machine; only a safety net, never asserted


def tiny(**changes) -> TrainConfig:
    base = dict(dataset="digits", objective="dvae", noise="salt-pepper", noise_level=0.1, hidden_units=32,
                latent_dim=2, epochs=2, max_train_examples=200, max_valid_examples=100, device="cpu")
    return TrainConfig(**{**base, **changes})


def long_run(**changes) -> TrainConfig:
    """A run that would take minutes: one example per batch, many epochs (it is always stopped)."""
    return tiny(epochs=1000, batch_size=1, max_train_examples=None, **changes)


def registry(tmp_path, **kwargs) -> JobRegistry:
    kwargs = {"max_concurrent": 2, "eval_examples": 50, "eval_importance_samples": 10, **kwargs}
    return JobRegistry(tmp_path, **kwargs)


def wait_until(predicate, timeout: float = TIMEOUT) -> None:
    event = threading.Event()
    for _ in range(int(timeout * 20)):
        if predicate():
            return
        event.wait(0.05)
    raise AssertionError("condition not reached")


def started_batches(reg: JobRegistry, job_id: str) -> bool:
    return reg.snapshot(job_id).batch > 0


def test_tiny_run_finishes_and_writes_a_loadable_checkpoint(tmp_path, digits):
    reg = registry(tmp_path)
    job_id = reg.submit(tiny(), owner="alice", dataset=digits)
    job = reg.wait(job_id, TIMEOUT)
    assert job.status == "finished", job.message
    assert job.progress == 1.0
    assert job.history["epoch"] == [1, 2]
    assert len(job.history["train_objective"]) == len(job.history["valid_elbo"]) == 2
    assert job.metrics["split"] == "test" and job.metrics["num_examples"] == 50
    loaded = ckpt.load_checkpoint(job.checkpoint_path)
    assert loaded.config == tiny()
    assert loaded.history["valid_elbo"] == job.history["valid_elbo"]
    assert loaded.metrics["neg_elbo"] == pytest.approx(job.metrics["neg_elbo"])
    assert loaded.payload["status"] == "finished"


def test_stop_ends_the_run_within_an_epoch_and_still_saves(tmp_path, digits):
    reg = registry(tmp_path)
    job_id = reg.submit(long_run(), owner="alice", dataset=digits)
    wait_until(lambda: started_batches(reg, job_id))
    reg.stop(job_id)
    job = reg.wait(job_id, TIMEOUT)
    assert job.status == "stopped"
    # 1197 one-example batches per epoch, reports every 20: it stopped inside the first epoch
    assert job.epoch == 0 and job.batch < job.batches_per_epoch == 1197
    assert "stopped in epoch 1" in job.message
    saved = ckpt.load_checkpoint(job.checkpoint_path)
    assert saved.payload["status"] == "stopped"
    assert saved.history["epoch"] == []


def test_limit_raises_job_limit_error_and_frees_up_after_a_stop(tmp_path, digits):
    reg = registry(tmp_path, max_concurrent=1)
    first = reg.submit(long_run(), owner="alice", dataset=digits)
    with pytest.raises(JobLimitError, match="limit 1"):
        reg.submit(tiny(), owner="bob", dataset=digits)
    assert len(reg.list()) == 1  # the refused job left no trace
    reg.stop(first)
    reg.wait(first, TIMEOUT)
    second = reg.submit(tiny(), owner="bob", dataset=digits)
    assert reg.wait(second, TIMEOUT).status == "finished"


def test_queue_starts_waiting_jobs_in_order_as_slots_free(tmp_path, digits):
    reg = registry(tmp_path, max_concurrent=1, max_queued=2)
    blocker = reg.submit(long_run(), owner="alice", dataset=digits)
    queued = [reg.submit(tiny(seed=s), owner="alice", dataset=digits, queue=True) for s in (1, 2)]
    assert [reg.snapshot(j).queue_position for j in queued] == [1, 2]
    assert all(reg.snapshot(j).status == "queued" for j in queued)
    assert reg.slots_in_use() == 1 and reg.queued_count() == 2
    with pytest.raises(JobLimitError, match="queue limit 2"):
        reg.submit(tiny(), owner="alice", dataset=digits, queue=True)
    reg.stop(blocker)
    for job_id in queued:
        assert reg.wait(job_id, TIMEOUT).status == "finished"
    first, second = (reg.snapshot(j) for j in queued)
    assert first.queue_position is None and first.created <= second.created
    assert reg.queued_count() == 0


def test_stopping_a_queued_job_ends_it_at_once_without_a_file(tmp_path, digits):
    reg = registry(tmp_path, max_concurrent=1)
    blocker = reg.submit(long_run(), owner="alice", dataset=digits)
    waiting = reg.submit(tiny(), owner="alice", dataset=digits, queue=True)
    reg.stop(waiting)
    job = reg.wait(waiting, 0)
    assert job.status == "stopped" and "queue" in job.message and job.checkpoint_path is None
    reg.stop(blocker)
    reg.wait(blocker, TIMEOUT)
    reg.forget(waiting)
    assert [j.id for j in reg.list()] == [blocker]


def test_owners_see_only_their_own_jobs(tmp_path, digits):
    reg = registry(tmp_path)
    a = reg.submit(tiny(), owner="alice", dataset=digits)
    b = reg.submit(tiny(seed=1), owner="bob", dataset=digits)
    assert [j.id for j in reg.list("alice")] == [a]
    assert [j.id for j in reg.list("bob")] == [b]
    assert {j.id for j in reg.list()} == {a, b}
    for job_id in (a, b):
        assert reg.wait(job_id, TIMEOUT).owner in ("alice", "bob")
    assert [j.owner for j in reg.list("carol")] == []


def test_forget_refuses_an_active_job(tmp_path, digits):
    reg = registry(tmp_path)
    job_id = reg.submit(long_run(), owner="alice", dataset=digits)
    with pytest.raises(RuntimeError, match="stop the job"):
        reg.forget(job_id)
    reg.stop(job_id)
    reg.wait(job_id, TIMEOUT)
    reg.forget(job_id)
    assert reg.list() == []


def test_diverged_run_ends_as_diverged_and_saves_its_last_good_state(tmp_path, digits):
    reg = registry(tmp_path)
    job = reg.wait(reg.submit(tiny(lr=1e6), owner="alice", dataset=digits), TIMEOUT)
    assert job.status == "diverged"
    assert "non-finite" in job.message and "lower learning rate" in job.message
    saved = ckpt.load_checkpoint(job.checkpoint_path)
    assert saved.payload["status"] == "diverged"
    assert all(torch.isfinite(v).all() for v in saved.payload["model_state"].values())


def test_missing_dataset_fails_with_its_message(tmp_path, monkeypatch):
    empty = tmp_path / "no-data"
    empty.mkdir()
    monkeypatch.setenv("DVAE_DATA_DIR", str(empty))
    reg = registry(tmp_path / "out")
    job = reg.wait(reg.submit(tiny(dataset="frey", noise="gaussian", noise_level=0.05), owner="alice"), TIMEOUT)
    assert job.status == "failed"
    assert "DatasetNotFoundError" in job.message and "frey_rawface.mat" in job.message
    assert job.checkpoint_path is None
    assert not list((tmp_path / "out").glob("*.pt"))


def test_a_second_run_with_the_same_name_never_overwrites_the_first(tmp_path, digits):
    reg = registry(tmp_path)
    first = reg.wait(reg.submit(tiny(), owner="a", name="same", dataset=digits), TIMEOUT)
    second = reg.wait(reg.submit(tiny(seed=3), owner="a", name="same", dataset=digits), TIMEOUT)
    assert first.checkpoint_path.endswith("same.pt") and second.checkpoint_path.endswith("same-2.pt")
    assert ckpt.load_checkpoint(first.checkpoint_path).config.seed == 0


# --- the user checkpoint folder ------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory, digits) -> bytes:
    reg = registry(tmp_path_factory.mktemp("made"))
    job = reg.wait(reg.submit(tiny(epochs=1), dataset=digits), TIMEOUT)
    with open(job.checkpoint_path, "rb") as f:
        return f.read()


def test_store_checkpoint_bytes_validates_and_never_overwrites(tmp_path, checkpoint_bytes):
    first = store_checkpoint_bytes(tmp_path, "My run.pt", checkpoint_bytes)
    second = store_checkpoint_bytes(tmp_path, "My run.pt", checkpoint_bytes)
    assert (first.name, second.name) == ("my-run.pt", "my-run-2.pt")
    assert first.read_bytes() == checkpoint_bytes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my-run-2.pt", "my-run.pt"]  # no temporary left


@pytest.mark.parametrize("data", [b"", b"not a checkpoint", b"PK\x03\x04 truncated zip"])
def test_store_checkpoint_bytes_rejects_garbage_and_writes_nothing(tmp_path, data):
    with pytest.raises(ckpt.CheckpointError):
        store_checkpoint_bytes(tmp_path, "bad.pt", data)
    assert list(tmp_path.iterdir()) == []


def test_store_checkpoint_bytes_enforces_the_size_limit(tmp_path, checkpoint_bytes):
    with pytest.raises(ckpt.CheckpointError, match="limit"):
        store_checkpoint_bytes(tmp_path, "big.pt", checkpoint_bytes, max_bytes=len(checkpoint_bytes) - 1)
    assert list(tmp_path.iterdir()) == []


def test_rename_checkpoint(tmp_path, checkpoint_bytes):
    a = store_checkpoint_bytes(tmp_path, "a.pt", checkpoint_bytes)
    b = store_checkpoint_bytes(tmp_path, "b.pt", checkpoint_bytes)
    renamed = rename_checkpoint(a, "Lecture_3.dvae")
    assert renamed.name == "Lecture_3.dvae.pt" and renamed.exists() and not a.exists()
    with pytest.raises(ValueError, match="already exists"):
        rename_checkpoint(renamed, "b")
    for bad in ("", "../escape", "with space", ".hidden"):
        with pytest.raises(ValueError, match="not a usable name"):
            rename_checkpoint(renamed, bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Lecture_3.dvae.pt", b.name]
    assert rename_checkpoint(b, "b.pt") == b


def test_delete_checkpoint(tmp_path, checkpoint_bytes):
    path = store_checkpoint_bytes(tmp_path, "gone.pt", checkpoint_bytes)
    other = tmp_path / "notes.txt"
    other.write_text("keep")
    delete_checkpoint(path)
    assert not path.exists()
    with pytest.raises(ValueError):
        delete_checkpoint(other)
    assert other.exists()


def test_free_path(tmp_path):
    assert free_path(tmp_path, "x") == tmp_path / "x.pt"
    (tmp_path / "x.pt").touch()
    (tmp_path / "x-2.pt").touch()
    assert free_path(tmp_path, "x") == tmp_path / "x-3.pt"


def test_cpu_threads_are_split_between_the_slots(tmp_path, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    assert JobRegistry(tmp_path, max_concurrent=2).torch_threads == 4
    assert JobRegistry(tmp_path, max_concurrent=16).torch_threads == 1
    assert JobRegistry(tmp_path, max_concurrent=2, torch_threads=3).torch_threads == 3


def test_the_training_thread_uses_the_registry_thread_count(tmp_path, digits):
    before = torch.get_num_threads()
    wanted = before + 1  # differs from the current setting, so the test sees whether it was applied
    seen = []
    reg = registry(tmp_path, torch_threads=wanted)
    original = reg._train

    def spy(job_id, dataset):
        original(job_id, dataset)
        seen.append(torch.get_num_threads())

    reg._train = spy
    assert reg.wait(reg.submit(tiny(epochs=1), dataset=digits), TIMEOUT).status == "finished"
    torch.set_num_threads(before)
    assert seen == [wanted]


def test_training_threads_never_call_ast_parse(tmp_path):
    """CPython 3.11's ast.parse is not thread-safe; the app's server parses page scripts meanwhile.

    Runs in a fresh interpreter, where torch has not yet made its lazy imports.
    """
    code = f"""
import ast, threading
from dvae_engine.data import load_dataset
from dvae_engine.jobs import JobRegistry
from dvae_engine.training import TrainConfig
registry = JobRegistry({str(tmp_path)!r}, eval_examples=20, eval_importance_samples=5)
calls = []
parse = ast.parse
ast.parse = lambda *a, **k: calls.append(threading.current_thread().name) or parse(*a, **k)
config = TrainConfig(dataset="digits", objective="diwae", num_samples=2, hidden_units=8, latent_dim=2, epochs=1,
                     max_train_examples=50, device="cpu")
job = registry.wait(registry.submit(config, dataset=load_dataset("digits")), 120)
print(job.status, sorted(set(calls) - {{"MainThread"}}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["finished", "[]"]


def test_shutdown_stops_and_saves_every_running_job(tmp_path, digits):
    reg = registry(tmp_path, max_concurrent=1)
    running = reg.submit(long_run(), owner="a", dataset=digits)
    waiting = reg.submit(tiny(), owner="a", dataset=digits, queue=True)
    wait_until(lambda: started_batches(reg, running))
    reg.shutdown(TIMEOUT)
    assert reg.snapshot(running).status == "stopped" and Path(reg.snapshot(running).checkpoint_path).is_file()
    assert reg.snapshot(waiting).status == "stopped" and reg.snapshot(waiting).checkpoint_path is None
    assert not any(t.is_alive() for t in reg._threads.values())


# --- owners, names, diagnostics, evaluation progress -----------------------------------------------

def test_only_the_owner_may_stop_or_dismiss_a_job(tmp_path, digits):
    from dvae_engine.jobs import JobAccessError

    reg = registry(tmp_path)
    job_id = reg.submit(long_run(), owner="alice", dataset=digits)
    with pytest.raises(JobAccessError, match="someone else"):
        reg.stop(job_id, owner="bob")
    assert reg.snapshot(job_id).active
    reg.stop(job_id, owner="alice")
    reg.wait(job_id, TIMEOUT)
    with pytest.raises(JobAccessError, match="someone else"):
        reg.forget(job_id, owner="bob")
    reg.forget(job_id, owner="alice")
    with pytest.raises(JobAccessError, match="no longer in the list"):
        reg.stop(job_id, owner="alice")


def test_files_go_to_the_owners_folder_and_names_cannot_leave_it(tmp_path, digits):
    reg = registry(tmp_path / "root")
    job = reg.wait(reg.submit(tiny(epochs=1), owner="alice", name="../../escape/../x", dataset=digits), TIMEOUT)
    path = Path(job.checkpoint_path)
    assert path.parent == tmp_path / "root" / "alice"
    assert path.name == "escape-.-x.pt"
    assert list(tmp_path.iterdir()) == [tmp_path / "root"]  # nothing written outside the folder
    with pytest.raises(ValueError, match="owner key"):
        reg.submit(tiny(), owner="../bob", dataset=digits)


def test_a_diverged_run_is_saved_as_a_diagnostic_not_as_a_model(tmp_path, digits):
    reg = registry(tmp_path)
    job = reg.wait(reg.submit(tiny(lr=1e6), owner="alice", dataset=digits), TIMEOUT)
    assert job.status == "diverged" and job.diagnostic
    assert Path(job.checkpoint_path).parent == tmp_path / "alice" / "diagnostics"
    assert not list((tmp_path / "alice").glob("*.pt"))
    assert job.metrics == {}  # never evaluated


def test_a_run_stopped_before_its_first_epoch_is_a_diagnostic(tmp_path, digits):
    reg = registry(tmp_path)
    job_id = reg.submit(long_run(), owner="alice", dataset=digits)
    wait_until(lambda: started_batches(reg, job_id))
    reg.stop(job_id, owner="alice")
    job = reg.wait(job_id, TIMEOUT)
    assert job.status == "stopped" and job.diagnostic and "nothing was learned" in job.message
    assert Path(job.checkpoint_path).parent.name == "diagnostics"


def test_evaluation_reports_counts_and_a_cost_weighted_fraction_and_counts_in_the_total_time(tmp_path, digits):
    reg = registry(tmp_path, eval_examples=120, eval_importance_samples=400)
    seen = []
    original = reg._update

    def spy(job_id, **changes):
        original(job_id, **changes)
        if "eval_fraction" in changes and reg._jobs[job_id].status == "evaluating":
            seen.append(reg.snapshot(job_id))

    reg._update = spy
    job = reg.wait(reg.submit(tiny(epochs=1), owner="alice", dataset=digits), TIMEOUT)
    assert job.status == "finished"
    stages = [s.eval_stage for s in seen if s.eval_step]
    assert stages[0] == "ELBO" and stages[-1].startswith("log p(x)")
    # ELBO, training objective, log p(x) by the mixture and the plain proposals, and exactly (2-D latent)
    assert {s.eval_steps for s in seen} == {5} and seen[-1].eval_step == 5
    assert stages[-1] == "log p(x), exact"
    assert all(s.eval_examples == 120 and 0 < s.eval_done <= s.eval_total == 120 for s in seen if s.eval_step)
    fractions = [s.eval_fraction for s in seen]
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    # the cheap stages (ELBO: weight 1, own objective: M·K = 1) take 2/402 of the bar, not 2/3
    assert max(s.eval_fraction for s in seen if not s.eval_stage.startswith("log p(x)")) <= 2 / 402 + 1e-9
    assert job.train_seconds is not None and job.eval_seconds is not None
    assert job.wall_seconds >= job.train_seconds + job.eval_seconds - 1e-6
    assert job.metrics["num_examples"] == 120 and job.metrics["importance_samples"] == 400


def test_quick_and_no_evaluation(tmp_path, digits):
    reg = registry(tmp_path, eval_examples=300, eval_importance_samples=400, quick_eval_examples=40,
                   quick_eval_importance_samples=20)
    quick = reg.wait(reg.submit(tiny(epochs=1), owner="a", dataset=digits, evaluation="quick"), TIMEOUT)
    assert quick.metrics["num_examples"] == 40 and quick.metrics["importance_samples"] == 20
    assert quick.metrics["evaluation"] == "quick"
    none = reg.wait(reg.submit(tiny(epochs=1), owner="a", dataset=digits, evaluation="none"), TIMEOUT)
    assert none.status == "finished" and none.metrics == {} and none.eval_seconds is None
    with pytest.raises(ValueError, match="evaluation must be one of"):
        reg.submit(tiny(), evaluation="thorough", dataset=digits)


@pytest.mark.skipif(not hasattr(__import__("os"), "setpriority"), reason="per-thread priorities are a Linux feature")
def test_training_threads_can_yield_to_interactive_work(tmp_path, digits):
    import os

    seen = []
    reg = registry(tmp_path, nice=7)
    original = reg._train

    def spy(job_id, dataset):
        base = os.getpriority(os.PRIO_PROCESS, 0)
        original(job_id, dataset)
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) - base)

    reg._train = spy
    assert reg.wait(reg.submit(tiny(epochs=1), dataset=digits), TIMEOUT).status == "finished"
    assert seen == [7]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == os.getpriority(os.PRIO_PROCESS, 0)


def test_a_stopped_run_resumed_from_its_file_is_the_run_never_stopped(tmp_path, digits):
    reg = registry(tmp_path)
    config = tiny(epochs=1, batch_size=1, max_train_examples=None)  # 1197 steps: long enough to stop inside
    whole = reg.wait(reg.submit(config, owner="alice", dataset=digits, evaluation="none"), TIMEOUT)
    first = reg.submit(config, owner="alice", dataset=digits, evaluation="none")
    wait_until(lambda: started_batches(reg, first))
    reg.stop(first, owner="alice")
    stopped = reg.wait(first, TIMEOUT)
    assert stopped.status == "stopped" and stopped.batch < stopped.batches_per_epoch
    payload = ckpt.load_payload(stopped.checkpoint_path)
    with pytest.raises(ValueError, match="keeps its own settings"):
        reg.submit(tiny(epochs=1, batch_size=2, max_train_examples=None), owner="alice", resume=payload)
    resumed = reg.wait(reg.submit(config, owner="alice", dataset=digits, evaluation="none", resume=payload), TIMEOUT)
    assert resumed.status == "finished", resumed.message
    assert Path(resumed.checkpoint_path) != Path(stopped.checkpoint_path) and Path(stopped.checkpoint_path).exists()
    a, b = ckpt.load_checkpoint(whole.checkpoint_path), ckpt.load_checkpoint(resumed.checkpoint_path)
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key  # bit-identical on CPU
    assert a.history["train_objective"] == b.history["train_objective"]
    with pytest.raises(ValueError, match="already trained 1 epoch"):
        reg.submit(config, owner="alice", resume=ckpt.load_payload(resumed.checkpoint_path))
