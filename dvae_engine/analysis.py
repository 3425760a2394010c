"""Model inspection: the computations behind the Posterior, Reconstructions and Samples pages.

* The mixture posterior of the paper's Proposition 1,

      q̃(z|x) = E_{p(x̃|x)}[q(z|x̃)] ≈ (1/N) Σ_n N(z; μ(x̃_n), diag σ²(x̃_n)),   x̃_n ~ p(x̃|x),

  an equal-weight mixture of the encoder's Gaussians at N corrupted copies of
  one clean x, beside the clean single Gaussian q(z|x) = N(μ(x), diag σ²(x)).
* 2-D views of latent space: a PCA plane fitted on encoder means (a Gaussian
  N(μ, Σ) projects exactly to N(W(μ − c), W Σ Wᵀ)), or t-SNE of points.
* For 2-D latents, the TRUE posterior p(z|x) = p(x|z) p(z) / p(x) on a grid,
  with log p(x) = log ∫ p(x|z) p(z) dz by quadrature (log-sum-exp times the
  cell area), and KL divergences between it and q(z|x), q̃(z|x).
* Reconstructions of corrupted inputs with the clean-input log-likelihood
  log p(x|z) at the encoder's mean of q(z|x̃), prior samples, latent
  interpolations, and preparation of user-drawn or uploaded images.

All densities are natural-log densities (nats). Results come back on the CPU.
This module never imports Streamlit or plotly.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .corruption import corrupt
from .models import LOG_2PI, VAE

# --- small helpers -----------------------------------------------------------------------------


def _device(model: VAE) -> torch.device:
    return next(model.parameters()).device


def _generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(int(seed))


def gaussian_log_density(z: torch.Tensor, loc: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """log N(z; loc, diag(var)) summed over the last (latent) dimension; broadcasts: ``(...)``."""
    return -0.5 * (LOG_2PI + torch.log(var) + (z - loc) ** 2 / var).sum(-1)


def mixture_log_density(z: torch.Tensor, loc: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    """log of the equal-weight mixture (1/N) Σ_n N(z; loc[n], diag(var[n])).

    ``z`` is ``(..., latent)``, ``loc`` and ``var`` are ``(N, latent)``; returns ``(...)``.
    Computed as log-sum-exp over components minus log N, so it never underflows.
    """
    # Σ_l (z_l − μ_nl)²/v_nl = Σ_l z_l²/v_nl − 2 z_l μ_nl/v_nl + μ_nl²/v_nl: one (P, 2L+1) @ (2L+1, N) product
    # instead of a (P, N, L) array. In float64, so that the cancellation between its large terms (far from a
    # narrow component) costs nothing at float32 precision.
    loc64, var64 = loc.double(), var.double()
    z64 = z.double().reshape(-1, loc.shape[-1])  # (P, L)
    features = torch.cat([z64 * z64, z64, torch.ones_like(z64[:, :1])], dim=1)  # (P, 2L+1)
    inv_var = 1.0 / var64
    log_norm = -0.5 * (LOG_2PI + torch.log(var64)).sum(-1)  # (N,)
    coefficients = torch.cat([-0.5 * inv_var, loc64 * inv_var,
                              (log_norm - 0.5 * (loc64 * loc64 * inv_var).sum(-1))[:, None]], dim=1)  # (N, 2L+1)
    per_component = features @ coefficients.T  # (P, N)
    out = torch.logsumexp(per_component, dim=-1) - math.log(loc.shape[0])
    return out.to(z.dtype).reshape(z.shape[:-1])


def sample_mixture(
    loc: torch.Tensor, var: torch.Tensor, num_samples: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``num_samples`` draws from the equal-weight diagonal-Gaussian mixture: ``(num_samples, latent)``."""
    which = torch.randint(loc.shape[0], (num_samples,), generator=generator, device=loc.device)  # (S,)
    eps = torch.randn(num_samples, loc.shape[1], generator=generator, device=loc.device, dtype=loc.dtype)
    return loc[which] + var[which].sqrt() * eps


# --- the mixture posterior (Proposition 1) -----------------------------------------------------


