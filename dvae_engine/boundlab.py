"""Is the denoising objective a bound on log p(x)? Exact answers on tiny models.

The paper (Im et al., arXiv 1511.06406) corrupts the input, x̃ ~ p(x̃|x), and
trains an encoder q(z|x̃). Its Eq. 8 defines the DVAE objective

    L_dvae(x) = E_{p(x̃|x)} E_{q(z|x̃)} [log p(x, z) − log q(z|x̃)],

its Eq. 11 and Eq. 12 are the Monte Carlo forms (DVAE with M corrupted copies
and DIWAE with K importance samples per copy), and its Eq. 9 / Lemma 1 claim
log p(x) ≥ L_dvae ≥ L_cvae, where, by Proposition 1, the corrupted inputs induce
the mixture posterior q̃(z|x) = Σ_x̃ p(x̃|x) q(z|x̃) and

    L_cvae(x) = E_{q̃(z|x)} [log p(x, z) − log q̃(z|x)]        (the ELBO of q̃).

Tran & Ranganath's critique (Ranganath's counterexample) reads Eq. 8 with z
drawn from q̃ INDEPENDENTLY of the x̃ inside the log, and shows that reading
exceeds log p(x). This module computes every reading exactly, so the facts are
numbers rather than arguments:

* ``dvae_joint``       E_{x̃} E_{z~q(z|x̃)} [log p(x,z) − log q(z|x̃)]: Eq. 8 as Eq. 11 samples it
                       (z from the SAME x̃ that is scored);
* ``dvae_independent`` E_{z~q̃(z|x)} E_{x̃} [log p(x,z) − log q(z|x̃)]: z and x̃ independent;
* ``cvae``             L_cvae above;
* ``expected_kl``      E_{x̃} KL(q(z|x̃) ‖ q̃(z|x));
* ``elbo``             the ordinary ELBO with q(z|x) on the clean input;
* ``log_px``           log p(x);
* ``diwae``            the expectation of the Eq. 12 objective for given M, K.

Exactly, L_cvae − L_dvae(joint) = E_x̃ KL(q(z|x̃) ‖ q̃(z|x)) ≥ 0, so
log p(x) ≥ L_cvae ≥ L_dvae(joint): the paper's ordering of the last two is
reversed, while the joint reading (what training optimises) is a lower bound.
The independent reading is not a bound: it can exceed log p(x) without limit.

The tiny model (:class:`TinyModel`): binary x with D ≤ 10 pixels, a 1-D or 2-D
latent z ~ N(0, I), a Bernoulli decoder with logits W z + b, and a Gaussian
encoder q(z|x̃) = N(z_loc[x̃], diag exp(z_log_var[x̃])) stored as a table over
all 2^D inputs (built from a linear map or matched to the exact posteriors).
Corruptions are enumerated exactly over all 2^D corrupted inputs:

* ``bit-flip``          each pixel flipped independently with probability ν;
* ``salt-pepper``       each pixel, with probability ν, replaced by a fair coin
                        (so each pixel ends flipped with probability ν/2);
* ``salt-pepper-count`` the engine's :mod:`dvae_engine.corruption` salt-and-pepper:
                        exactly round(ν·D) pixels, chosen at random, replaced by coins.

Latent integrals are Riemann sums on a uniform grid (1-D: 2001 points on
[−8, 8]; 2-D: 201 × 201). For smooth, fast-decaying integrands such sums are
spectrally accurate (error ~ exp(−2π²σ²/h²) for a Gaussian of width σ and
spacing h), i.e. exact to double precision for σ ≳ 0.1 — the values returned
carry ``grid_mass`` (∫ q̃ on the grid, ≈ 1) so a badly covered model shows.
Entropies and cross-entropies of the Gaussian components are analytic. All in
float64, nats per example. Nothing is sampled except in the functions named
``monte_carlo_*`` and in :func:`diwae_expectation` for M·K > 1 (a Monte Carlo
estimate with its standard error, labelled ``exact=False``).

:func:`ranganath_counterexample` is the critique's discrete case, computed by
the same definitions (plus the exact DIWAE expectation by enumeration), and
:func:`objective_vs_loglik` puts a trained model's own objective beside its
importance-sampled log p(x), example by example.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import gammaln, logsumexp, xlog1py, xlogy

LOG_2PI = math.log(2 * math.pi)
MAX_PIXELS = 10
LAB_NOISES = ("bit-flip", "salt-pepper", "salt-pepper-count")
LAB_NOISE_INFO = {
    "bit-flip": "each pixel flipped with probability ν",
    "salt-pepper": "each pixel, with probability ν, replaced by a fair coin",
    "salt-pepper-count": "exactly round(ν·D) random pixels replaced by fair coins (the training engine's noise)",
}
QUANTITY_INFO = {
    "log_px": "log p(x), exact",
    "elbo": "L_elbo: ELBO with q(z|x) on the clean x",
    "cvae": "L_cvae: ELBO of the mixture posterior q̃(z|x) (Prop. 1)",
    "dvae_joint": "L_dvae, joint reading: z ~ q(z|x̃) of the x̃ it is scored with (Eq. 11)",
    "dvae_independent": "L_dvae, independent reading: z ~ q̃(z|x), x̃ drawn independently",
    "expected_kl": "E_x̃ KL(q(z|x̃) ‖ q̃(z|x))",
    "diwae": "E[DIWAE(M, K)] (Eq. 12)",
}
_CHUNK_ELEMENTS = 2**22  # (components, grid) blocks of ~32 MB in float64


# --- binary inputs and the corruption p(x̃|x) ---------------------------------------------------

def binary_inputs(num_pixels: int) -> np.ndarray:
    """All 2^D binary images, ``(2^D, D)`` float64; row i holds the bits of i, most significant first."""
    _check_pixels(num_pixels)
    codes = np.arange(2**num_pixels)[:, None]
    shifts = np.arange(num_pixels - 1, -1, -1)[None, :]
    return ((codes >> shifts) & 1).astype(np.float64)


def bits_to_code(bits: np.ndarray) -> np.ndarray:
    """Inverse of :func:`binary_inputs`: integer codes of binary rows ``(..., D)``."""
    bits = np.asarray(bits).astype(np.int64)
    powers = 2 ** np.arange(bits.shape[-1] - 1, -1, -1)
    return bits @ powers


def _check_pixels(num_pixels: int) -> None:
    if not isinstance(num_pixels, (int, np.integer)) or not 1 <= num_pixels <= MAX_PIXELS:
        raise ValueError(f"num_pixels (D) must be an integer in 1..{MAX_PIXELS}, not {num_pixels!r}")


def _check_noise(noise: str, level: float) -> float:
    if noise not in LAB_NOISES:
        raise ValueError(f"unknown lab noise {noise!r}; choose one of {', '.join(LAB_NOISES)}")
    level = float(level)
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"noise level ν is a probability and must be in [0, 1], not {level}")
    return level


def _num_replaced(level: float, num_pixels: int) -> int:
    return round(level * num_pixels)  # Python's round, exactly as dvae_engine.corruption does


def corruption_weights(num_pixels: int, x_code: int, noise: str, level: float) -> np.ndarray:
    """p(x̃|x) for every x̃ ∈ {0,1}^D (indexed by code), ``(2^D,)``, summing to 1.

    It depends on x̃ only through the Hamming distance h to x: ``bit-flip`` gives
    ν^h (1−ν)^(D−h), ``salt-pepper`` the same with ν/2, ``salt-pepper-count``
    with n = round(νD) replaced pixels gives C(D−h, n−h)/C(D, n) · 2^−n for h ≤ n.
    """
    _check_pixels(num_pixels)
    level = _check_noise(noise, level)
    if not 0 <= int(x_code) < 2**num_pixels:
        raise ValueError(f"clean input code must be in 0..{2**num_pixels - 1}, not {x_code}")
    codes = np.arange(2**num_pixels)
    differ = codes ^ int(x_code)
    hamming = np.zeros_like(codes)
    for _ in range(num_pixels):  # popcount, one bit position at a time (vectorised over all 2^D codes)
        hamming += differ & 1
        differ >>= 1
    if noise == "salt-pepper-count":
        n = _num_replaced(level, num_pixels)
        per_distance = np.array([
            math.comb(num_pixels - h, n - h) / math.comb(num_pixels, n) * 0.5**n if h <= n else 0.0
            for h in range(num_pixels + 1)
        ])
        return per_distance[hamming]
    flip = level if noise == "bit-flip" else level / 2
    return np.power(flip, hamming) * np.power(1.0 - flip, num_pixels - hamming)  # 0^0 = 1 at ν = 0


def sample_corruptions(x_bits: np.ndarray, noise: str, level: float, num_draws: int,
                       rng: np.random.Generator) -> np.ndarray:
    """Draws x̃ ~ p(x̃|x) pixel by pixel (as a trainer would), ``(num_draws, D)`` float64."""
    level = _check_noise(noise, level)
    x_bits = np.asarray(x_bits, dtype=np.float64)
    draws = _corruption_draws(noise, (num_draws, x_bits.shape[-1]), rng)
    return _apply_corruption(x_bits, noise, level, draws)


def _corruption_draws(noise: str, shape: tuple[int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The random numbers behind :func:`sample_corruptions`, which do not depend on the level (drawn in its order)."""
    if noise == "bit-flip":
        return {"uniform": rng.random(shape)}
    coins = (rng.random(shape) < 0.5).astype(np.float64)
    if noise == "salt-pepper":
        return {"coins": coins, "uniform": rng.random(shape)}
    return {"coins": coins, "ranks": np.argsort(rng.random(shape), axis=1).argsort(axis=1)}


