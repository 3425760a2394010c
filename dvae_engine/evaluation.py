"""Honest evaluation on CLEAN data (never corrupted at test time), in nats per example.

* negative ELBO (k = 1), with the KL term exact;
* negative IWAE bound with k samples, log (1/k) Σ_i p(x, z_i)/q(z_i|x);
* −log p(x), the number models are compared by (``nll``): exact, by quadrature on a
  grid, for models with a 2-D latent space; otherwise importance sampling (k = 5000)
  from a **defensive mixture** proposal
  r(z|x) = ½ q(z|x) + ½ (1/C) Σ_c q(z|x̃_c),  x̃_c ~ p(x̃|x)
  (:func:`mixture_is_per_example`). An encoder trained only on corrupted inputs can
  place q(z|x) of a clean x away from the posterior; its own corrupted-input
  components cover that mass, and the clean half keeps the estimate at most a factor
  2 in weight (log 2 nats in the worst case) from plain sampling where q(z|x) is good.
* ``nll_is``: the plain estimate with proposals from q(z|x) alone (Burda et al. 2015,
  Sec. 5.1), kept as a labelled second number.

Both importance-sampled estimates are logs of unbiased estimates of p(x): stochastic
lower bounds on log p(x) that converge to it as k grows. Taking per example the larger
of two of them is not (it can overstate log p(x) by up to log 2): one estimator is
chosen before looking. Samples are processed in chunks with a running log-sum-exp so
any k fits in memory. A model's training objective (DVAE/DIWAE at its own noise) is
reported beside these, labelled as what it is.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .models import VAE
from .objectives import log_weights, objective_per_example, uses_noise


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


CLEAN_WEIGHT = 0.5  # the defensive mixture's weight on the clean q(z|x)
MIXTURE_COMPONENTS = 16  # corrupted copies x̃_c in the mixture proposal
REFERENCE_NOISE = {"bernoulli": ("salt-pepper", 0.1), "gaussian": ("gaussian", 0.05)}


def mixture_noise(config, likelihood: str) -> tuple[str, float]:
    """The corruption of the mixture proposal's components: the run's own, else a reference one.

    Models trained without noise (VAE, IWAE) get salt-and-pepper 10 % (binary data) or
    Gaussian σ = 0.05 (real-valued data); the clean half of the proposal covers them anyway.
    """
    noisy = config is not None and uses_noise(config.objective) \
        and config.noise != "none" and config.noise_level > 0
    return (config.noise, float(config.noise_level)) if noisy else REFERENCE_NOISE[likelihood]


@torch.no_grad()
def mixture_is_per_example(
    model: VAE,
    x: torch.Tensor,
    num_samples: int,
    noise: str,
    noise_level: float,
    num_components: int = MIXTURE_COMPONENTS,
    generator: torch.Generator | None = None,
    chunk_size: int = 500,
    mean_image: torch.Tensor | None = None,
    clean_weight: float = CLEAN_WEIGHT,
) -> torch.Tensor:
    """log p(x) by importance sampling from a defensive mixture proposal: ``(batch,)``.

    r(z|x) = α q(z|x) + (1 − α)/C Σ_c q(z|x̃_c), x̃_c ~ p(x̃|x), C = ``num_components``,
    α = ``clean_weight``: the clean encoder plus the mixture posterior q̃(z|x) of
    Proposition 1. Each component gets a fixed share of the samples equal to its
    weight, and every weight uses the full mixture density (deterministic-mixture
    importance sampling), so (1/k) Σ p(x, z)/r(z) is unbiased for p(x) whatever the
    x̃_c, and its log is, like the plain estimate, a stochastic lower bound. The
    clean share is rounded to whole samples, then the rest split evenly; the weights
    used are those realised shares, so the estimate stays unbiased.
    """
    if num_components < 1:
        raise ValueError(f"num_components must be >= 1, not {num_components}")
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, not {num_samples}")
    if not 0.0 < clean_weight < 1.0:
        raise ValueError(f"clean_weight must be in (0, 1), not {clean_weight}")
    from .corruption import corrupt

    x_noisy = corrupt(x, noise, noise_level, num_components, generator, mean_image)  # (C, batch, D)
    z_loc, z_log_var = model.encode(torch.cat([x.unsqueeze(0), x_noisy]))  # (C+1, batch, latent)
    z_std = torch.exp(0.5 * z_log_var)
    per_noisy = max(1, round((1 - clean_weight) * num_samples / num_components))
    per_clean = max(1, round(clean_weight * num_samples))
    counts = torch.tensor([per_clean] + [per_noisy] * num_components, dtype=torch.float64)
    total_count = int(counts.sum())
    # the realised shares are the mixture weights: (C+1,)
    log_shares = (counts / total_count).log().to(device=x.device, dtype=z_loc.dtype)
    total = torch.full((x.shape[0],), -math.inf, device=x.device)

    def accumulate(z: torch.Tensor) -> None:  # z: (S, batch, latent)
        nonlocal total
        log_q = model.log_posterior(z.unsqueeze(1), z_loc, z_log_var)  # (S, C+1, batch)
        log_r = torch.logsumexp(log_q + log_shares.view(1, -1, 1), dim=1)  # (S, batch)
        log_w = model.log_likelihood(x, z) + model.log_prior(z) - log_r
        total = torch.logaddexp(total, torch.logsumexp(log_w, dim=0))

    for component, count in ((0, per_clean), *((c + 1, per_noisy) for c in range(num_components))):
        done = 0
        while done < count:
            n = min(chunk_size, count - done)
            eps = torch.randn((n, *z_loc.shape[1:]), generator=generator, device=x.device)  # (n, batch, latent)
            accumulate(z_loc[component] + z_std[component] * eps)
            done += n
    return total - math.log(total_count)


@torch.no_grad()
def exact_log_px_2d(model: VAE, x: torch.Tensor, grid_size: int | None = 241) -> torch.Tensor:
    """log p(x) by quadrature over the 2-D latent plane, per row of ``x``: ``(batch,)`` float64.

    ``grid_size``: points per axis of the final grid, or None for the adaptive one
    (:func:`analysis.true_posterior_grid`)."""
    if model.latent_dim != 2:
        raise ValueError(f"quadrature needs a 2-D latent space; this model has {model.latent_dim}")
    from .analysis import decoder_grid, true_posterior_grid

    search = decoder_grid(model)  # the coarse search for every row, computed once
    return torch.tensor([true_posterior_grid(model, xi.cpu(), grid_size=grid_size, decoder_grid=search).log_evidence
                         for xi in x], dtype=torch.float64)


NLL_KEYS = ("nll_exact", "nll_mix", "nll_is")  # in order of preference for comparing models
NLL_LABELS = {
    "nll_exact": "−log p(x), exact (quadrature over the 2-D latent plane)",
    "nll_mix": "−log p(x), importance-sampled (defensive mixture proposal)",
    "nll_is": "−log p(x), importance-sampled (plain proposal q(z|x))",
}


def headline_nll(metrics: dict) -> tuple[str, float] | None:
    """The stored −log p(x) to compare models by: exact if stored, else the mixture estimate, else the plain one."""
    for key in NLL_KEYS:
        if isinstance(metrics.get(key), (int, float)):
            return key, float(metrics[key])
    return None


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
    config=None,
    plain_samples: int | None = None,
    exact_2d: bool = False,
    mean_image: torch.Tensor | None = None,
    per_example: bool = False,
) -> dict:
    """Clean metrics of ``model`` on rows ``x`` (nats per example; lower is better for ``neg_*`` and ``nll*``).

    Returns ``neg_elbo``, ``neg_iwae_<k>`` for each k in ``iwae_samples``, and, unless
    ``importance_samples`` is 0: ``nll_mix`` (defensive-mixture importance sampling with
    ``importance_samples``, its corruption from ``config`` — see :func:`mixture_noise`),
    ``nll_is`` (plain proposal q(z|x), ``plain_samples`` samples, default the same; 0 skips
    it), and with ``exact_2d`` for a 2-D latent space ``nll_exact`` (quadrature, about 0.2 s a
    row on a small CPU). ``nll`` is the one to compare models by (:func:`headline_nll`), named in
    ``nll_method``. Each comes with ``*_stderr`` over examples; ``num_examples`` counts rows.
    ``training_objective`` (keys of :func:`objective_per_example`) adds ``neg_train_objective``.
    ``per_example`` adds ``per_example``: each metric's per-row values (float64 CPU tensors), for
    paired comparisons of models on the same rows.
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
    rows: dict[str, torch.Tensor] = {}

    def put(name: str, values: torch.Tensor) -> None:
        s = summarize(-values)
        metrics[name], metrics[f"{name}_stderr"] = s["mean"], s["stderr"]
        rows[name] = -values.detach().double().cpu()

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
        noise, level = mixture_noise(config, model.spec.likelihood)
        if noise == "mean-image" and mean_image is None:
            noise, level = REFERENCE_NOISE[model.spec.likelihood]
        metrics.update({"mixture_noise": noise, "mixture_level": level, "mixture_components": MIXTURE_COMPONENTS,
                        "mixture_clean_weight": CLEAN_WEIGHT})
        put("nll_mix", _batched(
            lambda xb: mixture_is_per_example(model, xb, importance_samples, noise, level, generator=g,
                                              chunk_size=chunk_size, mean_image=mean_image),
            x, batch_size, report(f"log p(x), mixture proposal, k={importance_samples}")))
        plain = importance_samples if plain_samples is None else plain_samples
        if plain:
            metrics["plain_samples"] = int(plain)
            put("nll_is", _batched(lambda xb: iwae_per_example(model, xb, plain, g, chunk_size), x,
                                   batch_size, report(f"log p(x), plain proposal, k={plain}")))
    if exact_2d and model.latent_dim == 2:
        put("nll_exact", _batched(lambda xb: exact_log_px_2d(model, xb), x, 50, report("log p(x), exact")))
    best = headline_nll(metrics)
    if best is not None:
        metrics["nll"], metrics["nll_stderr"], metrics["nll_method"] = best[1], metrics[f"{best[0]}_stderr"], best[0]
        rows["nll"] = rows[best[0]]
    if per_example:
        metrics["per_example"] = rows
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
