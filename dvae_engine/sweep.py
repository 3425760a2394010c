"""Sweep mode: train many independent models at once, batched on one device.

Configurations that share a network shape and sampling shape (everything but
objective, noise level and seed) are trained as one group: their parameters
are stacked with ``torch.func.stack_module_state`` and the model's forward
(log importance weights, see :meth:`dvae_engine.models.VAE.forward`) is mapped
over the model axis with ``torch.func.vmap``, so every layer runs as one
batched matrix product for the whole group.

Each model in a group keeps its own initialisation (its config's seed), its
own noise level, objective (ELBO-type or importance-weighted, clean or
corrupted target) and its own corruption and latent draws; the models see the
same mini-batches in the same order. Adam's update is elementwise, so one Adam
over the stacked tensors is exactly one Adam per model. The objectives are
those of :mod:`dvae_engine.objectives` (Eq. 11 / Eq. 12), computed by the same
forward; a sweep run is therefore the same training as a solo run, with other
random draws (so not bit-identical to it).
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.func import functional_call, stack_module_state, vmap

from . import data as data_module
from .corruption import corrupt
from .models import build_model, set_output_bias
from .objectives import is_importance_weighted, uses_noise
from .training import (
    HISTORY_KEYS,
    EpochReport,
    TrainConfig,
    TrainResult,
    kl_weight,
    learning_rate,
    resolve_device,
    validation_bounds,
)

# fields that may differ inside one batched group
PER_MODEL_FIELDS = ("objective", "noise_level", "seed")


def group_key(config: TrainConfig) -> tuple:
    """Configs with equal keys train together (same shapes, lr, schedule, batch size and epochs)."""
    values = config.to_dict()
    return tuple((k, v) for k, v in sorted(values.items()) if k not in PER_MODEL_FIELDS)


@dataclass
class _Group:
    indices: list[int]
    configs: list[TrainConfig]


def plan_groups(configs: list[TrainConfig]) -> list[_Group]:
    """Partition ``configs`` into batched groups, keeping their order."""
    groups: dict[tuple, _Group] = {}
    for i, config in enumerate(configs):
        groups.setdefault(group_key(config), _Group([], [])).indices.append(i)
        groups[group_key(config)].configs.append(config)
    return list(groups.values())


class ModelStack:
    """Independent models of one shape, stacked for batched evaluation of their objectives."""

    def __init__(self, models: list[torch.nn.Module], configs: list[TrainConfig]) -> None:
        first = configs[0]
        if any(group_key(c) != group_key(first) for c in configs):
            raise ValueError("a stack needs configs that differ only in objective, noise level and seed")
        self.models, self.configs = models, configs
        self.num_corruptions, self.num_samples = first.num_corruptions, first.num_samples
        self.analytic_kl = first.analytic_kl
        self.latent_dim = models[0].latent_dim
        self.params, self.buffers = stack_module_state(models)  # name -> (models, ...) leaf tensors
        self._template = copy.deepcopy(models[0]).to("meta")
        device = next(models[0].parameters()).device
        self._importance_weighted = torch.tensor([is_importance_weighted(c.objective) for c in configs],
                                                 device=device)
        self._corrupted_target = torch.tensor([c.objective == "noisy-vae" for c in configs], device=device)
        self._forward = vmap(self._forward_one)

    def _forward_one(self, params, buffers, x_target, x_noisy, eps):
        return functional_call(self._template, (params, buffers), (x_target, x_noisy, eps))

    def draw(
        self, x_clean: torch.Tensor, generator: torch.Generator | None, mean_image: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draws for every model: x̃ ``(models, M, batch, D)`` and eps ``(models, M, K, batch, latent)``."""
        x_noisy = torch.stack([
            corrupt(x_clean, c.noise, c.noise_level if uses_noise(c.objective) else 0.0, self.num_corruptions,
                    generator, mean_image)
            for c in self.configs
        ])
        shape = (len(self.configs), self.num_corruptions, self.num_samples, x_clean.shape[0], self.latent_dim)
        eps = torch.randn(shape, generator=generator, device=x_clean.device, dtype=x_clean.dtype)
        return x_noisy, eps

    def objective(self, x_clean: torch.Tensor, x_noisy: torch.Tensor, eps: torch.Tensor,
                  kl_weight: float = 1.0) -> torch.Tensor:
        """Per-model, per-example objective ``(models, batch)`` for given draws (Eq. 11 or Eq. 12 per model).

        ``kl_weight`` (β of a KL warm-up, the same for the whole group) scales log p(z) − log q(z|x̃).
        """
        flag = self._corrupted_target.view(-1, 1, 1, 1)
        x_target = torch.where(flag, x_noisy, x_clean.expand_as(x_noisy)).unsqueeze(2)  # (models, M, 1, batch, D)
        log_w, log_px_z, kl = self._forward(self.params, self.buffers, x_target, x_noisy, eps)  # (models, M, K, batch)
        if kl_weight != 1.0:
            log_w = log_px_z + kl_weight * (log_w - log_px_z)
            kl = kl_weight * kl
        iw_value = torch.logsumexp(log_w.flatten(1, 2), dim=1) - math.log(self.num_corruptions * self.num_samples)
        if self.analytic_kl:
            elbo_value = log_px_z.mean(dim=(1, 2)) - kl.mean(dim=1)
        else:
            elbo_value = log_w.mean(dim=(1, 2))
        return torch.where(self._importance_weighted.view(-1, 1), iw_value, elbo_value)

    def write_back(self, i: int) -> None:
        """Copy model i's slice of the stacked parameters into its own module."""
        with torch.no_grad():
            for name, tensor in self.models[i].named_parameters():
                tensor.copy_(self.params[name][i])