def _apply_corruption(x_bits: np.ndarray, noise: str, level: float, draws: dict[str, np.ndarray]) -> np.ndarray:
    """x̃ for one level from the draws of :func:`_corruption_draws` (common random numbers across levels)."""
    if noise == "bit-flip":
        return np.abs(x_bits - (draws["uniform"] < level))
    if noise == "salt-pepper":
        replace = draws["uniform"] < level
    else:
        replace = draws["ranks"] < _num_replaced(level, draws["ranks"].shape[1])  # n distinct random pixels per row
    return np.where(replace, draws["coins"], x_bits)


def _corrupted_codes(x_code: int, x_bits: np.ndarray, noise: str, level: float, draws: dict[str, np.ndarray],
                     powers: np.ndarray) -> np.ndarray:
    """The codes of :func:`_apply_corruption`'s x̃ rows, from small integer arrays (the Monte Carlo hot loop)."""
    # bits · powers as a float32 matrix-vector product (exact: codes < 2^10), twice as fast as integer matmul
    if noise == "bit-flip":
        return int(x_code) ^ ((draws["uniform"] < level).astype(np.float32) @ powers).astype(np.int64)
    if noise == "salt-pepper":
        replace = draws["uniform"] < level
    else:
        replace = draws["ranks"] < _num_replaced(level, draws["ranks"].shape[1])
    return (np.where(replace, draws["coins"], x_bits).astype(np.float32) @ powers).astype(np.int64)


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """log Σ_j exp(a[i, j]) for finite ``a`` ``(n, J)``, in float64: scipy's logsumexp without its checks (a hot
    loop; reducing over the long axis of the transposed copy is faster than over J, often 2–10, in place)."""
    columns = np.ascontiguousarray(a.T, dtype=np.float64)  # (J, n)
    top = columns.max(axis=0)
    return top + np.log(np.exp(columns - top).sum(axis=0))


def _binom_logpmf(successes: np.ndarray, trials: int, p: float) -> np.ndarray:
    """log Binomial(successes; trials, p), as scipy.stats.binom.logpmf computes it (importing scipy.stats costs
    the lab's first visit about a second)."""
    return (gammaln(trials + 1) - gammaln(successes + 1) - gammaln(trials - successes + 1)
            + xlogy(successes, p) + xlog1py(trials - successes, -p))


def softplus(x: np.ndarray) -> np.ndarray:
    """log(1 + eˣ), stably: max(x, 0) + log1p(e^−|x|) (equal to ``np.logaddexp(0, x)``, several times faster)."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


# --- the latent grid ------------------------------------------------------------------------------

@dataclass(frozen=True)
class LatentGrid:
    """A uniform grid on [−half_width, half_width]^L: ``points`` ``(G, L)`` and the log cell volume."""

    axes: tuple[np.ndarray, ...]
    points: np.ndarray
    log_cell: float

    @property
    def latent_dim(self) -> int:
        return len(self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a) for a in self.axes)


def latent_grid(latent_dim: int, size: int | None = None, half_width: float = 8.0) -> LatentGrid:
    """The integration grid: 2001 points (1-D) or 201 × 201 (2-D) on [−8, 8] unless told otherwise."""
    if latent_dim not in (1, 2):
        raise ValueError(f"the lab's latent dimension must be 1 or 2, not {latent_dim!r}")
    size = size or (2001 if latent_dim == 1 else 201)
    if size < 3 or half_width <= 0:
        raise ValueError("grid needs at least 3 points per axis and a positive half width")
    axis = np.linspace(-half_width, half_width, size)
    step = axis[1] - axis[0]
    mesh = np.meshgrid(*([axis] * latent_dim), indexing="ij")
    points = np.stack([m.ravel() for m in mesh], axis=-1)  # (G, L)
    return LatentGrid((axis,) * latent_dim, points, latent_dim * math.log(step))


# --- the tiny model -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TinyModel:
    """p(z) = N(0, I); p(x|z) = Bernoulli(sigmoid(W z + b)); q(z|x̃) = N(z_loc[x̃], diag exp(z_log_var[x̃])).

    ``decoder_weight`` is ``(D, L)``, ``decoder_bias`` ``(D,)``; the encoder is a
    table over all 2^D inputs: ``z_loc`` and ``z_log_var`` are ``(2^D, L)``,
    row i for the input whose bits are those of i (:func:`binary_inputs`).
    """

    decoder_weight: np.ndarray
    decoder_bias: np.ndarray
    z_loc: np.ndarray
    z_log_var: np.ndarray

    def __post_init__(self) -> None:
        d, latent = np.shape(self.decoder_weight)
        _check_pixels(d)
        if latent not in (1, 2):
            raise ValueError(f"latent dimension must be 1 or 2, not {latent}")
        if np.shape(self.decoder_bias) != (d,):
            raise ValueError(f"decoder_bias must have shape ({d},), not {np.shape(self.decoder_bias)}")
        for name in ("z_loc", "z_log_var"):
            if np.shape(getattr(self, name)) != (2**d, latent):
                raise ValueError(f"{name} must have shape ({2**d}, {latent}), not {np.shape(getattr(self, name))}")
        for name in ("decoder_weight", "decoder_bias", "z_loc", "z_log_var"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"{name} must be finite")

    @property
    def num_pixels(self) -> int:
        return int(np.shape(self.decoder_weight)[0])

    @property
    def latent_dim(self) -> int:
        return int(np.shape(self.decoder_weight)[1])

    def log_likelihood(self, x_bits: np.ndarray, z: np.ndarray) -> np.ndarray:
        """log p(x|z) summed over pixels; ``x_bits`` ``(..., D)`` broadcast against ``z`` ``(..., L)``."""
        logits = z @ self.decoder_weight.T + self.decoder_bias  # (..., D)
        return (x_bits * logits - softplus(logits)).sum(-1)

    def log_joint(self, x_bits: np.ndarray, z: np.ndarray) -> np.ndarray:
        """log p(x, z) = log p(x|z) + log N(z; 0, I)."""
        return self.log_likelihood(x_bits, z) - 0.5 * (LOG_2PI + z**2).sum(-1)

    def encoder_log_density(self, z: np.ndarray, x_noisy_code: np.ndarray) -> np.ndarray:
        """log q(z|x̃) for codes ``x_noisy_code`` ``(...)`` and latents ``z`` ``(..., L)``."""
        loc, log_var = self.z_loc[x_noisy_code], self.z_log_var[x_noisy_code]
        return -0.5 * (LOG_2PI + log_var + (z - loc) ** 2 * np.exp(-log_var)).sum(-1)

    def entropies(self) -> np.ndarray:
        """H(q(z|x̃)) for every x̃, analytic: ``(2^D,)``."""
        return 0.5 * (LOG_2PI + 1.0 + self.z_log_var).sum(-1)


def linear_encoder(weight: np.ndarray, bias: np.ndarray, log_sigma_weight: np.ndarray,
                   log_sigma_bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Encoder table of z_loc = A (2x̃ − 1) + c, log σ = S (2x̃ − 1) + s for all x̃: ``(z_loc, z_log_var)``.

    ``weight``/``log_sigma_weight`` are ``(L, D)``, the biases ``(L,)``. Inputs
    are centred (±1) so that no pixel value is privileged.
    """
    signs = 2.0 * binary_inputs(np.shape(weight)[1]) - 1.0  # (2^D, D)
    z_loc = signs @ np.asarray(weight).T + bias
    log_sigma = signs @ np.asarray(log_sigma_weight).T + log_sigma_bias
    return z_loc, 2.0 * log_sigma


