"""The objectives against reference values: IWAE k=1 = ELBO, noise 0 = plain VAE/IWAE, Jensen, exact log p(x)."""

from __future__ import annotations

import math

import pytest
import torch

from dvae_engine.evaluation import elbo_per_example, iwae_per_example
from dvae_engine.models import VAE, ModelSpec
from dvae_engine.objectives import elbo, iwae, log_weights, objective_per_example


def tiny_model(input_dim=12, latent_dim=3, likelihood="bernoulli", encoder="mlp", layers=2, seed=0) -> VAE:
    torch.manual_seed(seed)
    model = VAE(ModelSpec(input_dim=input_dim, latent_dim=latent_dim, hidden_units=16, encoder=encoder,
                          encoder_layers=layers, likelihood=likelihood))
    return model.eval()


def binary_batch(n=5, d=12, seed=1) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, d), 0.4), generator=torch.Generator().manual_seed(seed))


def gen(seed=7) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_log_weights_match_a_per_sample_loop():
    """The vectorised (M, K, batch) tensor equals log p(x|z) + log p(z) - log q(z|x̃) sample by sample."""
    model = tiny_model()
    x_clean = binary_batch()
    x_noisy = torch.bernoulli(torch.full((3, 5, 12), 0.5), generator=gen(3))  # (M=3, batch, D)
    lw = log_weights(model, x_clean, x_noisy, num_samples=4, generator=gen())
    assert lw.shape == (3, 4, 5)
    eps = torch.randn((3, 4, 5, 3), generator=gen())  # the same draws, in the same order
    normal = torch.distributions.Normal(0.0, 1.0)
    for m in range(3):
        z_loc, z_log_var = model.encode(x_noisy[m])
        q = torch.distributions.Normal(z_loc, torch.exp(0.5 * z_log_var))
        for k in range(4):
            z = z_loc + torch.exp(0.5 * z_log_var) * eps[m, k]
            logits = model.decoder(z)
            log_px_z = torch.distributions.Bernoulli(logits=logits).log_prob(x_clean).sum(-1)
            expected = log_px_z + normal.log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
            torch.testing.assert_close(lw[m, k], expected, rtol=1e-5, atol=1e-4)


def test_iwae_with_one_sample_equals_the_elbo_on_the_same_samples():
    model = tiny_model()
    x = binary_batch()
    lw = log_weights(model, x, x.unsqueeze(0), num_samples=1, generator=gen())
    torch.testing.assert_close(iwae(lw), elbo(lw))
    a = objective_per_example(model, x, "iwae", num_samples=1, generator=gen())
    b = objective_per_example(model, x, "vae", num_samples=1, generator=gen(), analytic_kl=False)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("noise", ["salt-pepper", "gaussian", "masking", "none"])
def test_noise_zero_reduces_dvae_and_diwae_to_vae_and_iwae(noise):
    model = tiny_model()
    x = binary_batch()
    for noisy, plain, k in (("dvae", "vae", 1), ("diwae", "iwae", 5)):
        a = objective_per_example(model, x, noisy, noise, 0.0, num_samples=k, generator=gen())
        b = objective_per_example(model, x, plain, num_samples=k, generator=gen())
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_noisy_vae_at_noise_zero_is_the_vae():
    model = tiny_model()
    x = binary_batch()
    a = objective_per_example(model, x, "noisy-vae", "salt-pepper", 0.0, generator=gen(), analytic_kl=False)
    b = objective_per_example(model, x, "vae", generator=gen(), analytic_kl=False)
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_noisy_vae_scores_the_corrupted_input():
    """With noise the noisy-data VAE reconstructs x̃; DVAE reconstructs x. Same draws, different numerators."""
    model = tiny_model()
    x = binary_batch()
    dvae = objective_per_example(model, x, "dvae", "salt-pepper", 0.5, generator=gen(), analytic_kl=False)
    noisy = objective_per_example(model, x, "noisy-vae", "salt-pepper", 0.5, generator=gen(), analytic_kl=False)
    assert not torch.allclose(dvae, noisy)


def test_diwae_is_at_least_dvae_on_the_same_weights_and_samples():
    model = tiny_model()
    x = binary_batch(n=20)
    x_noisy = torch.bernoulli(torch.full((4, 20, 12), 0.5), generator=gen(5))
    lw = log_weights(model, x, x_noisy, num_samples=6, generator=gen())
    assert torch.all(iwae(lw) >= elbo(lw) - 1e-5)
    # and equality only when all weights are equal
    flat = torch.zeros(2, 3, 4)
    torch.testing.assert_close(iwae(flat), elbo(flat))


def test_analytic_kl_has_the_same_expectation_as_the_sampled_estimate():
    model = tiny_model()
    x = binary_batch(n=3)
    analytic = objective_per_example(model, x, "vae", num_samples=20000, generator=gen(), analytic_kl=True)
    sampled = objective_per_example(model, x, "vae", num_samples=20000, generator=gen(), analytic_kl=False)
    torch.testing.assert_close(analytic, sampled, rtol=0, atol=0.15)


