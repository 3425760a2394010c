"""The paper's model: one stochastic layer of Gaussian latents between two MLPs.

Generative net p(x|z)p(z): p(z) = N(0, I), then ``latent → 200 → 200 → D``
with a Bernoulli (logits) output for binary data or a Gaussian output
(sigmoid mean, learned per-pixel log-variance) for real-valued data.

Inference net q(z|x̃) = N(z_loc, diag(exp(z_log_var))): an MLP with 1 or 2
hidden layers of 200 units, or the paper's GRU encoder (Table 3): one
recurrent layer of 200 units fed the same input for 5 steps, its last
state read out to (z_loc, z_log_var).

Every method broadcasts over leading sample dimensions, so one call scores
``(M, K, batch, latent)`` latents against a ``(batch, D)`` image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

LOG_2PI = math.log(2 * math.pi)
MIN_LOG_VAR = -9.0  # floor of the Gaussian decoder's log-variance: keeps the density finite on flat pixels


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model's layers (a subset of the run config)."""

    input_dim: int
    latent_dim: int = 50
    hidden_units: int = 200
    encoder: str = "mlp"  # "mlp" or "gru"
    encoder_layers: int = 2  # hidden layers of the MLP encoder (1 or 2)
    decoder_layers: int = 2
    activation: str = "softplus"  # "softplus" or "tanh"
    likelihood: str = "bernoulli"  # "bernoulli" or "gaussian"
    gru_steps: int = 5

    def __post_init__(self) -> None:
        checks = {
            "input_dim": self.input_dim >= 1,
            "latent_dim": self.latent_dim >= 1,
            "hidden_units": self.hidden_units >= 1,
            "encoder": self.encoder in ("mlp", "gru"),
            "encoder_layers": self.encoder_layers in (1, 2, 3),
            "decoder_layers": self.decoder_layers in (1, 2, 3),
            "activation": self.activation in ACTIVATIONS,
            "likelihood": self.likelihood in ("bernoulli", "gaussian"),
            "gru_steps": self.gru_steps >= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid model setting {bad[0]}={getattr(self, bad[0])!r}")


ACTIVATIONS = {"softplus": nn.Softplus, "tanh": nn.Tanh, "relu": nn.ReLU}


def _mlp(sizes: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


class GRUEncoder(nn.Module):
    """One GRU layer run ``steps`` times on the same input, then a linear read-out."""

    def __init__(self, input_dim: int, hidden_units: int, out_dim: int, steps: int) -> None:
        super().__init__()
        self.cell = nn.GRUCell(input_dim, hidden_units)
        self.readout = nn.Linear(hidden_units, out_dim)
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1])
        h = flat.new_zeros(flat.shape[0], self.cell.hidden_size)
        for _ in range(self.steps):
            h = self.cell(flat, h)
        return self.readout(h).reshape(*lead, -1)


