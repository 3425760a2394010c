"""The bridge estimators on models: exact agreement through a tiny model, orderings and bad inputs on checkpoints."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dvae_engine import boundlab as bl
from dvae_engine.models import VAE
from dvae_engine.semi_implicit import bridge_report, bridge_sequences, default_ks


class TorchTinyModel(nn.Module):
    """A :class:`dvae_engine.boundlab.TinyModel` behind the engine's model interface (float64): the encoder is
    its table over the 2^D binary inputs, the decoder its linear-logit Bernoulli layer."""

    def __init__(self, tiny: bl.TinyModel) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(tiny.decoder_weight))
        self.bias = nn.Parameter(torch.tensor(tiny.decoder_bias))
        self.register_buffer("loc", torch.tensor(tiny.z_loc))
        self.register_buffer("log_var", torch.tensor(tiny.z_log_var))
        self.register_buffer("powers", 2 ** torch.arange(tiny.num_pixels - 1, -1, -1))
        self.latent_dim = tiny.latent_dim
        self.spec = SimpleNamespace(likelihood="bernoulli", latent_dim=tiny.latent_dim)

    def encode(self, x):
        code = (x.round().long() * self.powers).sum(-1)
        return self.loc[code], self.log_var[code]

    def log_likelihood(self, x, z):
        logits = z @ self.weight.T + self.bias
        return (x * logits - F.softplus(logits)).sum(-1)

    log_prior = staticmethod(VAE.log_prior)
    log_posterior = staticmethod(VAE.log_posterior)


def test_default_ks():
    assert default_ks(256) == (1, 2, 4, 8, 16, 32, 64, 128, 256)
    assert default_ks(100)[-2:] == (64, 100)
    assert default_ks(1) == (1,)
    with pytest.raises(ValueError):
        default_ks(0)


@pytest.mark.parametrize("latent,seed,level", [(1, 0, 0.5), (2, 3, 0.34)])
def test_engine_estimators_converge_to_the_exact_tiny_model_values(latent, seed, level):
    """The engine's salt-and-pepper (exactly round(νD) pixels replaced) is the lab's salt-pepper-count noise, so
    the engine estimator run on a tiny model must agree with the lab's exact L⁽ᴷ⁾, U⁽ᴷ⁾ within its own Monte
    Carlo error: 4.5 standard errors for each of 13 statistics (chance of a false alarm below 1e-4)."""
    tiny = bl.random_tiny_model(3, latent, seed=seed)
    x_code = 0b101
    ks = (1, 2, 4, 8, 16, 64)
    exact = bl.bridge_exact(tiny, x_code, "salt-pepper-count", level, ks=ks)
    x = torch.tensor(bl.binary_inputs(3)[x_code]).unsqueeze(0).repeat(2, 1)  # the same x twice: two "examples"
    out = bridge_sequences(TorchTinyModel(tiny), x, "salt-pepper", level, ks=ks, repeats=10000,
                           generator=torch.Generator().manual_seed(1), batch_size=1)
    for row in range(2):
        assert abs(out["lower0"][row] - exact["lower0"]) < 4.5 * out["lower0_stderr"][row]
        assert np.all(np.abs(out["lower"][row].numpy() - exact["lower"]) < 4.5 * out["lower_stderr"][row].numpy())
        assert np.all(np.abs(out["upper"][row].numpy() - exact["upper"]) < 4.5 * out["upper_stderr"][row].numpy())
    # the coupled differences carry their own errors and bracket the exact gaps L⁽ᴷ⁾ − L⁽⁰⁾, U⁽ᴷ⁾ − L⁽⁰⁾
    gain = out["lower_gain"][0].numpy()
    assert np.all(np.abs(gain - (exact["lower"] - exact["lower0"])) < 4.5 * out["lower_gain_stderr"][0].numpy())
    assert np.all(gain <= np.log(np.asarray(ks) + 1.0) + 1e-12)  # the mixture gains at most log(K+1), per draw


def test_bridge_on_a_checkpoint_orders_and_brackets(tiny_checkpoints, digits):
    from dvae_engine import load_checkpoint

    ckpt = load_checkpoint(tiny_checkpoints / "digits-dvae-2d.pt")
    x = digits.test[:12]
    calls = []
    out = bridge_report(ckpt.model, x, ckpt.config, ks=(1, 2, 4, 16, 64), repeats=24, seed=0,
                        progress=lambda name, done, total: calls.append((name, done, total)))
    assert out["log_px_method"] == "exact" and out["noise"] == "salt-pepper" and out["noise_level"] == 0.1
    for key in ("lower", "upper", "lower_stderr", "upper_stderr", "lower_gain", "upper_gain"):
        assert out[key].shape == (12, 5) and torch.isfinite(out[key]).all(), key
    assert out["lower0"].shape == (12,) and out["log_px"].shape == (12,)
    assert ("L and U sequences", 12, 12) in calls and calls[-1][0] == "log p(x)"
    # averaged over the examples, within Monte Carlo error: L⁽ᴷ⁾ ≥ L⁽⁰⁾, U⁽ᴷ⁾ ≤ U⁽¹⁾ and L⁽ᴷ⁾ ≤ U⁽ᴷ⁾ (this
    # little encoder barely reacts to the noise, so its components overlap and the gaps are small)
    gain, gain_se = out["mean_lower_gain"].numpy(), out["mean_lower_gain_mc_stderr"].numpy()
    assert np.all(gain > -4 * gain_se)
    upper, upper_se = out["mean_upper_gain"].numpy(), out["mean_upper_gain_mc_stderr"].numpy()
    assert np.all(upper[1:] - upper[0] < 4 * np.hypot(upper_se[1:], upper_se[0]))
    assert np.all(upper - gain > -4 * np.hypot(upper_se, gain_se))
    # L⁽ᴷ⁾ ≤ L_cvae ≤ log p(x) (exact here): no example clearly above
    assert out["num_lower_above_log_px"] == 0
    assert out["kl_gap_low"] <= out["kl_gap_high"] and out["kl_gap_low"] > 0
    assert out["kl_gap_low"] == pytest.approx(float((out["mean_lower"] - out["mean_lower0"])[-1]), abs=1e-9)


def test_l0_is_the_dvae_objective_in_expectation(tiny_checkpoints, digits):
    """L⁽⁰⁾ per example against the sampled DVAE objective (M = K = 1) averaged over many draws."""
    from dvae_engine import load_checkpoint
    from dvae_engine.objectives import objective_per_example

    ckpt = load_checkpoint(tiny_checkpoints / "digits-dvae-2d.pt")
    x = digits.test[:5]
    out = bridge_sequences(ckpt.model, x, "salt-pepper", 0.1, ks=(1,), repeats=4000,
                           generator=torch.Generator().manual_seed(0))
    n = 4000
    with torch.no_grad():
        draws = objective_per_example(ckpt.model, x.repeat(n, 1), "dvae", "salt-pepper", 0.1,
                                      generator=torch.Generator().manual_seed(5), analytic_kl=False)
    draws = draws.view(n, 5).double()
    se = torch.sqrt(out["lower0_stderr"] ** 2 + (draws.std(0) / math.sqrt(n)) ** 2)
    assert torch.all((out["lower0"] - draws.mean(0)).abs() < 4.5 * se)


def test_bridge_refuses_bad_inputs(tiny_checkpoints, digits):
    from dvae_engine import load_checkpoint

    model = load_checkpoint(tiny_checkpoints / "digits-vae-2d.pt").model
    x = digits.test[:3]
    with pytest.raises(ValueError, match="K"):
        bridge_sequences(model, x, "salt-pepper", 0.1, ks=(0, 1))
    with pytest.raises(ValueError, match="repeats"):
        bridge_sequences(model, x, "salt-pepper", 0.1, repeats=1)
    with pytest.raises(ValueError, match="log_px"):
        bridge_report(model, x, None, ks=(1,), repeats=2, log_px=torch.zeros(2))
    # a model trained without noise gets the reference corruption, and given log p(x) values are used as they are
    out = bridge_report(model, x, None, ks=(1, 2), repeats=2, log_px=torch.zeros(3))
    assert out["noise"] == "salt-pepper" and out["log_px_method"] == "given" and out["mean_log_px"] == 0.0


def test_bridge_checkpoints_script_on_a_shipped_2d_model(data_dir, tmp_path):
    import json

    from experiments import bridge_checkpoints

    bridge_checkpoints.main(["--only", "mnist2d-dvae-sp10", "--examples", "3", "--max-k", "4", "--repeats", "2",
                             "--data-dir", str(data_dir), "--out", str(tmp_path)])
    (row,) = json.loads((tmp_path / "bridge_checkpoints.json").read_text())["rows"]
    assert row["log_px_method"] == "exact" and row["noise"] == "salt-pepper"
    assert row["kl_gap_low"] <= row["kl_gap_high"] and 0 <= row["num_upper1_above_log_px"] <= 3
    assert "`mnist2d-dvae-sp10`" in (tmp_path / "bridge_checkpoints.md").read_text()