def posterior_moments(decoder_weight: np.ndarray, decoder_bias: np.ndarray,
                      grid: LatentGrid | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean and per-dimension log-variance of the exact posterior p(z|x) for every x: ``(2^D, L)`` each.

    An encoder table of these is what an ideal (moment-matching) encoder
    trained on clean data would output.
    """
    decoder_weight = np.asarray(decoder_weight, dtype=np.float64)
    d, latent = decoder_weight.shape
    grid = grid or latent_grid(latent)
    inputs = binary_inputs(d)
    logits = grid.points @ decoder_weight.T + decoder_bias  # (G, D)
    base = -0.5 * (LOG_2PI + grid.points**2).sum(-1) - softplus(logits).sum(-1)  # (G,)
    means = np.empty((2**d, latent))
    log_vars = np.empty((2**d, latent))
    for rows in _chunks(2**d, len(grid.points)):
        log_post = inputs[rows] @ logits.T + base  # (C, G)
        post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
        post /= post.sum(axis=1, keepdims=True)
        mean = post @ grid.points  # (C, L)
        var = post @ grid.points**2 - mean**2
        means[rows], log_vars[rows] = mean, np.log(np.maximum(var, 1e-300))
    return means, log_vars


def random_tiny_model(
    num_pixels: int,
    latent_dim: int = 1,
    seed: int = 0,
    decoder_scale: float = 1.5,
    encoder: str = "linear",
    encoder_scale: float = 1.0,
    encoder_sigma: float = 0.6,
) -> TinyModel:
    """A seeded random tiny model.

    Decoder: W ~ N(0, decoder_scale²), b ~ N(0, 1). Encoder ``"linear"``:
    z_loc = A(2x̃−1) + c with A ~ N(0, encoder_scale²/D), c ~ N(0, 0.25), and
    log σ = log(encoder_sigma) + S(2x̃−1) with S ~ N(0, 0.15²/D); a large
    ``encoder_scale`` and a small σ give spread-out, narrow components.
    ``"posterior"``: the moments of the exact posteriors p(z|x̃) (a well-fitted clean encoder).
    """
    _check_pixels(num_pixels)
    if not encoder_sigma > 0:
        raise ValueError(f"encoder_sigma must be positive, not {encoder_sigma}")
    if encoder not in ("linear", "posterior"):
        raise ValueError(f"encoder must be 'linear' or 'posterior', not {encoder!r}")
    rng = np.random.default_rng(seed)
    weight = rng.normal(0.0, decoder_scale, (num_pixels, latent_dim))
    bias = rng.normal(0.0, 1.0, num_pixels)
    enc_weight = rng.normal(0.0, encoder_scale / math.sqrt(num_pixels), (latent_dim, num_pixels))
    enc_bias = rng.normal(0.0, 0.5, latent_dim)
    sigma_weight = rng.normal(0.0, 0.15 / math.sqrt(num_pixels), (latent_dim, num_pixels))
    if encoder == "linear":
        log_sigma_bias = np.full(latent_dim, math.log(encoder_sigma))
        z_loc, z_log_var = linear_encoder(enc_weight, enc_bias, sigma_weight, log_sigma_bias)
    else:
        # the moments only define the encoder (the lab is exact for any encoder), so a coarser 2-D grid will do
        z_loc, z_log_var = posterior_moments(weight, bias, latent_grid(latent_dim, 2001 if latent_dim == 1 else 101))
    return TinyModel(weight, bias, z_loc, z_log_var)


def _chunks(num_rows: int, row_size: int):
    step = max(1, _CHUNK_ELEMENTS // max(1, row_size))
    for start in range(0, num_rows, step):
        yield slice(start, min(num_rows, start + step))


class _Components:
    """Diagonal Gaussian components on a product grid, one axis at a time.

    q(z|x̃) = Π_l N(z_l; loc_l, var_l) and the grid is a product of one axis, so
    every density is an outer product of per-axis densities ``(C, n)``: mixing
    and integrating against a grid function cost matrix products, not (C, G) arrays.
    """

    def __init__(self, grid: LatentGrid, z_loc: np.ndarray, z_log_var: np.ndarray) -> None:
        self.grid = grid
        axis = grid.axes[0]
        self.step = float(axis[1] - axis[0])
        self.log_q = [
            -0.5 * (LOG_2PI + z_log_var[:, None, dim] + (axis[None, :] - z_loc[:, None, dim]) ** 2
                    * np.exp(-z_log_var[:, None, dim]))
            for dim in range(grid.latent_dim)
        ]  # per latent dimension: (C, n)
        self.q = [np.exp(lq) for lq in self.log_q]

    def subset(self, rows: np.ndarray) -> _Components:
        """The components ``rows`` of these (the same densities, not recomputed)."""
        out = object.__new__(_Components)
        out.grid, out.step = self.grid, self.step
        out.log_q = None if self.log_q is None else [lq[rows] for lq in self.log_q]
        out.q = [q[rows] for q in self.q]
        return out

    def mix(self, weights: np.ndarray) -> np.ndarray:
        """Σ_c weights[r, c] q_c on the grid: ``(R, G)``."""
        if self.grid.latent_dim == 1:
            return weights @ self.q[0]
        q1, q2 = self.q
        return np.stack([((q1 * w[:, None]).T @ q2).ravel() for w in weights])

    def integrate(self, values: np.ndarray) -> np.ndarray:
        """∫ q_c(z) f(z) dz for a grid function ``values`` ``(G,)``: ``(C,)``."""
        if self.grid.latent_dim == 1:
            return self.q[0] @ values * self.step
        q1, q2 = self.q
        return ((q1 @ values.reshape(self.grid.shape)) * q2).sum(axis=1) * self.step**2

    def grid_entropy(self) -> np.ndarray:
        """−∫ q_c log q_c as a grid sum: ``(C,)`` (compared with the analytic entropy to check the grid)."""
        mass = [q.sum(axis=1) * self.step for q in self.q]
        ent = [-(q * lq).sum(axis=1) * self.step for q, lq in zip(self.q, self.log_q)]
        if self.grid.latent_dim == 1:
            return ent[0]
        return ent[0] * mass[1] + ent[1] * mass[0]

    def densities(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Components ``rows`` (default: all) on the grid: ``(C, G)`` (only for the few that are plotted)."""
        q = self.q if rows is None else [q[rows] for q in self.q]
        if self.grid.latent_dim == 1:
            return q[0]
        return (q[0][:, :, None] * q[1][:, None, :]).reshape(len(q[0]), -1)


# --- exact quantities ------------------------------------------------------------------------------

@dataclass(frozen=True)
class LabBasis:
    """The grid work of the exact lab that depends on the model and the clean x but on no noise level: log p(x, z)
    on the grid, and for each encoder component q(z|x̃) (``codes``, sorted) its density on the grid,
    ∫ q(z|x̃) log p(x, z) dz and its grid entropy. Built by :func:`lab_basis`; a page moving the noise level keeps
    it, and each move then costs one mixing of the components (``lab_view(..., basis=...)``)."""

    x_code: int
    codes: np.ndarray  # (C,) the components' inputs x̃, sorted
    log_joint: np.ndarray  # (G,) log p(x, z)
    log_px: float  # log p(x) on the grid
    components: _Components  # the C densities (their logs dropped: ~16 MB at D = 10 on the 1-D grid)
    cross_joint: np.ndarray  # (C,) ∫ q(z|x̃) log p(x, z) dz
    grid_entropy: np.ndarray  # (C,) −∫ q log q as a grid sum (checked against the analytic entropy)


def _lab_grid(model: TinyModel, grid: LatentGrid | None, basis: LabBasis | None = None) -> LatentGrid:
    """The integration grid: the basis's if given, else ``grid`` or the default; checked against the model."""
    grid = basis.components.grid if basis is not None else grid or latent_grid(model.latent_dim)
    if grid.latent_dim != model.latent_dim:
        raise ValueError(f"grid is {grid.latent_dim}-D but the model's latent is {model.latent_dim}-D")
    return grid


def lab_basis(model: TinyModel, x_code: int, grid: LatentGrid | None = None,
              codes: np.ndarray | None = None) -> LabBasis:
    """:class:`LabBasis` of clean input ``x_code`` for the components ``codes`` (default: all 2^D inputs)."""
    grid = _lab_grid(model, grid)
    codes = np.arange(2**model.num_pixels) if codes is None else np.asarray(codes)
    log_joint = model.log_joint(binary_inputs(model.num_pixels)[x_code], grid.points)  # (G,)
    comps = _Components(grid, model.z_loc[codes], model.z_log_var[codes])
    grid_entropy = comps.grid_entropy()
    comps.log_q = None  # only the densities are used from here on
    return LabBasis(int(x_code), codes, log_joint, float(logsumexp(log_joint) + grid.log_cell), comps,
                    comps.integrate(log_joint), grid_entropy)


def _exact_rows(model: TinyModel, x_code: int, weights: np.ndarray, grid: LatentGrid,
                direct_kl: bool, parts: dict | None = None, basis: LabBasis | None = None) -> dict[str, np.ndarray]:
    """The exact quantities for one clean x and several corruption distributions ``weights`` ``(R, 2^D)``.

    ``parts``, if given, receives the grid work for reuse (:func:`lab_view`): ``log_joint``, ``used``,
    ``components`` and ``mixture``. ``basis``: the level-free grid work, if already done (:func:`lab_basis`).
    """
    cell = math.exp(grid.log_cell)
    entropy = model.entropies()  # (2^D,)

    # only components that some row gives weight, plus the clean one (for the ELBO)
    used = np.flatnonzero((weights > 0).any(axis=0) | (np.arange(weights.shape[1]) == x_code))
    if basis is None:
        basis = lab_basis(model, x_code, grid, used)
    elif basis.x_code != x_code or not np.isin(used, basis.codes).all():
        raise ValueError("the basis was built for another clean x or for fewer components than these levels weigh")
    at = np.searchsorted(basis.codes, used)  # ``codes`` is sorted
    comps = basis.components if len(at) == len(basis.codes) else basis.components.subset(at)
    log_joint, log_px = basis.log_joint, basis.log_px  # (G,), log p(x) = log_marginal(model, x_code, grid)
    w = weights[:, used]  # (R, N)
    loc, log_var = model.z_loc[used], model.z_log_var[used]  # (N, L)
    mixture = comps.mix(w)  # q̃(z|x) on the grid, one row per corruption: (R, G)
    cross_joint = basis.cross_joint[at]  # ∫ q(z|x̃) log p(x,z) dz per component: (N,)
    # where q̃ underflows to 0 its contribution q̃ log q̃ is 0 as well
    log_mixture = np.log(np.where(mixture > 0, mixture, 1.0))
    cvae = (mixture * (log_joint - log_mixture)).sum(axis=1) * cell
    mixture_cross = mixture @ log_joint * cell  # ∫ q̃ log p(x,z) = E_{x̃} ∫ q(z|x̃) log p(x,z)
    dvae_joint = w @ (cross_joint + entropy[used])

    # independent reading: −∫ q̃ log q(z|x̃) needs only q̃'s first two moments (log q is quadratic in z),
    # which are exact mixtures of the components' moments
    mean = w @ loc / w.sum(axis=1, keepdims=True)  # (R, L)
    second = w @ (np.exp(log_var) + loc**2) / w.sum(axis=1, keepdims=True)  # (R, L)
    sq_dist = second[:, None, :] - 2 * mean[:, None, :] * loc[None] + loc[None] ** 2  # (R, N, L) E_q̃ (z − loc)²
    cross_q = 0.5 * (LOG_2PI + log_var[None] + sq_dist * np.exp(-log_var[None])).sum(-1)  # (R, N)
    dvae_independent = mixture_cross + (w * cross_q).sum(axis=1)

    clean = int(np.flatnonzero(used == x_code)[0])
    grid_entropy = basis.grid_entropy[at]
    out = {
        "log_px": np.full(len(weights), log_px),
        "elbo": np.full(len(weights), cross_joint[clean] + entropy[x_code]),
        "cvae": cvae,
        "dvae_joint": dvae_joint,
        "dvae_independent": dvae_independent,
        "expected_kl": cvae - dvae_joint,
        "grid_mass": mixture.sum(axis=1) * cell,
        "entropy_grid_error": np.full(len(weights), np.max(np.abs(grid_entropy - entropy[used]))),
    }
    if parts is not None:
        parts.update(log_joint=log_joint, used=used, components=comps, mixture=mixture)
    if direct_kl:
        # E_x̃ ∫ q(z|x̃) [log q(z|x̃) − log q̃(z|x)], component by component, on the grid only:
        # a route that does not go through the identity or the analytic entropies
        out["expected_kl_direct"] = np.array([
            w[r] @ (-grid_entropy - comps.integrate(log_mixture[r])) for r in range(len(weights))
        ])
    return out


def log_marginal(model: TinyModel, x_code: int, grid: LatentGrid | None = None) -> float:
    """log p(x) = log ∫ p(x|z) p(z) dz on the grid (exact to double precision for a covering grid)."""
    grid = grid or latent_grid(model.latent_dim)
    x_bits = binary_inputs(model.num_pixels)[x_code]
    return float(logsumexp(model.log_joint(x_bits, grid.points)) + grid.log_cell)


def exact_quantities(
    model: TinyModel,
    x_code: int,
    noise: str,
    level: float,
    grid: LatentGrid | None = None,
    direct_kl: bool = False,
) -> dict[str, float]:
    """Every exact quantity for clean input ``x_code`` at one noise level (nats).

    Keys: ``log_px``, ``elbo``, ``cvae``, ``dvae_joint``, ``dvae_independent``,
    ``expected_kl`` (= cvae − dvae_joint, Proposition 1's gap), the gaps
    ``gap_elbo`` = log p(x) − elbo, ``gap_cvae`` = log p(x) − cvae (= KL(q̃ ‖ p(z|x))),
    ``gap_dvae_joint``, ``gap_dvae_independent`` (negative: not a bound), and the
    grid checks ``grid_mass`` (≈ 1) and ``entropy_grid_error``. ``direct_kl``
    adds ``expected_kl_direct``, E_x̃ KL(q(z|x̃) ‖ q̃) computed component by component.
    """
    return {k: float(v[0]) for k, v in noise_sweep(model, x_code, noise, [level], grid, direct_kl).items()}


def noise_sweep(
    model: TinyModel,
    x_code: int,
    noise: str,
    levels: Sequence[float],
    grid: LatentGrid | None = None,
    direct_kl: bool = False,
    basis: LabBasis | None = None,
) -> dict[str, np.ndarray]:
    """:func:`exact_quantities` at each noise level in ``levels``: a dict of ``(len(levels),)`` arrays.

    The per-component grid work is shared by all levels, so a sweep costs
    little more than one level; ``basis`` (:func:`lab_basis` of the same model and x) skips it altogether.
    """
    grid = _lab_grid(model, grid, basis)
    levels = [float(v) for v in levels]
    weights = np.stack([corruption_weights(model.num_pixels, x_code, noise, v) for v in levels])  # (R, 2^D)
    out = _exact_rows(model, int(x_code), weights, grid, direct_kl, basis=basis)
    for name in ("elbo", "cvae", "dvae_joint", "dvae_independent"):
        out[f"gap_{name}"] = out["log_px"] - out[name]
    out["level"] = np.asarray(levels)
    return out


def latent_densities(
    model: TinyModel,
    x_code: int,
    noise: str,
    level: float,
    max_components: int = 12,
    grid: LatentGrid | None = None,
) -> dict:
    """Densities on the latent grid for plotting (each shaped like the grid: ``(G1,)`` or ``(G1, G2)``).

    ``posterior`` p(z|x); ``mixture`` q̃(z|x); ``components`` the heaviest
    ``max_components`` terms p(x̃|x) q(z|x̃) (already weighted) with their
    ``component_weights``, ``component_codes``, ``component_bits``,
    ``component_locs``; ``other_weight`` the total weight of those not shown;
    ``axes`` the grid axes.
    """
    grid = grid or latent_grid(model.latent_dim)
    weights = corruption_weights(model.num_pixels, x_code, noise, level)
    x_bits = binary_inputs(model.num_pixels)[x_code]
    used = np.flatnonzero(weights > 0)
    comps = _Components(grid, model.z_loc[used], model.z_log_var[used])
    return _densities(model, grid, weights, model.log_joint(x_bits, grid.points), used, comps,
                      comps.mix(weights[None, used])[0], max_components)


def _densities(model: TinyModel, grid: LatentGrid, weights: np.ndarray, log_joint: np.ndarray, used: np.ndarray,
               comps: _Components, mixture: np.ndarray, max_components: int) -> dict:
    """:func:`latent_densities` from the grid work already done: ``comps`` holds the components ``used``,
    ``mixture`` is q̃(z|x) on the grid for the corruption ``weights`` ``(2^D,)``."""
    posterior = np.exp(log_joint - logsumexp(log_joint) - grid.log_cell)
    weighed = used[weights[used] > 0]  # what this level weighs (``comps`` may hold more)
    order = weighed[np.argsort(-weights[weighed], kind="stable")][:max_components]
    components = weights[order, None] * comps.densities(np.searchsorted(used, order))  # ``used`` is sorted
    shape = grid.shape
    return {
        "axes": grid.axes,
        "posterior": posterior.reshape(shape),
        "mixture": mixture.reshape(shape),
        "components": components.reshape(len(order), *shape),
        "component_weights": weights[order],
        "component_codes": order,
        "component_bits": binary_inputs(model.num_pixels)[order],
        "component_locs": model.z_loc[order],
        "other_weight": float(max(0.0, 1.0 - weights[order].sum())),
    }


def lab_view(
    model: TinyModel,
    x_code: int,
    noise: str,
    level: float,
    levels: Sequence[float],
    max_components: int = 12,
    grid: LatentGrid | None = None,
    basis: LabBasis | None = None,
    sweep: dict[str, np.ndarray] | None = None,
) -> tuple[dict[str, float], dict[str, np.ndarray], dict]:
    """What the exact lab shows, from one pass over the components: (:func:`exact_quantities` at ``level``,
    :func:`noise_sweep` over ``levels``, :func:`latent_densities` at ``level``).

    The per-component grid work dominates the cost, and all three need it; computed here once, a change of
    the model costs about what one of them did alone. The grid check ``entropy_grid_error`` covers every
    component that some level (of ``levels`` or ``level``) weighs. A page moving only the noise level passes
    what does not move: ``basis`` (:func:`lab_basis` of this model and x) and ``sweep`` (the
    :func:`noise_sweep` over ``levels`` with it); the move then mixes the components for ``level`` alone.
    """
    grid = _lab_grid(model, grid, basis)
    levels = [float(v) for v in levels]
    rows_at = [level] if sweep is not None else [*levels, level]
    weights = np.stack([corruption_weights(model.num_pixels, x_code, noise, v) for v in rows_at])
    parts: dict = {}
    rows = _exact_rows(model, int(x_code), weights, grid, False, parts, basis)
    for name in ("elbo", "cvae", "dvae_joint", "dvae_independent"):
        rows[f"gap_{name}"] = rows["log_px"] - rows[name]
    rows["level"] = np.asarray(rows_at)
    point = {k: float(v[-1]) for k, v in rows.items()}
    if sweep is None:
        sweep = {k: v[:-1] for k, v in rows.items()}
    elif not np.array_equal(sweep["level"], levels):
        raise ValueError("sweep is not over these levels")
    else:
        point["entropy_grid_error"] = max(point["entropy_grid_error"], float(np.max(sweep["entropy_grid_error"])))
    densities = _densities(model, grid, weights[-1], parts["log_joint"], parts["used"], parts["components"],
                           parts["mixture"][-1], max_components)
    return point, sweep, densities


# --- Monte Carlo estimators (as a trainer samples them) -------------------------------------------

def _mixture_log_density(model: TinyModel, z: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """log q̃(z|x) = log Σ_x̃ p(x̃|x) q(z|x̃) at points ``z`` ``(n, L)``: ``(n,)``."""
    used = np.flatnonzero(weights > 0)
    log_q = model.encoder_log_density(z[:, None, :], used[None, :])  # (n, N)
    return logsumexp(log_q + np.log(weights[used])[None, :], axis=1)


def _mean_stderr(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "stderr": float(values.std(ddof=1) / math.sqrt(len(values)))}


def monte_carlo_estimates(
    model: TinyModel,
    x_code: int,
    noise: str,
    level: float,
    num_draws: int = 20000,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Sampled estimates ``{name: {"mean", "stderr"}}`` of the quantities of :func:`exact_quantities`.

    Each draws the corruption pixel by pixel (:func:`sample_corruptions`):
    ``elbo`` z ~ q(z|x); ``dvae_joint`` x̃ ~ p(x̃|x), z ~ q(z|x̃), scored with the
    same x̃; ``dvae_independent`` z ~ q̃ (via its own x̃') and a fresh x̃;
    ``cvae`` and ``expected_kl`` the joint draws scored against log q̃ (exact sum
    over components). Unbiased for their exact values.
    """
    if num_draws < 2:
        raise ValueError("num_draws must be >= 2")
    rng = np.random.default_rng(seed)
    d, latent = model.num_pixels, model.latent_dim
    x_bits = binary_inputs(d)[x_code]
    weights = corruption_weights(d, x_code, noise, level)

    def encode_sample(codes: np.ndarray) -> np.ndarray:
        eps = rng.standard_normal((len(codes), latent))
        return model.z_loc[codes] + np.exp(0.5 * model.z_log_var[codes]) * eps

    clean = np.full(num_draws, x_code)
    z_clean = encode_sample(clean)
    elbo = model.log_joint(x_bits, z_clean) - model.encoder_log_density(z_clean, clean)

    noisy = bits_to_code(sample_corruptions(x_bits, noise, level, num_draws, rng))
    z = encode_sample(noisy)  # z ~ q(z|x̃) of the same x̃
    log_joint = model.log_joint(x_bits, z)
    log_q = model.encoder_log_density(z, noisy)
    log_mixture = _mixture_log_density(model, z, weights)

    other = bits_to_code(sample_corruptions(x_bits, noise, level, num_draws, rng))  # independent of z
    independent = log_joint - model.encoder_log_density(z, other)
    return {
        "elbo": _mean_stderr(elbo),
        "cvae": _mean_stderr(log_joint - log_mixture),
        "dvae_joint": _mean_stderr(log_joint - log_q),
        "dvae_independent": _mean_stderr(independent),
        "expected_kl": _mean_stderr(log_q - log_mixture),
    }


def monte_carlo_diwae(
    model: TinyModel,
    x_code: int,
    noise: str,
    level: float,
    num_corruptions: int,
    num_samples: int,
    num_draws: int = 4096,
    seed: int = 0,
) -> np.ndarray:
    """``num_draws`` independent draws of the DIWAE objective (Eq. 12): ``(num_draws,)``.

    One draw: M corrupted copies x̃_m ~ p(x̃|x), K samples z_mk ~ q(z|x̃_m),
    log (1/MK) Σ_mk p(x, z_mk)/q(z_mk|x̃_m).
    """
    return monte_carlo_diwae_levels(model, x_code, noise, [level], num_corruptions, num_samples, num_draws, seed)[0]


def monte_carlo_diwae_levels(
    model: TinyModel,
    x_code: int,
    noise: str,
    levels: Sequence[float],
    num_corruptions: int,
    num_samples: int,
    num_draws: int = 4096,
    seed: int = 0,
    workers: int = 1,
) -> np.ndarray:
    """:func:`monte_carlo_diwae` at several noise levels with common random numbers: ``(len(levels), num_draws)``.

    Row r equals ``monte_carlo_diwae(..., levels[r], ..., seed)``: every level starts the same
    random stream, so the uniforms, coins and ε are drawn once and only the corruption differs.
    ``workers`` > 1 scores the levels in that many threads (numpy releases the GIL); the
    result does not depend on it.

    The log weights are computed in float32 (the softplus over ``(draws, M, K, D)`` logits is most of
    the cost, and float32 takes a third of float64's time): each is then off by about 1e-6 of its size,
    far below the Monte Carlo standard error that every estimate from them carries. The log-sum-exp
    over the M·K weights of a draw and everything after it are float64.
    """
    if num_corruptions < 1 or num_samples < 1:
        raise ValueError("num_corruptions (M) and num_samples (K) must be >= 1")
    levels = [_check_noise(noise, v) for v in levels]
    rng = np.random.default_rng(seed)
    m, k = num_corruptions, num_samples
    x_bits = binary_inputs(model.num_pixels)[x_code]
    draws = _corruption_draws(noise, (num_draws * m, model.num_pixels), rng)
    eps = rng.standard_normal((num_draws, m, k, model.latent_dim)).astype(np.float32)

    powers = 2.0 ** np.arange(model.num_pixels - 1, -1, -1, dtype=np.float32)  # bits → code, as bits_to_code
    # log p(x|z) = Σ_d log sigmoid(s_d·logit_d) = −Σ_d softplus(−s_d·logit_d), s_d = 2x_d − 1: one softplus pass
    sign = 2.0 * x_bits - 1.0
    flipped_weight = (-sign[:, None] * model.decoder_weight).T.astype(np.float32)  # (L, D)
    flipped_bias = (-sign * model.decoder_bias).astype(np.float32)  # (D,)
    z_loc = model.z_loc.astype(np.float32)  # (2^D, L)
    z_log_var = model.z_log_var.astype(np.float32)
    z_std = np.exp(0.5 * z_log_var)
    half_log_det = 0.5 * z_log_var.sum(-1)  # (2^D,): ½ log det of q(z|x̃)'s covariance

    def score(part: slice) -> np.ndarray:
        """Draws part.start:part.stop (draw i uses rows i·M … i·M + M − 1) at every level: ``(len(levels), n)``.

        Going from one level to the next, a copy whose corrupted input stays the same keeps its z and its
        weights (same draws, same code), so only the copies whose code changed are scored again: rising
        levels change a fraction of them, and the sweep costs a few levels' worth, not all of them.
        """
        rows = {key: value[part.start * m:part.stop * m] for key, value in draws.items()}
        n = part.stop - part.start
        copy_eps = eps[part].reshape(n * m, k, -1)  # (n·M, K, L): copy i·M + j is draw i's copy j
        log_w = np.empty((n * m, k), dtype=np.float32)
        previous = None
        out = np.empty((len(levels), n))
        for r, level in enumerate(levels):
            codes = _corrupted_codes(x_code, x_bits, noise, level, rows, powers)  # (n·M,)
            which = slice(None) if previous is None else np.flatnonzero(codes != previous)
            noisy = codes[which]  # (P,)
            scaled_eps = copy_eps[which]  # (P, K, L): z − z_loc in units of the encoder's σ
            z = z_loc[noisy][:, None, :] + z_std[noisy][:, None, :] * scaled_eps  # (P, K, L)
            # einsum sums over the short pixel axis several times faster than .sum(-1)
            log_likelihood = -np.einsum("pkd->pk", softplus(z @ flipped_weight + flipped_bias))  # (P, K)
            # log p(z) − log q(z|x̃) = −½‖z‖² + ½‖ε‖² + ½ Σ log σ², since (z − loc)/σ = ε (the 2π terms cancel)
            squares = np.einsum("pkl,pkl->pk", z, z) - np.einsum("pkl,pkl->pk", scaled_eps, scaled_eps)
            log_w[which] = log_likelihood - 0.5 * squares + half_log_det[noisy][:, None]
            out[r] = _logsumexp_rows(log_w.reshape(n, m * k)) - math.log(m * k)  # copies of a draw are adjacent
            previous = codes
        return out

    # the draws split into parts for the workers; each part goes through every level
    bounds = np.linspace(0, num_draws, max(1, min(workers, num_draws)) + 1).astype(int)
    parts = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
    if workers > 1 and len(parts) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            scored = list(pool.map(score, parts))
    else:
        scored = [score(part) for part in parts]
    return np.concatenate(scored, axis=1)


def diwae_expectation(
    model: TinyModel,
    x_code: int,
    noise: str,
    level: float,
    num_corruptions: int = 1,
    num_samples: int = 1,
    num_draws: int | None = None,
    seed: int = 0,
    grid: LatentGrid | None = None,
    sample_budget: int = 2**18,
    workers: int = 1,
    exact: dict | None = None,
) -> dict:
    """E[DIWAE(M, K)] (Eq. 12): ``{"mean", "stderr", "exact"}``.

    For M = K = 1 this is L_dvae(joint), computed exactly (``exact=True``,
    stderr 0). Otherwise there is no closed form and it is a Monte Carlo
    estimate over ``num_draws`` draws (``exact=False``; by default
    max(1024, sample_budget // (M·K)) draws; ``workers`` threads score them, with the same
    result). ``gap`` is log p(x) minus the mean. The expectation is ≤ log p(x) for
    every M, K (each term is an importance-sampling estimate of p(x) with a
    valid proposal). ``exact``: this level's :func:`exact_quantities`, if already computed.
    """
    if num_corruptions == 1 and num_samples == 1:
        exact = exact if exact is not None else exact_quantities(model, x_code, noise, level, grid)
        return {"mean": exact["dvae_joint"], "stderr": 0.0, "exact": True, "gap": exact["gap_dvae_joint"]}
    num_draws = num_draws or max(1024, sample_budget // (num_corruptions * num_samples))
    draws = monte_carlo_diwae_levels(model, x_code, noise, [level], num_corruptions, num_samples, num_draws, seed,
                                     workers=workers)[0]
    out = _mean_stderr(draws)
    log_px = exact["log_px"] if exact is not None else log_marginal(model, x_code, grid)
    return {**out, "exact": False, "gap": log_px - out["mean"]}


def diwae_sweep(
    model: TinyModel,
    x_code: int,
    noise: str,
    levels: Sequence[float],
    num_corruptions: int = 1,
    num_samples: int = 1,
    num_draws: int | None = None,
    seed: int = 0,
    grid: LatentGrid | None = None,
    sample_budget: int = 2**15,
    exact_sweep: dict | None = None,
    workers: int = 1,
) -> dict[str, np.ndarray]:
    """:func:`diwae_expectation` at each noise level: ``mean``, ``stderr``, ``gap`` arrays and ``exact`` (bool).

    Every level reuses the same seed (common random numbers), so the curve is
    smooth in ν. ``exact_sweep`` (the :func:`noise_sweep` of the same levels)
    saves recomputing it when M = K = 1. ``workers``: threads for the Monte Carlo levels (same result).
    """
    levels = [float(v) for v in levels]
    if num_corruptions == 1 and num_samples == 1:
        exact = exact_sweep if exact_sweep is not None else noise_sweep(model, x_code, noise, levels, grid)
        mean = exact["dvae_joint"]
        return {"mean": mean, "stderr": np.zeros_like(mean), "exact": True, "gap": exact["log_px"] - mean}
    num_draws = num_draws or max(512, sample_budget // (num_corruptions * num_samples))
    rows = monte_carlo_diwae_levels(model, x_code, noise, levels, num_corruptions, num_samples, num_draws, seed,
                                    workers=workers)
    mean = np.array([r.mean() for r in rows])
    stderr = np.array([r.std(ddof=1) / math.sqrt(len(r)) for r in rows])
    return {"mean": mean, "stderr": stderr, "exact": False, "gap": log_marginal(model, x_code, grid) - mean}


# --- Ranganath's counterexample: a binary latent, exactly ----------------------------------------

def binary_latent_quantities(
    log_joint: np.ndarray,
    corruption_probs: np.ndarray,
    encoder_table: np.ndarray,
    num_corruptions: int = 1,
    num_samples: int = 1,
) -> dict[str, float]:
    """Exact quantities for a binary latent z ∈ {0, 1} and a binary corruption x̃ ∈ {0, 1}.

    ``log_joint[z]`` = log p(x, z) for the fixed clean x; ``corruption_probs[x̃]``
    = p(x̃|x); ``encoder_table[x̃, z]`` = q(z|x̃). Sums replace integrals; the
    DIWAE(M, K) expectation is enumerated exactly over how many of the M copies
    are x̃ = 1 and how many of each group's K samples are z = 1.
    """
    log_joint = np.asarray(log_joint, dtype=np.float64)
    p_noisy = np.asarray(corruption_probs, dtype=np.float64)
    q = np.asarray(encoder_table, dtype=np.float64)
    if log_joint.shape != (2,) or p_noisy.shape != (2,) or q.shape != (2, 2):
        raise ValueError("binary case needs log_joint (2,), corruption_probs (2,), encoder_table (2, 2)")
    if np.any(q <= 0) or not np.allclose(q.sum(1), 1) or not np.isclose(p_noisy.sum(), 1):
        raise ValueError("encoder rows and corruption_probs must be probability vectors (q > 0)")
    log_px = float(logsumexp(log_joint))
    mixture = p_noisy @ q  # q̃(z|x), (2,)
    log_w = log_joint[None, :] - np.log(q)  # (x̃, z): log p(x,z) − log q(z|x̃)
    dvae_joint = float((p_noisy[:, None] * q * log_w).sum())
    dvae_independent = float((p_noisy[:, None] * mixture[None, :] * log_w).sum())
    cvae = float((mixture * (log_joint - np.log(mixture))).sum())
    expected_kl = float((p_noisy[:, None] * q * (np.log(q) - np.log(mixture)[None, :])).sum())
    elbo_per_noisy = (q * log_w).sum(axis=1)  # ELBO of each x̃'s encoder
    return {
        "log_px": log_px,
        "cvae": cvae,
        "dvae_joint": dvae_joint,
        "dvae_independent": dvae_independent,
        "expected_kl": expected_kl,
        "mixture_z1": float(mixture[1]),
        "elbo_noisy_0": float(elbo_per_noisy[0]),
        "elbo_noisy_1": float(elbo_per_noisy[1]),
        "diwae": _binary_diwae(log_w, p_noisy, q, num_corruptions, num_samples),
    }


def _binary_diwae(log_w: np.ndarray, p_noisy: np.ndarray, q: np.ndarray, m: int, k: int) -> float:
    """E log (1/MK) Σ w over j ~ Bin(M, p(x̃=1)) copies of x̃ = 1 and binomial counts of z = 1 in each group."""
    if m < 1 or k < 1:
        raise ValueError("num_corruptions (M) and num_samples (K) must be >= 1")
    total = 0.0
    for j in range(m + 1):  # copies with x̃ = 1
        log_pj = (gammaln(m + 1) - gammaln(j + 1) - gammaln(m - j + 1)
                  + _xlogy(j, p_noisy[1]) + _xlogy(m - j, p_noisy[0]))
        n1 = np.arange(j * k + 1)[:, None]  # z = 1 among the j·k samples of x̃ = 1
        n0 = np.arange((m - j) * k + 1)[None, :]  # z = 1 among the (m − j)·k samples of x̃ = 0
        log_terms = np.stack(np.broadcast_arrays(
            _safe_log(n1) + log_w[1, 1], _safe_log(j * k - n1) + log_w[1, 0],
            _safe_log(n0) + log_w[0, 1], _safe_log((m - j) * k - n0) + log_w[0, 0]))
        value = logsumexp(log_terms, axis=0) - math.log(m * k)  # (n1, n0)
        log_prob = _binom_logpmf(n1, j * k, q[1, 1]) + _binom_logpmf(n0, (m - j) * k, q[0, 1])
        total += math.exp(log_pj) * float((np.exp(log_prob) * value).sum())
    return total


def _xlogy(count: int, p: float) -> float:
    return 0.0 if count == 0 else count * math.log(p) if p > 0 else -math.inf


def _safe_log(count: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(count, dtype=np.float64))


def ranganath_counterexample(a: float = 0.1, num_corruptions: int = 1, num_samples: int = 1) -> dict[str, float]:
    """Tran & Ranganath's counterexample to the paper's Lemma 1, exactly.

    z ~ Bernoulli(½) and p(x|z) = 1, so p(x, z) = p(z) and log p(x) = 0;
    x̃ ~ Bernoulli(½) independently of x; q(z=1|x̃=1) = a, q(z=1|x̃=0) = 1 − a.
    Then q̃(z|x) = Bernoulli(½), L_cvae = 0 = log p(x), the joint reading is
    −KL(Bernoulli(a) ‖ Bernoulli(½)) ≤ 0, and the independent reading is
    ½ log(1 / (4a(1 − a))): 0.510826 at a = 0.1, unbounded as a → 0 (1 − a → 1).
    """
    if not 0.0 < a < 1.0:
        raise ValueError(f"a must be in (0, 1), not {a}")
    out = binary_latent_quantities(
        log_joint=np.log([0.5, 0.5]),
        corruption_probs=np.array([0.5, 0.5]),
        encoder_table=np.array([[a, 1.0 - a], [1.0 - a, a]]),  # row x̃ = 0: q(z=1) = 1 − a; row x̃ = 1: q(z=1) = a
        num_corruptions=num_corruptions,
        num_samples=num_samples,
    )
    return {"a": float(a), **out}


def ranganath_sweep(a_values: Sequence[float], num_corruptions: int = 1, num_samples: int = 1) -> dict[str, np.ndarray]:
    """:func:`ranganath_counterexample` for each a: a dict of arrays."""
    rows = [ranganath_counterexample(a, num_corruptions, num_samples) for a in a_values]
    return {key: np.array([row[key] for row in rows]) for key in rows[0]}


# --- on real models -------------------------------------------------------------------------------

@torch.no_grad()
def objective_vs_loglik(
    model,
    x: torch.Tensor,
    objective_kwargs: dict,
    importance_samples: int = 5000,
    repeats: int = 32,
    seed: int = 0,
    num_sigmas: float = 3.0,
    batch_size: int = 100,
    chunk_size: int = 500,
    progress: Callable[[int, int], None] | None = None,
    exact_2d: bool = False,
    config=None,
    plain: bool = True,
) -> dict:
    """A trained model's own objective beside its log p(x), per clean example.

    ``objective_kwargs`` are :func:`dvae_engine.objectives.objective_per_example`'s
    keywords for the run (see :func:`dvae_engine.evaluation.training_objective_kwargs`).
    Per example (tensors ``(N,)``): ``objective`` the mean of ``repeats``
    independent draws of the objective (its expectation, up to ``objective_stderr``,
    the Monte Carlo standard error over the repeats); ``log_px_mix`` log p(x) by
    importance sampling from the defensive mixture proposal
    (:func:`dvae_engine.evaluation.mixture_is_per_example`, its corruption from ``config``);
    ``log_px_plain`` the plain estimate from q(z|x) alone (with ``plain``); ``elbo`` the
    clean ELBO (exact KL). For a 2-D latent space, ``exact_2d=True`` adds
    ``log_px_exact`` (quadrature on a grid). ``log_px`` is the value compared against —
    exact where computed, else the mixture estimate — named in ``log_px_method``;
    ``gap`` = log_px − objective. Summaries: ``mean_gap``, ``mean_gap_stderr`` (over
    examples), ``num_above`` = how many examples have objective − log_px >
    ``num_sigmas`` · objective_stderr, ``num_above_plain`` the same against the plain
    estimate, ``num_examples``.
    """
    from .evaluation import (
        elbo_per_example,
        exact_log_px_2d,
        iwae_per_example,
        mixture_is_per_example,
        mixture_noise,
    )
    from .objectives import objective_per_example

    if repeats < 2:
        raise ValueError("repeats must be >= 2 to estimate a Monte Carlo error")
    model.eval()
    device = next(model.parameters()).device
    x = x.to(device)
    g = torch.Generator(device=device).manual_seed(seed)
    noise, level = mixture_noise(config, model.spec.likelihood)
    mean_image = objective_kwargs.get("mean_image")
    if noise == "mean-image" and mean_image is None:
        from .evaluation import REFERENCE_NOISE

        noise, level = REFERENCE_NOISE[model.spec.likelihood]
    objective, stderr, log_mix, log_plain, elbo = [], [], [], [], []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        draws = objective_per_example(model, xb.repeat(repeats, 1), generator=g, **objective_kwargs)
        draws = draws.reshape(repeats, len(xb)).double()  # (R, batch)
        objective.append(draws.mean(0))
        stderr.append(draws.std(0) / math.sqrt(repeats))
        elbo.append(elbo_per_example(model, xb, g).double())
        log_mix.append(mixture_is_per_example(model, xb, importance_samples, noise, level, generator=g,
                                              chunk_size=chunk_size, mean_image=mean_image).double())
        if plain:
            log_plain.append(iwae_per_example(model, xb, importance_samples, g, chunk_size).double())
        if progress is not None:
            progress(min(start + batch_size, len(x)), len(x))
    objective, stderr = torch.cat(objective).cpu(), torch.cat(stderr).cpu()
    log_mix, elbo = torch.cat(log_mix).cpu(), torch.cat(elbo).cpu()
    out: dict = {"log_px_mix": log_mix, "mixture_noise": noise, "mixture_level": level}
    log_px, method = log_mix, "mixture"
    if plain:
        out["log_px_plain"] = torch.cat(log_plain).cpu()
        out["num_above_plain"] = int(((objective - out["log_px_plain"]) > num_sigmas * stderr).sum())
    if exact_2d and model.latent_dim == 2:
        out["log_px_exact"] = exact_log_px_2d(model, x)
        log_px, method = out["log_px_exact"], "exact"
    gap = log_px - objective
    n = len(gap)
    return {
        **out,
        "log_px": log_px,
        "log_px_method": method,
        "objective": objective,
        "objective_stderr": stderr,
        "elbo": elbo,
        "gap": gap,
        "mean_gap": float(gap.mean()),
        "mean_gap_stderr": float(gap.std() / math.sqrt(n)) if n > 1 else math.nan,
        "num_above": int(((objective - log_px) > num_sigmas * stderr).sum()),
        "num_examples": n,
        "num_sigmas": float(num_sigmas),
        "importance_samples": int(importance_samples),
        "repeats": int(repeats),
    }


# --- the bridge: L⁽ᴷ⁾ and U⁽ᴷ⁾ exactly on tiny models ---------------------------------------------
#
# With x̃₀..x̃_K iid p(x̃|x), z ~ q(z|x̃₀), r_n the empirical mixture of n encoders and
# w_c(z) = q(z|c)/q̃(z|x) (so Σ_c p(c|x) w_c(z) = 1):
#   L⁽ᴷ⁾ = E log p(x,z) − E log((1/(K+1)) Σ_{k=0..K} q(z|x̃_k)) = L_cvae − E KL(r_{K+1} ‖ q̃)
#        = L_cvae − E_{z~q̃} E[(S/(K+1)) log(S/(K+1))],  S = Σ of K+1 iid w's,
#   U⁽ᴷ⁾ = E log p(x,z) − E log((1/K) Σ_{k=1..K} q(z|x̃_k)) = L_cvae + E KL(q̃ ‖ r_K)
#        = L_cvae − E_{z~q̃} E[log(S_K/K)],  S_K = Σ of K iid w's
# (docs/semi_implicit.md). For fixed z the w's are iid discrete with Laplace transform
# ψ(s) = Σ_c p_c e^{−s w_c}, and log y = ∫_0^∞ (e^{−t} − e^{−ty}) dt/t (Frullani), so
#   E log(S_K/K)                          = ∫_0^∞ (e^{−Ks} − ψ(s)^K) ds/s,
#   E_{x̃₀ size-biased} log((w₀+S_K)/(K+1)) = ∫_0^∞ (e^{−(K+1)s} − φ(s) ψ(s)^K) ds/s,  φ(s) = Σ_c p_c w_c e^{−s w_c}
# (the z-marginal is q̃ and, given z, x̃₀ has law p_c w_c: the size-biased law). With s = e^u these
# integrands are entire in u and bounded in the strip |Im u| < π/2, so the trapezoid rule on a uniform
# u grid converges like exp(−π²/h): h = 0.3 gives ~5e-15 relative. ψ and φ are computed once per
# (z, u) and every K costs one power. This gives every K (0, 1, …, 10⁶) to ~1e-10 nats.

_BRIDGE_U_STEP = 0.3
_BRIDGE_U_MIN = -36.0
_BRIDGE_MAX_WORK = 2 * 10**9  # z points × u points × components before refusing


def _bridge_setup(model: TinyModel, x_code: int, noise: str, level: float, grid: LatentGrid | None):
    """The pieces every bridge computation shares: q̃ on the grid, log w_c(z), L_cvae, log p(x)."""
    grid = grid or latent_grid(model.latent_dim)
    weights = corruption_weights(model.num_pixels, x_code, noise, level)
    used = np.flatnonzero(weights > 0)
    p = weights[used]  # (N,)
    x_bits = binary_inputs(model.num_pixels)[x_code]
    cell = math.exp(grid.log_cell)
    log_joint = model.log_joint(x_bits, grid.points)  # (G,)
    log_q = model.encoder_log_density(grid.points[:, None, :], used[None, :])  # (G, N)
    log_mixture = logsumexp(log_q + np.log(p)[None, :], axis=1)  # (G,)
    mass = np.exp(log_mixture) * cell  # q̃(z) dz on the grid
    keep = mass > 1e-30 * mass.max()  # the rest carries < G·1e-30 of q̃'s mass
    cvae = float((mass * (log_joint - log_mixture)).sum())
    return {
        "p": p, "used": used, "mass": mass[keep], "log_w": (log_q - log_mixture[:, None])[keep],  # (G', N)
        "cvae": cvae, "log_px": float(logsumexp(log_joint) + grid.log_cell), "grid_mass": float(mass.sum()),
    }


def _bridge_gaps(log_w: np.ndarray, p: np.ndarray, mass: np.ndarray, ks_lower: Sequence[int],
                 ks_upper: Sequence[int], chunk: int = 256,
                 max_work: int = _BRIDGE_MAX_WORK) -> tuple[np.ndarray, np.ndarray]:
    """L_cvae − L⁽ᴷ⁾ for K in ``ks_lower`` and U⁽ᴷ⁾ − L_cvae for K in ``ks_upper`` (both ≥ 0), by the
    Frullani integrals above on a uniform grid in u = log s."""
    w_min_log = float(np.min(log_w))
    u_max = -w_min_log + math.log(60.0) + 1.0  # beyond it ψ(e^u) ≤ e^{−60}
    u = np.arange(_BRIDGE_U_MIN, max(u_max, 8.0) + _BRIDGE_U_STEP, _BRIDGE_U_STEP)  # (U,)
    work = log_w.size * len(u)
    if work > max_work:
        raise ValueError(f"the exact bridge would need {work:.2g} evaluations (encoder components too far apart "
                         "or too many pixels); use the Monte Carlo estimates instead")
    s = np.exp(u)  # (U,)
    w = np.exp(log_w)  # (G', N)
    lower = np.zeros(len(ks_lower))
    upper = np.zeros(len(ks_upper))
    for start in range(0, len(w), chunk):
        wz = w[start:start + chunk]  # (C, N)
        psi_m1 = np.zeros((len(wz), len(u)))  # ψ − 1 = Σ p_c expm1(−s w_c), accurate for small s
        phi_m1 = np.zeros((len(wz), len(u)))  # φ − 1 = Σ p_c w_c expm1(−s w_c) + (Σ p_c w_c − 1)
        for c in range(wz.shape[1]):
            e = np.expm1(-np.exp(u[None, :] + log_w[start:start + chunk, c:c + 1]))  # (C, U)
            psi_m1 += p[c] * e
            phi_m1 += (p[c] * wz[:, c:c + 1]) * e
        phi_m1 += (wz @ p - 1.0)[:, None]  # Σ p w = 1 up to rounding: keep the rounding, it is exact then
        with np.errstate(divide="ignore"):
            log_psi = np.log1p(np.maximum(psi_m1, -1.0))  # log ψ ∈ [−∞, 0]; −∞ where every e^{−s w} underflowed
        dm = mass[start:start + chunk]
        for i, k in enumerate(ks_lower):
            psi_k_m1 = np.expm1(k * log_psi) if k > 0 else np.zeros_like(log_psi)  # ψ^K − 1
            f = np.expm1(-(k + 1) * s)[None, :] - (phi_m1 + psi_k_m1 + phi_m1 * psi_k_m1)  # (C, U)
            lower[i] += dm @ f.sum(axis=1) * _BRIDGE_U_STEP
        for i, k in enumerate(ks_upper):
            f = np.expm1(-k * s)[None, :] - np.expm1(k * log_psi)
            upper[i] -= dm @ f.sum(axis=1) * _BRIDGE_U_STEP
    return lower, upper


def bridge_exact(
    model: TinyModel,
    x_code: int,
    noise: str,
    level: float,
    ks: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128, 256),
    grid: LatentGrid | None = None,
    max_work: int = _BRIDGE_MAX_WORK,
) -> dict:
    """Exact L⁽ᴷ⁾ and U⁽ᴷ⁾ for every K in ``ks`` (K ≥ 1), plus L⁽⁰⁾, for one clean x: a dict of floats/arrays.

    ``lower`` (len(ks),) = L⁽ᴷ⁾; ``upper`` = U⁽ᴷ⁾; ``lower0`` = L⁽⁰⁾ (= the joint reading L_dvae);
    ``upper1`` = U⁽¹⁾ (= the independent reading); ``cvae`` = L_cvae; ``log_px``; the gaps
    ``lower_gap`` = L_cvae − L⁽ᴷ⁾ = E KL(r_{K+1} ‖ q̃) and ``upper_gap`` = U⁽ᴷ⁾ − L_cvae =
    E KL(q̃ ‖ r_K), computed directly (no cancellation against L_cvae); ``chi2`` = E_{z~q̃} Var(w)
    (K·upper_gap and (K+1)·lower_gap tend to chi2/2); ``grid_mass`` (≈ 1). Raises ``ValueError`` when
    the quadrature would need more than ``max_work`` density evaluations (many pixels, or components
    so far apart that log w spans thousands of nats).
    """
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"every K must be a positive integer, not {ks!r}")
    setup = _bridge_setup(model, x_code, noise, level, grid)
    lower_gap, upper_gap = _bridge_gaps(setup["log_w"], setup["p"], setup["mass"], (0, *ks), (1, *ks),
                                        max_work=max_work)
    cvae = setup["cvae"]
    w = np.exp(setup["log_w"])
    chi2 = float(setup["mass"] @ ((w - 1.0) ** 2 @ setup["p"]))
    return {
        "ks": np.asarray(ks),
        "lower": cvae - lower_gap[1:], "upper": cvae + upper_gap[1:],
        "lower_gap": lower_gap[1:], "upper_gap": upper_gap[1:],
        "lower0": float(cvae - lower_gap[0]), "upper1": float(cvae + upper_gap[0]),
        "cvae": cvae, "log_px": setup["log_px"], "chi2": chi2, "grid_mass": setup["grid_mass"],
    }


def _multisets(num_items: int, size: int):
    """Every way to put ``size`` draws into ``num_items`` boxes: count vectors ``(num_items,)``."""
    if num_items == 1:
        yield (size,)
        return
    for first in range(size, -1, -1):
        for rest in _multisets(num_items - 1, size - first):
            yield (first, *rest)


def bridge_enumerated(model: TinyModel, x_code: int, noise: str, level: float, k: int,
                      grid: LatentGrid | None = None, max_terms: int = 20000) -> dict[str, float]:
    """L⁽ᴷ⁾ and U⁽ᴷ⁾ by brute force: the expected ELBO of the empirical mixture r_{K+1} and
    E_{z~q̃}[log p(x,z) − log r_K(z)], summed over every multiset of corrupted inputs with its
    multinomial probability (a route independent of :func:`bridge_exact`). Small D and K only."""
    if k < 1:
        raise ValueError(f"K must be >= 1, not {k}")
    setup = _bridge_setup(model, x_code, noise, level, grid)
    grid = grid or latent_grid(model.latent_dim)
    p, used = setup["p"], setup["used"]
    n = len(used)
    if math.comb(n + k, k + 1) > max_terms:
        raise ValueError(f"{math.comb(n + k, k + 1)} multisets: too many to enumerate")
    x_bits = binary_inputs(model.num_pixels)[x_code]
    cell = math.exp(grid.log_cell)
    log_joint = model.log_joint(x_bits, grid.points)
    log_q = model.encoder_log_density(grid.points[:, None, :], used[None, :])  # (G, N)
    mixture_mass = np.exp(logsumexp(log_q + np.log(p)[None, :], axis=1)) * cell

    def log_multinomial(counts) -> float:
        counts = np.asarray(counts)
        return float(gammaln(counts.sum() + 1) - gammaln(counts + 1).sum() + (counts * np.log(p)).sum())

    def log_r(counts) -> np.ndarray:
        counts = np.asarray(counts, dtype=np.float64)
        nz = counts > 0
        return logsumexp(log_q[:, nz] + np.log(counts[nz] / counts.sum())[None, :], axis=1)

    lower = 0.0
    for counts in _multisets(n, k + 1):  # L⁽ᴷ⁾ = E ELBO(r_{K+1})
        lr = log_r(counts)
        r_mass = np.exp(lr) * cell
        lower += math.exp(log_multinomial(counts)) * float(r_mass @ (log_joint - lr))
    upper = 0.0
    for counts in _multisets(n, k):  # U⁽ᴷ⁾ = E_{z~q̃} [log p(x,z) − log r_K(z)], r_K independent of z
        upper += math.exp(log_multinomial(counts)) * float(mixture_mass @ (log_joint - log_r(counts)))
    return {"lower": lower, "upper": upper, "cvae": setup["cvae"], "log_px": setup["log_px"]}


def monte_carlo_bridge(model: TinyModel, x_code: int, noise: str, level: float,
                       ks: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128, 256), num_draws: int = 4096,
                       seed: int = 0) -> dict:
    """The sampled estimators of L⁽ᴷ⁾ and U⁽ᴷ⁾ as :mod:`dvae_engine.semi_implicit` computes them on real
    models: per draw, x̃₀..x̃_Kmax pixel by pixel (:func:`sample_corruptions`), z ~ q(z|x̃₀), nested
    prefixes for every K. Returns ``ks``, ``lower``/``upper`` means ``(len(ks),)`` with their
    ``*_stderr`` over the draws, ``lower0`` / ``lower0_stderr``, and the per-draw values ``*_draws``."""
    ks = tuple(sorted({int(k) for k in ks}))
    if not ks or ks[0] < 1:
        raise ValueError(f"every K must be a positive integer, not {ks!r}")
    if num_draws < 2:
        raise ValueError("num_draws must be >= 2")
    rng = np.random.default_rng(seed)
    max_k = ks[-1]
    x_bits = binary_inputs(model.num_pixels)[x_code]
    codes = bits_to_code(sample_corruptions(x_bits, noise, level, num_draws * (max_k + 1), rng))
    codes = codes.reshape(num_draws, max_k + 1)  # (n, Kmax+1)
    eps = rng.standard_normal((num_draws, model.latent_dim))
    z = model.z_loc[codes[:, 0]] + np.exp(0.5 * model.z_log_var[codes[:, 0]]) * eps  # (n, L)
    log_joint = model.log_joint(x_bits, z)  # (n,)
    log_q = model.encoder_log_density(z[:, None, :], codes)  # (n, Kmax+1)
    index = np.asarray(ks)
    with_own = np.logaddexp.accumulate(log_q, axis=1)[:, index] - np.log(index + 1.0)
    without_own = np.logaddexp.accumulate(log_q[:, 1:], axis=1)[:, index - 1] - np.log(index.astype(float))
    lower = log_joint[:, None] - with_own  # (n, len(ks))
    upper = log_joint[:, None] - without_own
    lower0 = log_joint - log_q[:, 0]
    root = math.sqrt(num_draws)
    return {
        "ks": index, "lower": lower.mean(0), "lower_stderr": lower.std(0, ddof=1) / root,
        "upper": upper.mean(0), "upper_stderr": upper.std(0, ddof=1) / root,
        "lower0": float(lower0.mean()), "lower0_stderr": float(lower0.std(ddof=1) / root),
        "lower_draws": lower, "upper_draws": upper, "lower0_draws": lower0,
    }