class VAE(nn.Module):
    """Gaussian-latent auto-encoder; the objective (VAE, IWAE, DVAE, DIWAE) is chosen at training time."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__()
        self.spec = spec
        h, latent = spec.hidden_units, spec.latent_dim
        if spec.encoder == "gru":
            self.encoder = GRUEncoder(spec.input_dim, h, 2 * latent, spec.gru_steps)
        else:
            self.encoder = _mlp([spec.input_dim] + [h] * spec.encoder_layers + [2 * latent], spec.activation)
        out_per_pixel = 1 if spec.likelihood == "bernoulli" else 2
        self.decoder = _mlp([latent] + [h] * spec.decoder_layers + [out_per_pixel * spec.input_dim], spec.activation)

    @property
    def latent_dim(self) -> int:
        return self.spec.latent_dim

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z|x): ``(z_loc, z_log_var)``, each shaped ``(..., batch, latent_dim)``."""
        z_loc, z_log_var = self.encoder(x).chunk(2, dim=-1)
        return z_loc, z_log_var

    def decoder_params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Bernoulli: ``(logits, None)``; Gaussian: ``(mean, log_var)``; each ``(..., D)``."""
        out = self.decoder(z)
        if self.spec.likelihood == "bernoulli":
            return out, None
        mean_raw, log_var_raw = out.chunk(2, dim=-1)
        return torch.sigmoid(mean_raw), MIN_LOG_VAR + F.softplus(log_var_raw - MIN_LOG_VAR)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The mean image E[x|z], shape ``(..., D)``."""
        first, _ = self.decoder_params(z)
        return torch.sigmoid(first) if self.spec.likelihood == "bernoulli" else first

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over pixels.

        ``x`` is ``(batch, D)`` (or broadcastable to z's leading shape + D);
        ``z`` is ``(..., batch, latent)``; the result is ``(..., batch)``.
        """
        first, log_var = self.decoder_params(z)
        if log_var is None:
            # Bernoulli log-probability from logits: x·l − softplus(l), stable for large |l|
            return (x * first - F.softplus(first)).sum(-1)
        return (-0.5 * (LOG_2PI + log_var + (x - first) ** 2 * torch.exp(-log_var))).sum(-1)

    @staticmethod
    def log_prior(z: torch.Tensor) -> torch.Tensor:
        """log N(z; 0, I) summed over latent dimensions: ``(..., batch)``."""
        return -0.5 * (LOG_2PI + z**2).sum(-1)

    @staticmethod
    def log_posterior(z: torch.Tensor, z_loc: torch.Tensor, z_log_var: torch.Tensor) -> torch.Tensor:
        """log q(z|x̃) for a diagonal Gaussian, summed over latent dimensions."""
        return -0.5 * (LOG_2PI + z_log_var + (z - z_loc) ** 2 * torch.exp(-z_log_var)).sum(-1)

    def forward(
        self, x_target: torch.Tensor, x_noisy: torch.Tensor, eps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log importance weights for reparameterised draws z = z_loc + σ·eps from q(z|x̃).

        ``x_noisy`` is ``(M, batch, D)``, ``eps`` is ``(M, K, batch, latent)``,
        ``x_target`` (the image scored by p(x|z): the clean x, or x̃ for the
        data-augmentation baseline) broadcasts to ``(M, K, batch, D)``. Returns

        * ``log_weights`` = log p(x|z) + log p(z) − log q(z|x̃), ``(M, K, batch)``;
        * ``log_px_z`` = log p(x|z), ``(M, K, batch)``;
        * ``kl`` = KL(q(z|x̃) ‖ p(z)) in closed form, ``(M, batch)``.
        """
        z_loc, z_log_var = self.encode(x_noisy)  # (M, batch, latent)
        z = z_loc.unsqueeze(1) + torch.exp(0.5 * z_log_var).unsqueeze(1) * eps  # (M, K, batch, latent)
        log_px_z = self.log_likelihood(x_target, z)  # (M, K, batch)
        # log q(z|x̃) from eps directly: (z − z_loc)² / var = eps², exact and cheaper
        log_qz = -0.5 * (LOG_2PI + z_log_var.unsqueeze(1) + eps**2).sum(-1)
        log_weights = log_px_z + self.log_prior(z) - log_qz
        kl = 0.5 * (torch.exp(z_log_var) + z_loc**2 - 1.0 - z_log_var).sum(-1)  # (M, batch)
        return log_weights, log_px_z, kl

    @torch.no_grad()
    def sample(self, num: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Mean images of ``num`` draws z ~ p(z): ``(num, D)``."""
        device = next(self.parameters()).device
        z = torch.randn(num, self.latent_dim, generator=generator, device=device)
        return self.decode(z)


def init_parameters(model: VAE, generator: torch.Generator) -> VAE:
    """Re-draw every parameter with PyTorch's default initialisation, from ``generator`` only.

    ``nn.Linear``: weights Kaiming-uniform (a = √5), biases U(±1/√fan_in); ``nn.GRUCell``: every
    tensor U(±1/√hidden). Same distributions as the layers' own ``reset_parameters``, but the
    draws come from a generator local to the run, never from the process-wide RNG, so runs that
    start at the same time in different threads cannot change each other's initialisation.
    """
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                nn.init.kaiming_uniform_(module.weight, a=math.sqrt(5), generator=generator)
                bound = 1 / math.sqrt(module.in_features) if module.in_features > 0 else 0.0
                nn.init.uniform_(module.bias, -bound, bound, generator=generator)
            elif isinstance(module, nn.GRUCell):
                bound = 1 / math.sqrt(module.hidden_size)
                for tensor in module.parameters():
                    nn.init.uniform_(tensor, -bound, bound, generator=generator)
    return model


def set_output_bias(model: VAE, train_mean: torch.Tensor) -> None:
    """Start the decoder at the data's mean image (Burda et al. 2016): output bias = logit of the mean.

    Bernoulli decoders only (a Gaussian decoder's mean goes through a sigmoid too, so the same
    logit is used for its mean half). Means are clamped to [1e-3, 1 − 1e-3] so empty pixels get
    a finite bias.
    """
    last = model.decoder[-1]
    mean = train_mean.to(last.bias.device, last.bias.dtype).clamp(1e-3, 1 - 1e-3)
    with torch.no_grad():
        last.bias[: mean.numel()] = torch.log(mean) - torch.log1p(-mean)


def build_model(spec: ModelSpec, generator: torch.Generator | None = None) -> VAE:
    """A freshly initialised model; with ``generator`` its initialisation depends on that generator alone.

    With a generator the layers are built on the meta device (no memory, no draws from the
    process-wide RNG), given CPU storage, then drawn by :func:`init_parameters`.
    """
    if generator is None:
        return VAE(spec)
    with torch.device("meta"):
        model = VAE(spec)
    return init_parameters(model.to_empty(device="cpu"), generator)
