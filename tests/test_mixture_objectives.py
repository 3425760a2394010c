"""dvae-mix and diwae-mix: plain references, noise 0, M = 1, the sweep, and the bounds they claim."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal

from dvae_engine.corruption import corrupt
from dvae_engine.models import VAE, ModelSpec, mixture_gain
from dvae_engine.objectives import (
    OBJECTIVES,
    check_objective,
    draw,
    is_importance_weighted,
    objective_from_draws,
    objective_per_example,
    uses_mixture,
    uses_noise,
)
from dvae_engine.training import TrainConfig


def model_and_batch(latent=3, d=12, n=6, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    model = VAE(ModelSpec(input_dim=d, latent_dim=latent, hidden_units=16)).to(dtype)
    x = torch.bernoulli(torch.full((n, d), 0.4), generator=torch.Generator().manual_seed(seed + 1)).to(dtype)
    return model, x


def reference_mixture_objective(model, x_clean, x_noisy, eps, importance_weighted: bool) -> torch.Tensor:
    """The obvious loops: for every copy m and sample k, log p(x, z_mk) − log((1/M) Σ_j q(z_mk | x̃_j)),
    every density from torch.distributions; then the mean (dvae-mix) or log-mean-exp (diwae-mix)."""
    num_corruptions, num_samples = eps.shape[:2]
    posteriors = []
    for j in range(num_corruptions):
        out = model.encoder(x_noisy[j])
        loc, log_var = out[:, : model.latent_dim], out[:, model.latent_dim:]
        posteriors.append((loc, log_var, Normal(loc, torch.exp(0.5 * log_var))))
    terms = []
    for m in range(num_corruptions):
        loc, log_var, _ = posteriors[m]
        for k in range(num_samples):
            z = loc + torch.exp(0.5 * log_var) * eps[m, k]
            log_joint = (Bernoulli(logits=model.decoder(z)).log_prob(x_clean).sum(-1)
                         + Normal(0.0, 1.0).log_prob(z).sum(-1))
            log_mixture = torch.logsumexp(torch.stack([q.log_prob(z).sum(-1) for _, _, q in posteriors]), 0) \
                - math.log(num_corruptions)
            terms.append(log_joint - log_mixture)
    log_w = torch.stack(terms)  # (M·K, batch)
    if importance_weighted:
        return torch.logsumexp(log_w, dim=0) - math.log(len(terms))
    return log_w.mean(dim=0)


def test_the_new_objectives_are_registered_everywhere():
    for name in ("dvae-mix", "diwae-mix"):
        assert name in OBJECTIVES and uses_noise(name) and uses_mixture(name)
    assert is_importance_weighted("diwae-mix") and not is_importance_weighted("dvae-mix")
    assert not any(uses_mixture(o) for o in ("vae", "iwae", "dvae", "diwae", "noisy-vae"))
    config = TrainConfig(objective="dvae-mix", noise="salt-pepper", noise_level=0.1, num_corruptions=5)
    assert config.model_name == "DVAE-mix" and config.describe().startswith("DVAE-mix mnist salt-pepper 10% M=5")
    assert TrainConfig(objective="diwae-mix", noise_level=0.1, num_corruptions=2).model_name == "DIWAE-mix"
    assert TrainConfig(objective="dvae-mix", noise="none", noise_level=0.0, num_corruptions=2).model_name == "VAE"
    assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("objective", ["dvae-mix", "diwae-mix"])
def test_one_copy_is_refused_with_a_clear_error(objective):
    with pytest.raises(ValueError, match=r"needs M \(num_corruptions\) >= 2.*exactly '(dvae|diwae)'"):
        check_objective(objective, "salt-pepper", 1)
    with pytest.raises(ValueError, match="needs M"):
        TrainConfig(objective=objective, noise="salt-pepper", noise_level=0.1, num_corruptions=1)
    model, x = model_and_batch()
    with pytest.raises(ValueError, match="needs M"):
        objective_per_example(model, x, objective, "salt-pepper", 0.1, 1)
    check_objective(objective, "salt-pepper", 2)  # M = 2 is fine


@pytest.mark.parametrize("objective,m,k", [("dvae-mix", 2, 1), ("dvae-mix", 5, 3), ("diwae-mix", 2, 1),
                                           ("diwae-mix", 4, 3)])
def test_loss_and_gradients_equal_a_plain_loop_on_the_same_draws(objective, m, k):
    """In float64, so that the two summation orders agree to ~1e-13 relative; a real error would be O(1)."""
    model, x = model_and_batch()
    x_noisy, eps = draw(x, model.latent_dim, objective, "salt-pepper", 0.3, m, k, torch.Generator().manual_seed(2))
    engine = objective_from_draws(model, x, x_noisy, eps, objective)
    reference = reference_mixture_objective(model, x, x_noisy, eps, is_importance_weighted(objective))
    torch.testing.assert_close(engine, reference, rtol=1e-10, atol=1e-10)
    engine_grads = torch.autograd.grad(-engine.mean(), list(model.parameters()))
    reference_grads = torch.autograd.grad(-reference.mean(), list(model.parameters()))
    for a, b in zip(engine_grads, reference_grads):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9 * b.abs().max().item())


def test_analytic_kl_keeps_the_expectation_and_the_sampled_gain():
    """With the exact KL, dvae-mix = E_z[DVAE terms] + the sampled gain: checked against the definition."""
    model, x = model_and_batch()
    x_noisy, eps = draw(x, model.latent_dim, "dvae-mix", "salt-pepper", 0.3, 3, 2, torch.Generator().manual_seed(4))
    log_w, log_px_z, kl, gain = model(x, x_noisy, eps, mixture=True)
    value = objective_from_draws(model, x, x_noisy, eps, "dvae-mix", analytic_kl=True)
    torch.testing.assert_close(value, log_px_z.mean((0, 1)) - kl.mean(0) + gain.mean((0, 1)), rtol=0, atol=0)
    dvae = objective_from_draws(model, x, x_noisy, eps, "dvae", analytic_kl=True)
    torch.testing.assert_close(value - dvae, gain.mean((0, 1)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("analytic_kl", [False, True])
def test_noise_zero_is_the_vae_and_the_iwae_with_mk_samples(dtype, analytic_kl):
    """At noise 0 the M copies are the same image, the encoder gives every copy the same (z_loc, z_log_var),
    so every density difference inside the mixture gain is exactly 0 and the gain is exactly 0 (a log-mean-exp
    of those differences with the maximum, 0, pulled out: log(M/M) = log 1 = 0). So dvae-mix / diwae-mix equal
    dvae / diwae on the same draws to the bit. Those are the VAE / IWAE with M·K samples of z; compared with the
    VAE's own (1, M·K, batch) layout the networks run on a differently shaped batch, whose matrix products may
    sum in another order, so that last step holds to float rounding (a few ulp), not to the bit."""
    model, x = model_and_batch(dtype=dtype)
    for mixed, plain in (("dvae-mix", "vae"), ("diwae-mix", "iwae")):
        for noise in ("none", "salt-pepper", "gaussian"):
            g = torch.Generator().manual_seed(3)
            x_noisy, eps = draw(x, model.latent_dim, mixed, noise, 0.0, 4, 2, g)
            gain = model(x, x_noisy, eps, mixture=True)[3]
            assert torch.equal(gain, torch.zeros_like(gain))
            a = objective_from_draws(model, x, x_noisy, eps, mixed, analytic_kl)
            same_draws = objective_from_draws(model, x, x_noisy, eps, mixed.removesuffix("-mix"), analytic_kl)
            torch.testing.assert_close(a, same_draws, rtol=0, atol=0)
            b = objective_from_draws(model, x, x.unsqueeze(0), eps.reshape(1, 8, *eps.shape[2:]), plain,
                                     analytic_kl)
            torch.testing.assert_close(a, b, rtol=8 * torch.finfo(dtype).eps, atol=0)


def test_mixture_gain_is_at_most_log_m_and_zero_for_equal_components():
    g = torch.Generator().manual_seed(0)
    loc = torch.randn(5, 7, 3, generator=g, dtype=torch.float64) * 3
    log_var = torch.randn(5, 7, 3, generator=g, dtype=torch.float64) - 1
    z = loc.unsqueeze(1) + torch.exp(0.5 * log_var).unsqueeze(1) * torch.randn(5, 4, 7, 3, generator=g,
                                                                                  dtype=torch.float64)
    gain = mixture_gain(z, loc, log_var)  # (M, K, batch)
    assert gain.shape == (5, 4, 7)
    assert (gain <= math.log(5) + 1e-12).all()
    # direct formula
    log_q = torch.stack([VAE.log_posterior(z, loc[j], log_var[j]) for j in range(5)])  # (J, M, K, B)
    own = torch.stack([log_q[m, m] for m in range(5)])
    direct = own - (torch.logsumexp(log_q, 0) - math.log(5))
    torch.testing.assert_close(gain, direct, rtol=1e-12, atol=1e-12)
    # far-apart narrow components: each z sees only its own, gain = log M
    far = mixture_gain(z, loc * 1e3, torch.full_like(log_var, -8.0))
    assert far.shape == gain.shape
    same = mixture_gain(z, loc[:1].expand(5, -1, -1), log_var[:1].expand(5, -1, -1))
    assert torch.equal(same, torch.zeros_like(same))


def test_iw_form_is_at_least_the_averaged_form_on_the_same_draws():
    """log-mean-exp ≥ mean (Jensen), draw by draw; and the mix forms differ from DVAE/DIWAE under noise."""
    model, x = model_and_batch()
    x_noisy, eps = draw(x, model.latent_dim, "dvae-mix", "salt-pepper", 0.4, 4, 3, torch.Generator().manual_seed(5))
    averaged = objective_from_draws(model, x, x_noisy, eps, "dvae-mix")
    weighted = objective_from_draws(model, x, x_noisy, eps, "diwae-mix")
    assert (weighted >= averaged - 1e-12).all()
    dvae = objective_from_draws(model, x, x_noisy, eps, "dvae")
    assert not torch.allclose(averaged, dvae)
    assert (averaged <= dvae + math.log(4) + 1e-12).all()  # the gain is at most log M


def _exact_log_px_1d(model: VAE, x: torch.Tensor) -> torch.Tensor:
    """log p(x) for a 1-D latent by a Riemann sum on [−10, 10] (spectrally accurate for this smooth integrand)."""
    z = torch.linspace(-10, 10, 8001, dtype=torch.float64).unsqueeze(1)  # (G, 1)
    log_joint = model.log_likelihood(x.unsqueeze(1), z) + model.log_prior(z)  # (batch, G)
    return torch.logsumexp(log_joint, dim=1) + math.log(20 / 8000)


@torch.no_grad()
def test_diwae_mix_is_the_log_of_an_unbiased_estimate_of_p_x():
    """E exp(diwae-mix) = p(x) (deterministic-mixture importance sampling), so E diwae-mix ≤ log p(x), and
    E dvae-mix ≤ E diwae-mix. Checked on a 1-D latent model where p(x) is exact; tolerances are 5 standard
    errors of the 20 000-draw means."""
    model, x = model_and_batch(latent=1, d=8, n=3, seed=3)
    log_px = _exact_log_px_1d(model, x)
    n, m, k = 20000, 3, 2
    x_rep = x.repeat(n, 1)
    g = torch.Generator().manual_seed(11)
    weighted = objective_per_example(model, x_rep, "diwae-mix", "salt-pepper", 0.25, m, k, g).view(n, -1)
    averaged = objective_per_example(model, x_rep, "dvae-mix", "salt-pepper", 0.25, m, k, g,
                                     analytic_kl=False).view(n, -1)
    ratio = torch.exp(weighted - log_px)  # estimates of p(x) / p(x)
    assert torch.all((ratio.mean(0) - 1).abs() < 5 * ratio.std(0) / math.sqrt(n))
    assert torch.all(weighted.mean(0) < log_px)
    assert torch.all(averaged.mean(0) < weighted.mean(0))


def test_sweep_stack_computes_the_same_objectives(digits):
    from dvae_engine.models import build_model
    from dvae_engine.sweep import ModelStack

    objectives = ("dvae", "dvae-mix", "diwae-mix", "diwae", "noisy-vae")
    for analytic_kl in (True, False):
        configs = [TrainConfig(dataset="digits", objective=o, noise="salt-pepper", noise_level=0.1 * (i + 1),
                               num_corruptions=3, num_samples=2, hidden_units=16, latent_dim=3,
                               analytic_kl=analytic_kl, seed=i) for i, o in enumerate(objectives)]
        models = [build_model(configs[0].model_spec(64, "bernoulli"), torch.Generator().manual_seed(i)).double()
                  for i in range(len(configs))]
        stack = ModelStack(models, configs)
        x = digits.train[:9].double()
        x_noisy, eps = stack.draw(x, torch.Generator().manual_seed(0))
        for beta in (1.0, 0.3):
            values = stack.objective(x, x_noisy.double(), eps.double(), beta)
            for i, config in enumerate(configs):
                expected = objective_from_draws(models[i], x, x_noisy[i].double(), eps[i].double(), config.objective,
                                                analytic_kl, beta)
                torch.testing.assert_close(values[i], expected, rtol=1e-12, atol=1e-12)


def test_training_runs_and_reports_the_iwae_bound_for_diwae_mix(digits):
    from dvae_engine.training import train

    config = TrainConfig(dataset="digits", objective="diwae-mix", noise="salt-pepper", noise_level=0.1,
                         num_corruptions=3, hidden_units=16, latent_dim=3, epochs=2, device="cpu")
    result = train(config, digits)
    assert result.status == "finished"
    assert all(math.isfinite(v) for v in result.history["train_objective"])
    assert all(v is not None and math.isfinite(v) for v in result.history["valid_iwae"])


def test_corruption_replay_matches_draw():
    """draw() for the mix objectives uses the DVAE draws: the same generator gives the same x̃ and eps."""
    x = torch.bernoulli(torch.full((4, 10), 0.5), generator=torch.Generator().manual_seed(0))
    a = draw(x, 2, "dvae-mix", "salt-pepper", 0.2, 3, 2, torch.Generator().manual_seed(1))
    b = draw(x, 2, "dvae", "salt-pepper", 0.2, 3, 2, torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    g = torch.Generator().manual_seed(1)
    assert torch.equal(a[0], corrupt(x, "salt-pepper", 0.2, 3, g))


def test_cli_trains_a_mixture_objective_and_refuses_one_copy(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def run_cli(*args):
        return subprocess.run([sys.executable, "-m", "dvae_engine", *args], capture_output=True, text=True,
                              cwd=root, env={**os.environ, "DVAE_OFFLINE": "1"}, timeout=300)

    bad = run_cli("train", "--dataset", "digits", "--objective", "dvae-mix", "--noise-level", "0.1",
                  "--output", str(tmp_path / "x.pt"))
    assert bad.returncode == 2 and "needs M (num_corruptions) >= 2" in bad.stderr and "Traceback" not in bad.stderr
    out = tmp_path / "mix.pt"
    good = run_cli("train", "--dataset", "digits", "--objective", "diwae-mix", "--noise-level", "0.1",
                   "--num-corruptions", "3", "--epochs", "1", "--hidden-units", "16", "--latent-dim", "2",
                   "--max-train-examples", "300", "--eval-importance-samples", "20", "--output", str(out),
                   "--device", "cpu")
    assert good.returncode == 0, good.stderr
    assert json.loads(run_cli("info", str(out)).stdout)["config"]["objective"] == "diwae-mix"


def test_harness_cells_take_the_mixture_objectives(digits):
    from experiments.harness import Cell, run_grid

    base = dict(dataset="digits", noise="salt-pepper", noise_level=0.1, num_corruptions=3, hidden_units=16,
                latent_dim=3, epochs=1, device="cpu", max_valid_examples=50)
    cells = [Cell(o, TrainConfig(objective=o, **base)) for o in ("dvae", "dvae-mix", "diwae-mix")]
    for sweep in (True, False):
        for cell in cells:
            cell.runs.clear()
        run_grid(cells, digits, seeds=[0], eval_examples=20, importance_samples=30, repeats=2, log=lambda *_: None,
                 sweep=sweep)
        for cell in cells:
            (run,) = cell.runs
            assert run["status"] == "finished" and math.isfinite(run["nll"]) and math.isfinite(run["neg_test_bound"])


def test_experiment_script_runs_end_to_end_on_digits(tmp_path):
    import json

    from experiments import semi_implicit

    args = ["--dataset", "digits", "--epochs", "1", "--max-train", "300", "--eval-examples", "20",
            "--importance-samples", "30", "--bridge-examples", "5", "--bridge-max-k", "8", "--bridge-repeats", "2",
            "--num-corruptions", "2", "--out", str(tmp_path)]
    semi_implicit.main(args)
    data = json.loads((tmp_path / "semi_implicit.json").read_text())
    assert sorted(r["objective"] for r in data["runs"]) == ["diwae", "diwae-mix", "dvae", "dvae-mix"]
    assert set(data["paired_vs_dvae"]) == {"diwae", "diwae-mix", "dvae-mix"}
    for run in data["runs"]:
        bridge = run["bridge"]
        assert bridge["ks"] == [1, 2, 4, 8] and bridge["kl_gap_low"] <= bridge["kl_gap_high"] + 1.0
        assert len(run["per_example_nll"]) == 20
    table = (tmp_path / "semi_implicit.md").read_text()
    assert "| DVAE-mix | 0 |" in table and "KL gap" in table
    semi_implicit.main([*args, "--seeds", "0", "1"])  # the same budget: only seed 1 is trained
    assert len(json.loads((tmp_path / "semi_implicit.json").read_text())["runs"]) == 8