def train_sweep(
    configs: list[TrainConfig],
    dataset: data_module.Dataset | None = None,
    *,
    data_dir: str | None = None,
    on_epoch: Callable[[int, EpochReport], None] | None = None,
    stop_event: threading.Event | None = None,
    max_group_size: int | None = None,
) -> list[TrainResult]:
    """Train every config, batching compatible ones; returns one result per config, in order.

    ``on_epoch(index, report)`` is called for each model after each epoch.
    All configs must use the same dataset. Results carry no optimizer
    (``optimizer=None``): sweep checkpoints are saved without optimizer state.
    """
    if not configs:
        return []
    if len({(c.dataset, c.binarization) for c in configs}) != 1:
        raise ValueError("a sweep trains on one dataset: all configs need the same dataset and binarization")
    if dataset is None:
        dataset = data_module.load_dataset(configs[0].dataset, data_dir, configs[0].binarization)
    results: list[TrainResult | None] = [None] * len(configs)
    for group in plan_groups(configs):
        size = max_group_size or len(group.indices)
        for start in range(0, len(group.indices), size):
            indices = group.indices[start:start + size]
            chunk = group.configs[start:start + size]
            callback = None if on_epoch is None else (lambda j, r, idx=indices: on_epoch(idx[j], r))
            for i, result in zip(indices, _train_group(chunk, dataset, callback, stop_event)):
                results[i] = result
    return results  # type: ignore[return-value]


