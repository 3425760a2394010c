"""Shared fixtures. Tests never download anything: ``DVAE_OFFLINE=1`` is set for the whole run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ["DVAE_OFFLINE"] = "1"
# DVAE_TEST_THREADS=1 runs the suite single-threaded; the tests must pass whatever the thread count
torch.set_num_threads(int(os.environ.get("DVAE_TEST_THREADS") or min(2, torch.get_num_threads())))

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real datasets (CI: ``DVAE_DATA_DIR=../shared/data``); skips the test when unset."""
    value = os.environ.get("DVAE_DATA_DIR")
    if not value:
        pytest.skip("DVAE_DATA_DIR is not set; real-data tests need the datasets (e.g. DVAE_DATA_DIR=../shared/data)")
    path = Path(value).resolve()
    if not path.is_dir():
        pytest.skip(f"DVAE_DATA_DIR={value} is not a directory")
    return path


@pytest.fixture(scope="session")
def digits():
    from dvae_engine.data import load_dataset

    return load_dataset("digits")


TINY_RUNS = {
    # name: TrainConfig overrides; all on scikit-learn's digits, which needs no files
    "digits-vae-2d": dict(objective="vae", noise="none", noise_level=0.0, latent_dim=2),
    "digits-dvae-2d": dict(objective="dvae", noise="salt-pepper", noise_level=0.1, latent_dim=2),
    "digits-diwae-4d": dict(objective="diwae", noise="salt-pepper", noise_level=0.1, latent_dim=4, num_samples=3),
}


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory, digits) -> Path:
    """A folder of three small checkpoints trained for a few epochs on digits (a few seconds)."""
    from dvae_engine.checkpoint import save_checkpoint
    from dvae_engine.evaluation import evaluate
    from dvae_engine.training import TrainConfig, train

    folder = tmp_path_factory.mktemp("checkpoints")
    for name, overrides in TINY_RUNS.items():
        config = TrainConfig(dataset="digits", hidden_units=64, epochs=8, device="cpu", **overrides)
        result = train(config, digits)
        metrics = evaluate(result.model, digits.test, importance_samples=100, config=config)
        save_checkpoint(result, folder / f"{name}.pt", digits.image_shape, metrics)
    return folder
