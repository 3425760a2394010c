"""Training objectives of the paper, as per-example Monte Carlo estimates in nats.

All of them start from one tensor of log importance weights

    log_weights[m, k, b] = log p(x_b, z^(k|m)) − log q(z^(k|m) | x̃_b^(m)),
    x̃^(m) ~ p(x̃|x),  z^(k|m) ~ q(z | x̃^(m)),                      # (M, K, batch)

computed in one vectorised pass (no Python loop over samples). The numerator
scores the CLEAN x; ``noisy-vae`` (a VAE fitted to the corrupted data, the
"augmentation by noise" of the paper's footnote 1) scores x̃ instead.

M means one thing everywhere: the number of corrupted copies x̃ per example.
Objectives without corruption (``vae``, ``iwae``) have none, so they take
M = 1 and use K alone for their samples (IWAE with k = K).

* ``elbo``  — (1/MK) Σ_m Σ_k log_weights: with no noise and M = K = 1 the VAE
  ELBO (Kingma & Welling); with noise it is the paper's DVAE objective, Eq. 11.
* ``iwae``  — log (1/MK) Σ_m Σ_k exp(log_weights): with no noise the IWAE bound
  (Burda et al. 2015) with k = MK; with noise the paper's DIWAE, Eq. 12.

What these are, exactly. Each z is drawn from q(z|x̃) of the SAME x̃, so for
a fixed x̃ the inner average is an ordinary ELBO (or IWAE) estimate with the
proposal q(·|x̃). Every such quantity is ≤ log p(x) in expectation, so Eq. 11
and Eq. 12 as sampled here are (stochastic) lower bounds on log p(x); for
M = 1 the expected DIWAE objective is E_x̃[IWAE_K(x; q(·|x̃))] ≤ log p(x).

What they are NOT. The paper's Eq. 9 orders L_dvae ≥ L_cvae, where L_cvae is
the ELBO of the mixture posterior q̃(z|x) = E_{p(x̃|x)} q(z|x̃). The reverse
holds: L_cvae − L_dvae = E_x̃ KL(q(z|x̃) ‖ q̃(z|x)) ≥ 0. And reading Eq. 8 with
z drawn from the mixture q̃ independently of x̃ gives a quantity that can
exceed log p(x) without limit (Tran & Ranganath's counterexample to Lemma 1).
:mod:`dvae_engine.boundlab` computes all of these exactly on tiny models.
"""

from __future__ import annotations

import math

import torch

from .corruption import corrupt

OBJECTIVES = ("vae", "iwae", "dvae", "diwae", "noisy-vae")
OBJECTIVE_INFO = {
    "vae": "VAE: the ELBO on clean inputs (K samples averaged)",
    "iwae": "IWAE: the importance-weighted bound with K samples on clean inputs",
    "dvae": "DVAE (Eq. 11): average of log p(x,z)/q(z|x̃) over M corrupted copies and K samples",
    "diwae": "DIWAE (Eq. 12): log of the average of p(x,z)/q(z|x̃) over M corrupted copies and K samples",
    "noisy-vae": "VAE fitted to the corrupted data: the ELBO of x̃ itself (reconstructs x̃, not x; "
                 "the noise augmentation of the paper's footnote 1, not its Sec. 4 baseline)",
}
RENAMED_OBJECTIVES = {"augment": "noisy-vae"}  # names used by earlier versions (and their checkpoints)


def is_importance_weighted(objective: str) -> bool:
    return objective in ("iwae", "diwae")


def uses_noise(objective: str) -> bool:
    return objective in ("dvae", "diwae", "noisy-vae")


def check_objective(objective: str, noise: str, num_corruptions: int, likelihood: str | None = None) -> None:
    """Raise ``ValueError`` for combinations that have no meaning (or no bound).

    * M > 1 without corruption: M counts corrupted copies, and VAE/IWAE corrupt nothing
      (use K for more samples).
    * ``noisy-vae`` with Gaussian noise on binary data: the Bernoulli likelihood of an x̃
      outside {0, 1} is not a probability and grows without limit with the logits.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if not uses_noise(objective) and num_corruptions != 1:
        raise ValueError(
            f"objective {objective!r} corrupts nothing, so M (corrupted copies) must be 1, not {num_corruptions}; "
            f"use K (num_samples) for more samples of z, or {'dvae' if objective == 'vae' else 'diwae'} "
            "for M corrupted copies")
    if objective == "noisy-vae" and noise == "gaussian" and likelihood == "bernoulli":
        raise ValueError(
            "noisy-vae scores the corrupted x̃ with the model's likelihood; Gaussian noise makes x̃ real-valued, "
            "and the Bernoulli likelihood of binary data has no bound there (it grows without limit). "
            "Use salt-pepper, masking or mean-image noise on binary data, or dvae, which scores the clean x")


def draw_eps(
    x_noisy: torch.Tensor, latent_dim: int, num_samples: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Standard normal noise for K reparameterised draws per corrupted copy: ``(M, K, batch, latent)``."""
    if num_samples < 1:
        raise ValueError(f"num_samples (K) must be >= 1, not {num_samples}")
    shape = (x_noisy.shape[0], num_samples, x_noisy.shape[1], latent_dim)
    return torch.randn(shape, generator=generator, device=x_noisy.device, dtype=x_noisy.dtype)


