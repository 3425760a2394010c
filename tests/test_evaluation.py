"""Evaluation on clean data: chunking does not change the estimate, bounds are ordered, metrics are labelled."""

from __future__ import annotations

import pytest
import torch

from dvae_engine.analysis import true_posterior_grid
from dvae_engine.checkpoint import load_checkpoint
from dvae_engine.evaluation import (
    evaluate,
    iwae_per_example,
    mixture_is_per_example,
    summarize,
    training_objective_kwargs,
)


@pytest.fixture(scope="module")
def model_and_data(tiny_checkpoints, digits):
    return load_checkpoint(tiny_checkpoints / "digits-dvae-2d.pt"), digits


def test_chunking_does_not_change_the_importance_sampled_estimate(model_and_data):
    loaded, digits = model_and_data
    x = digits.test[:20]
    whole = iwae_per_example(loaded.model, x, 600, torch.Generator().manual_seed(3), chunk_size=600)
    chunked = iwae_per_example(loaded.model, x, 600, torch.Generator().manual_seed(3), chunk_size=7)
    # torch draws normals differently for different tensor sizes, so the samples differ: the two are
    # independent estimates that agree within Monte Carlo error, while a wrong running log-sum-exp
    # (e.g. normalising per chunk) would be off by log(600/7) = 4.4 nats
    torch.testing.assert_close(whole, chunked, rtol=0, atol=0.2)


def test_bounds_tighten_with_more_samples(model_and_data):
    loaded, digits = model_and_data
    metrics = evaluate(loaded.model, digits.test, importance_samples=2000, iwae_samples=(1, 10, 100))
    assert metrics["num_examples"] == 300 and metrics["importance_samples"] == 2000
    # -log p(x) estimate <= -IWAE_100 <= -IWAE_10 <= -IWAE_1 (means over 300 examples; small MC slack)
    assert metrics["nll_is"] <= metrics["neg_iwae_100"] + 0.01
    assert metrics["neg_iwae_100"] <= metrics["neg_iwae_10"] + 0.01 <= metrics["neg_iwae_1"] + 0.02
    assert abs(metrics["neg_iwae_1"] - metrics["neg_elbo"]) < 0.5  # the same bound, two estimators
    assert 0 < metrics["nll_is_stderr"] < 1


def test_training_objective_is_reported_beside_the_clean_metrics(model_and_data):
    loaded, digits = model_and_data
    kwargs = training_objective_kwargs(loaded.config)
    assert kwargs["objective"] == "dvae" and kwargs["noise_level"] == loaded.config.noise_level
    metrics = evaluate(loaded.model, digits.test[:100], importance_samples=0, training_objective=kwargs)
    assert "nll_is" not in metrics and "neg_train_objective" in metrics
    assert metrics["neg_train_objective"] != metrics["neg_elbo"]  # it is computed from corrupted inputs
    # at noise 0 the run's own objective is the clean ELBO (sampled KL here, exact KL in neg_elbo)
    clean = evaluate(loaded.model, digits.test, importance_samples=0,
                     training_objective={**kwargs, "noise_level": 0.0, "num_samples": 50})
    assert abs(clean["neg_train_objective"] - clean["neg_elbo"]) < 3 * clean["neg_elbo_stderr"]


def test_progress_callback_reports_every_stage(model_and_data):
    loaded, digits = model_and_data
    seen = set()
    evaluate(loaded.model, digits.test[:30], importance_samples=50, progress=lambda name, d, t: seen.add(name),
             exact_2d=True)
    assert seen == {"ELBO", "log p(x), mixture proposal, k=50", "log p(x), plain proposal, k=50", "log p(x), exact"}


