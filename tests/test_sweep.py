"""Sweep mode: the batched (vmap) objective equals each model's own, and one stacked Adam is many Adams."""

from __future__ import annotations

import math

import pytest
import torch

from dvae_engine.models import build_model
from dvae_engine.objectives import elbo, iwae
from dvae_engine.sweep import ModelStack, plan_groups, train_sweep
from dvae_engine.training import TrainConfig

BASE = dict(dataset="digits", hidden_units=32, latent_dim=3, device="cpu", num_samples=2, num_corruptions=2)


def configs():
    return [
        TrainConfig(**BASE, objective="dvae", noise_level=0.1, seed=0),
        TrainConfig(**BASE, objective="diwae", noise_level=0.2, seed=1),
        TrainConfig(**BASE, objective="noisy-vae", noise_level=0.1, seed=2),
        TrainConfig(**BASE, objective="dvae", noise_level=0.0, seed=3),
    ]


def solo_models(cfgs, input_dim=64):
    models = []
    for c in cfgs:
        torch.manual_seed(c.seed)
        models.append(build_model(c.model_spec(input_dim, "bernoulli")))
    return models


def reference_value(model, config, x_clean, x_noisy, eps):
    """One model's objective for given draws, written out directly from Eq. 11 / Eq. 12."""
    target = x_noisy.unsqueeze(1) if config.objective == "noisy-vae" else x_clean
    log_w, log_px_z, kl = model(target, x_noisy, eps)
    if config.objective in ("iwae", "diwae"):
        return iwae(log_w)
    return log_px_z.mean(dim=(0, 1)) - kl.mean(dim=0) if config.analytic_kl else elbo(log_w)


def test_batched_objective_equals_each_models_own(digits):
    cfgs = configs()
    models = solo_models(cfgs)
    stack = ModelStack(models, cfgs)
    x = digits.train[:50]
    x_noisy, eps = stack.draw(x, torch.Generator().manual_seed(0))
    assert x_noisy.shape == (4, 2, 50, 64) and eps.shape == (4, 2, 2, 50, 3)
    assert torch.equal(x_noisy[3, 0], x)  # noise level 0: clean copies
    values = stack.objective(x, x_noisy, eps)
    for i, (model, config) in enumerate(zip(models, cfgs)):
        torch.testing.assert_close(values[i], reference_value(model, config, x, x_noisy[i], eps[i]),
                                   rtol=1e-5, atol=1e-4)


def test_one_stacked_adam_step_equals_one_adam_step_per_model(digits):
    cfgs = configs()
    models = solo_models(cfgs)
    reference = solo_models(cfgs)
    stack = ModelStack(models, cfgs)
    stacked_adam = torch.optim.Adam(list(stack.params.values()), lr=1e-2)
    solo_adams = [torch.optim.Adam(m.parameters(), lr=1e-2) for m in reference]
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x = digits.train[torch.randint(0, 1000, (40,), generator=g)]
        x_noisy, eps = stack.draw(x, g)
        stacked_adam.zero_grad()
        (-stack.objective(x, x_noisy, eps).mean(dim=1).sum()).backward()
        stacked_adam.step()
        for i, (model, adam) in enumerate(zip(reference, solo_adams)):
            adam.zero_grad()
            (-reference_value(model, cfgs[i], x, x_noisy[i], eps[i]).mean()).backward()
            adam.step()
    for i, model in enumerate(reference):
        for name, tensor in model.named_parameters():
            torch.testing.assert_close(stack.params[name][i], tensor, rtol=1e-4, atol=1e-5)


def test_groups_split_on_shape_and_keep_order():
    cfgs = configs() + [TrainConfig(**{**BASE, "num_samples": 5}, objective="diwae", noise_level=0.1)]
    groups = plan_groups(cfgs)
    assert [g.indices for g in groups] == [[0, 1, 2, 3], [4]]
    with pytest.raises(ValueError, match="differ only"):
        ModelStack(solo_models(cfgs), cfgs)


def test_sweep_trains_every_model_and_reports_each(digits):
    cfgs = [c.replace(epochs=3) for c in configs()]
    seen = []
    results = train_sweep(cfgs, digits, on_epoch=lambda i, r: seen.append((i, r.epoch)))
    assert sorted(seen) == [(i, e) for i in range(4) for e in (1, 2, 3)]
    for config, result in zip(cfgs, results):
        assert result.config == config and result.status == "finished"
        h = result.history
        assert h["train_objective"][2] > h["train_objective"][0]
        assert all(math.isfinite(v) for v in h["valid_elbo"])
        assert (h["valid_iwae"][0] is not None) == (config.objective == "diwae")
    # the models are distinct: different seeds and objectives give different weights
    w = [r.model.decoder[0].weight for r in results]
    assert not torch.allclose(w[0], w[3])


def test_sweep_rejects_mixed_datasets(digits):
    with pytest.raises(ValueError, match="one dataset"):
        train_sweep([TrainConfig(**BASE), TrainConfig(**{**BASE, "dataset": "mnist"})], digits)
