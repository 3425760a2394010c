"""Tests of dvae_engine.analysis: mixture posterior, projections, grid posterior, reconstructions, images."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal

from dvae_engine import analysis as A
from dvae_engine.checkpoint import load_checkpoint
from dvae_engine.models import LOG_2PI, VAE, ModelSpec
from dvae_engine.objectives import log_weights


def tiny_model(latent_dim: int = 2, input_dim: int = 64, likelihood: str = "bernoulli", seed: int = 0) -> VAE:
    torch.manual_seed(seed)
    return VAE(ModelSpec(input_dim, latent_dim=latent_dim, hidden_units=16, likelihood=likelihood)).eval()


class LinearGaussian(VAE):
    """p(z) = N(0, I), p(x|z) = N(A z + b, σ² I): its posterior and evidence are known in closed form."""

    def __init__(self, a: np.ndarray, b: np.ndarray, sigma: float) -> None:
        super().__init__(ModelSpec(a.shape[0], latent_dim=2, hidden_units=4, likelihood="gaussian"))
        self.a = torch.as_tensor(a, dtype=torch.float32)
        self.b = torch.as_tensor(b, dtype=torch.float32)
        self.sigma = sigma

    def log_likelihood(self, x, z):
        mean = z @ self.a.T + self.b
        return (-0.5 * (LOG_2PI + 2 * math.log(self.sigma) + (x - mean) ** 2 / self.sigma**2)).sum(-1)


@pytest.fixture()
def linear_gaussian():
    # orthogonal columns: the posterior precision I + AᵀA/σ² is diagonal, so a diagonal q can equal it
    a = np.zeros((5, 2))
    a[0, 0], a[1, 1], a[2, 0] = 2.0, 1.0, 0.5
    b = np.array([0.1, -0.2, 0.3, 0.0, 0.5])
    sigma = 0.5
    x = np.array([1.0, 0.4, 0.9, -0.3, 0.2])
    precision = np.eye(2) + a.T @ a / sigma**2
    post_cov = np.linalg.inv(precision)
    post_mean = post_cov @ a.T @ (x - b) / sigma**2
    evidence = multivariate_normal(b, a @ a.T + sigma**2 * np.eye(5)).logpdf(x)
    return LinearGaussian(a, b, sigma).eval(), torch.tensor(x, dtype=torch.float32), post_mean, post_cov, evidence


# --- mixture posterior -------------------------------------------------------------------------

def test_noise_level_zero_makes_every_component_the_clean_posterior(digits):
    model = tiny_model(latent_dim=3)
    mix = A.mixture_posterior(model, digits.test[0], "salt-pepper", 0.0, num_copies=7, seed=1)
    assert mix.component_loc.shape == (7, 3) and mix.component_var.shape == (7, 3)
    assert torch.equal(mix.x_noisy, digits.test[0].expand(7, -1))
    torch.testing.assert_close(mix.component_loc, mix.clean_loc.expand(7, -1))
    torch.testing.assert_close(mix.component_var, mix.clean_var.expand(7, -1))
    # and the mixture density is then the clean Gaussian's
    z = torch.randn(20, 3)
    torch.testing.assert_close(mix.log_density(z), mix.clean_log_density(z), rtol=1e-5, atol=1e-5)


def test_mixture_components_are_seeded_and_differ_under_noise(digits):
    model = tiny_model()
    first = A.mixture_posterior(model, digits.test[3], "salt-pepper", 0.2, num_copies=10, seed=5)
    again = A.mixture_posterior(model, digits.test[3], "salt-pepper", 0.2, num_copies=10, seed=5)
    other = A.mixture_posterior(model, digits.test[3], "salt-pepper", 0.2, num_copies=10, seed=6)
    assert torch.equal(first.x_noisy, again.x_noisy) and torch.equal(first.component_loc, again.component_loc)
    assert not torch.equal(first.x_noisy, other.x_noisy)
    # each component is the encoder at its own corrupted copy
    loc, log_var = model.encode(first.x_noisy)
    torch.testing.assert_close(first.component_loc, loc.detach())
    torch.testing.assert_close(first.component_var, log_var.exp().detach())
    assert len({tuple(row.tolist()) for row in first.component_loc}) > 1


def test_mixture_posterior_rejects_wrong_image_size():
    with pytest.raises(ValueError, match="expects 64"):
        A.mixture_posterior(tiny_model(), torch.zeros(10), "salt-pepper", 0.1)


def test_mixture_log_density_is_log_mean_exp_of_component_densities():
    rng = np.random.default_rng(0)
    loc = rng.normal(size=(4, 3))
    var = rng.uniform(0.2, 2.0, size=(4, 3))
    z = rng.normal(size=(6, 3))
    manual = np.log(np.mean([multivariate_normal(loc[n], np.diag(var[n])).pdf(z) for n in range(4)], axis=0))
    got = A.mixture_log_density(torch.tensor(z), torch.tensor(loc), torch.tensor(var))
    np.testing.assert_allclose(got.numpy(), manual, rtol=1e-10)


def test_mixture_samples_have_the_mixture_moments():
    loc = torch.tensor([[-2.0, 0.0], [1.0, 3.0], [0.5, -1.0]])
    var = torch.tensor([[0.5, 1.0], [0.1, 0.2], [2.0, 0.3]])
    samples = A.sample_mixture(loc, var, 200_000, torch.Generator().manual_seed(0))
    # law of total variance: Var = E[var] + Var(loc) (equal weights)
    torch.testing.assert_close(samples.mean(0), loc.mean(0), atol=0.02, rtol=0)
    torch.testing.assert_close(samples.var(0), var.mean(0) + loc.var(0, unbiased=False), atol=0.03, rtol=0)


# --- projections --------------------------------------------------------------------------------

def test_pca_projection_of_a_gaussian_is_w_sigma_wt():
    rng = np.random.default_rng(1)
    z_loc = rng.normal(size=(500, 5)) * np.array([5.0, 3.0, 1.0, 0.5, 0.1])
    proj = A.fit_pca(z_loc)
    w = proj.components
    np.testing.assert_allclose(w @ w.T, np.eye(2), atol=1e-12)
    # the top directions of this axis-aligned cloud are the first two axes
    np.testing.assert_allclose(np.abs(w[:, :2]), np.eye(2), atol=0.05)
    loc, diag_var = rng.normal(size=5), rng.uniform(0.1, 1.0, size=5)
    mean2, cov2 = proj.project_gaussian(loc, diag_var)
    np.testing.assert_allclose(mean2, w @ (loc - z_loc.mean(0)), atol=1e-12)
    np.testing.assert_allclose(cov2, w @ np.diag(diag_var) @ w.T, atol=1e-12)
    # batched form agrees with one-by-one
    means, covs = proj.project_gaussian(np.stack([loc, 2 * loc]), np.stack([diag_var, diag_var / 2]))
    np.testing.assert_allclose(covs[1], w @ np.diag(diag_var / 2) @ w.T, atol=1e-12)
    assert proj.explained_variance_ratio[0] > proj.explained_variance_ratio[1] > 0


def test_two_dimensional_latents_are_not_projected():
    proj = A.fit_pca(np.random.default_rng(0).normal(size=(50, 2)))
    assert proj.method == "identity"
    pts = np.array([[1.0, -2.0], [0.5, 3.0]])
    np.testing.assert_array_equal(proj.transform(pts), pts)
    mean2, cov2 = proj.project_gaussian([1.0, 2.0], [0.3, 0.7])
    np.testing.assert_array_equal(cov2, np.diag([0.3, 0.7]))


def test_ellipse_points_lie_at_the_requested_mahalanobis_distance():
    mean2 = np.array([1.0, -1.0])
    cov2 = np.array([[2.0, 0.6], [0.6, 0.5]])
    outline = A.ellipse_points(mean2, cov2, num_std=2.0, num_points=30)
    d = outline - mean2
    mahalanobis = np.sqrt(np.einsum("pi,ij,pj->p", d, np.linalg.inv(cov2), d))
    np.testing.assert_allclose(mahalanobis, 2.0, rtol=1e-10)
    np.testing.assert_allclose(outline[0], outline[-1])


def test_project_posterior_shapes(digits):
    model = tiny_model(latent_dim=4)
    proj = A.fit_pca(A.encoder_means(model, digits.test[:100]))
    mix = A.mixture_posterior(model, digits.test[0], "salt-pepper", 0.1, num_copies=6)
    view = A.project_posterior(mix, proj, num_samples=50, num_std=2.0)
    assert view.component_mean2.shape == (6, 2) and view.component_ellipses.shape[:1] == (6,)
    assert view.mixture_samples2.shape == (50, 2)
    np.testing.assert_allclose(view.clean_mean2, proj.transform(mix.clean_loc.numpy()))


def test_tsne_embeds_points_and_rejects_too_few():
    points = np.random.default_rng(0).normal(size=(12, 5))
    assert A.tsne_embed(points, seed=0).shape == (12, 2)
    with pytest.raises(ValueError, match="at least 4"):
        A.tsne_embed(points[:3])


# --- the true posterior on a grid ----------------------------------------------------------------

def test_grid_posterior_of_a_linear_gaussian_model_is_exact(linear_gaussian):
    model, x, post_mean, post_cov, evidence = linear_gaussian
    grid = A.true_posterior_grid(model, x, grid_size=151)
    assert grid.log_evidence == pytest.approx(evidence, abs=1e-3)
    np.testing.assert_allclose(np.exp(grid.log_posterior).sum() * grid.cell_area, 1.0, rtol=1e-12)
    exact = multivariate_normal(post_mean, post_cov).logpdf(grid.points())
    mass = np.exp(exact)
    # the normalised grid density matches the closed form where the posterior has mass
    assert np.max(np.abs(grid.log_posterior - exact)[mass > 1e-3 * mass.max()]) < 2e-3


def test_kl_between_the_exact_posterior_and_itself_is_zero(linear_gaussian):
    model, x, post_mean, post_cov, _ = linear_gaussian
    loc = torch.tensor(post_mean, dtype=torch.float32)
    var = torch.tensor(np.diag(post_cov), dtype=torch.float32)
    exact = A.MixturePosterior(x, x[None], loc[None].repeat(3, 1), var[None].repeat(3, 1), loc, var)
    grid = A.true_posterior_grid(model, x, grid_size=151)
    fit = A.compare_posteriors(model, grid, exact, num_samples=2000)
    for value in (fit.kl_true_clean, fit.kl_true_mixture, fit.kl_clean_true, fit.kl_mixture_true):
        assert abs(value) < 5e-3
    # a wrong q scores worse in both directions
    shifted = A.MixturePosterior(x, x[None], loc[None] + 0.5, var[None], loc + 0.5, var)
    worse = A.compare_posteriors(model, grid, shifted, num_samples=2000)
    assert worse.kl_true_clean > 0.3 and worse.kl_clean_true > 0.3
    assert fit.log_clean.shape == (len(fit.z2), len(fit.z1))


def test_grid_posterior_is_the_prior_when_the_decoder_ignores_z():
    model = tiny_model(latent_dim=2)
    last = model.decoder[-1]
    with torch.no_grad():
        last.weight.zero_()
    x = (torch.rand(64, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    grid = A.true_posterior_grid(model, x)
    log_px = model.log_likelihood(x, torch.zeros(1, 2)).item()  # the same for every z
    assert grid.log_evidence == pytest.approx(log_px, abs=1e-4)
    prior = -0.5 * (LOG_2PI * 2 + (grid.points() ** 2).sum(-1))
    np.testing.assert_allclose(grid.log_posterior, prior, atol=1e-4)


def test_grid_posterior_of_a_trained_model_matches_a_brute_force_grid(tiny_checkpoints, digits):
    model = load_checkpoint(tiny_checkpoints / "digits-vae-2d.pt").model
    x = digits.test[7]
    grid = A.true_posterior_grid(model, x)
    z = np.linspace(-7, 7, 561)  # a wide, uniform grid with no adaptive box
    pts = torch.tensor(np.stack(np.meshgrid(z, z), -1).reshape(-1, 2), dtype=torch.float32)
    brute = torch.logsumexp(A.log_joint_at(model, x, pts).double(), 0).item() + 2 * math.log(z[1] - z[0])
    assert grid.log_evidence == pytest.approx(brute, abs=2e-3)


def test_kl_from_q_to_the_true_posterior_is_the_elbo_gap(tiny_checkpoints, digits):
    model = load_checkpoint(tiny_checkpoints / "digits-dvae-2d.pt").model
    x = digits.test[2]
    mix = A.mixture_posterior(model, x, "salt-pepper", 0.1, num_copies=8, seed=0)
    grid = A.true_posterior_grid(model, x)
    fit = A.compare_posteriors(model, grid, mix, num_samples=20000)
    with torch.no_grad():
        elbo = log_weights(model, x[None], x[None, None], 20000, torch.Generator().manual_seed(1)).mean().item()
    assert fit.kl_clean_true == pytest.approx(grid.log_evidence - elbo, abs=0.05)
    assert fit.kl_clean_true > 0 and fit.kl_mixture_true > 0 and fit.kl_true_clean > 0


def test_clean_fit_is_the_clean_half_of_the_comparison_and_does_not_depend_on_the_noise(tiny_checkpoints, digits):
    model = load_checkpoint(tiny_checkpoints / "digits-dvae-2d.pt").model
    x = digits.test[3]
    grid = A.true_posterior_grid(model, x)
    low = A.mixture_posterior(model, x, "salt-pepper", 0.1, num_copies=8, seed=0)
    high = A.mixture_posterior(model, x, "salt-pepper", 0.5, num_copies=20, seed=0)
    clean = A.fit_clean_posterior(model, grid, low, num_samples=500, seed=3)
    assert A.fit_clean_posterior(model, grid, high, num_samples=500, seed=3) == clean  # same x, same draws
    fit = A.compare_posteriors(model, grid, high, num_samples=500, seed=3)
    assert (fit.kl_true_clean, fit.kl_clean_true) == clean
    reused = A.compare_posteriors(model, grid, high, num_samples=500, seed=3, clean_fit=clean)
    assert (reused.kl_true_mixture, reused.kl_mixture_true) == (fit.kl_true_mixture, fit.kl_mixture_true)
    other_seed = A.fit_clean_posterior(model, grid, low, num_samples=500, seed=4)
    assert other_seed[0] == clean[0] and other_seed[1] != clean[1]  # the grid KL has no draws; the other has


def test_mixture_log_density_matches_the_per_component_sum_in_float64():
    generator = torch.Generator().manual_seed(0)
    loc = torch.randn(16, 2, generator=generator) * 2
    var = torch.rand(16, 2, generator=generator) * 0.1 + 1e-3  # narrow components: large terms far from them
    z = torch.randn(3, 500, 2, generator=generator) * 3
    direct = torch.logsumexp(torch.stack([A.gaussian_log_density(z.double(), m.double(), v.double())
                                          for m, v in zip(loc, var)], dim=-1), dim=-1) - math.log(16)
    got = A.mixture_log_density(z, loc, var)
    assert got.shape == (3, 500) and got.dtype == torch.float32
    # float64 inside, so the error is the float32 result's rounding (half an ulp, 2^-24 relative) plus float64
    # arithmetic far below it: one ulp bounds both
    np.testing.assert_allclose(got.double(), direct, rtol=2**-23, atol=0)


def test_grid_posterior_of_a_linear_gaussian_model_is_exact_on_the_adaptive_grid(linear_gaussian):
    model, x, post_mean, post_cov, evidence = linear_gaussian
    grid = A.true_posterior_grid(model, x)  # no grid_size: grows until log p(x) and the entropy settle
    # the midpoint rule on a Gaussian converges faster than any power of the cell size, so once two nested grids
    # agree to the tolerance (1e-4) the finer one is far closer; what is left is the mass outside the box (~1e-6)
    assert grid.log_evidence == pytest.approx(evidence, abs=1e-4)
    mass = np.exp(grid.log_posterior) * grid.cell_area
    mean = (mass[..., None] * grid.points()).sum((0, 1))
    np.testing.assert_allclose(mean, post_mean, atol=1e-4)


def test_decoder_grid_gives_the_log_joint_of_any_image_by_one_product(digits):
    model = tiny_model(latent_dim=2, input_dim=digits.test.shape[1])
    search = A.decoder_grid(model, extent=3.0, size=17)
    assert search.hidden.shape == (17 * 17, 16) and search.covers(3.0) and not search.covers(3.5)
    points = torch.as_tensor(search.points().reshape(-1, 2), dtype=torch.float32)
    for x in digits.test[:3]:
        direct = A.log_joint_at(model, x, points).numpy().reshape(17, 17)
        with torch.no_grad():
            logits = model.decoder(points).double()
        # both sum 784 float32 terms (x·l and softplus(l)) in different orders: each sum is off by at most about
        # log2(784) float32 roundings (2^-24) of the sum of the terms' sizes
        scale = ((x.double() * logits).abs() + torch.nn.functional.softplus(logits)).sum(-1).numpy().reshape(17, 17)
        assert np.all(np.abs(search.log_joint(x) - direct) <= 2 * 10 * 2**-24 * scale)
    assert A.decoder_grid(tiny_model(latent_dim=3)) is None
    assert A.decoder_grid(tiny_model(latent_dim=2, likelihood="gaussian")) is None


def test_grid_posterior_is_the_same_with_or_without_the_decoder_grid(tiny_checkpoints, digits):
    model = load_checkpoint(tiny_checkpoints / "digits-vae-2d.pt").model
    search = A.decoder_grid(model)
    for x in digits.test[:4]:
        direct, fast = A.true_posterior_grid(model, x), A.true_posterior_grid(model, x, decoder_grid=search)
        # each is within the adaptive tolerance (1e-4) of the converged value
        assert fast.log_evidence == pytest.approx(direct.log_evidence, abs=2e-4)


class MixtureJoint(VAE):
    """A 2-D model whose joint p(x, z) is a mixture of isotropic Gaussians in z (weights sum to 1): log p(x) = 0."""

    def __init__(self, components: list[tuple[float, tuple[float, float], float]]) -> None:
        super().__init__(ModelSpec(4, latent_dim=2, hidden_units=4, likelihood="gaussian"))
        self.components = components

    def log_likelihood(self, x, z):
        z = z.double()
        terms = [math.log(w) - 0.5 * (((z - torch.tensor(m, dtype=torch.float64)) / sd) ** 2).sum(-1)
                 - math.log(2 * math.pi * sd**2) for w, m, sd in self.components]
        return (torch.logsumexp(torch.stack(terms), 0) - self.log_prior(z)).float()

    @staticmethod
    def log_prior(z):
        return -0.5 * (2 * LOG_2PI + (z.double() ** 2).sum(-1)).float()


def test_grid_box_keeps_a_sharp_mode_only_the_encoder_box_sees():
    sharp = (3.0137, 0.0241)  # between the coarse grid's points, far narrower than its cells
    model = MixtureJoint([(0.5, (-2.0, 0.0), 0.5), (0.5, sharp, 0.005)])
    grid = A.true_posterior_grid(model, torch.zeros(4), focus=[(torch.tensor(sharp), torch.tensor([0.005**2] * 2))])
    assert grid.z1[0] < -2.0 - 5 * 0.5 and grid.z1[-1] > sharp[0] + 5 * 0.005  # both modes inside the box


def test_grid_says_when_its_largest_size_has_not_settled(monkeypatch):
    model = MixtureJoint([(1.0, (0.3, -0.2), 0.05)])
    focus = [(torch.tensor([0.3, -0.2]), torch.tensor([0.05**2] * 2))]
    settled = A.true_posterior_grid(model, torch.zeros(4), focus=focus)
    assert settled.converged and settled.log_evidence == pytest.approx(0.0, abs=1e-4)
    monkeypatch.setattr(A, "FIRST_GRID_SIZE", 3)  # 3², then 5²: far too coarse to agree to 1e-4
    monkeypatch.setattr(A, "MAX_GRID_SIZE", 5)
    assert not A.true_posterior_grid(model, torch.zeros(4), focus=focus).converged


def test_grid_ignores_a_focus_box_too_narrow_for_float64():
    model = MixtureJoint([(1.0, (1.0, -0.5), 0.3)])
    grid = A.true_posterior_grid(model, torch.zeros(4), focus=[(torch.tensor([4.0, 4.0]), torch.tensor([4e-32] * 2))])
    assert grid.log_evidence == pytest.approx(0.0, abs=1e-4)


def test_mass_box_of_a_standard_normal_holds_all_but_the_threshold():
    z = np.linspace(-8, 8, 321)
    log_density = -0.5 * (z[None] ** 2 + z[:, None] ** 2) - math.log(2 * math.pi)  # (G2, G1)
    lo, hi = A._mass_box([(z, z, log_density)], 1e-6)
    # the densest cells holding 1 − ε of N(0, I) form a disc of radius √(2 ln 1/ε); the box around it is padded
    # by one cell, and the cut falls within a cell of the radius
    radius, step = math.sqrt(2 * math.log(1e6)), z[1] - z[0]
    for corner in (-lo, hi):
        assert np.all(np.abs(corner - radius - step) <= step)


def test_grid_posterior_needs_a_two_dimensional_latent():
    with pytest.raises(ValueError, match="2-D latent"):
        A.true_posterior_grid(tiny_model(latent_dim=3), torch.zeros(64))


def test_hpd_coverage_of_a_gaussian_follows_the_chi_square_law():
    z = np.linspace(-6, 6, 401)
    z1, z2 = np.meshgrid(z, z)
    log_density = -0.5 * (z1**2 + z2**2)
    coverage = A.hpd_coverage(log_density)
    radius = np.sqrt(z1**2 + z2**2)
    # the mass inside radius r of a standard 2-D Gaussian is 1 − exp(−r²/2)
    np.testing.assert_allclose(coverage, 1 - np.exp(-(radius**2) / 2), atol=3e-3)
    assert coverage.max() == pytest.approx(1.0)


# --- reconstructions ---------------------------------------------------------------------------

def test_reconstruction_at_noise_zero_scores_the_clean_posterior_mean(digits):
    models = {"a": tiny_model(seed=0), "b": tiny_model(latent_dim=3, seed=1)}
    x = digits.test[:5]
    out = A.reconstruct(models, x, "salt-pepper", 0.0)
    assert torch.equal(out.x_noisy, x)
    for name, model in models.items():
        z_loc = model.encode(x)[0].detach()
        torch.testing.assert_close(out.images[name], model.decode(z_loc).detach())
        torch.testing.assert_close(out.log_likelihood[name], model.log_likelihood(x, z_loc).detach())
        assert out.log_likelihood[name].shape == (5,) and (out.log_likelihood[name] < 0).all()


def test_reconstruction_noise_is_shared_seeded_and_level_dependent(digits):
    models = {"a": tiny_model(), "b": tiny_model(seed=3)}
    x = digits.test[:8]
    low = A.reconstruct(models, x, "salt-pepper", 0.1, seed=2)
    again = A.reconstruct(models, x, "salt-pepper", 0.1, seed=2)
    high = A.reconstruct(models, x, "salt-pepper", 0.5, seed=2)
    assert torch.equal(low.x_noisy, again.x_noisy)
    assert (low.x_noisy != x).float().mean() < (high.x_noisy != x).float().mean()
    # both models are scored on the same corrupted x̃
    z_b = models["b"].encode(low.x_noisy)[0].detach()
    torch.testing.assert_close(low.log_likelihood["b"], models["b"].log_likelihood(x, z_b).detach())
    sampled = A.reconstruct(models, x, "salt-pepper", 0.1, seed=2, z_choice="sample")
    assert not torch.equal(sampled.images["a"], low.images["a"])


def test_reconstruction_rejects_mismatched_models_and_bad_batches(digits):
    with pytest.raises(ValueError, match="expects 100 pixels"):
        A.reconstruct({"big": tiny_model(input_dim=100)}, digits.test[:2], "none", 0.0)
    with pytest.raises(ValueError, match="non-empty"):
        A.reconstruct({"a": tiny_model()}, torch.zeros(0, 64), "none", 0.0)
    with pytest.raises(ValueError, match="z_choice"):
        A.reconstruct({"a": tiny_model()}, digits.test[:2], "none", 0.0, z_choice="mode")


# --- samples and interpolation ------------------------------------------------------------------

def test_interpolation_ends_decode_the_encoder_means(digits):
    model = tiny_model(latent_dim=3)
    x_a, x_b = digits.test[0], digits.test[1]
    z_a, z_b = model.encode(torch.stack([x_a, x_b]))[0].detach()
    for spherical in (False, True):
        images, z = A.interpolate(model, x_a, x_b, steps=5, spherical=spherical)
        assert images.shape == (5, 64) and z.shape == (5, 3)
        torch.testing.assert_close(images[0], model.decode(z_a).detach())
        torch.testing.assert_close(images[-1], model.decode(z_b).detach())
    _, z_linear = A.interpolate(model, x_a, x_b, steps=5)
    torch.testing.assert_close(z_linear[2], (z_a + z_b) / 2)
    with pytest.raises(ValueError, match="at least 2"):
        A.interpolate(model, x_a, x_b, steps=1)


def test_slerp_keeps_the_norm_between_equal_norm_ends():
    z_a, z_b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    path = A.slerp(z_a, z_b, torch.linspace(0, 1, 7))
    torch.testing.assert_close(path.norm(dim=1), torch.full((7,), 3.0))
    torch.testing.assert_close(path[3], torch.tensor([3.0, 3.0]) / math.sqrt(2))


def test_prior_samples_are_seeded_mean_images():
    model = tiny_model()
    a, b, c = A.prior_samples(model, 6, seed=1), A.prior_samples(model, 6, seed=1), A.prior_samples(model, 6, seed=2)
    assert a.shape == (6, 64) and torch.equal(a, b) and not torch.equal(a, c)
    assert ((a >= 0) & (a <= 1)).all()
    binary = A.model_inputs(model, 6, seed=1)
    assert set(binary.unique().tolist()) <= {0.0, 1.0}


def test_latent_grid_images_cover_the_prior_in_equal_probability_steps():
    images, values = A.latent_grid_images(tiny_model(), per_axis=5, outer_quantile=0.1)
    assert images.shape == (25, 64)
    np.testing.assert_allclose(values, [-1.2815516, -0.5244005, 0.0, 0.5244005, 1.2815516], atol=1e-6)
    with pytest.raises(ValueError, match="2-D latent"):
        A.latent_grid_images(tiny_model(latent_dim=3))


# --- user images --------------------------------------------------------------------------------

def test_prepare_image_inverts_a_drawing_on_white_and_resizes_by_area():
    drawing = np.full((16, 16), 255, dtype=np.uint8)  # white paper
    drawing[:8, :8] = 0  # black ink in the top-left quadrant
    out = A.prepare_image(drawing, (8, 8), binary=False).reshape(8, 8)
    expected = np.zeros((8, 8), dtype=np.float32)
    expected[:4, :4] = 1.0
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-6)
    # a dark background is left as it is
    np.testing.assert_allclose(A.prepare_image(255 - drawing, (8, 8), binary=False).reshape(8, 8).numpy(), expected,
                               atol=1e-6)


def test_prepare_image_thresholds_for_bernoulli_models_and_keeps_grey_otherwise():
    grey = np.array([[0.2, 0.6], [0.49, 0.9]])
    np.testing.assert_array_equal(A.prepare_image(grey, (2, 2), binary=True, invert=False).numpy(), [0, 1, 0, 1])
    np.testing.assert_allclose(A.prepare_image(grey, (2, 2), binary=False, invert=False).numpy(), grey.ravel(),
                               rtol=1e-6)


def test_prepare_image_reads_rgba_and_png_bytes():
    from PIL import Image

    rgba = np.zeros((10, 10, 4), dtype=np.uint8)  # fully transparent: white paper
    rgba[2:8, 4:6] = [0, 0, 0, 255]  # an opaque black stroke
    out = A.prepare_image(rgba, (10, 10), binary=True).reshape(10, 10).numpy()
    assert out[2:8, 4:6].all() and out.sum() == 12
    buffer = io.BytesIO()
    Image.fromarray(rgba).save(buffer, format="PNG")
    from_png = A.prepare_image(buffer.getvalue(), (5, 5), binary=False)
    assert from_png.shape == (25,) and from_png.dtype == torch.float32
    torch.testing.assert_close(from_png, A.prepare_image(rgba, (5, 5), binary=False))


def test_prepare_image_centres_the_ink_like_mnist():
    canvas = np.zeros((100, 100))
    canvas[0:20, 80:100] = 1.0  # a small blob in a corner
    out = A.prepare_image(canvas, (28, 28), binary=True, invert=False, center=True).reshape(28, 28).numpy()
    rows, cols = np.nonzero(out)
    assert 12 <= rows.mean() <= 15 and 12 <= cols.mean() <= 15  # centred
    assert 16 <= rows.max() - rows.min() + 1 <= 22  # scaled to fill about 20 of 28 pixels


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((0, 5)), "empty"),
        (np.array([[0.0, np.nan], [1.0, 0.5]]), "NaN"),
        (np.zeros(10), "shape"),
        (np.zeros((2, 3, 4, 5)), "shape"),
        (np.zeros((4, 4, 2)), "shape"),
        (np.array([["a", "b"]]), "numbers"),
        (b"", "empty"),
        (b"this is not an image", "not a readable image"),
    ],
)
def test_prepare_image_rejects_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        A.prepare_image(bad, (8, 8), binary=True)


def test_prepare_image_rejects_a_bad_target_shape():
    with pytest.raises(ValueError, match="image_shape"):
        A.prepare_image(np.ones((4, 4)), (0, 8), binary=False)


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width × height`` pixels, with almost no pixel data (a "decompression bomb")."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 10)) + chunk(b"IEND", b""))


def _png(size: int = 40) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (size, size), 255).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (_png_claiming(20_000, 20_000), "the limit here is 25,000,000 pixels"),  # past PIL's own bomb limit
        (_png_claiming(6_000, 6_000), "6,000 × 6,000 pixels; the limit here is 25,000,000 pixels"),
        (_png()[: len(_png()) // 2], "damaged or incomplete"),
        (b"GIF89a" + b"\0" * 20, "damaged or incomplete|not a readable image"),
        (b"\x00" * 64, "not a readable image file: this app reads PNG, JPEG"),
    ],
)
def test_bad_image_files_get_plain_messages_without_internals(bad, message):
    with pytest.raises(ValueError, match=message) as caught:
        A.prepare_image(bad, (28, 28), binary=True)
    text = str(caught.value)
    for internal in ("0x", "BytesIO", "decompression bomb", "DOS attack", "cannot identify"):
        assert internal not in text
