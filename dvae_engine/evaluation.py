"""Honest evaluation on CLEAN data (never corrupted at test time), in nats per example.

* negative ELBO (k = 1), with the KL term exact;
* negative IWAE bound with k samples, log (1/k) Σ_i p(x, z_i)/q(z_i|x);
* −log p(x) estimated by importance sampling with k = 5000 proposals from
  q(z|x) (Burda et al. 2015, Sec. 5.1) — the IWAE bound with large k, which
  converges to log p(x) from below as k grows. Samples are processed in chunks
  with a running log-sum-exp so any k fits in memory.

These are the numbers to compare models by. A model's training objective
(DVAE/DIWAE at its own noise) is reported beside them, labelled as what it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .models import VAE
from .objectives import log_weights, objective_per_example


@torch.no_grad()
def iwae_per_example(
    model: VAE,
    x: torch.Tensor,
    num_samples: int,
    generator: torch.Generator | None = None,
    chunk_size: int = 500,
) -> torch.Tensor:
    """log (1/k) Σ_i p(x, z_i)/q(z_i|x), z_i ~ q(z|x), for each row of ``x``: ``(batch,)``.

    The k samples are drawn ``chunk_size`` at a time and combined with a
    running log-sum-exp, so memory does not grow with k.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, not {num_samples}")
    x_noisy = x.unsqueeze(0)  # (1, batch, D): no corruption at test time
    total = torch.full((x.shape[0],), -math.inf, device=x.device)
    done = 0
    while done < num_samples:
        k = min(chunk_size, num_samples - done)
        log_w = log_weights(model, x, x_noisy, k, generator)[0]  # (k, batch)
        total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
        done += k
    return total - math.log(num_samples)


@torch.no_grad()
def mixture_is_per_example(
    model: VAE,
    x: torch.Tensor,
    num_samples: int,
    noise: str,
    noise_level: float,
    num_components: int = 16,
    generator: torch.Generator | None = None,
    chunk_size: int = 500,
    mean_image: torch.Tensor | None = None,
) -> torch.Tensor:
    """log p(x) by importance sampling from a defensive mixture proposal: ``(batch,)``.

    r(z|x) = (1/(C+1)) [q(z|x) + Σ_c q(z|x̃_c)], x̃_c ~ p(x̃|x), C = ``num_components``:
    the clean encoder plus the mixture posterior q̃(z|x) of Proposition 1. An encoder
    trained only on corrupted inputs can place q(z|x) of a clean x away from the
    posterior, and then plain importance sampling from q(z|x) is far too low even with
    k = 5000; its own corrupted-input components cover that mass. Each component gets
    the same number of samples and every weight uses the full mixture density
    (deterministic-mixture importance sampling), so (1/k) Σ p(x, z)/r(z) is unbiased for
    p(x) whatever the x̃_c, and its log is, like the plain estimate, a stochastic lower
    bound. ``num_samples`` is rounded up to a multiple of C+1.
    """
    if num_components < 1:
        raise ValueError(f"num_components must be >= 1, not {num_components}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, not {num_samples}")
    from .corruption import corrupt

    x_noisy = corrupt(x, noise, noise_level, num_components, generator, mean_image)  # (C, batch, D)
    z_loc, z_log_var = model.encode(torch.cat([x.unsqueeze(0), x_noisy]))  # (C+1, batch, latent)
    num_mix = num_components + 1
    z_std = torch.exp(0.5 * z_log_var)
    per_component = -(-num_samples // num_mix)
    rounds = max(1, chunk_size // num_mix)
    total = torch.full((x.shape[0],), -math.inf, device=x.device)
    done = 0
    while done < per_component:
        n = min(rounds, per_component - done)
        eps = torch.randn((n, *z_loc.shape), generator=generator, device=x.device)  # (n, C+1, batch, latent)
        z = (z_loc + z_std * eps).reshape(n * num_mix, *z_loc.shape[1:])  # (S, batch, latent)
        # log r(z): every sample against every component, (S, C+1, batch) before the log-sum-exp
        log_q = model.log_posterior(z.unsqueeze(1), z_loc, z_log_var)
        log_r = torch.logsumexp(log_q, dim=1) - math.log(num_mix)  # (S, batch)
        log_w = model.log_likelihood(x, z) + model.log_prior(z) - log_r  # (S, batch)
        total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))
        done += n
    return total - math.log(per_component * num_mix)


