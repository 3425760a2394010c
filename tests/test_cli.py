"""The command line: train → checkpoint → eval --json, and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "DVAE_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "dvae_engine", *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300)


def test_train_then_eval_json(tmp_path):
    out = tmp_path / "run.pt"
    trained = run_cli("train", "--dataset", "digits", "--objective", "diwae", "--noise-level", "0.1",
                      "--num-samples", "2", "--num-corruptions", "2", "--epochs", "2", "--hidden-units", "32",
                      "--latent-dim", "3", "--max-train-examples", "500", "--eval-importance-samples", "50",
                      "--output", str(out), "--device", "cpu")
    assert trained.returncode == 0, trained.stderr
    assert out.is_file()
    summary = json.loads(trained.stdout)
    assert summary["status"] == "finished" and summary["epochs"] == 2
    assert "epoch 2/2" in trained.stderr  # the terminal progress bar

    evaluated = run_cli("eval", str(out), "--importance-samples", "200", "--iwae-samples", "5",
                        "--max-examples", "50", "--json", "--quiet")
    assert evaluated.returncode == 0, evaluated.stderr
    metrics = json.loads(evaluated.stdout)
    assert metrics["num_examples"] == 50 and metrics["importance_samples"] == 200
    # more importance samples give a tighter bound: -log p(x) estimate <= -IWAE_5 <= -ELBO (up to noise)
    assert metrics["nll_is"] <= metrics["neg_iwae_5"] + 0.5 <= metrics["neg_elbo"] + 1.0

    info = run_cli("info", str(out))
    assert json.loads(info.stdout)["config"]["num_corruptions"] == 2


def test_bad_flags_and_files_give_clear_errors(tmp_path):
    bad = run_cli("train", "--dataset", "digits", "--noise-level", "1.5", "--output", str(tmp_path / "x.pt"))
    assert bad.returncode == 2 and "probability" in bad.stderr and "Traceback" not in bad.stderr
    missing = run_cli("train", "--dataset", "frey", "--output", str(tmp_path / "x.pt"),
                      env_extra={"DVAE_DATA_DIR": str(tmp_path)})
    assert missing.returncode == 2 and "frey_rawface.mat" in missing.stderr and "Traceback" not in missing.stderr
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    result = run_cli("eval", str(garbage), "--json")
    assert result.returncode == 2 and "error:" in result.stderr and "Traceback" not in result.stderr


def test_every_train_flag_has_a_help_line_with_its_default():
    from dataclasses import fields

    from dvae_engine.cli import build_parser
    from dvae_engine.training import TrainConfig

    parser = build_parser()
    train_parser = parser._subparsers._group_actions[0].choices["train"]  # noqa: SLF001 — argparse keeps them here
    actions = {a.dest: a for a in train_parser._actions}
    for f in fields(TrainConfig):
        action = actions[f.name]
        assert action.help and f"(default: {f.default})" in action.help, f.name
    assert actions["objective"].choices == ("vae", "iwae", "dvae", "diwae", "noisy-vae")
    assert "[0, 1]" in actions["noise_level"].help and "σ" in actions["noise_level"].help
    text = run_cli("train", "--help").stdout
    assert "--kl-warmup-epochs" in text and "default: 0.001" in text
