"""The exact bound lab: the counterexample's numbers, the orderings, the grid, the estimators, real models."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.integrate import quad
from scipy.special import logsumexp

from dvae_engine import boundlab as bl
from dvae_engine.corruption import corrupt

# --- Ranganath's counterexample --------------------------------------------------------------------


def test_counterexample_pins_the_published_numbers():
    out = bl.ranganath_counterexample(0.1)
    expected_independent = 0.5 * (0.5 * math.log(0.5 / 0.1) + 0.5 * math.log(0.5 / 0.9)) * 2
    assert out["dvae_independent"] == pytest.approx(0.510826, abs=1e-6)
    assert out["dvae_independent"] == pytest.approx(expected_independent, rel=1e-12)
    assert out["log_px"] == 0.0
    assert out["cvae"] == pytest.approx(0.0, abs=1e-15)
    assert out["mixture_z1"] == pytest.approx(0.5)
    # joint reading: −KL(Bernoulli(0.1) ‖ Bernoulli(½)) = 0.1 log 0.2 + 0.9 log 1.8
    kl = 0.1 * math.log(0.1 / 0.5) + 0.9 * math.log(0.9 / 0.5)
    assert out["dvae_joint"] == pytest.approx(-kl, rel=1e-12)
    assert out["expected_kl"] == pytest.approx(out["cvae"] - out["dvae_joint"], rel=1e-12)
    assert out["diwae"] == pytest.approx(out["dvae_joint"], rel=1e-12)  # M = K = 1 is the joint reading


def test_counterexample_independent_reading_grows_without_bound_joint_stays_below():
    a = np.array([0.45, 0.3, 0.1, 0.01, 1e-4, 1e-8])  # q(z=1|x̃=0) = 1 − a → 1
    sweep = bl.ranganath_sweep(a)
    np.testing.assert_allclose(sweep["dvae_independent"], 0.5 * np.log(1 / (4 * a * (1 - a))), rtol=1e-10)
    assert np.all(np.diff(sweep["dvae_independent"]) > 0)
    assert sweep["dvae_independent"][-1] > 8.5  # ½ log(1/(4a)) ≈ 8.52 at a = 1e-8
    assert np.all(sweep["dvae_joint"] <= 0)
    assert np.all(sweep["dvae_joint"] >= -math.log(2))  # −KL(Bern(a) ‖ Bern(½)) ≥ −log 2
    np.testing.assert_allclose(sweep["cvae"], 0.0, atol=1e-12)
    np.testing.assert_allclose(sweep["log_px"], 0.0)


def test_counterexample_diwae_enumeration_matches_brute_force():
    a, m, k = 0.2, 2, 3
    exact = bl.ranganath_counterexample(a, m, k)["diwae"]
    # brute force: every x̃ pattern of M copies and every z pattern of M·K samples
    q1 = {0: 1 - a, 1: a}  # q(z=1|x̃)
    total = 0.0
    for noisy in np.ndindex(*(2,) * m):
        for zs in np.ndindex(*(2,) * (m * k)):
            prob = 0.5**m
            weights = []
            for i, z in enumerate(zs):
                p1 = q1[noisy[i // k]]
                qz = p1 if z == 1 else 1 - p1
                prob *= qz
                weights.append(0.5 / qz)
            total += prob * math.log(np.mean(weights))
    assert exact == pytest.approx(total, rel=1e-12)
    # a lower bound on log p(x) = 0 for every M, K, tightening as K grows
    values = [bl.ranganath_counterexample(0.1, 1, k)["diwae"] for k in (1, 2, 5, 20, 100)]
    assert all(v <= 0 for v in values)
    assert all(np.diff(values) > 0)
    assert values[-1] > -0.01


def test_counterexample_rejects_bad_a():
    for a in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError):
            bl.ranganath_counterexample(a)


# --- corruption enumerated exactly -------------------------------------------------------------------


@pytest.mark.parametrize("noise", bl.LAB_NOISES)
@pytest.mark.parametrize("level", [0.0, 0.07, 0.3, 0.5, 1.0])
def test_corruption_weights_are_distributions(noise, level):
    w = bl.corruption_weights(5, 13, noise, level)
    assert w.shape == (32,)
    assert np.all(w >= 0)
    assert w.sum() == pytest.approx(1.0, abs=1e-14)
    if level == 0:
        assert w[13] == 1.0


def test_salt_pepper_is_bit_flip_at_half_the_rate():
    np.testing.assert_allclose(bl.corruption_weights(4, 6, "salt-pepper", 0.3),
                               bl.corruption_weights(4, 6, "bit-flip", 0.15), rtol=1e-14)


def test_bit_flip_weight_by_hand():
    # x = 101, x̃ = 011: two flips, one kept pixel
    w = bl.corruption_weights(3, 0b101, "bit-flip", 0.2)
    assert w[0b011] == pytest.approx(0.2**2 * 0.8)


def test_count_noise_matches_the_training_engine_sampler():
    d, code, level, n = 6, 0b110010, 0.34, 40000  # round(0.34·6) = 2 pixels replaced
    x = torch.tensor(bl.binary_inputs(d)[code], dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    draws = corrupt(x.unsqueeze(0), "salt-pepper", level, n, g)[:, 0].numpy()  # (n, D)
    counts = np.bincount(bl.bits_to_code(draws), minlength=2**d)
    w = bl.corruption_weights(d, code, "salt-pepper-count", level)
    assert np.all(counts[w == 0] == 0)
    z = (counts - n * w) / np.sqrt(n * w * (1 - w) + 1e-300)
    assert np.max(np.abs(z[w > 0])) < 4.5


@pytest.mark.parametrize("noise", bl.LAB_NOISES)
def test_pixelwise_sampler_matches_the_weights(noise):
    d, code, level, n = 4, 0b1001, 0.4, 40000
    draws = bl.sample_corruptions(bl.binary_inputs(d)[code], noise, level, n, np.random.default_rng(1))
    counts = np.bincount(bl.bits_to_code(draws), minlength=2**d)
    w = bl.corruption_weights(d, code, noise, level)
    z = (counts - n * w) / np.sqrt(n * w * (1 - w) + 1e-300)
    assert np.all(counts[w == 0] == 0)
    assert np.max(np.abs(z[w > 0])) < 4.5


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="D"):
        bl.binary_inputs(11)
    with pytest.raises(ValueError, match="noise"):
        bl.corruption_weights(3, 0, "gaussian", 0.1)
    with pytest.raises(ValueError, match="probability"):
        bl.corruption_weights(3, 0, "bit-flip", 1.5)
    with pytest.raises(ValueError, match="code"):
        bl.corruption_weights(3, 8, "bit-flip", 0.1)
    with pytest.raises(ValueError, match="latent"):
        bl.latent_grid(3)
    model = bl.random_tiny_model(3, 1)
    with pytest.raises(ValueError, match="z_loc"):
        bl.TinyModel(model.decoder_weight, model.decoder_bias, model.z_loc[:4], model.z_log_var)


# --- the exact lab on random tiny models -----------------------------------------------------------

RANDOM_CASES = [
    # (D, latent, noise, level, encoder, seed)
    (d, latent, noise, level, encoder, seed)
    for seed, (d, latent, noise, level, encoder) in enumerate([
        (2, 1, "bit-flip", 0.1, "linear"), (3, 1, "salt-pepper", 0.5, "posterior"),
        (4, 2, "bit-flip", 0.25, "linear"), (5, 2, "salt-pepper", 0.2, "posterior"),
        (6, 1, "salt-pepper-count", 0.34, "linear"), (6, 2, "salt-pepper-count", 0.5, "posterior"),
        (2, 2, "salt-pepper", 1.0, "linear"), (3, 2, "bit-flip", 0.05, "posterior"),
        (4, 1, "bit-flip", 0.45, "posterior"), (5, 1, "salt-pepper", 0.1, "linear"),
        (6, 1, "bit-flip", 0.02, "posterior"), (6, 2, "salt-pepper", 0.3, "linear"),
        (3, 1, "salt-pepper-count", 0.67, "posterior"), (4, 2, "salt-pepper-count", 0.25, "linear"),
        (5, 2, "bit-flip", 0.5, "linear"), (2, 1, "salt-pepper", 0.8, "posterior"),
        (5, 1, "salt-pepper-count", 0.2, "posterior"), (3, 2, "salt-pepper", 0.15, "linear"),
        (4, 1, "bit-flip", 0.7, "linear"), (6, 2, "bit-flip", 0.12, "posterior"),
    ])
]


@pytest.mark.parametrize("d,latent,noise,level,encoder,seed", RANDOM_CASES)
def test_ordering_and_kl_identity_on_random_tiny_models(d, latent, noise, level, encoder, seed):
    model = bl.random_tiny_model(d, latent, seed=seed, encoder=encoder)
    x_code = seed % 2**d
    out = bl.exact_quantities(model, x_code, noise, level, direct_kl=True)
    assert out["grid_mass"] == pytest.approx(1.0, abs=1e-9)
    assert out["entropy_grid_error"] < 1e-8
    # Proposition 1's gap, two routes: the difference of the objectives and a direct per-component sum
    assert out["expected_kl"] == pytest.approx(out["expected_kl_direct"], rel=1e-6, abs=1e-10)
    assert out["expected_kl_direct"] >= -1e-12
    assert out["log_px"] >= out["cvae"] - 1e-9
    assert out["cvae"] >= out["dvae_joint"] - 1e-9
    assert out["log_px"] >= out["elbo"] - 1e-9


def test_sweep_equals_levels_one_at_a_time():
    model = bl.random_tiny_model(4, 2, seed=3)
    levels = [0.0, 0.2, 0.6]
    sweep = bl.noise_sweep(model, 5, "salt-pepper", levels)
    for i, level in enumerate(levels):
        one = bl.exact_quantities(model, 5, "salt-pepper", level)
        for key in ("log_px", "elbo", "cvae", "dvae_joint", "dvae_independent", "expected_kl"):
            assert sweep[key][i] == pytest.approx(one[key], rel=1e-12, abs=1e-12)


def test_grid_log_px_matches_finer_grid_and_quadrature():
    model = bl.random_tiny_model(5, 1, seed=7, decoder_scale=2.0)
    x_code = 0b10110
    x_bits = bl.binary_inputs(5)[x_code]
    default = bl.exact_quantities(model, x_code, "bit-flip", 0.1)["log_px"]
    finer = bl.exact_quantities(model, x_code, "bit-flip", 0.1, grid=bl.latent_grid(1, 8001, 12.0))["log_px"]
    value, _ = quad(lambda z: math.exp(model.log_joint(x_bits, np.array([z]))), -np.inf, np.inf,
                    epsabs=0, epsrel=1e-12, limit=200)
    assert default == pytest.approx(finer, abs=1e-10)
    assert default == pytest.approx(math.log(value), abs=1e-9)


def test_2d_grid_log_px_matches_finer_grid():
    model = bl.random_tiny_model(4, 2, seed=2)
    coarse = bl.exact_quantities(model, 3, "bit-flip", 0.2)
    fine = bl.exact_quantities(model, 3, "bit-flip", 0.2, grid=bl.latent_grid(2, 401, 10.0))
    for key in ("log_px", "elbo", "cvae", "dvae_joint", "dvae_independent"):
        assert coarse[key] == pytest.approx(fine[key], abs=1e-8)


@pytest.mark.parametrize("noise", bl.LAB_NOISES)
@pytest.mark.parametrize("latent", [1, 2])
def test_no_noise_collapses_every_reading_to_the_elbo(noise, latent):
    model = bl.random_tiny_model(4, latent, seed=11)
    out = bl.exact_quantities(model, 9, noise, 0.0, direct_kl=True)
    for key in ("cvae", "dvae_joint", "dvae_independent"):
        assert out[key] == pytest.approx(out["elbo"], abs=1e-9)
    assert out["expected_kl_direct"] == pytest.approx(0.0, abs=1e-9)
    assert out["log_px"] > out["elbo"]  # the linear encoder is not the posterior


def spread_encoder_model() -> bl.TinyModel:
    """D = 2, 1-D latent; narrow encoder components far apart (±2.5, σ = 0.3) for the two values of pixel 1."""
    weight, bias = np.array([[1.0], [-0.5]]), np.array([0.2, -0.3])
    z_loc, z_log_var = bl.linear_encoder(np.array([[2.5, 0.0]]), np.zeros(1), np.zeros((1, 2)),
                                         np.full(1, math.log(0.3)))
    return bl.TinyModel(weight, bias, z_loc, z_log_var)


def test_independent_reading_exceeds_log_px_with_gaussian_encoders():
    model = spread_encoder_model()
    out = bl.exact_quantities(model, 0b10, "bit-flip", 0.3)
    assert out["dvae_independent"] > out["log_px"] + 5.0  # not a bound, by a wide margin
    assert out["dvae_joint"] < out["cvae"] < out["log_px"]  # while the joint reading and L_cvae are
    # and the same happens on a random model with a posterior-matched encoder, at low noise
    model = bl.random_tiny_model(10, 1, seed=1, encoder="posterior")
    out = bl.exact_quantities(model, 5, "bit-flip", 0.1)
    assert out["dvae_independent"] > out["log_px"]
    assert out["gap_dvae_independent"] < 0


def test_latent_densities_are_normalised_and_consistent():
    model = bl.random_tiny_model(4, 2, seed=5)
    dens = bl.latent_densities(model, 6, "bit-flip", 0.3, max_components=5)
    step = dens["axes"][0][1] - dens["axes"][0][0]
    assert dens["posterior"].shape == (201, 201)
    assert dens["posterior"].sum() * step**2 == pytest.approx(1.0, abs=1e-9)
    assert dens["mixture"].sum() * step**2 == pytest.approx(1.0, abs=1e-9)
    assert dens["components"].shape == (5, 201, 201)
    np.testing.assert_allclose(dens["components"].sum(axis=(1, 2)) * step**2, dens["component_weights"], rtol=1e-9)
    assert dens["component_weights"][0] == pytest.approx(0.7**4)  # x̃ = x is the heaviest
    assert dens["other_weight"] == pytest.approx(1 - dens["component_weights"].sum())
    assert np.all(dens["components"].sum(0) <= dens["mixture"] + 1e-12)


# --- Monte Carlo estimators converge to the exact values -----------------------------------------


@pytest.mark.parametrize("latent,noise,level", [(1, "bit-flip", 0.2), (2, "salt-pepper", 0.5),
                                                (1, "salt-pepper-count", 0.4)])
def test_monte_carlo_estimators_converge_to_exact(latent, noise, level):
    model = bl.random_tiny_model(5, latent, seed=21)
    exact = bl.exact_quantities(model, 19, noise, level)
    estimates = bl.monte_carlo_estimates(model, 19, noise, level, num_draws=40000, seed=4)
    for name, est in estimates.items():
        assert est["stderr"] > 0
        assert abs(est["mean"] - exact[name]) < 4 * est["stderr"], name


def test_monte_carlo_independent_reading_shows_the_excess():
    model = spread_encoder_model()
    exact = bl.exact_quantities(model, 0b10, "bit-flip", 0.3)
    est = bl.monte_carlo_estimates(model, 0b10, "bit-flip", 0.3, num_draws=40000, seed=0)["dvae_independent"]
    assert abs(est["mean"] - exact["dvae_independent"]) < 4 * est["stderr"]
    assert est["mean"] - 4 * est["stderr"] > exact["log_px"]


def test_diwae_expectation():
    model = bl.random_tiny_model(5, 1, seed=8)
    exact = bl.exact_quantities(model, 4, "bit-flip", 0.2)
    one = bl.diwae_expectation(model, 4, "bit-flip", 0.2)
    assert one["exact"] and one["mean"] == pytest.approx(exact["dvae_joint"], rel=1e-12)
    draws = bl.monte_carlo_diwae(model, 4, "bit-flip", 0.2, 1, 1, num_draws=40000, seed=1)
    assert abs(draws.mean() - exact["dvae_joint"]) < 4 * draws.std() / math.sqrt(len(draws))
    many = bl.diwae_expectation(model, 4, "bit-flip", 0.2, num_corruptions=4, num_samples=50, num_draws=2000)
    assert not many["exact"]
    assert exact["dvae_joint"] < many["mean"] < exact["log_px"]  # tighter, still below log p(x)
    sweep = bl.diwae_sweep(model, 4, "bit-flip", [0.0, 0.2], 2, 3, num_draws=1000)
    assert sweep["mean"].shape == (2,) and not sweep["exact"]
    assert np.all(sweep["mean"] < exact["log_px"])


# --- on real models --------------------------------------------------------------------------------


def test_objective_vs_loglik_on_tiny_checkpoints(tiny_checkpoints, digits):
    from dvae_engine import load_checkpoint
    from dvae_engine.evaluation import training_objective_kwargs

    x = digits.test[:40]
    for name in ("digits-vae-2d", "digits-diwae-4d"):
        ckpt = load_checkpoint(tiny_checkpoints / f"{name}.pt")
        calls = []
        out = bl.objective_vs_loglik(ckpt.model, x, training_objective_kwargs(ckpt.config, digits.train_mean()),
                                     importance_samples=300, repeats=8, batch_size=16, config=ckpt.config,
                                     progress=lambda done, total, calls=calls: calls.append((done, total)))
        for key in ("objective", "objective_stderr", "log_px", "log_px_mix", "log_px_plain", "elbo", "gap"):
            assert out[key].shape == (40,) and torch.isfinite(out[key]).all(), key
        assert calls[-1] == (40, 40)
        assert out["num_examples"] == 40 and 0 <= out["num_above"] <= 40
        assert (out["objective_stderr"] > 0).all()
        assert out["log_px_method"] == "mixture" and torch.equal(out["log_px"], out["log_px_mix"])
        assert out["log_px_mix"].mean() > out["elbo"].mean() and out["log_px_plain"].mean() > out["elbo"].mean()
        assert out["mean_gap"] == pytest.approx(float((out["log_px"] - out["objective"]).mean()))
        assert out["mean_gap"] > 0  # the sampled objective is a lower bound in expectation
        assert out["num_above"] <= 6
    with pytest.raises(ValueError, match="repeats"):
        bl.objective_vs_loglik(ckpt.model, x, {"objective": "vae"}, repeats=1)


def test_objective_vs_exact_loglik_on_a_2d_latent_model(tiny_checkpoints, digits):
    """For 2-D latents log p(x) is computed by quadrature: IS never beats it and the objective stays below it."""
    from dvae_engine import load_checkpoint
    from dvae_engine.evaluation import training_objective_kwargs

    ckpt = load_checkpoint(tiny_checkpoints / "digits-dvae-2d.pt")
    x = digits.test[:15]
    out = bl.objective_vs_loglik(ckpt.model, x, training_objective_kwargs(ckpt.config), importance_samples=2000,
                                 repeats=16, exact_2d=True, config=ckpt.config)
    assert out["log_px_exact"].shape == (15,) and out["log_px_method"] == "exact"
    # an IS estimate is low in expectation: never clearly above the exact value, for either proposal
    assert (out["log_px_exact"] - out["log_px_plain"] > -0.05).all()
    assert (out["log_px_exact"] - out["log_px_mix"] > -0.05).all()
    assert out["num_above"] == 0
    assert "log_px_exact" not in bl.objective_vs_loglik(ckpt.model, x, training_objective_kwargs(ckpt.config),
                                                        importance_samples=10, repeats=2)


# --- the bridge: L⁽ᴷ⁾ rises to L_cvae, U⁽ᴷ⁾ falls to it --------------------------------------------

BRIDGE_CASES = [  # (D, latent, noise, level, encoder, seed, x_code)
    (2, 1, "bit-flip", 0.3, "linear", 2, 1), (4, 1, "bit-flip", 0.2, "linear", 0, 1),
    (3, 2, "salt-pepper", 0.5, "posterior", 1, 1), (4, 1, "salt-pepper-count", 0.5, "posterior", 4, 6),
    (3, 1, "salt-pepper", 0.8, "linear", 5, 3),
]
BRIDGE_KS = (1, 2, 3, 4, 8, 32, 256, 4096, 10**6)


@pytest.mark.parametrize("d,latent,noise,level,encoder,seed,x_code", BRIDGE_CASES)
def test_bridge_ends_are_the_two_readings_and_the_sequences_close_in_on_l_cvae(d, latent, noise, level, encoder,
                                                                                seed, x_code):
    model = bl.random_tiny_model(d, latent, seed=seed, encoder=encoder)
    exact = bl.exact_quantities(model, x_code, noise, level)
    br = bl.bridge_exact(model, x_code, noise, level, ks=BRIDGE_KS)
    # the ends: L⁽⁰⁾ is the joint reading (the DVAE objective), U⁽¹⁾ the independent reading; both are computed
    # here by a route (Frullani integrals in s) that shares nothing with exact_quantities but the grid
    assert br["lower0"] == pytest.approx(exact["dvae_joint"], abs=1e-10)
    assert br["upper1"] == pytest.approx(exact["dvae_independent"], abs=1e-10)
    assert br["upper"][0] == br["upper1"]
    assert br["cvae"] == pytest.approx(exact["cvae"], abs=1e-12)
    # L⁽⁰⁾ ≤ L⁽¹⁾ ≤ … ≤ L_cvae ≤ … ≤ U⁽¹⁾, strictly monotone (the encoder components differ)
    lower = np.concatenate([[br["lower0"]], br["lower"]])
    assert np.all(np.diff(lower) > 0) and np.all(np.diff(br["upper"]) < 0)
    assert np.all(br["lower_gap"] > 0) and np.all(br["upper_gap"] > 0)
    assert br["lower"][-1] < br["cvae"] < br["upper"][-1]
    # the limits, at the rate the delta method gives: E KL(r_n ‖ q̃) ≈ E KL(q̃ ‖ r_n) ≈ χ²/(2n), χ² = E_q̃ Var(w)
    n = np.asarray(BRIDGE_KS, dtype=float)
    assert (n[-1] + 1) * br["lower_gap"][-1] == pytest.approx(br["chi2"] / 2, rel=1e-4)
    assert n[-1] * br["upper_gap"][-1] == pytest.approx(br["chi2"] / 2, rel=1e-4)
    assert exact["log_px"] >= br["cvae"]


@pytest.mark.parametrize("d,latent,noise,level,encoder,seed,x_code", BRIDGE_CASES[:4])
def test_bridge_quadrature_equals_brute_force_enumeration(d, latent, noise, level, encoder, seed, x_code):
    """Every multiset of corrupted inputs with its multinomial probability, each mixture integrated on the grid:
    L⁽ᴷ⁾ = E ELBO(r_{K+1}), U⁽ᴷ⁾ = E_{z~q̃}[log p(x,z) − log r_K(z)]. Agreement to rounding (1e-11)."""
    model = bl.random_tiny_model(d, latent, seed=seed, encoder=encoder)
    ks = (1, 2, 3) if 2**d <= 8 else (1, 2)
    br = bl.bridge_exact(model, x_code, noise, level, ks=ks)
    for i, k in enumerate(ks):
        brute = bl.bridge_enumerated(model, x_code, noise, level, k)
        assert brute["lower"] == pytest.approx(br["lower"][i], abs=1e-11)
        assert brute["upper"] == pytest.approx(br["upper"][i], abs=1e-11)


def test_bridge_on_spread_encoders_upper_sequence_starts_above_log_px():
    """U⁽ᴷ⁾ bounds L_cvae, not log p(x): with narrow components far apart it starts far above log p(x)."""
    model = spread_encoder_model()
    br = bl.bridge_exact(model, 0b10, "bit-flip", 0.3, ks=(1, 2, 4, 16, 256, 4096))
    assert br["upper"][0] > br["log_px"] + 50 and br["upper"][2] > br["log_px"]
    assert br["upper"][3] < br["log_px"]  # and falls below it on its way down to L_cvae
    assert br["upper"][-1] - br["cvae"] < 1e-3 and br["cvae"] - br["lower"][-1] < 1e-3
    # L⁽ᴷ⁾ − L⁽⁰⁾ ≤ log(K+1): the mixture can gain at most log(K+1) over the own component
    assert np.all(br["lower"] - br["lower0"] <= np.log(br["ks"] + 1.0))


@pytest.mark.parametrize("latent,noise,level,seed", [(1, "bit-flip", 0.3, 2), (2, "salt-pepper", 0.5, 1)])
def test_sampled_bridge_estimators_converge_to_the_exact_values(latent, noise, level, seed):
    """Each Monte Carlo mean within 4.5 of its own standard errors of the exact value (for 11 Gaussian-ish
    statistics the chance of any exceeding 4.5 s.e. is below 1e-4), and the standard errors shrink as 1/√n."""
    model = bl.random_tiny_model(3, latent, seed=seed)
    ks = (1, 2, 4, 8, 32)
    exact = bl.bridge_exact(model, 5, noise, level, ks=ks)
    mc = bl.monte_carlo_bridge(model, 5, noise, level, ks=ks, num_draws=40000, seed=3)
    assert abs(mc["lower0"] - exact["lower0"]) < 4.5 * mc["lower0_stderr"]
    assert np.all(np.abs(mc["lower"] - exact["lower"]) < 4.5 * mc["lower_stderr"])
    assert np.all(np.abs(mc["upper"] - exact["upper"]) < 4.5 * mc["upper_stderr"])
    small = bl.monte_carlo_bridge(model, 5, noise, level, ks=ks, num_draws=10000, seed=4)
    np.testing.assert_allclose(small["lower_stderr"] / mc["lower_stderr"], 2.0, rtol=0.1)


def test_bridge_refuses_bad_k():
    model = bl.random_tiny_model(2, 1)
    for bad in ((), (0, 1), (-1,)):
        with pytest.raises(ValueError, match="K"):
            bl.bridge_exact(model, 0, "bit-flip", 0.1, ks=bad)
    with pytest.raises(ValueError, match="K"):
        bl.monte_carlo_bridge(model, 0, "bit-flip", 0.1, ks=(0,))
    with pytest.raises(ValueError, match="multisets"):
        bl.bridge_enumerated(bl.random_tiny_model(6, 1), 0, "bit-flip", 0.1, 8)


@pytest.mark.parametrize("num_pixels, latent_dim, noise, level", [
    (4, 1, "bit-flip", 0.2), (7, 1, "salt-pepper", 0.0), (5, 2, "salt-pepper-count", 0.5), (6, 2, "bit-flip", 1.0)])
def test_the_lab_view_equals_its_three_parts_computed_apart(num_pixels, latent_dim, noise, level):
    model = bl.random_tiny_model(num_pixels, latent_dim, seed=3, encoder_scale=1.5, encoder_sigma=0.5)
    levels = (0.0, 0.1, 0.35, 0.8)
    point, sweep, densities = bl.lab_view(model, 5, noise, level, levels)
    alone = bl.exact_quantities(model, 5, noise, level)
    assert set(point) == set(alone)
    for key in alone:
        if key != "entropy_grid_error":  # a grid check, here over the components of every level
            assert point[key] == pytest.approx(alone[key], rel=1e-12, abs=1e-12), key
    assert point["entropy_grid_error"] >= alone["entropy_grid_error"]
    for key, values in bl.noise_sweep(model, 5, noise, levels).items():
        np.testing.assert_allclose(sweep[key], values, rtol=1e-12, atol=1e-12, err_msg=key)
    for key, values in bl.latent_densities(model, 5, noise, level).items():
        if key == "axes":
            assert all(np.array_equal(a, b) for a, b in zip(densities[key], values))
        else:
            np.testing.assert_allclose(densities[key], values, rtol=1e-12, atol=1e-300, err_msg=key)


@pytest.mark.parametrize("num_pixels, latent_dim, noise, level", [
    (4, 1, "bit-flip", 0.2), (7, 1, "salt-pepper", 0.0), (5, 2, "salt-pepper-count", 0.5), (6, 2, "bit-flip", 1.0)])
def test_a_noise_move_with_the_basis_and_sweep_kept_is_the_full_lab_view(num_pixels, latent_dim, noise, level):
    model = bl.random_tiny_model(num_pixels, latent_dim, seed=3, encoder_scale=1.5, encoder_sigma=0.5)
    levels = (0.0, 0.1, 0.35, 0.8)
    full = bl.lab_view(model, 5, noise, level, levels)
    basis = bl.lab_basis(model, 5)
    sweep = bl.noise_sweep(model, 5, noise, levels, basis=basis)
    for key, values in full[1].items():
        np.testing.assert_allclose(sweep[key], values, rtol=1e-12, atol=1e-12, err_msg=key)
    point, kept, densities = bl.lab_view(model, 5, noise, level, levels, basis=basis, sweep=sweep)
    assert kept is sweep
    assert set(point) == set(full[0])
    for key, value in full[0].items():
        assert point[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
    for key, values in full[2].items():
        if key != "axes":
            np.testing.assert_allclose(densities[key], values, rtol=1e-12, atol=1e-300, err_msg=key)


def test_a_basis_of_another_image_or_a_sweep_of_other_levels_is_refused():
    model = bl.random_tiny_model(4, 1, seed=0)
    with pytest.raises(ValueError, match="another clean x"):
        bl.noise_sweep(model, 5, "bit-flip", (0.1,), basis=bl.lab_basis(model, 6))
    with pytest.raises(ValueError, match="fewer components"):
        bl.noise_sweep(model, 5, "bit-flip", (0.1,), basis=bl.lab_basis(model, 5, codes=np.array([5])))
    sweep = bl.noise_sweep(model, 5, "bit-flip", (0.0, 0.2))
    with pytest.raises(ValueError, match="levels"):
        bl.lab_view(model, 5, "bit-flip", 0.1, (0.0, 0.3), basis=bl.lab_basis(model, 5), sweep=sweep)


@pytest.mark.parametrize("noise", ["bit-flip", "salt-pepper", "salt-pepper-count"])
def test_monte_carlo_levels_are_the_single_level_draws_whatever_the_workers(noise):
    model = bl.random_tiny_model(6, 2, seed=2, encoder_scale=1.5, encoder_sigma=0.5)
    levels = [0.0, 0.05, 0.3, 0.1, 1.0]  # not sorted: a copy may change code back and forth
    rows = bl.monte_carlo_diwae_levels(model, 9, noise, levels, 3, 2, num_draws=501, seed=4, workers=1)
    assert rows.shape == (len(levels), 501)
    np.testing.assert_array_equal(bl.monte_carlo_diwae_levels(model, 9, noise, levels, 3, 2, num_draws=501, seed=4,
                                                              workers=3), rows)
    for r, level in enumerate(levels):
        single = bl.monte_carlo_diwae(model, 9, noise, level, 3, 2, num_draws=501, seed=4)
        np.testing.assert_array_equal(single, rows[r])
    # each draw is one DIWAE(M=3, K=2) value, scored from scratch here for a few draws
    rng = np.random.default_rng(4)
    x_bits = bl.binary_inputs(6)[9]
    draws = bl._corruption_draws(noise, (501 * 3, 6), rng)
    eps = rng.standard_normal((501, 3, 2, 2))
    noisy = bl.bits_to_code(bl._apply_corruption(x_bits, noise, 0.3, draws)).reshape(501, 3)
    for i in (0, 250, 500):
        z = model.z_loc[noisy[i]][:, None] + np.exp(0.5 * model.z_log_var[noisy[i]])[:, None] * eps[i]  # (3, 2, 2)
        log_w = model.log_joint(x_bits, z) - model.encoder_log_density(z, noisy[i][:, None])
        # the engine scores the weights in float32: every weight sums terms (logits, softplus values, ‖z‖², ‖ε‖²,
        # log σ²) each carried through at most ~8 rounded operations, so its error is below 16·u·(Σ|terms|); the
        # log-sum-exp (float64) of the weights is off by at most the largest of their errors
        logits = z @ model.decoder_weight.T + model.decoder_bias
        terms = (np.abs(logits).sum(-1) + 6 * math.log(2) + (z**2).sum(-1) + (eps[i] ** 2).sum(-1)
                 + np.abs(model.z_log_var[noisy[i]]).sum(-1)[:, None])
        tolerance = 16 * np.finfo(np.float32).eps / 2 * terms.max()
        assert rows[2, i] == pytest.approx(logsumexp(log_w.ravel()) - math.log(6), abs=tolerance)
