"""The pretrained models in checkpoints/: they load safely, describe themselves, and their stored metrics hold.

The re-evaluation uses a small random (shuffled) subset of the clean test split, so it is compared with the
stored full-split metric within a tolerance derived from the subset itself: 4 standard errors of the subset
mean plus 0.5 nats (the importance-sampled estimate uses fewer samples here: k = 500 instead of 5000, which
can only make the estimate lower, i.e. −log p(x) higher, by a fraction of a nat on these models).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dvae_engine.checkpoint import load_checkpoint, load_payload
from dvae_engine.data import load_dataset, random_rows
from dvae_engine.evaluation import evaluate
from dvae_engine.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "checkpoints"
MANIFEST = json.loads((FOLDER / "manifest.json").read_text())["models"]
FILES = [entry["file"] for entry in MANIFEST]
SUBSET = 300


def test_manifest_lists_exactly_the_shipped_files():
    assert sorted(FILES) == sorted(p.name for p in FOLDER.glob("*.pt"))
    required = {"mnist-vae", "mnist-dvae-sp05", "mnist-dvae-sp10", "mnist-dvae-sp15", "mnist-iwae-k5",
                "mnist-diwae-k5-sp05", "mnist-diwae-k5-sp10", "frey-vae", "frey-dvae-g025", "mnist2d-vae",
                "mnist2d-dvae-sp10"}
    assert required <= {Path(f).stem for f in FILES}
    assert all(entry["description"] for entry in MANIFEST)


@pytest.mark.parametrize("name", FILES)
def test_checkpoint_loads_safely_and_its_config_round_trips(name):
    path = FOLDER / name
    assert path.stat().st_size < 2 * 2**20  # float32 weights only: no optimizer state in shipped files
    torch.load(path, weights_only=True)  # raises if anything but tensors and plain values is inside
    loaded = load_checkpoint(path)
    assert TrainConfig.from_dict(loaded.config.to_dict()) == loaded.config
    assert load_payload(path)["optimizer_state"] is None
    history = loaded.history
    assert len(history["epoch"]) == len(history["train_objective"]) == len(history["valid_elbo"]) > 0
    for key in ("neg_elbo", "nll", "nll_method", "nll_mix", "nll_is", "num_examples", "nll_examples",
                "importance_samples", "split"):
        assert key in loaded.metrics, key
    m = loaded.metrics
    # the number models are compared by: exact for 2-D latents, else the defensive mixture estimate
    assert m["nll_method"] == ("nll_exact" if loaded.model.latent_dim == 2 else "nll_mix")
    assert m["nll"] == m[m["nll_method"]]
    assert m["nll_mix"] <= m["neg_elbo"] and m["nll_is"] <= m["neg_elbo"]  # log p(x) estimates ≥ ELBO


@pytest.mark.parametrize("name", FILES)
def test_stored_clean_test_metrics_hold_on_a_random_subset(name, data_dir):
    loaded = load_checkpoint(FOLDER / name)
    data = load_dataset(loaded.config.dataset, data_dir, loaded.config.binarization)
    x = random_rows(data.test, SUBSET, seed=1)
    fresh = evaluate(loaded.model, x, importance_samples=500, seed=1, config=loaded.config,
                     mean_image=data.train_mean())
    stored = loaded.metrics
    for key in ("neg_elbo", "nll_mix", "nll_is"):
        tolerance = 4 * fresh[f"{key}_stderr"] + 0.5
        assert abs(fresh[key] - stored[key]) < tolerance, (key, fresh[key], stored[key], tolerance)