def _train_group(
    configs: list[TrainConfig],
    dataset: data_module.Dataset,
    on_epoch: Callable[[int, EpochReport], None] | None,
    stop_event: threading.Event | None,
) -> list[TrainResult]:
    first = configs[0]
    device = resolve_device(first.device)
    data = dataset.subset(first.max_train_examples, None).to(device)
    x_valid = data.valid
    if first.max_valid_examples is not None:
        x_valid = data_module.random_rows(x_valid, first.max_valid_examples)
    mean_image = data.train_mean() if first.noise == "mean-image" else None
    spec = first.model_spec(data.input_dim, data.likelihood)

    models = []
    for config in configs:
        # each model keeps the initialisation of its solo run, drawn from its own generator (never the global RNG)
        model = build_model(spec, torch.Generator().manual_seed(config.seed))
        if config.output_bias == "data-mean":
            set_output_bias(model, data.train_mean().cpu())
        models.append(model.to(device))
    stack = ModelStack(models, configs)
    params = stack.params
    optimizer = torch.optim.Adam(list(params.values()), lr=first.lr, eps=first.adam_eps)
    generator = torch.Generator(device=device).manual_seed(first.seed + 1)
    n_models = len(configs)
    active = torch.ones(n_models, dtype=torch.bool, device=device)

    results = [TrainResult(c, models[i], None) for i, c in enumerate(configs)]  # type: ignore[arg-type]
    n_train = len(data.train)
    batches = math.ceil(n_train / first.batch_size)
    for epoch in range(first.epochs):
        lr = learning_rate(first, epoch)
        beta = kl_weight(first, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        good = {k: v.detach().clone() for k, v in params.items()}
        data.resample_train(generator)
        order = torch.randperm(n_train, generator=generator, device=device)
        objective_sum = torch.zeros(n_models, device=device)
        started = time.perf_counter()
        for b in range(batches):
            if stop_event is not None and stop_event.is_set():
                return _finish(results, stack, "stopped", f"stopped in epoch {epoch + 1}")
            x_clean = data.train[order[b * first.batch_size:(b + 1) * first.batch_size]]
            x_noisy, eps = stack.draw(x_clean, generator, mean_image)
            values = stack.objective(x_clean, x_noisy, eps, beta)  # (models, batch)
            # summing over models keeps their gradients separate: no parameter is shared
            loss = -torch.where(active, values.mean(dim=1), 0.0).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            objective_sum += values.detach().sum(dim=1)
        per_model = (objective_sum / n_train).tolist()
        # a finite last loss can still leave non-finite weights behind (its step came after it): check them too
        weights_ok = torch.stack([torch.isfinite(t.detach().flatten(1)).all(dim=1) for t in params.values()])
        weights_ok = weights_ok.all(dim=0).tolist()
        seconds = time.perf_counter() - started
        for i, value in enumerate(per_model):
            if not active[i]:
                continue
            valid_elbo = valid_iwae = None
            healthy = math.isfinite(value) and weights_ok[i]
            if healthy:
                stack.write_back(i)
                valid_elbo, valid_iwae = validation_bounds(models[i], x_valid, configs[i], generator)
                healthy = math.isfinite(valid_elbo) and (valid_iwae is None or math.isfinite(valid_iwae))
            if not healthy:
                _freeze(i, params, good, optimizer, active)
                stack.write_back(i)  # the model keeps its last good epoch
                results[i].status = "diverged"
                results[i].message = (f"the training objective or the weights became non-finite in epoch "
                                      f"{epoch + 1} (lr={lr:g}); kept the state after epoch {epoch}")
                continue
            report = EpochReport(epoch + 1, first.epochs, value, valid_elbo, valid_iwae, seconds,
                                 n_train * n_models / seconds, lr)
            for key in HISTORY_KEYS:
                results[i].history[key].append(getattr(report, key))
            if on_epoch is not None:
                on_epoch(i, report)
    return _finish(results, stack, "finished", "")


def _freeze(i: int, params: dict, good: dict, optimizer: torch.optim.Optimizer, active: torch.Tensor) -> None:
    """Restore model i's last good epoch and stop it moving: zero loss weight, zero Adam moments."""
    active[i] = False
    with torch.no_grad():
        for name, tensor in params.items():
            tensor[i] = good[name][i]
            state = optimizer.state.get(tensor, {})
            for key in ("exp_avg", "exp_avg_sq"):
                if key in state:
                    state[key][i] = 0.0


def _finish(results: list[TrainResult], stack: ModelStack, status: str, message: str) -> list[TrainResult]:
    for i, result in enumerate(results):
        if result.status != "diverged":
            stack.write_back(i)
            result.status, result.message = status, message
        result.model.eval()
    return results