def test_summarize_gives_mean_and_standard_error():
    s = summarize(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert s["mean"] == 2.5 and s["stderr"] == pytest.approx(torch.tensor([1.0, 2, 3, 4]).std().item() / 2)


def test_mixture_proposal_estimate_converges_to_the_exact_log_px(model_and_data):
    loaded, digits = model_and_data
    x = digits.test[:4]
    exact = torch.tensor([true_posterior_grid(loaded.model, xi, grid_size=241).log_evidence for xi in x])
    g = torch.Generator().manual_seed(0)
    mixture = mixture_is_per_example(loaded.model, x, 20_000, "salt-pepper", 0.2, num_components=9, generator=g)
    plain = iwae_per_example(loaded.model, x, 20_000, g)
    # both are consistent estimators of the same log p(x), reached from below
    torch.testing.assert_close(mixture.double(), exact.double(), atol=0.05, rtol=0)
    torch.testing.assert_close(plain.double(), exact.double(), atol=0.05, rtol=0)
    # with few samples the unbiased p(x) estimate gives a log-estimate below log p(x) on average
    few = torch.stack([mixture_is_per_example(loaded.model, x, 10, "salt-pepper", 0.2, num_components=4,
                                              generator=g) for _ in range(200)])
    assert (few.mean(0) < exact + 0.01).all()
    assert few.exp().mean(0).log().sub(exact).abs().max() < 0.1


def test_models_are_compared_by_one_estimator_exact_for_2d_latents(model_and_data, tiny_checkpoints):
    loaded, digits = model_and_data
    x = digits.test[:40]
    metrics = evaluate(loaded.model, x, importance_samples=500, config=loaded.config, exact_2d=True)
    assert metrics["nll_method"] == "nll_exact" and metrics["nll"] == metrics["nll_exact"]
    # both importance-sampled estimates are stochastic lower bounds on log p(x): their -log p(x) is not below
    # the exact value by more than Monte Carlo noise
    assert metrics["nll_mix"] > metrics["nll_exact"] - 0.05 and metrics["nll_is"] > metrics["nll_exact"] - 0.05
    assert metrics["mixture_noise"] == loaded.config.noise and metrics["mixture_level"] == loaded.config.noise_level
    # a model with more latents: the mixture estimate is the headline, the plain one stays beside it
    diwae = load_checkpoint(tiny_checkpoints / "digits-diwae-4d.pt")
    other = evaluate(diwae.model, x, importance_samples=200, config=diwae.config)
    assert other["nll_method"] == "nll_mix" and other["nll"] == other["nll_mix"] and "nll_is" in other
    assert "nll_exact" not in other
    # a VAE's mixture components use the reference noise of its data type
    vae = load_checkpoint(tiny_checkpoints / "digits-vae-2d.pt")
    assert evaluate(vae.model, x[:5], importance_samples=20, exact_2d=False,
                    config=vae.config)["mixture_noise"] == "salt-pepper"


def test_defensive_mixture_is_an_unbiased_estimate_of_p_x(model_and_data):
    """exp(estimate) averages to p(x): the estimator is one valid estimate, not the larger of two."""
    loaded, digits = model_and_data
    x = digits.test[4:7]
    exact = torch.tensor([true_posterior_grid(loaded.model, xi, grid_size=241).log_evidence for xi in x])
    g = torch.Generator().manual_seed(11)
    draws = torch.stack([mixture_is_per_example(loaded.model, x, 8, "salt-pepper", 0.2, num_components=3,
                                                generator=g) for _ in range(600)]).double()  # (600, 3)
    ratio = (draws - exact.double()).exp()  # p̂(x) / p(x): mean 1 if unbiased
    mean, stderr = ratio.mean(0), ratio.std(0) / 600 ** 0.5
    assert ((mean - 1).abs() < 4 * stderr + 0.01).all(), (mean, stderr)
    # the larger of two independent estimates is biased upwards: its mean ratio is clearly above 1
    pairs = torch.maximum(draws[0::2], draws[1::2])
    assert ((pairs - exact.double()).exp().mean(0) > 1.02).any()


def test_mixture_proposal_rejects_bad_settings(model_and_data):
    loaded, digits = model_and_data
    with pytest.raises(ValueError, match="num_components"):
        mixture_is_per_example(loaded.model, digits.test[:2], 100, "salt-pepper", 0.1, num_components=0)
    with pytest.raises(ValueError, match="level"):
        mixture_is_per_example(loaded.model, digits.test[:2], 100, "salt-pepper", 1.5)