def log_weights(
    model,
    x_clean: torch.Tensor,
    x_noisy: torch.Tensor,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
    reconstruct: str = "clean",
    return_kl: bool = False,
):
    """log p(x, z) − log q(z|x̃) for K draws from each of M corrupted copies: ``(M, K, batch)``.

    ``x_clean`` is ``(batch, D)``, ``x_noisy`` is ``(M, batch, D)``.
    ``reconstruct="corrupted"`` scores x̃ in the numerator (``noisy-vae``). With
    ``return_kl`` it also returns the log-likelihood term ``(M, K, batch)`` and the
    analytic KL(q(z|x̃) ‖ p(z)) ``(M, batch)``.
    """
    if reconstruct not in ("clean", "corrupted"):
        raise ValueError(f"reconstruct must be 'clean' or 'corrupted', not {reconstruct!r}")
    eps = draw_eps(x_noisy, model.latent_dim, num_samples, generator)  # (M, K, batch, latent)
    x_target = x_clean if reconstruct == "clean" else x_noisy.unsqueeze(1)
    log_w, log_px_z, kl = model(x_target, x_noisy, eps)
    return (log_w, log_px_z, kl) if return_kl else log_w


def elbo(log_w: torch.Tensor) -> torch.Tensor:
    """(1/MK) Σ_m Σ_k log_weights → ``(batch,)``: the ELBO / DVAE (Eq. 11) estimate."""
    return log_w.mean(dim=(0, 1))


def iwae(log_w: torch.Tensor) -> torch.Tensor:
    """log (1/MK) Σ_m Σ_k exp(log_weights) → ``(batch,)``: the IWAE / DIWAE (Eq. 12) estimate."""
    num = log_w.shape[0] * log_w.shape[1]
    return torch.logsumexp(log_w.flatten(0, 1), dim=0) - math.log(num)


def draw(
    x_clean: torch.Tensor,
    latent_dim: int,
    objective: str,
    noise: str = "none",
    noise_level: float = 0.0,
    num_corruptions: int = 1,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
    mean_image: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All the randomness of one objective evaluation: x̃ ``(M, batch, D)`` and eps ``(M, K, batch, latent)``.

    ``vae``/``iwae`` use no corruption: x̃ = x with M = 1 (M > 1 is refused, see :func:`check_objective`).
    """
    check_objective(objective, noise, num_corruptions)
    if uses_noise(objective):
        x_noisy = corrupt(x_clean, noise, noise_level, num_corruptions, generator, mean_image)
    else:
        x_noisy = x_clean.unsqueeze(0)  # (1, batch, D)
    return x_noisy, draw_eps(x_noisy, latent_dim, num_samples, generator)


def objective_from_draws(
    model, x_clean: torch.Tensor, x_noisy: torch.Tensor, eps: torch.Tensor, objective: str,
    analytic_kl: bool = False, kl_weight: float = 1.0,
) -> torch.Tensor:
    """The objective's per-example value ``(batch,)`` for given draws (deterministic; what the trainer compiles).

    ``analytic_kl`` replaces the sampled log p(z) − log q(z|x̃) of the ELBO-type
    objectives by its exact expectation −KL(q(z|x̃) ‖ p(z)): same expectation,
    lower variance. It has no meaning for the importance-weighted ones and is
    ignored there. ``kl_weight`` β < 1 (KL warm-up) scales log p(z) − log q(z|x̃)
    inside every weight; the result is then a training device, not a bound.
    """
    x_target = x_noisy.unsqueeze(1) if objective == "noisy-vae" else x_clean
    log_w, log_px_z, kl = model(x_target, x_noisy, eps)  # (M, K, batch), (M, K, batch), (M, batch)
    if kl_weight != 1.0:
        log_w = log_px_z + kl_weight * (log_w - log_px_z)
        kl = kl_weight * kl
    if is_importance_weighted(objective):
        return iwae(log_w)
    if analytic_kl:
        return log_px_z.mean(dim=(0, 1)) - kl.mean(dim=0)
    return elbo(log_w)


def objective_per_example(
    model,
    x_clean: torch.Tensor,
    objective: str,
    noise: str = "none",
    noise_level: float = 0.0,
    num_corruptions: int = 1,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
    mean_image: torch.Tensor | None = None,
    analytic_kl: bool = False,
) -> torch.Tensor:
    """One objective's per-example estimate ``(batch,)`` in nats (higher is better).

    Draws x̃ ~ p(x̃|x) (M copies) and z ~ q(z|x̃) (K per copy), then evaluates
    :func:`objective_from_draws`. ``vae``/``iwae`` ignore the noise settings (x̃ = x).
    """
    check_objective(objective, noise, num_corruptions, model.spec.likelihood)
    x_noisy, eps = draw(x_clean, model.latent_dim, objective, noise, noise_level, num_corruptions, num_samples,
                        generator, mean_image)
    return objective_from_draws(model, x_clean, x_noisy, eps, objective, analytic_kl)
