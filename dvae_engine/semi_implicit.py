"""The bridge from the paper's objective to the critique's, on any trained model: L⁽ᴷ⁾ and U⁽ᴷ⁾.

Fix a clean x, let q̃(z|x) = E_{p(x̃|x)} q(z|x̃) be the mixture posterior of the paper's
Proposition 1 and L_cvae its ELBO. Draw x̃₀, x̃₁, …, x̃_K independently from p(x̃|x) and
z ~ q(z|x̃₀). Then (docs/semi_implicit.md proves every step)

* lower sequence (semi-implicit VI, Yin & Zhou 2018):
  L⁽ᴷ⁾ = E[log p(x,z) − log((1/(K+1)) Σ_{k=0..K} q(z|x̃_k))] = L_cvae − E KL(r_{K+1} ‖ q̃),
  with r_n the empirical mixture of n encoders; L⁽⁰⁾ is the DVAE objective as trained
  (the joint reading of Eq. 8), and L⁽ᴷ⁾ rises with K to L_cvae;
* upper sequence: U⁽ᴷ⁾ = E[log p(x,z) − log((1/K) Σ_{k=1..K} q(z|x̃_k))] = L_cvae + E KL(q̃ ‖ r_K),
  the generating x̃₀ left out; U⁽¹⁾ is the critique's independent reading, and U⁽ᴷ⁾
  falls with K to L_cvae.

So L_dvae = L⁽⁰⁾ ≤ L⁽ᴷ⁾ ≤ L_cvae ≤ U⁽ᴷ⁾ ≤ U⁽¹⁾, and the price of training with the cheap
objective, L_cvae − L_dvae = E KL(q(z|x̃) ‖ q̃(z|x)), lies between L⁽ᴷ⁾ − L⁽⁰⁾ and
U⁽ᴷ⁾ − L⁽⁰⁾. U⁽ᴷ⁾ bounds L_cvae from above, NOT log p(x): for small K it can exceed
log p(x) (that is the critique's point), and for large K it falls below it whenever
L_cvae < log p(x).

:func:`bridge_sequences` estimates both sequences for a list of K in one pass: R
independent replicates per example, each drawing x̃₀..x̃_Kmax in one batched call,
encoding them all at once, drawing one z from q(z|x̃₀) and scoring it against every
component in one tensor; cumulative log-sum-exps over the component axis give every K
from nested subsets of the same draws (so the curves are smooth in K). Monte Carlo
standard errors are over the R replicates. :func:`bridge_report` adds log p(x) (the
comparison estimator of :mod:`dvae_engine.evaluation`: exact for 2-D latents, else the
defensive-mixture estimate) and summaries. All values in nats per example.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from .corruption import corrupt
from .models import VAE

_CHUNK_ELEMENTS = 2**23  # encoder inputs per chunk (R_c · (Kmax+1) · batch · D floats, ~32 MB in float32)


def default_ks(max_k: int = 256) -> tuple[int, ...]:
    """1, 2, 4, …, up to ``max_k`` (``max_k`` itself included): a log-spaced list of K."""
    if max_k < 1:
        raise ValueError(f"max_k must be >= 1, not {max_k}")
    ks = [2**i for i in range(int(math.log2(max_k)) + 1)]
    return tuple(ks if ks[-1] == max_k else ks + [max_k])


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise ValueError(f"every K must be a positive integer, not {ks!r}")
    return ks


@torch.no_grad()
def bridge_sequences(
    model: VAE,
    x_clean: torch.Tensor,
    noise: str,
    noise_level: float,
    ks: Sequence[int] = default_ks(),
    repeats: int = 16,
    generator: torch.Generator | None = None,
    mean_image: torch.Tensor | None = None,
    batch_size: int = 10,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Per-example Monte Carlo estimates of L⁽ᴷ⁾ and U⁽ᴷ⁾ for every K in ``ks`` (and L⁽⁰⁾).

    ``x_clean`` is ``(N, D)``; ``repeats`` = R ≥ 2 independent replicates per example.
    Returns float64 CPU tensors: ``lower`` and ``upper`` ``(N, len(ks))`` (means over the
    replicates) with ``lower_stderr`` / ``upper_stderr``; ``lower0`` ``(N,)`` = L⁽⁰⁾ (the
    DVAE objective, joint reading) with ``lower0_stderr``; ``lower_gain`` / ``upper_gain``
    ``(N, len(ks))`` = L⁽ᴷ⁾ − L⁽⁰⁾ and U⁽ᴷ⁾ − L⁽⁰⁾ on the same draws (the bracket on the
    gap L_cvae − L_dvae) with their standard errors; and ``ks``.
    """
    ks = _check_ks(ks)
    if repeats < 2:
        raise ValueError("repeats must be >= 2 to estimate a Monte Carlo error")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size}")
    model.eval()
    device = next(model.parameters()).device
    x_clean = x_clean.to(device)
    max_k = ks[-1]
    index = torch.tensor(ks, device=device)
    log_n_lower = torch.log(index.double() + 1)  # log(K+1)
    log_n_upper = torch.log(index.double())  # log K
    sums = {name: [] for name in ("lower", "upper", "lower0", "lower_gain", "upper_gain")}
    for start in range(0, len(x_clean), batch_size):
        xb = x_clean[start:start + batch_size]  # (B, D)
        batch = len(xb)
        per_chunk = max(1, _CHUNK_ELEMENTS // ((max_k + 1) * batch * xb.shape[1]))
        terms = {name: [] for name in sums}
        done = 0
        while done < repeats:
            r = min(per_chunk, repeats - done)
            # x̃_0..x̃_Kmax for r replicates, one batched call: (r·(Kmax+1), B, D) → (r, Kmax+1, B, D)
            x_noisy = corrupt(xb, noise, noise_level, r * (max_k + 1), generator, mean_image)
            z_loc, z_log_var = model.encode(x_noisy.reshape(r, max_k + 1, batch, -1))  # (r, Kmax+1, B, L)
            eps = torch.randn(z_loc[:, 0].shape, generator=generator, device=device, dtype=z_loc.dtype)
            z = z_loc[:, 0] + torch.exp(0.5 * z_log_var[:, 0]) * eps  # (r, B, L), z ~ q(z|x̃_0)
            log_joint = (model.log_likelihood(xb, z) + model.log_prior(z)).double()  # (r, B)
            log_q = model.log_posterior(z.unsqueeze(1), z_loc, z_log_var).double()  # (r, Kmax+1, B)
            # log Σ_{k=0..K} q(z|x̃_k) for every K at once, and log Σ_{k=1..K} (x̃_0 left out)
            with_own = torch.logcumsumexp(log_q, dim=1).index_select(1, index)  # (r, len(ks), B)
            without_own = torch.logcumsumexp(log_q[:, 1:], dim=1).index_select(1, index - 1)  # (r, len(ks), B)
            lower = log_joint.unsqueeze(1) - (with_own - log_n_lower.view(1, -1, 1))
            upper = log_joint.unsqueeze(1) - (without_own - log_n_upper.view(1, -1, 1))
            lower0 = log_joint - log_q[:, 0]  # (r, B)
            terms["lower"].append(lower)
            terms["upper"].append(upper)
            terms["lower0"].append(lower0)
            terms["lower_gain"].append(lower - lower0.unsqueeze(1))
            terms["upper_gain"].append(upper - lower0.unsqueeze(1))
            done += r
        for name in sums:
            sums[name].append(torch.cat(terms[name]).cpu())  # (R, [len(ks),] B)
        if progress is not None:
            progress(min(start + batch_size, len(x_clean)), len(x_clean))
    out: dict = {"ks": ks, "repeats": int(repeats), "noise": noise, "noise_level": float(noise_level)}
    for name, parts in sums.items():
        draws = torch.cat(parts, dim=-1)  # (R, [len(ks),] N)
        mean = draws.mean(0)
        stderr = draws.std(0) / math.sqrt(repeats)
        out[name] = mean.T if mean.dim() == 2 else mean  # (N, len(ks)) or (N,)
        out[f"{name}_stderr"] = stderr.T if stderr.dim() == 2 else stderr
    return out


def _average(values: torch.Tensor, stderr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean over examples (dim 0) and its Monte Carlo standard error for these examples."""
    n = values.shape[0]
    return values.mean(0), (stderr**2).sum(0).sqrt() / n


@torch.no_grad()
def bridge_report(
    model: VAE,
    x_clean: torch.Tensor,
    config=None,
    ks: Sequence[int] = default_ks(),
    repeats: int = 16,
    seed: int = 0,
    importance_samples: int = 5000,
    exact_2d: bool = True,
    mean_image: torch.Tensor | None = None,
    batch_size: int = 10,
    progress: Callable[[str, int, int], None] | None = None,
    log_px: torch.Tensor | None = None,
) -> dict:
    """:func:`bridge_sequences` at the run's own corruption, with log p(x) and summaries beside it.

    The corruption is the run's (``config``), or the reference one of
    :func:`dvae_engine.evaluation.mixture_noise` for runs trained without noise (their
    mixture posterior is then that of the reference corruption). log p(x) per example:
    exact by quadrature for a 2-D latent space (with ``exact_2d``), else the
    defensive-mixture importance-sampling estimate with ``importance_samples`` samples;
    ``log_px_method`` names it. Averages over the examples (``mean_*``) carry the Monte
    Carlo standard error of that average (``*_mc_stderr``), and ``mean_log_px_stderr``
    the spread over examples. ``log_px`` (per example) skips computing it: pass values
    already estimated for these rows (``log_px_method`` is then ``"given"``).
    ``kl_gap_low`` / ``kl_gap_high`` bracket the mean E KL(q(z|x̃) ‖ q̃(z|x)) = L_cvae − L_dvae
    at the largest K.
    """
    from .evaluation import REFERENCE_NOISE, exact_log_px_2d, mixture_is_per_example, mixture_noise

    model.eval()
    device = next(model.parameters()).device
    noise, level = mixture_noise(config, model.spec.likelihood)
    if noise == "mean-image" and mean_image is None:
        noise, level = REFERENCE_NOISE[model.spec.likelihood]
    mean_image = None if mean_image is None else mean_image.to(device)
    g = torch.Generator(device=device).manual_seed(seed)
    report = (lambda name: (lambda done, total: progress(name, done, total))) if progress else (lambda name: None)
    out = bridge_sequences(model, x_clean, noise, level, ks, repeats, g, mean_image, batch_size,
                           report("L and U sequences"))
    x = x_clean.to(device)
    if log_px is not None:
        if log_px.shape != (len(x),):
            raise ValueError(f"log_px must have one value per example, shape ({len(x)},), not {tuple(log_px.shape)}")
        log_px, method = log_px.double().cpu(), "given"
    elif exact_2d and model.latent_dim == 2:
        log_px, method = exact_log_px_2d(model, x), "exact"
        if progress:
            progress("log p(x)", len(x), len(x))
    else:
        parts = []
        step = 50
        for start in range(0, len(x), step):
            parts.append(mixture_is_per_example(model, x[start:start + step], importance_samples, noise, level,
                                                generator=g, mean_image=mean_image).double().cpu())
            if progress:
                progress("log p(x)", min(start + step, len(x)), len(x))
        log_px, method = torch.cat(parts), "mixture"
    out.update({"log_px": log_px, "log_px_method": method, "importance_samples": int(importance_samples),
                "num_examples": int(len(x))})
    for name in ("lower", "upper", "lower0", "lower_gain", "upper_gain"):
        out[f"mean_{name}"], out[f"mean_{name}_mc_stderr"] = _average(out[name], out[f"{name}_stderr"])
    n = len(log_px)
    out["mean_log_px"] = float(log_px.mean())
    out["mean_log_px_stderr"] = float(log_px.std() / math.sqrt(n)) if n > 1 else math.nan
    out["kl_gap_low"] = float(out["mean_lower_gain"][-1])
    out["kl_gap_high"] = float(out["mean_upper_gain"][-1])
    # U⁽ᴷ⁾ above log p(x) is allowed (it bounds L_cvae, not log p(x)); L⁽ᴷ⁾ above it by more than 3 s.e. is not
    out["num_lower_above_log_px"] = int(((out["lower"][:, -1] - log_px) > 3 * out["lower_stderr"][:, -1]).sum())
    return out