@torch.no_grad()
def elbo_per_example(model: VAE, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Clean ELBO, one z sample and the exact KL: ``(batch,)``."""
    return objective_per_example(model, x, "vae", generator=generator, analytic_kl=True)


def _batched(fn, x: torch.Tensor, batch_size: int, progress: Callable[[int, int], None] | None) -> torch.Tensor:
    out = []
    for start in range(0, len(x), batch_size):
        out.append(fn(x[start:start + batch_size]))
        if progress is not None:
            progress(min(start + batch_size, len(x)), len(x))
    return torch.cat(out)


def summarize(values: torch.Tensor) -> dict[str, float]:
    """Mean and its standard error over examples, as plain floats."""
    values = values.double()
    n = values.numel()
    std = values.std().item() if n > 1 else 0.0
    return {"mean": values.mean().item(), "stderr": std / math.sqrt(n) if n > 0 else math.nan}


@torch.no_grad()
def evaluate(
    model: VAE,
    x: torch.Tensor,
    importance_samples: int = 5000,
    iwae_samples: tuple[int, ...] = (),
    seed: int = 0,
    batch_size: int | None = None,
    chunk_size: int = 500,
    progress: Callable[[str, int, int], None] | None = None,
    training_objective: dict | None = None,
) -> dict:
    """Clean metrics of ``model`` on rows ``x`` (nats per example; lower is better for ``neg_*``).

    Returns ``neg_elbo``, ``neg_iwae_<k>`` for each k in ``iwae_samples``,
    ``nll_is`` (importance-sampled −log p(x) with ``importance_samples``; skipped
    when 0), each with a ``*_stderr`` over examples, and ``num_examples``.
    ``training_objective`` (keys of :func:`objective_per_example`, e.g. the
    run's objective, noise, M and K) adds ``neg_train_objective``: that
    objective evaluated on the clean rows with its own corruption.
    """
    model.eval()
    device = next(model.parameters()).device
    x = x.to(device)
    g = torch.Generator(device=device).manual_seed(seed)
    if batch_size is None:
        # keep (chunk, batch, D) decoder outputs around 64 MB
        batch_size = max(1, min(1000, (16 * 2**20) // max(1, chunk_size * x.shape[1])))
    report = (lambda name: (lambda done, total: progress(name, done, total))) if progress else (lambda name: None)

    metrics: dict = {"num_examples": int(len(x))}

    def put(name: str, per_example: torch.Tensor) -> None:
        s = summarize(-per_example)
        metrics[name], metrics[f"{name}_stderr"] = s["mean"], s["stderr"]

    put("neg_elbo", _batched(lambda xb: elbo_per_example(model, xb, g), x, 1000, report("ELBO")))
    for k in iwae_samples:
        put(f"neg_iwae_{k}", _batched(lambda xb, k=k: iwae_per_example(model, xb, k, g, chunk_size), x,
                                      batch_size, report(f"IWAE k={k}")))
    if training_objective:
        put("neg_train_objective", _batched(
            lambda xb: objective_per_example(model, xb, generator=g, **training_objective), x, 1000,
            report("training objective")))
    if importance_samples:
        metrics["importance_samples"] = int(importance_samples)
        put("nll_is", _batched(lambda xb: iwae_per_example(model, xb, importance_samples, g, chunk_size), x,
                               batch_size, report(f"log p(x), k={importance_samples}")))
    return metrics


def training_objective_kwargs(config, mean_image: torch.Tensor | None = None) -> dict:
    """The keyword arguments of :func:`objective_per_example` that reproduce a run's own objective.

    ``mean_image`` (the training mean, on the model's device) is needed only by the mean-image noise.
    """
    return {
        "objective": config.objective,
        "noise": config.noise,
        "noise_level": config.noise_level,
        "num_corruptions": config.num_corruptions,
        "num_samples": config.num_samples,
        "analytic_kl": False,
        "mean_image": mean_image if config.noise == "mean-image" else None,
    }