def exact_log_px_1d(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """log ∫ p(x|z) p(z) dz for a 1-D latent by the trapezoid rule on [-12, 12] (40001 points)."""
    grid = torch.linspace(-12, 12, 40001, dtype=torch.float64)
    model64 = model.double()
    z = grid.view(-1, 1, 1).expand(-1, x.shape[0], 1)  # (G, batch, 1)
    log_joint = model64.log_likelihood(x.double(), z) + model64.log_prior(z)  # (G, batch)
    dz = grid[1] - grid[0]
    # trapezoid weights: 1/2 at both ends
    log_w = torch.full_like(grid, math.log(dz)).view(-1, 1)
    log_w[0] = log_w[-1] = math.log(dz / 2)
    out = torch.logsumexp(log_joint + log_w, dim=0)
    model.float()
    return out.float()


def test_importance_sampled_log_likelihood_matches_exact_integration_on_a_1d_latent():
    model = tiny_model(input_dim=6, latent_dim=1, seed=3)
    x = binary_batch(n=4, d=6, seed=2)
    exact = exact_log_px_1d(model, x)
    estimate = iwae_per_example(model, x, num_samples=20000, generator=gen(), chunk_size=4000)
    torch.testing.assert_close(estimate, exact, rtol=0, atol=0.02)
    elbo_value = elbo_per_example(model, x, gen())
    assert torch.all(estimate >= elbo_value)
    # the ELBO's gap is KL(q(z|x) || p(z|x)) > 0 for this untrained encoder
    assert torch.all(exact - elbo_value > 1e-3)


def test_gaussian_likelihood_matches_torch_distributions():
    model = tiny_model(input_dim=10, latent_dim=2, likelihood="gaussian")
    x = torch.rand(4, 10, generator=gen(1))
    z = torch.randn(3, 4, 2, generator=gen(2))
    mean, log_var = model.decoder_params(z)
    expected = torch.distributions.Normal(mean, torch.exp(0.5 * log_var)).log_prob(x).sum(-1)
    torch.testing.assert_close(model.log_likelihood(x, z), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("encoder,layers", [("mlp", 1), ("mlp", 2), ("gru", 2)])
def test_encoders_broadcast_over_leading_dimensions(encoder, layers):
    model = tiny_model(encoder=encoder, layers=layers)
    x = torch.rand(3, 5, 12)
    z_loc, z_log_var = model.encode(x)
    assert z_loc.shape == z_log_var.shape == (3, 5, 3)
    z_loc_first, _ = model.encode(x[1])
    torch.testing.assert_close(z_loc[1], z_loc_first)


def test_unknown_objective_and_bad_sample_counts_are_rejected():
    model = tiny_model()
    x = binary_batch()
    with pytest.raises(ValueError, match="unknown objective"):
        objective_per_example(model, x, "cvae")
    with pytest.raises(ValueError, match="num_samples"):
        objective_per_example(model, x, "iwae", num_samples=0)
    with pytest.raises(ValueError, match="num_corruptions"):
        objective_per_example(model, x, "dvae", "salt-pepper", 0.1, num_corruptions=0)


# --- one meaning of M, and no unbounded objective ------------------------------------------------------


@pytest.mark.parametrize("objective", ["vae", "iwae"])
def test_m_counts_corrupted_copies_so_objectives_without_noise_refuse_m_above_one(objective):
    """Earlier, a solo IWAE ignored M (k = K) while the sweep and validation used k = M·K: M now means one thing."""
    from dvae_engine.training import TrainConfig

    with pytest.raises(ValueError, match="M .*must be 1"):
        TrainConfig(dataset="digits", objective=objective, noise="none", noise_level=0.0, num_corruptions=5)
    with pytest.raises(ValueError, match="M .*must be 1"):
        objective_per_example(tiny_model(), binary_batch(), objective, num_corruptions=3, generator=gen())
    # checkpoints written before the fix (VAE/IWAE with a stored M > 1, which a solo run ignored) load with M = 1
    old = TrainConfig.from_dict({"dataset": "digits", "objective": objective, "noise": "none", "noise_level": 0.0,
                                 "num_corruptions": 5, "num_samples": 2})
    assert old.num_corruptions == 1 and "M=" not in old.describe()


def test_m_is_the_number_of_corrupted_copies_in_describe_and_validation():
    from dvae_engine.training import TrainConfig

    config = TrainConfig(dataset="digits", objective="diwae", noise_level=0.1, num_corruptions=5, num_samples=2)
    assert "M=5 K=2" in config.describe()


def test_noisy_vae_with_gaussian_noise_on_binary_data_is_refused():
    """The Bernoulli log-likelihood of x̃ outside {0, 1} grows without limit: that is no objective to maximise."""
    from dvae_engine.training import TrainConfig

    with pytest.raises(ValueError, match="Bernoulli"):
        TrainConfig(dataset="mnist", objective="noisy-vae", noise="gaussian", noise_level=0.1)
    with pytest.raises(ValueError, match="Bernoulli"):
        objective_per_example(tiny_model(), binary_batch(), "noisy-vae", "gaussian", 0.5, generator=gen())
    # what the old code allowed: push the logits up and the "log-likelihood" of x̃ = 1.5 grows without bound
    logits = torch.tensor([10.0, 100.0])
    assert ((1.5 * logits - torch.nn.functional.softplus(logits)) > 0).all()
    # real-valued data with a Gaussian decoder is fine, and so is binary-preserving noise on binary data
    TrainConfig(dataset="frey", objective="noisy-vae", noise="gaussian", noise_level=0.05)
    TrainConfig(dataset="mnist", objective="noisy-vae", noise="salt-pepper", noise_level=0.1)


def test_the_old_augment_name_reads_as_noisy_vae():
    from dvae_engine.training import TrainConfig

    config = TrainConfig.from_dict({"dataset": "digits", "objective": "augment", "noise": "salt-pepper",
                                    "noise_level": 0.1})
    assert config.objective == "noisy-vae" and config.model_name == "Noisy-data VAE"