@dataclass
class MixturePosterior:
    """q̃(z|x) ≈ (1/N) Σ_n N(z; component_loc[n], diag component_var[n]) and the clean q(z|x), on the CPU."""

    x_clean: torch.Tensor  # (D,)
    x_noisy: torch.Tensor  # (N, D), the corrupted copies x̃_n ~ p(x̃|x)
    component_loc: torch.Tensor  # (N, latent), μ(x̃_n)
    component_var: torch.Tensor  # (N, latent), σ²(x̃_n)
    clean_loc: torch.Tensor  # (latent,), μ(x)
    clean_var: torch.Tensor  # (latent,), σ²(x)

    @property
    def num_components(self) -> int:
        return int(self.component_loc.shape[0])

    @property
    def latent_dim(self) -> int:
        return int(self.component_loc.shape[1])

    def log_density(self, z: torch.Tensor) -> torch.Tensor:
        """log q̃(z|x) at points ``z`` of shape ``(..., latent)``: ``(...)``."""
        z = torch.as_tensor(z, dtype=self.component_loc.dtype)
        return mixture_log_density(z, self.component_loc, self.component_var)

    def clean_log_density(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) of the clean input at points ``z`` of shape ``(..., latent)``: ``(...)``."""
        z = torch.as_tensor(z, dtype=self.clean_loc.dtype)
        return gaussian_log_density(z, self.clean_loc, self.clean_var)

    def sample(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws z ~ q̃(z|x): ``(num_samples, latent)``."""
        return sample_mixture(self.component_loc, self.component_var, num_samples, generator)

    def clean_sample(self, num_samples: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws z ~ q(z|x): ``(num_samples, latent)``."""
        eps = torch.randn(num_samples, self.latent_dim, generator=generator, dtype=self.clean_loc.dtype)
        return self.clean_loc + self.clean_var.sqrt() * eps


@torch.no_grad()
def mixture_posterior(
    model: VAE,
    x_clean: torch.Tensor,
    noise: str,
    level: float,
    num_copies: int = 32,
    seed: int = 0,
    mean_image: torch.Tensor | None = None,
) -> MixturePosterior:
    """Encode N = ``num_copies`` corrupted copies of one clean image ``x_clean`` ``(D,)``.

    The copies are drawn with :func:`dvae_engine.corruption.corrupt` from a
    ``torch.Generator`` seeded with ``seed``, so the same arguments give the
    same mixture. At noise level 0 every component equals the clean q(z|x).
    """
    x_clean = torch.as_tensor(x_clean, dtype=torch.float32).reshape(-1)
    if x_clean.shape[0] != model.spec.input_dim:
        raise ValueError(f"image has {x_clean.shape[0]} pixels; the model expects {model.spec.input_dim}")
    if num_copies < 1:
        raise ValueError(f"num_copies must be >= 1, not {num_copies}")
    device = _device(model)
    x = x_clean.to(device).unsqueeze(0)  # (1, D)
    generator = _generator(seed, device)
    x_noisy = corrupt(x, noise, level, num_copies, generator, mean_image)[:, 0]  # (N, D)
    z_loc, z_log_var = model.encode(x_noisy)  # (N, latent)
    clean_loc, clean_log_var = model.encode(x)  # (1, latent)
    return MixturePosterior(
        x_clean=x_clean.cpu(),
        x_noisy=x_noisy.cpu(),
        component_loc=z_loc.cpu(),
        component_var=z_log_var.exp().cpu(),
        clean_loc=clean_loc[0].cpu(),
        clean_var=clean_log_var[0].exp().cpu(),
    )


@torch.no_grad()
def encoder_means(model: VAE, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """μ(x) of q(z|x) for every row of ``x`` ``(n, D)``: ``(n, latent)`` on the CPU."""
    device = _device(model)
    out = [model.encode(x[i:i + batch_size].to(device))[0].cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, model.latent_dim)


# --- 2-D projections ---------------------------------------------------------------------------


@dataclass
class Projection:
    """A linear map z ↦ W (z − center) from latent space onto the 2-D plane of the plots.

    ``method`` is ``"pca"`` (W: the top two principal directions of a sample
    of encoder means) or ``"identity"`` (latent_dim ≤ 2: the latent axes
    themselves, no projection). Because the map is linear, a Gaussian
    N(μ, Σ) projects exactly to N(W(μ − c), W Σ Wᵀ): ellipses are honest.
    """

    center: np.ndarray  # (latent,)
    components: np.ndarray  # (2, latent), orthonormal rows (a zero row when latent_dim == 1)
    explained_variance_ratio: np.ndarray | None  # (2,) for PCA: share of the means' variance per axis
    method: str

    @property
    def axis_titles(self) -> tuple[str, str]:
        if self.method == "identity":
            return "z₁", "z₂"
        ratio = self.explained_variance_ratio
        share = ["", ""] if ratio is None else [f" ({100 * r:.0f}% of variance)" for r in ratio]
        return f"PC 1{share[0]}", f"PC 2{share[1]}"

    def transform(self, points) -> np.ndarray:
        """Project points ``(..., latent)`` to ``(..., 2)``."""
        points = np.asarray(points, dtype=np.float64)
        return (points - self.center) @ self.components.T

    def project_gaussian(self, loc, diag_var) -> tuple[np.ndarray, np.ndarray]:
        """N(loc, diag(diag_var)) ↦ (W(loc − c), W diag(var) Wᵀ): means ``(..., 2)``, covariances ``(..., 2, 2)``."""
        loc = np.asarray(loc, dtype=np.float64)
        diag_var = np.asarray(diag_var, dtype=np.float64)
        w = self.components  # (2, latent)
        cov2 = np.einsum("il,...l,jl->...ij", w, diag_var, w)  # (..., 2, 2)
        return self.transform(loc), cov2


def fit_pca(z_loc) -> Projection:
    """A 2-D PCA plane fitted on encoder means ``(n, latent)`` (identity when latent_dim ≤ 2)."""
    z_loc = np.asarray(z_loc, dtype=np.float64)
    if z_loc.ndim != 2:
        raise ValueError(f"expected encoder means of shape (n, latent), got {z_loc.shape}")
    latent = z_loc.shape[1]
    if latent <= 2:
        components = np.eye(2, latent)  # latent 1: the second plot axis is constant 0
        return Projection(np.zeros(latent), components, None, "identity")
    if z_loc.shape[0] < 3:
        raise ValueError(f"PCA needs at least 3 encoder means, got {z_loc.shape[0]}")
    center = z_loc.mean(axis=0)
    _, singular, vt = np.linalg.svd(z_loc - center, full_matrices=False)
    # fix each direction's sign (largest |entry| positive) so refits give the same picture
    signs = np.sign(vt[:2][np.arange(2), np.abs(vt[:2]).argmax(axis=1)])
    components = vt[:2] * signs[:, None]
    variance = singular**2
    return Projection(center, components, variance[:2] / variance.sum(), "pca")


def tsne_embed(points, seed: int = 0, perplexity: float | None = None) -> np.ndarray:
    """t-SNE (scikit-learn) of ``points`` ``(n, latent)`` to ``(n, 2)``.

    t-SNE is a nonlinear map of POINTS only: it has no Jacobian one could use
    to carry a covariance along, so it cannot draw the components' ellipses or
    a density; distances between far-apart clusters are not meaningful either.
    Use it to see which corrupted copies land near each other. Perplexity
    defaults to min(30, (n − 1) / 3).
    """
    from sklearn.manifold import TSNE

    points = np.asarray(points, dtype=np.float64)
    n = len(points)
    if n < 4:
        raise ValueError(f"t-SNE needs at least 4 points, got {n}")
    perplexity = perplexity if perplexity is not None else min(30.0, (n - 1) / 3)
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(points)


def ellipse_points(mean2, cov2, num_std: float = 2.0, num_points: int = 48) -> np.ndarray:
    """Outline of the ``num_std``-σ ellipse of 2-D Gaussians: ``(..., num_points, 2)`` (closed: last = first).

    ``mean2`` is ``(..., 2)``, ``cov2`` is ``(..., 2, 2)``. The outline is
    mean + num_std · V √Λ (cos t, sin t) with Σ = V Λ Vᵀ.
    """
    mean2 = np.asarray(mean2, dtype=np.float64)
    cov2 = np.asarray(cov2, dtype=np.float64)
    eigval, eigvec = np.linalg.eigh(cov2)  # (..., 2), (..., 2, 2)
    t = np.linspace(0.0, 2 * math.pi, num_points)
    circle = np.stack([np.cos(t), np.sin(t)], axis=-1)  # (P, 2)
    scale = eigvec * np.sqrt(np.clip(eigval, 0.0, None))[..., None, :]  # (..., 2, 2): V √Λ
    return mean2[..., None, :] + num_std * np.einsum("...ij,pj->...pi", scale, circle)


@dataclass
class ProjectedPosterior:
    """A :class:`MixturePosterior` drawn in a 2-D plane (all arrays numpy)."""

    component_mean2: np.ndarray  # (N, 2)
    component_cov2: np.ndarray  # (N, 2, 2)
    component_ellipses: np.ndarray  # (N, P, 2), 2σ outlines
    clean_mean2: np.ndarray  # (2,)
    clean_cov2: np.ndarray  # (2, 2)
    clean_ellipse: np.ndarray  # (P, 2)
    mixture_samples2: np.ndarray  # (S, 2), draws z ~ q̃(z|x) projected
    axis_titles: tuple[str, str]


def project_posterior(
    mixture: MixturePosterior, projection: Projection, num_samples: int = 2000, seed: int = 0,
    num_std: float = 2.0,
) -> ProjectedPosterior:
    """Project every component, the clean q(z|x) and ``num_samples`` mixture draws onto the plane."""
    mean2, cov2 = projection.project_gaussian(mixture.component_loc, mixture.component_var)
    clean_mean2, clean_cov2 = projection.project_gaussian(mixture.clean_loc, mixture.clean_var)
    samples = mixture.sample(num_samples, torch.Generator().manual_seed(int(seed)))
    return ProjectedPosterior(
        mean2, cov2, ellipse_points(mean2, cov2, num_std), clean_mean2, clean_cov2,
        ellipse_points(clean_mean2, clean_cov2, num_std), projection.transform(samples), projection.axis_titles,
    )


# --- the true posterior of a 2-D latent model ---------------------------------------------------


def grid_mesh(z1, z2) -> np.ndarray:
    """The points of ``z1`` × ``z2`` as ``(G2, G1, 2)``: row j is z₂ = ``z2[j]``, column i is z₁ = ``z1[i]``."""
    return np.stack(np.meshgrid(z1, z2), axis=-1)


@dataclass
class PosteriorGrid:
    """log p(x, z) = log p(x|z) + log p(z) on a regular grid of a 2-D latent space.

    Arrays are ``(G2, G1)``: row j is z₂ = ``z2[j]``, column i is z₁ = ``z1[i]``
    (the layout plotly's contour traces expect).
    """

    z1: np.ndarray  # (G1,) cell centres along z₁
    z2: np.ndarray  # (G2,)
    log_joint: np.ndarray  # (G2, G1), log p(x, z) in nats
    log_evidence: float  # log p(x) ≈ log Σ_cells p(x, z) ΔA (midpoint rule), nats
    converged: bool = True  # False: the adaptive grid reached its largest size with log p(x) still moving

    @property
    def cell_area(self) -> float:
        return float((self.z1[1] - self.z1[0]) * (self.z2[1] - self.z2[0]))

    @property
    def log_posterior(self) -> np.ndarray:
        """log p(z|x) = log p(x, z) − log p(x): ``(G2, G1)``, integrates to 1 over the grid."""
        return self.log_joint - self.log_evidence

    def points(self) -> np.ndarray:
        """The grid's z as ``(G2, G1, 2)``."""
        return grid_mesh(self.z1, self.z2)


@torch.no_grad()
def log_joint_at(model: VAE, x_clean: torch.Tensor, z: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    """log p(x|z) + log p(z) for one image ``(D,)`` at latents ``(P, latent)``: ``(P,)`` float64 on the CPU."""
    device = _device(model)
    x = torch.as_tensor(x_clean, dtype=torch.float32).reshape(-1).to(device)  # (D,)
    out = []
    for start in range(0, len(z), batch_size):
        zb = z[start:start + batch_size].to(device=device, dtype=torch.float32)  # (P_b, latent)
        if model.spec.likelihood == "bernoulli":
            # Σ_d x_d l_d − softplus(l_d) with x shared by every z: a matrix-vector product and one softplus pass
            logits = model.decoder(zb)  # (P_b, D)
            log_px_z = logits @ x - F.softplus(logits).sum(-1)
        else:
            log_px_z = model.log_likelihood(x, zb)
        out.append((log_px_z.double() + model.log_prior(zb).double()).cpu())
    return torch.cat(out)


def _grid_points(z1: np.ndarray, z2: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(grid_mesh(z1, z2).reshape(-1, 2), dtype=torch.float32)  # (G2·G1, 2)


def _grid_log_joint(model, x, lo1, hi1, lo2, hi2, size1, size2):
    z1 = np.linspace(lo1, hi1, size1)
    z2 = np.linspace(lo2, hi2, size2)
    log_joint = log_joint_at(model, x, _grid_points(z1, z2)).numpy()
    return z1, z2, log_joint.reshape(size2, size1)


@dataclass(frozen=True)
class DecoderGrid:
    """A Bernoulli decoder evaluated once on a fixed grid of a 2-D latent space, so that log p(x, z) on that
    grid, for any image x, is one matrix-vector product.

    With logits l(z) = W h(z) + b (h: the last hidden layer),
    log p(x|z) = Σ_d x_d l_d(z) − softplus(l_d(z)) = h(z)·(Wᵀx) + b·x − Σ_d softplus(l_d(z)),
    and the last sum does not depend on x. Built by :func:`decoder_grid`; about 13 MB for a 128² grid of
    a 200-unit decoder.
    """

    z1: np.ndarray  # (G1,)
    z2: np.ndarray  # (G2,)
    hidden: torch.Tensor  # (G2·G1, H) float32, h(z)
    weight: torch.Tensor  # (D, H)
    bias: torch.Tensor  # (D,)
    log_prior_minus_norm: torch.Tensor  # (G2·G1,) float64: log p(z) − Σ_d softplus(l_d(z))

    def points(self) -> np.ndarray:
        """The grid's z as ``(G2, G1, 2)``."""
        return grid_mesh(self.z1, self.z2)

    def covers(self, extent: float) -> bool:
        """Whether the grid holds the square [−extent, extent]²."""
        return self.z1[0] <= -extent and self.z1[-1] >= extent and self.z2[0] <= -extent and self.z2[-1] >= extent

    @torch.no_grad()
    def log_joint(self, x_clean: torch.Tensor) -> np.ndarray:
        """log p(x, z) on the grid for one image ``(D,)``: ``(G2, G1)`` float64."""
        x = torch.as_tensor(x_clean, dtype=torch.float32).reshape(-1).to(self.weight.device)  # (D,)
        x_dot_logits = self.hidden @ (self.weight.t() @ x) + self.bias @ x  # (G2·G1,)
        log_joint = x_dot_logits.double().cpu() + self.log_prior_minus_norm
        return log_joint.numpy().reshape(len(self.z2), len(self.z1))


@torch.no_grad()
def decoder_grid(model: VAE, extent: float = 6.0, size: int = 128, batch_size: int = 4096) -> DecoderGrid | None:
    """:class:`DecoderGrid` of a 2-D latent Bernoulli model on ``size``² points over [−extent, extent]², or None
    where it does not apply (a Gaussian decoder). ``true_posterior_grid(..., decoder_grid=…)`` uses it for its
    coarse search, which then costs no decoder pass."""
    if model.latent_dim != 2 or model.spec.likelihood != "bernoulli":
        return None
    body, last = model.decoder[:-1], model.decoder[-1]
    z1 = np.linspace(-extent, extent, size)
    points = _grid_points(z1, z1).to(_device(model))  # (G², 2)
    hidden, log_norm = [], []
    for start in range(0, len(points), batch_size):
        h = body(points[start:start + batch_size])  # (P_b, H)
        hidden.append(h)
        log_norm.append(F.softplus(last(h)).sum(-1).double())
    log_prior = model.log_prior(points).double()
    return DecoderGrid(z1, z1.copy(), torch.cat(hidden), last.weight.detach(), last.bias.detach(),
                       (log_prior - torch.cat(log_norm)).cpu())


# The adaptive fine grid: 21², 41², 81², 161², 321² points (each holds the previous one as every other point).
FIRST_GRID_SIZE = 21
MAX_GRID_SIZE = 321
FOCUS_SIZE = 11  # points per axis on each focus box (the encoder's ±5σ), where a sharp posterior may hide
REFINE_SIZE = 25  # points per axis, at least, of the grid that tightens the coarse search's box


def _mass_box(grids, mass_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The box around the densest cells of ``grids`` (``(z1, z2, log_joint)`` triples) that together hold all but
    ``mass_threshold`` of the mass seen on them, padded by one of each cell's grid steps."""
    log_density, log_mass, points, steps = [], [], [], []
    for z1, z2, log_joint in grids:
        step = np.array([z1[1] - z1[0], z2[1] - z2[0]])
        log_density.append(log_joint.ravel())
        log_mass.append(log_joint.ravel() + math.log(step[0] * step[1]))
        points.append(grid_mesh(z1, z2).reshape(-1, 2))
        steps.append(np.broadcast_to(step, (log_joint.size, 2)))
    order = np.argsort(-np.concatenate(log_density))
    mass = np.exp(np.concatenate(log_mass)[order] - np.max(np.concatenate(log_mass)))
    cumulative = np.cumsum(mass)
    keep = order[:np.searchsorted(cumulative, (1.0 - mass_threshold) * cumulative[-1]) + 1]
    points, steps = np.concatenate(points)[keep], np.concatenate(steps)[keep]  # (kept, 2)
    return (points - steps).min(axis=0), (points + steps).max(axis=0)


def _refined_log_joint(model, x, z1: np.ndarray, z2: np.ndarray, coarser: np.ndarray) -> np.ndarray:
    """log p(x, z) on the grid ``z1`` × ``z2``, where every other point of it is the coarser grid's ``coarser``."""
    out = np.empty((len(z2), len(z1)))
    out[::2, ::2] = coarser
    new = np.ones(out.shape, dtype=bool)
    new[::2, ::2] = False
    rows, cols = np.nonzero(new)
    points = torch.as_tensor(np.stack([z1[cols], z2[rows]], axis=-1), dtype=torch.float32)  # (P, 2)
    out[rows, cols] = log_joint_at(model, x, points).numpy()
    return out


def _evidence_and_entropy(log_joint: np.ndarray, cell_area: float) -> tuple[float, float]:
    """log p(x) by the midpoint rule and the entropy of p(z|x) on that grid, nats."""
    log_evidence = _logsumexp(log_joint) + math.log(cell_area)
    log_posterior = log_joint - log_evidence
    return log_evidence, float(-(np.exp(log_posterior) * log_posterior).sum() * cell_area)


def true_posterior_grid(
    model: VAE,
    x_clean: torch.Tensor,
    grid_size: int | None = None,
    coarse_size: int = 128,
    coarse_extent: float = 6.0,
    focus: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
    mass_threshold: float = 1e-6,
    tolerance: float = 1e-4,
    decoder_grid: DecoderGrid | None = None,
) -> PosteriorGrid:
    """The true posterior p(z|x) ∝ p(x|z) p(z) of a 2-D latent model, normalised on a grid.

    1. Search: a coarse ``coarse_size``² grid over [−E, E]² (E = ``coarse_extent``, widened to hold every
       focus box; ``decoder_grid``, if it covers that square, stands in for it) and a small grid on each
       Gaussian in ``focus`` (±5σ; default: the clean q(z|x) of the model's own encoder, where a posterior
       too sharp for the coarse grid still shows). The box holds the densest cells that
       together carry all but ``mass_threshold`` of the mass seen, padded by one cell.
    2. Tighten: a grid on that box (at least as fine as the coarse one) gives the box again.
    3. Integrate: a regular grid on the tight box. The normaliser is the midpoint rule in log space,
       log p(x) ≈ logsumexp_ij log p(x, z_ij) + log ΔA, which neglects the mass outside the box
       (~``mass_threshold`` of it). With ``grid_size`` that grid has ``grid_size``² points;
       without it, 21² points, then 41², 81², … up to 321² (each reusing the last), until log p(x) and the
       entropy of p(z|x) both move by at most ``tolerance`` nats from one to the next, or have just
       collapsed so that the next move would (change² ≤ ``tolerance`` × the change before). If neither
       happens by 321², the result says so (``converged`` False).
    """
    if model.latent_dim != 2:
        raise ValueError(f"the grid posterior needs a 2-D latent space; this model has {model.latent_dim}")
    x = torch.as_tensor(x_clean, dtype=torch.float32).reshape(-1)
    if focus is None:
        z_loc, z_log_var = model.encode(x.to(_device(model)).unsqueeze(0))
        focus = [(z_loc[0].detach().cpu(), z_log_var[0].exp().detach().cpu())]
    boxes = []
    for loc, var in focus:
        loc = np.asarray(loc, dtype=np.float64)
        half = 5.0 * np.sqrt(np.asarray(var, dtype=np.float64))
        boxes.append(np.stack([loc - half, loc + half]))  # (2 [lo, hi], 2 [z1, z2])
    extent = max([coarse_extent] + [float(np.abs(b).max()) for b in boxes])

    if decoder_grid is not None and decoder_grid.covers(extent):
        search = [(decoder_grid.z1, decoder_grid.z2, decoder_grid.log_joint(x))]
    else:
        search = [_grid_log_joint(model, x, -extent, extent, -extent, extent, coarse_size, coarse_size)]
    # a box too narrow for float64 to hold FOCUS_SIZE distinct points (σ underflowing to 0) has no cells
    focus_grids = [_grid_log_joint(model, x, b[0, 0], b[1, 0], b[0, 1], b[1, 1], FOCUS_SIZE, FOCUS_SIZE)
                   for b in boxes if np.all(b[1] - b[0] > 1e-9 * (1.0 + np.abs(b).max(axis=0)))]
    lo, hi = _mass_box(search + focus_grids, mass_threshold)
    coarse_step = search[0][0][1] - search[0][0][0]
    sizes = [max(REFINE_SIZE, int(math.ceil((hi - lo)[k] / coarse_step)) + 1) for k in range(2)]
    # the focus grids again: a mode too sharp for the tightening grid's cells would otherwise drop out of the box
    tighten = _grid_log_joint(model, x, lo[0], hi[0], lo[1], hi[1], *sizes)
    lo, hi = _mass_box([tighten, *focus_grids], mass_threshold)

    if grid_size is not None:
        z1, z2, fine = _grid_log_joint(model, x, lo[0], hi[0], lo[1], hi[1], grid_size, grid_size)
        log_evidence = _logsumexp(fine) + math.log((z1[1] - z1[0]) * (z2[1] - z2[0]))
        return PosteriorGrid(z1, z2, fine, log_evidence)
    size = FIRST_GRID_SIZE
    z1, z2, fine = _grid_log_joint(model, x, lo[0], hi[0], lo[1], hi[1], size, size)
    estimate = np.array(_evidence_and_entropy(fine, (z1[1] - z1[0]) * (z2[1] - z2[0])))
    change, converged = None, False
    while size < MAX_GRID_SIZE:
        size = 2 * size - 1
        z1, z2 = np.linspace(lo[0], hi[0], size), np.linspace(lo[1], hi[1], size)
        fine = _refined_log_joint(model, x, z1, z2, fine)
        previous, estimate = estimate, np.array(_evidence_and_entropy(fine, (z1[1] - z1[0]) * (z2[1] - z2[0])))
        change, last_change = np.abs(estimate - previous), change
        if np.all(change <= tolerance):
            converged = True
            break
        # The midpoint rule on a smooth, decaying integrand converges faster than geometrically once the cells
        # resolve it (halving the cell raises the error to about its 4th power), so when the change has just
        # collapsed, the newest estimate's own error is below change²/last change: no need for a finer grid.
        if last_change is not None and np.all(change <= 100 * tolerance) and np.all(
                change**2 <= tolerance * np.maximum(last_change, change)):
            converged = True
            break
    return PosteriorGrid(z1, z2, fine, float(estimate[0]), converged)


def _logsumexp(a: np.ndarray) -> float:
    top = float(np.max(a))
    return top + math.log(float(np.exp(a - top).sum()))


def density_on_grid(log_density: Callable[[torch.Tensor], torch.Tensor], z1, z2) -> np.ndarray:
    """Evaluate a log density (a function of ``(P, 2)`` points) on the grid ``z1`` × ``z2``: ``(G2, G1)``."""
    z1, z2 = np.asarray(z1), np.asarray(z2)
    values = log_density(_grid_points(z1, z2))
    return values.double().numpy().reshape(len(z2), len(z1))


def hpd_coverage(log_density: np.ndarray) -> np.ndarray:
    """For each grid cell, the share of the grid's mass in cells at least as dense: ``(G2, G1)`` in (0, 1].

    Its contour at level c outlines the highest-density region holding a
    fraction c of the mass seen on the grid (e.g. c = 0.5, 0.9): one way to
    draw densities of very different heights with comparable contours.
    """
    flat = np.asarray(log_density, dtype=np.float64).ravel()
    order = np.argsort(-flat)
    prob = np.exp(flat[order] - flat[order[0]])
    coverage = np.empty_like(flat)
    coverage[order] = np.cumsum(prob) / prob.sum()
    return coverage.reshape(np.shape(log_density))


def grid_box(points: Sequence[np.ndarray], pad: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper corners ``(2,)`` of a box around 2-D point sets ``(..., 2)``, padded by ``pad`` of its size."""
    stacked = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in points])
    lo, hi = stacked.min(axis=0), stacked.max(axis=0)
    margin = pad * np.maximum(hi - lo, 1e-3)
    return lo - margin, hi + margin


@dataclass
class PosteriorComparison:
    """How well q(z|x) and q̃(z|x) fit the true p(z|x) of a 2-D latent model, in nats.

    ``kl_true_*`` is KL(p(z|x) ‖ q) = ∫ p (log p − log q) dz by the midpoint
    rule on the true posterior's grid (q's density evaluated exactly, not
    renormalised; p normalised on the grid). It asks: does q cover where p has
    mass? (the mass-covering direction).

    ``kl_*_true`` is KL(q ‖ p(z|x)) = E_q[log q(z) − log p(x, z)] + log p(x),
    by Monte Carlo with ``num_samples`` draws from q and log p(x) from the grid.
    This is exactly log p(x) − ELBO(q): the gap of the evidence lower bound that
    q gives for this x (the mode-seeking direction, the one variational
    inference minimises). Lower is better in both; 0 means q = p.

    The q(z|x) and q̃(z|x) log densities are also returned on a display grid
    ``z1`` × ``z2`` that holds the true grid and every component's 2.5σ box, for contour plots.
    """

    log_evidence: float  # log p(x) by quadrature on the grid
    kl_true_clean: float  # KL(p(z|x) ‖ q(z|x))
    kl_true_mixture: float  # KL(p(z|x) ‖ q̃(z|x))
    kl_clean_true: float  # KL(q(z|x) ‖ p(z|x)) = log p(x) − ELBO(q(z|x))
    kl_mixture_true: float  # KL(q̃(z|x) ‖ p(z|x)) = log p(x) − ELBO(q̃(z|x))
    num_samples: int
    z1: np.ndarray  # (G1,) display grid
    z2: np.ndarray  # (G2,)
    log_clean: np.ndarray  # (G2, G1), log q(z|x)
    log_mixture: np.ndarray  # (G2, G1), log q̃(z|x)


def _kl_from_true(grid: PosteriorGrid, log_density: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """KL(p(z|x) ‖ q) by the midpoint rule on the true posterior's grid (q evaluated exactly, not renormalised)."""
    log_true = grid.log_posterior.ravel()  # (G2·G1,)
    p = np.exp(log_true) * grid.cell_area  # cell masses, sum ≈ 1
    # cells holding < 1e-12 of the mass add < ~1e-9 nats each; skipping them makes this several times cheaper
    keep = p > 1e-12
    cells = torch.as_tensor(grid.points().reshape(-1, 2)[keep], dtype=torch.float32)  # (P, 2)
    return float((p[keep] * (log_true[keep] - log_density(cells).double().numpy())).sum())


def _kl_to_true(model: VAE, grid: PosteriorGrid, x_clean: torch.Tensor, z: torch.Tensor,
                log_density: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """KL(q ‖ p(z|x)) = E_q[log q(z) − log p(x, z)] + log p(x), from draws ``z`` ``(S, 2)`` of q."""
    log_joint = log_joint_at(model, x_clean, z).double()  # (S,)
    return float((log_density(z).double() - log_joint).mean()) + grid.log_evidence


@torch.no_grad()
def fit_clean_posterior(model: VAE, grid: PosteriorGrid, mixture: MixturePosterior, num_samples: int = 1000,
                        seed: int = 0) -> tuple[float, float]:
    """(KL(p(z|x) ‖ q(z|x)), KL(q(z|x) ‖ p(z|x))) of the clean q(z|x): the clean half of :func:`compare_posteriors`,
    with the same draws. It depends on the model, the image and the seed, not on the noise or the copies
    (``mixture`` gives only its clean q(z|x))."""
    generator = torch.Generator().manual_seed(int(seed))  # a stream of its own: the mixture's draws are not in it
    z_clean = mixture.clean_sample(num_samples, generator)  # (S, 2)
    return (_kl_from_true(grid, mixture.clean_log_density),
            _kl_to_true(model, grid, mixture.x_clean, z_clean, mixture.clean_log_density))


@torch.no_grad()
def compare_posteriors(
    model: VAE, grid: PosteriorGrid, mixture: MixturePosterior, num_samples: int = 1000, seed: int = 0,
    display_size: int = 64, clean_fit: tuple[float, float] | None = None,
) -> PosteriorComparison:
    """Score q(z|x) and q̃(z|x) against the grid's true posterior (see :class:`PosteriorComparison`).

    Costs 2 · ``num_samples`` decoder calls; the grid itself is not re-evaluated. ``clean_fit``: a
    :func:`fit_clean_posterior` of the same model and image, if already known, saving half the decoder calls
    (a page keeps it while the noise, the copies or the seed move: q(z|x) depends on none of them). The clean
    and the mixture draws come from two streams seeded with ``seed``, so either half is the same with or without
    the other.
    """
    if clean_fit is None:
        clean_fit = fit_clean_posterior(model, grid, mixture, num_samples, seed)
    kl_true_clean, kl_clean_true = clean_fit
    generator = torch.Generator().manual_seed(int(seed))
    z_mix = mixture.sample(num_samples, generator)  # (S, 2)
    kl_true_mixture = _kl_from_true(grid, mixture.log_density)
    kl_mixture_true = _kl_to_true(model, grid, mixture.x_clean, z_mix, mixture.log_density)

    comp_mean = mixture.component_loc.numpy()
    comp_sd = mixture.component_var.sqrt().numpy()
    corners = np.stack([grid.z1[[0, -1]], grid.z2[[0, -1]]], axis=-1)  # (2, 2)
    lo, hi = grid_box([corners, comp_mean - 2.5 * comp_sd, comp_mean + 2.5 * comp_sd], pad=0.0)
    z1 = np.linspace(lo[0], hi[0], display_size)
    z2 = np.linspace(lo[1], hi[1], display_size)
    return PosteriorComparison(
        grid.log_evidence, kl_true_clean, kl_true_mixture, kl_clean_true, kl_mixture_true, num_samples,
        z1, z2, density_on_grid(mixture.clean_log_density, z1, z2), density_on_grid(mixture.log_density, z1, z2),
    )


# --- reconstructions ---------------------------------------------------------------------------


@dataclass
class Reconstructions:
    """Clean inputs, ONE shared corrupted copy of each, and every model's reconstruction of it (CPU).

    ``log_likelihood[name][i]`` is log p(x_clean_i | z) in nats with z the mean
    of q(z|x̃_i) (or one draw from it when ``z_choice="sample"``): a
    reconstruction log-likelihood of the clean image, NOT log p(x). For
    Gaussian (real-valued) models it is a log-density and can be positive.
    """

    x_clean: torch.Tensor  # (n, D)
    x_noisy: torch.Tensor  # (n, D)
    images: dict[str, torch.Tensor]  # name → (n, D) mean images E[x|z]
    log_likelihood: dict[str, torch.Tensor]  # name → (n,) nats
    z_choice: str

    def mean_log_likelihood(self) -> dict[str, float]:
        """Average of ``log_likelihood`` over the shown images, per model (nats per example)."""
        return {name: float(values.mean()) for name, values in self.log_likelihood.items()}


@torch.no_grad()
def reconstruct(
    models: Mapping[str, VAE],
    x_clean: torch.Tensor,
    noise: str,
    level: float,
    seed: int = 0,
    mean_image: torch.Tensor | None = None,
    z_choice: str = "mean",
) -> Reconstructions:
    """Corrupt ``x_clean`` ``(n, D)`` once (seeded), then encode x̃ and decode z with every model.

    All models see the same x̃, so their rows compare like with like.
    ``z_choice`` is ``"mean"`` (decode μ(x̃)) or ``"sample"`` (decode one z ~ q(z|x̃)).
    """
    if z_choice not in ("mean", "sample"):
        raise ValueError(f"z_choice must be 'mean' or 'sample', not {z_choice!r}")
    x_clean = torch.as_tensor(x_clean, dtype=torch.float32)
    if x_clean.ndim != 2 or len(x_clean) == 0:
        raise ValueError(f"x_clean must be a non-empty (n, D) batch, got shape {tuple(x_clean.shape)}")
    for name, model in models.items():
        if model.spec.input_dim != x_clean.shape[1]:
            raise ValueError(f"model {name} expects {model.spec.input_dim} pixels, the images have {x_clean.shape[1]}")
    generator = torch.Generator().manual_seed(int(seed))
    x_noisy = corrupt(x_clean, noise, level, 1, generator, None if mean_image is None else mean_image.cpu())[0]
    images, log_lik = {}, {}
    for name, model in models.items():
        device = _device(model)
        z_loc, z_log_var = model.encode(x_noisy.to(device))  # (n, latent)
        z = z_loc
        if z_choice == "sample":
            eps = torch.randn(z_loc.shape, generator=_generator(seed + 1, device), device=device)
            z = z_loc + (0.5 * z_log_var).exp() * eps
        images[name] = model.decode(z).cpu()
        log_lik[name] = model.log_likelihood(x_clean.to(device), z).cpu()
    return Reconstructions(x_clean, x_noisy, images, log_lik, z_choice)


# --- samples and interpolations ----------------------------------------------------------------


@torch.no_grad()
def prior_samples(model: VAE, num: int, seed: int = 0) -> torch.Tensor:
    """Mean images E[x|z] of ``num`` draws z ~ p(z) = N(0, I): ``(num, D)`` on the CPU."""
    return model.sample(num, _generator(seed, _device(model))).cpu()


@torch.no_grad()
def model_inputs(model: VAE, num: int, seed: int = 0) -> torch.Tensor:
    """Stand-in inputs drawn from the model itself (when its dataset is not on disk): ``(num, D)``.

    Prior mean images, thresholded at ½ for Bernoulli models so they look like the binary training data.
    """
    images = prior_samples(model, num, seed)
    return (images > 0.5).float() if model.spec.likelihood == "bernoulli" else images


@torch.no_grad()
def latent_grid_images(model: VAE, per_axis: int = 12, outer_quantile: float = 0.05) -> tuple[torch.Tensor, np.ndarray]:
    """Decode a grid of a 2-D latent space: ``(per_axis², D)`` mean images and the ``(per_axis,)`` axis values.

    Like Kingma & Welling's Fig. 4, the grid is evenly spaced in probability:
    z_i = Φ⁻¹(p_i) with p evenly spaced in [q, 1 − q], so each image covers an
    equal share of the prior. Row r holds z₂ = values[per_axis − 1 − r] (top row: largest z₂).
    """
    if model.latent_dim != 2:
        raise ValueError(f"a latent grid needs a 2-D latent space; this model has {model.latent_dim}")
    from scipy.special import ndtri  # Φ⁻¹ itself (scipy.stats.norm.ppf calls it; scipy.stats costs ~1 s to import)

    values = ndtri(np.linspace(outer_quantile, 1 - outer_quantile, per_axis))
    z1, z2 = np.meshgrid(values, values[::-1])
    z = torch.as_tensor(np.stack([z1, z2], axis=-1).reshape(-1, 2), dtype=torch.float32)
    return model.decode(z.to(_device(model))).cpu(), values


def slerp(z_a: torch.Tensor, z_b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between ``z_a`` and ``z_b`` ``(latent,)`` at fractions ``t`` ``(T,)``: ``(T, latent)``.

    sin((1−t)Ω)/sin Ω · z_a + sin(tΩ)/sin Ω · z_b with Ω the angle between them;
    linear when they are (nearly) parallel. Endpoints are exact.
    """
    cos = torch.dot(z_a, z_b) / (z_a.norm() * z_b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    t = t[:, None]
    if omega.abs() < 1e-4:
        return (1 - t) * z_a + t * z_b
    return (torch.sin((1 - t) * omega) * z_a + torch.sin(t * omega) * z_b) / torch.sin(omega)


@torch.no_grad()
def interpolate(
    model: VAE, x_a: torch.Tensor, x_b: torch.Tensor, steps: int = 8, spherical: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode a path between the encoder means of two images ``(D,)``.

    Returns the mean images ``(steps, D)`` and the latents ``(steps, latent)``.

    The path is linear in z (or spherical, :func:`slerp`); its ends are
    decode(μ(x_a)) and decode(μ(x_b)).
    """
    if steps < 2:
        raise ValueError(f"an interpolation needs at least 2 steps, not {steps}")
    device = _device(model)
    x = torch.stack([torch.as_tensor(x_a, dtype=torch.float32).reshape(-1),
                     torch.as_tensor(x_b, dtype=torch.float32).reshape(-1)]).to(device)  # (2, D)
    z_ends = model.encode(x)[0]  # (2, latent)
    t = torch.linspace(0.0, 1.0, steps, device=device)
    if spherical:
        z = slerp(z_ends[0], z_ends[1], t)
    else:
        z = (1 - t[:, None]) * z_ends[0] + t[:, None] * z_ends[1]  # (steps, latent)
    z[0], z[-1] = z_ends[0], z_ends[1]  # exact ends, whatever the rounding of the path
    return model.decode(z).cpu(), z.cpu()


# --- user images -------------------------------------------------------------------------------

MAX_IMAGE_PIXELS = 25_000_000


def _to_grey_array(image) -> np.ndarray:
    """Any supported input → float64 ``(H, W)`` grey levels, not yet scaled."""
    from PIL import Image, UnidentifiedImageError

    too_big = (f"the limit here is {MAX_IMAGE_PIXELS:,} pixels (e.g. 5000 × 5000); shrink the picture and "
               "try again")
    if isinstance(image, (bytes, bytearray, memoryview)):
        if len(image) == 0:
            raise ValueError("the file is empty (0 bytes)")
        try:
            with warnings.catch_warnings():
                # PIL's own "decompression bomb" limit is larger than ours: ours is checked, and named, below
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image = Image.open(io.BytesIO(bytes(image)))  # reads the header only
        except Image.DecompressionBombError:
            raise ValueError(f"the image has far too many pixels: {too_big}") from None
        except UnidentifiedImageError:
            raise ValueError("this is not a readable image file: this app reads PNG, JPEG, GIF, BMP, WebP and "
                             "TIFF") from None
        except (OSError, SyntaxError, ValueError, EOFError):
            raise ValueError("the image file is damaged or incomplete and cannot be read") from None
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise ValueError(f"the image is {image.width:,} × {image.height:,} pixels; {too_big}")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                image.load()
        except Image.DecompressionBombError:
            raise ValueError(f"the image has far too many pixels: {too_big}") from None
        except (OSError, SyntaxError, ValueError, EOFError, MemoryError):
            raise ValueError("the image file is damaged or incomplete (truncated?) and cannot be read") from None
    if isinstance(image, Image.Image):
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise ValueError(f"the image is {image.width:,} × {image.height:,} pixels; {too_big}")
        if image.width == 0 or image.height == 0:
            raise ValueError("the image is empty (0 pixels)")
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
            image = np.asarray(image, dtype=np.float64)
        else:
            image = np.asarray(image.convert("RGBA"))
    try:
        arr = np.asarray(image)
    except Exception as err:  # noqa: BLE001 — anything numpy cannot read is a bad input
        raise ValueError(f"cannot read the image as an array: {err}") from None
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"image must hold numbers, not {arr.dtype}")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ValueError(f"image must be (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"the image is empty (shape {arr.shape})")
    if arr.size > MAX_IMAGE_PIXELS * 4:
        raise ValueError(f"image of shape {arr.shape} is too large")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("the image contains NaN or infinite values")
    return arr


def _scale_unit(arr: np.ndarray, integer: bool) -> np.ndarray:
    lo, hi = arr.min(), arr.max()
    if lo >= 0 and hi <= 1 and not integer:
        return arr
    if lo >= 0 and hi <= 255:
        return arr / 255.0
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def prepare_image(
    image,
    image_shape: tuple[int, int],
    binary: bool,
    invert: bool | str = "auto",
    center: bool = False,
    threshold: float = 0.5,
) -> torch.Tensor:
    """Turn a user's picture into one model input: a flat ``(H·W,)`` float32 tensor in [0, 1].

    ``image`` is a numpy array ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)``, a
    PIL image, or the bytes of an image file. Steps: validate (numbers,
    non-empty, finite, supported shape); to grey (RGB by luminance
    0.299 R + 0.587 G + 0.114 B, transparent pixels composited onto white);
    scale to [0, 1] (integers and values in [0, 255] by /255, floats already
    in [0, 1] as they are, anything else min–max); invert when
    ``invert=True``, or with ``"auto"`` when the border is light (a drawing on
    white: the datasets have light ink on a dark background); with
    ``center``, crop to the ink's bounding box and pad it so the ink fills
    20/28 of the frame, centred, as MNIST's digits do; resize to ``image_shape``
    (H, W) with PIL (area averaging when shrinking, bilinear when enlarging);
    with ``binary`` (Bernoulli models), threshold at ``threshold``.
    Raises ``ValueError`` with a message saying what is wrong.
    """
    from PIL import Image

    height, width = (int(v) for v in image_shape)
    if height < 1 or width < 1:
        raise ValueError(f"image_shape must be two positive sizes, not {image_shape}")
    is_integer = isinstance(image, (bytes, bytearray, memoryview)) or (
        isinstance(image, np.ndarray) and image.dtype.kind in "iu") or isinstance(image, Image.Image)
    arr = _to_grey_array(image)
    if arr.ndim == 3:
        rgb = _scale_unit(arr[..., :3], is_integer)
        grey = rgb @ np.array([0.299, 0.587, 0.114])
        if arr.shape[-1] == 4:
            alpha = _scale_unit(arr[..., 3], is_integer)
            grey = alpha * grey + (1.0 - alpha)  # transparent → white paper
    else:
        grey = _scale_unit(arr, is_integer)
    grey = np.clip(grey, 0.0, 1.0)

    if invert == "auto":
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
        invert = bool(np.median(border) > 0.5)
    elif not isinstance(invert, bool):
        raise ValueError(f"invert must be True, False or 'auto', not {invert!r}")
    if invert:
        grey = 1.0 - grey
    if center:
        grey = _center_ink(grey, width / height)

    pil = Image.fromarray(grey.astype(np.float32), mode="F")
    shrinking = grey.shape[0] >= height and grey.shape[1] >= width
    resample = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    resized = np.asarray(pil.resize((width, height), resample=resample), dtype=np.float32)
    resized = np.clip(resized, 0.0, 1.0)
    if binary:
        resized = (resized > threshold).astype(np.float32)
    return torch.from_numpy(resized.reshape(-1).copy())


def _center_ink(grey: np.ndarray, aspect: float, fill: float = 20 / 28) -> np.ndarray:
    """Crop to the ink (pixels above 10% of the max); pad it to fill ``fill`` of a frame of width/height ``aspect``."""
    if grey.max() <= 0:
        return grey
    rows, cols = np.nonzero(grey > 0.1 * grey.max())
    ink = grey[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = ink.shape
    frame_h = max(h, w / aspect) / fill
    frame_h, frame_w = int(math.ceil(frame_h)), int(math.ceil(frame_h * aspect))
    out = np.zeros((frame_h, frame_w))
    top, left = (frame_h - h) // 2, (frame_w - w) // 2
    out[top:top + h, left:left + w] = ink
    return out
