"""Stop anywhere, resume, and get the uninterrupted run — bit for bit on the CPU — from the engine, the CLI and jobs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from dvae_engine import checkpoint as ckpt
from dvae_engine.training import TrainConfig, TrainingDivergedError, resume_device, train

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(dataset="digits", hidden_units=32, latent_dim=4, device="cpu", epochs=3, batch_size=100)


def assert_same_run(a, b) -> None:
    """Same weights, same Adam state, same history of objectives and bounds (timings aside)."""
    for (name, x), (_, y) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert torch.equal(x, y), name
    state_a, state_b = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    for key in state_a:
        for field in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(state_a[key][field], state_b[key][field]), (key, field)
    for key in ("epoch", "train_objective", "valid_elbo", "valid_iwae", "lr"):
        assert a.history[key] == b.history[key], key
    assert torch.equal(a.generator_state, b.generator_state)


def stopper(at: set[tuple[int, int]]):
    """An on_batch callback and stop event that stop the run after the given (epoch, batch) pairs."""
    stop = threading.Event()

    def on_batch(progress) -> None:
        if (progress.epoch, progress.batch) in at:
            stop.set()

    return stop, on_batch


@pytest.mark.parametrize("overrides", [
    dict(objective="dvae", noise_level=0.1, num_corruptions=2, num_samples=2),
    dict(objective="diwae", noise_level=0.1, num_samples=3, binarization="dynamic"),  # replays the re-binarization
    dict(objective="vae", noise="none", noise_level=0.0, lr_schedule="cosine", kl_warmup_epochs=2),
])
def test_stop_anywhere_then_resume_is_the_uninterrupted_run(digits, tmp_path, overrides):
    config = TrainConfig(**SMALL, **overrides)
    uninterrupted = train(config, digits)

    # stop in the middle of epoch 2, save, load from disk, resume; stop again late in epoch 3; resume to the end
    stop, on_batch = stopper({(2, 5)})
    first = train(config, digits, stop_event=stop, on_batch=on_batch, batch_report_every=1)
    assert first.status == "stopped" and first.epochs_done == 1 and first.position["batch"] == 5
    path = ckpt.save_checkpoint(first, tmp_path / "stopped.pt", digits.image_shape)
    stop, on_batch = stopper({(3, 11)})
    second = train(config, digits, resume=ckpt.load_payload(path), stop_event=stop, on_batch=on_batch,
                   batch_report_every=1)
    assert second.status == "stopped" and second.epochs_done == 2 and second.position["batch"] == 11
    path = ckpt.save_checkpoint(second, tmp_path / "stopped-again.pt", digits.image_shape)
    resumed = train(config, digits, resume=ckpt.load_payload(path))
    assert resumed.status == "finished" and resumed.position is None
    assert_same_run(resumed, uninterrupted)


def test_a_stop_between_epochs_resumes_exactly_too(digits, tmp_path):
    config = TrainConfig(**SMALL, objective="dvae", noise_level=0.2)
    uninterrupted = train(config, digits)
    stop = threading.Event()
    first = train(config, digits, stop_event=stop, on_epoch=lambda r: stop.set() if r.epoch == 1 else None)
    assert first.epochs_done == 1 and first.position["batch"] == 0
    payload = ckpt.make_payload(first, digits.image_shape)
    assert_same_run(train(config, digits, resume=payload), uninterrupted)


def test_resume_to_more_epochs_continues_a_finished_run(digits):
    config = TrainConfig(**SMALL, objective="dvae", noise_level=0.1)
    short = train(config.replace(epochs=2), digits)
    longer = train(config, digits, resume=ckpt.make_payload(short, digits.image_shape))
    assert longer.history["epoch"] == [1, 2, 3]
    assert longer.history["train_objective"][:2] == short.history["train_objective"]


def test_training_never_touches_the_process_wide_rng(digits):
    """Concurrent jobs must not share random state: a run draws only from generators of its own."""
    torch.manual_seed(123)
    before = torch.get_rng_state()
    config = TrainConfig(**{**SMALL, "epochs": 1}, objective="diwae", noise_level=0.1, num_samples=2)
    a = train(config, digits)
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(999)  # whatever the process-wide RNG holds, the run is the same
    b = train(config, digits)
    assert_same_run(a, b)


def test_a_run_is_the_same_while_another_thread_reseeds_the_global_rng(digits):
    config = TrainConfig(**{**SMALL, "epochs": 1}, objective="dvae", noise_level=0.1)
    alone = train(config, digits)
    done = threading.Event()

    def noisy_neighbour() -> None:
        i = 0
        while not done.is_set():
            torch.manual_seed(i)
            torch.rand(1000)
            i += 1

    thread = threading.Thread(target=noisy_neighbour)
    thread.start()
    try:
        together = train(config, digits)
    finally:
        done.set()
        thread.join()
    assert_same_run(together, alone)


def test_a_finite_last_loss_with_non_finite_gradients_keeps_a_really_good_state(digits):
    """The last batch of epoch 2 gets NaN gradients: its loss is finite, the weights after its step are not."""
    config = TrainConfig(**SMALL, objective="vae", noise="none", noise_level=0.0)
    batches = math.ceil(len(digits.train) / config.batch_size)
    calls = {"n": 0}
    original = torch.Tensor.backward

    def poisoned_backward(self, *args, **kwargs):
        calls["n"] += 1
        original(self, *args, **kwargs)
        if calls["n"] == 2 * batches:  # the last step of epoch 2
            for module in poisoned_backward.model.modules():
                for p in module.parameters(recurse=False):
                    if p.grad is not None:
                        p.grad.fill_(math.nan)

    from dvae_engine import training

    real_build = training.build_model

    def build_and_remember(*args, **kwargs):
        model = real_build(*args, **kwargs)
        poisoned_backward.model = model
        return model

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(training, "build_model", build_and_remember)
        mp.setattr(torch.Tensor, "backward", poisoned_backward)
        with pytest.raises(TrainingDivergedError, match="non-finite") as info:
            train(config, digits)
    result = info.value.result
    assert result.status == "diverged" and result.epochs_done == 1  # epoch 2 is not kept
    assert all(torch.isfinite(p).all() for p in result.model.parameters())
    assert all(torch.isfinite(v).all() for s in result.optimizer.state.values() for v in s.values())
    assert all(math.isfinite(v) for v in result.history["valid_elbo"])
    # and the kept state is exactly the state after epoch 1 of a healthy run
    healthy = train(config.replace(epochs=1), digits)
    for x, y in zip(result.model.parameters(), healthy.model.parameters()):
        assert torch.equal(x, y)


def test_a_failing_compiled_backward_falls_back_to_eager_on_the_same_draws(digits, monkeypatch):
    """torch.compile may fail only when its backward runs (e.g. no C++ compiler): the run goes on, eager."""
    from dvae_engine import training

    class FailingBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, value):
            return value.clone()

        @staticmethod
        def backward(ctx, grad):
            raise RuntimeError("compiler not found")

    monkeypatch.setattr(training.torch, "compile",
                        lambda fn: (lambda *args: FailingBackward.apply(fn(*args))))
    config = TrainConfig(**{**SMALL, "epochs": 2}, objective="dvae", noise_level=0.1)
    compiled = train(config.replace(compile=True), digits)
    assert compiled.status == "finished" and "backward" in compiled.message and "compile" in compiled.message
    assert_same_run(compiled, train(config, digits))


def test_resuming_on_another_device_type_is_refused_with_a_clear_message_or_reseeded(digits):
    config = TrainConfig(**{**SMALL, "epochs": 2}, objective="dvae", noise_level=0.1)
    stop, on_batch = stopper({(1, 4)})
    stopped = train(config.replace(epochs=2), digits, stop_event=stop, on_batch=on_batch, batch_report_every=1)
    payload = ckpt.make_payload(stopped, digits.image_shape)
    payload["generator_device"] = "cuda"  # as if it had been trained on a GPU
    payload["generator_state"] = torch.zeros(16, dtype=torch.uint8)
    with pytest.raises(ValueError, match="cuda"):
        train(config, digits, resume=payload)
    reseeded = train(config, digits, resume=payload, reseed_on_device_change=True)
    assert reseeded.status == "finished" and "fresh random stream" in reseeded.message
    assert reseeded.epochs_done == 2


def test_auto_device_resumes_on_the_device_type_the_run_was_saved_on(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resume_device("auto", "cpu").type == "cpu"  # a CPU run stays on the CPU where CUDA exists
    assert resume_device("auto", "cuda").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="CUDA"):
        resume_device("auto", "cuda")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVAE_OFFLINE": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def test_cli_ctrl_c_saves_and_resume_finishes_the_same_run(tmp_path):
    """Ctrl-C (SIGINT) mid-epoch saves the full state; --resume to the same epochs equals an uninterrupted run."""
    flags = ["--dataset", "digits", "--objective", "dvae", "--noise-level", "0.1", "--epochs", "3",
             "--hidden-units", "32", "--latent-dim", "4", "--device", "cpu", "--eval-importance-samples", "0"]
    whole = run_cli("-m", "dvae_engine", "train", *flags, "--output", str(tmp_path / "whole.pt"))
    assert whole.returncode == 0, whole.stderr
    # a wrapper that sends SIGINT to itself in the middle of epoch 2, as a user's Ctrl-C would
    script = tmp_path / "interrupt.py"
    script.write_text(
        "import signal, sys\n"
        "from dvae_engine import cli, training\n"
        "real = training.train\n"
        "def train(*a, on_batch=None, **k):\n"
        "    def hook(p):\n"
        "        on_batch(p)\n"
        "        if p.epoch == 2 and p.batch == 7:\n"
        "            signal.raise_signal(signal.SIGINT)\n"
        "    return real(*a, on_batch=hook, batch_report_every=1, **k)\n"
        "cli.train = train\n"
        "sys.exit(cli.main(sys.argv[1:]))\n"
    )
    stopped_path = tmp_path / "stopped.pt"
    stopped = run_cli(str(script), "train", *flags, "--output", str(stopped_path))
    assert stopped.returncode == 130, stopped.stderr  # the shell's code for "ended by Ctrl-C"
    assert "--resume" in stopped.stderr and json.loads(stopped.stdout)["status"] == "stopped"
    resumed_path = tmp_path / "resumed.pt"
    resumed = run_cli("-m", "dvae_engine", "train", "--resume", str(stopped_path), "--output", str(resumed_path),
                      "--eval-importance-samples", "0")
    assert resumed.returncode == 0, resumed.stderr
    a, b = ckpt.load_payload(tmp_path / "whole.pt"), ckpt.load_payload(resumed_path)
    for name, tensor in a["model_state"].items():
        assert torch.equal(tensor, b["model_state"][name]), name
    assert a["history"]["train_objective"] == b["history"]["train_objective"]


def test_cli_resume_refuses_flags_that_would_change_the_run(tmp_path):
    out = tmp_path / "run.pt"
    first = run_cli("-m", "dvae_engine", "train", "--dataset", "digits", "--epochs", "1", "--hidden-units", "16",
                    "--latent-dim", "2", "--device", "cpu", "--eval-importance-samples", "0", "--output", str(out))
    assert first.returncode == 0, first.stderr
    bad = run_cli("-m", "dvae_engine", "train", "--resume", str(out), "--lr", "0.1", "--output", str(out))
    assert bad.returncode == 2 and "--lr" in bad.stderr and "Traceback" not in bad.stderr
