"""Training: one frozen :class:`TrainConfig` per run, one plain loop, callbacks and a stop event.

The loop maximises the per-example objective of :mod:`dvae_engine.objectives`
(VAE, IWAE, DVAE Eq. 11, DIWAE Eq. 12, or the data-augmentation baseline)
with Adam on mini-batches. The dataset sits on the training device as one
tensor; shuffling, corruption and latent noise are drawn there from one
seeded generator, so the loop makes no host round trips per step and the
same seed gives the same numbers on the same device. The loss is read back
once per epoch: a non-finite epoch restores the state at the start of that
epoch and raises :class:`TrainingDivergedError` carrying it.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields

import torch

from . import data as data_module
from .corruption import NOISES, validate_level
from .models import VAE, ModelSpec, build_model, set_output_bias
from .objectives import (
    OBJECTIVES,
    RENAMED_OBJECTIVES,
    check_objective,
    draw,
    is_importance_weighted,
    objective_from_draws,
    objective_per_example,
    uses_noise,
)

LR_SCHEDULES = ("constant", "iwae", "cosine")
OUTPUT_BIASES = ("default", "data-mean")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of one training run. Stored in checkpoints as a plain dict."""

    dataset: str = "mnist"
    binarization: str = "static"  # grey-level datasets: "static" (one seeded draw) or "dynamic" (fresh each epoch)
    objective: str = "dvae"  # vae | iwae | dvae | diwae | noisy-vae
    noise: str = "salt-pepper"
    noise_level: float = 0.05
    num_corruptions: int = 1  # M: corrupted copies per example (1 for vae/iwae, which corrupt nothing)
    num_samples: int = 1  # K: samples of z per corrupted copy
    encoder: str = "mlp"  # mlp | gru
    encoder_layers: int = 2
    hidden_units: int = 200
    latent_dim: int = 50
    activation: str = "softplus"
    batch_size: int = 100
    lr: float = 1e-3
    lr_schedule: str = "constant"  # constant | iwae (Burda et al.'s 3^i steps) | cosine (to lr/10)
    epochs: int = 100
    seed: int = 0
    device: str = "auto"
    analytic_kl: bool = True  # ELBO-type objectives: exact −KL(q‖p) instead of its sampled estimate
    compile: bool = False  # torch.compile the objective: ~1.3x faster steps after a ~20 s warm-up
    max_train_examples: int | None = None
    max_valid_examples: int | None = None  # validation bound on a random subset (None: all)
    adam_eps: float = 1e-8  # Adam's ε (Burda et al. used 1e-4)
    output_bias: str = "default"  # "default" (PyTorch init) or "data-mean": decoder starts at the mean image
    kl_warmup_epochs: int = 0  # β rises linearly from 0 to 1 over these epochs (0: no warm-up)

    def __post_init__(self) -> None:
        if self.objective in RENAMED_OBJECTIVES:  # a config written by an earlier version
            object.__setattr__(self, "objective", RENAMED_OBJECTIVES[self.objective])
        problems = []
        if self.dataset not in data_module.DATASETS:
            problems.append(f"dataset must be one of {', '.join(data_module.DATASETS)}, not {self.dataset!r}")
        if self.binarization not in ("static", "dynamic"):
            problems.append(f"binarization must be 'static' or 'dynamic', not {self.binarization!r}")
        if self.objective not in OBJECTIVES:
            problems.append(f"objective must be one of {', '.join(OBJECTIVES)}, not {self.objective!r}")
        if self.noise not in NOISES:
            problems.append(f"noise must be one of {', '.join(NOISES)}, not {self.noise!r}")
        else:
            try:
                validate_level(self.noise, self.noise_level)
            except ValueError as err:
                problems.append(str(err))
        if self.objective in ("vae", "iwae") and self.noise != "none" and self.noise_level != 0:
            problems.append(
                f"objective {self.objective!r} uses no corruption; set noise='none' or use "
                f"{'dvae' if self.objective == 'vae' else 'diwae'} for noise {self.noise} {self.noise_level}"
            )
        for name in ("num_corruptions", "num_samples", "batch_size", "epochs", "hidden_units", "latent_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append(f"{name} must be a positive integer, not {value!r}")
        if self.objective in OBJECTIVES and not problems:
            try:
                check_objective(self.objective, self.noise, self.num_corruptions,
                                data_module.DATASET_LIKELIHOOD.get(self.dataset))
            except ValueError as err:
                problems.append(str(err))
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr must be a positive number, not {self.lr!r}")
        if not (isinstance(self.adam_eps, (int, float)) and math.isfinite(self.adam_eps) and self.adam_eps > 0):
            problems.append(f"adam_eps must be a positive number, not {self.adam_eps!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, not {self.lr_schedule!r}")
        if self.output_bias not in OUTPUT_BIASES:
            problems.append(f"output_bias must be one of {', '.join(OUTPUT_BIASES)}, not {self.output_bias!r}")
        if not isinstance(self.kl_warmup_epochs, int) or isinstance(self.kl_warmup_epochs, bool) \
                or self.kl_warmup_epochs < 0:
            problems.append(f"kl_warmup_epochs must be an integer >= 0, not {self.kl_warmup_epochs!r}")
        for name in ("max_train_examples", "max_valid_examples"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                problems.append(f"{name} must be a positive integer or None, not {value!r}")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))
        try:
            self.model_spec(1, "bernoulli")
        except ValueError as err:
            raise ValueError(f"invalid training config: {err}") from None

    @property
    def is_data_augmentation(self) -> bool:
        """The paper's Sec. 4 data-augmentation baseline: VAE/IWAE on grey-level images re-binarized every pass.

        Re-drawing the whole training split each epoch gives every example a fresh binarization
        each time it is used, which is the paper's "sampling the data from x at every iteration".
        """
        return (self.objective in ("vae", "iwae") and self.binarization == "dynamic"
                and self.dataset in data_module.GREY_LEVEL_DATASETS)

    @property
    def model_name(self) -> str:
        """The paper's name for this run: VAE, IWAE, DVAE, DIWAE, or Noisy-data VAE."""
        noisy = self.noise != "none" and self.noise_level > 0
        if self.objective == "noisy-vae":
            return "Noisy-data VAE"
        if is_importance_weighted(self.objective):
            return "DIWAE" if noisy else "IWAE"
        return "DVAE" if noisy else "VAE"

    def describe(self) -> str:
        """A one-line human label, e.g. ``DVAE mnist salt-pepper 5% M=1 K=1``."""
        level = f"{self.noise_level:g}" if self.noise == "gaussian" else f"{100 * self.noise_level:g}%"
        noise = f" {self.noise} {level}" if uses_noise(self.objective) and self.noise_level > 0 else ""
        encoder = "GRU" if self.encoder == "gru" else f"{self.encoder_layers}L"
        copies = f"M={self.num_corruptions} " if uses_noise(self.objective) else ""
        augmented = " re-binarized each epoch (the paper's data augmentation)" if self.is_data_augmentation else ""
        return (
            f"{self.model_name} {self.dataset}{augmented}{noise} {copies}K={self.num_samples} "
            f"{encoder} z={self.latent_dim}"
        )

    def model_spec(self, input_dim: int, likelihood: str) -> ModelSpec:
        return ModelSpec(
            input_dim=input_dim, latent_dim=self.latent_dim, hidden_units=self.hidden_units,
            encoder=self.encoder, encoder_layers=self.encoder_layers, activation=self.activation,
            likelihood=likelihood,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Rebuild from a stored dict; fields it lacks take today's defaults, unknown ones are dropped.

        Configs of earlier versions that gave VAE/IWAE an M > 1 (which they ignored in solo runs)
        are read with M = 1.
        """
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in values.items() if k in known}
        if RENAMED_OBJECTIVES.get(values.get("objective"), values.get("objective")) in ("vae", "iwae"):
            values["num_corruptions"] = 1
        return cls(**values)

    def replace(self, **changes) -> TrainConfig:
        return TrainConfig.from_dict({**self.to_dict(), **changes})


def resolve_device(device: str = "auto") -> torch.device:
    """``"auto"`` → CUDA if available, else MPS, else CPU; anything else is passed to torch."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but CUDA is not available here; use device='auto' or 'cpu'")
    return resolved


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """Learning rate for 0-based ``epoch``."""
    if config.lr_schedule == "iwae":
        # Burda et al.: 3^i epochs at lr·10^(−i/7), i = 0, 1, ..., 7
        i = 0
        while epoch >= (3 ** (i + 1) - 1) // 2 and i < 7:
            i += 1
        return config.lr * 10 ** (-i / 7)
    if config.lr_schedule == "cosine":
        progress = min(epoch / max(config.epochs - 1, 1), 1.0)
        return config.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
    return config.lr


def kl_weight(config: TrainConfig, epoch: int) -> float:
    """β of the KL warm-up in 0-based ``epoch``: (epoch + 1) / (W + 1) for the first W epochs, then 1."""
    warmup = config.kl_warmup_epochs
    return 1.0 if epoch >= warmup else (epoch + 1) / (warmup + 1)


@dataclass
class EpochReport:
    """What the loop reports after every epoch (objective and bounds in nats per example)."""

    epoch: int  # 1-based
    epochs: int
    train_objective: float  # mean training objective over the epoch (corrupted inputs for DVAE/DIWAE)
    valid_elbo: float  # clean validation ELBO (k=1)
    valid_iwae: float | None  # clean validation IWAE bound with the run's K·M samples (IW objectives)
    seconds: float
    examples_per_sec: float
    lr: float


@dataclass
class BatchProgress:
    epoch: int  # 1-based, the epoch in progress
    epochs: int
    batch: int  # batches done in this epoch
    batches_per_epoch: int
    examples_per_sec: float  # over the epoch so far
    elapsed: float  # seconds since the run (or its resumption) started


HISTORY_KEYS = ("epoch", "train_objective", "valid_elbo", "valid_iwae", "seconds", "lr")


@dataclass
class TrainResult:
    """A trained (or stopped, or diverged) run: its model, optimizer, history and where it stands.

    ``position`` is set when the run stopped inside an epoch: the epoch (0-based) and the
    batches of it already done, the random state at that epoch's start (which replays its
    shuffle and binarization), the objective summed so far and the epoch's seconds so far.
    With it, :func:`train` resumes exactly where the run stopped.
    """

    config: TrainConfig
    model: VAE
    optimizer: torch.optim.Optimizer | None  # None for sweep runs (no per-model optimizer state)
    history: dict[str, list] = field(default_factory=lambda: {k: [] for k in HISTORY_KEYS})
    status: str = "finished"  # finished | stopped | diverged
    generator_state: torch.Tensor | None = None
    message: str = ""
    position: dict | None = None
    generator_device: str = "cpu"  # the device type of the training generator (its state is device-specific)

    @property
    def epochs_done(self) -> int:
        return len(self.history["epoch"])


class TrainingDivergedError(RuntimeError):
    """The objective or the parameters became non-finite; ``.result`` holds the last good state."""

    def __init__(self, message: str, result: TrainResult) -> None:
        super().__init__(message)
        self.result = result


def make_optimizer(model: VAE, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam; the fused kernel (one launch for all parameters) where this PyTorch and device have it."""
    try:
        return torch.optim.Adam(model.parameters(), lr=config.lr, eps=config.adam_eps, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(model.parameters(), lr=config.lr, eps=config.adam_eps)


class ObjectiveFunction:
    """:func:`objective_from_draws`, compiled with ``torch.compile`` when asked (eager if compiling fails).

    Only the deterministic part is compiled: the random draws stay outside, so the
    compiled and eager paths compute the same function of the same draws. A failure in
    the compiled forward or backward pass (e.g. no C++ compiler) switches to eager for the
    rest of the run, and :attr:`note` says so.
    """

    def __init__(self, compile_it: bool) -> None:
        self.note = ""
        self._compiled = torch.compile(objective_from_draws) if compile_it else None

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def disable(self, err: BaseException, where: str) -> None:
        self._compiled = None
        first = str(err).splitlines()[0] if str(err) else ""
        self.note = (f"torch.compile failed in the {where} pass ({type(err).__name__}: {first[:120]}); "
                     "trained without it")

    def __call__(self, *args) -> torch.Tensor:
        if self._compiled is not None:
            try:
                return self._compiled(*args)
            except Exception as err:  # noqa: BLE001 — e.g. no C++ compiler: fall back, and say so
                self.disable(err, "forward")
        return objective_from_draws(*args)


def _step(objective_fn: ObjectiveFunction, optimizer: torch.optim.Optimizer, args: tuple) -> torch.Tensor:
    """One Adam step on the negative mean objective; returns the per-example objective ``(batch,)``."""
    value = objective_fn(*args)
    optimizer.zero_grad(set_to_none=True)
    try:
        (-value.mean()).backward()
    except Exception as err:  # noqa: BLE001 — a compiled backward can fail where the forward did not
        if not objective_fn.compiled:
            raise
        objective_fn.disable(err, "backward")
        value = objective_fn(*args)  # the same draws, eager this time
        optimizer.zero_grad(set_to_none=True)
        (-value.mean()).backward()
    optimizer.step()
    return value


def _all_finite(model: VAE, optimizer: torch.optim.Optimizer) -> bool:
    """Every parameter and every floating optimizer-state tensor is finite (one host sync)."""
    tensors = [p.detach() for p in model.parameters()]
    for state in optimizer.state.values():
        tensors += [v for v in state.values() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    return bool(torch.stack([torch.isfinite(t).all() for t in tensors]).all())


@dataclass
class _GoodState:
    """A copy of everything a diverged run goes back to: weights, Adam, random state and position."""

    model: dict
    optimizer: dict
    generator: torch.Tensor
    position: dict | None
    epochs_done: int

    @classmethod
    def take(cls, model, optimizer, generator, position, epochs_done) -> _GoodState:
        return cls(copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()), generator.get_state(),
                   position, epochs_done)

    def restore(self, model, optimizer, generator) -> None:
        model.load_state_dict(self.model)
        optimizer.load_state_dict(self.optimizer)
        generator.set_state(self.generator)


@torch.no_grad()
def validation_bounds(
    model: VAE, x: torch.Tensor, config: TrainConfig, generator: torch.Generator, batch_size: int = 1000
) -> tuple[float, float | None]:
    """Clean validation ELBO (k=1) and, for IW objectives, the IWAE bound with M·K samples."""
    was_training = model.training
    model.eval()
    k_iw = config.num_corruptions * config.num_samples if is_importance_weighted(config.objective) else 0
    elbo_sum = torch.zeros((), device=x.device)
    iwae_sum = torch.zeros((), device=x.device)
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size]
        elbo_sum += objective_per_example(model, xb, "vae", generator=generator, analytic_kl=True).sum()
        if k_iw:
            iwae_sum += objective_per_example(model, xb, "iwae", num_samples=k_iw, generator=generator).sum()
    model.train(was_training)
    n = max(len(x), 1)
    return elbo_sum.item() / n, (iwae_sum.item() / n if k_iw else None)


def resume_device(config_device: str, saved_device: str) -> torch.device:
    """The device a resumed run trains on: ``"auto"`` keeps the device type the run was saved on.

    A random state is specific to its device type (CPU and CUDA generators differ), so only a
    run that continues on the same type of device can continue exactly.
    """
    if config_device == "auto":
        if saved_device == "cuda" and not torch.cuda.is_available():
            raise ValueError("this run was trained on a CUDA GPU and none is available here; its random state "
                             "cannot continue on another device. Resume it on a machine with CUDA, or pass "
                             "reseed_on_device_change=True (CLI: --reseed-on-device-change) to continue here "
                             "with a fresh random stream (not the same run)")
        return torch.device(saved_device if saved_device in ("cpu", "cuda", "mps") else "cpu")
    return resolve_device(config_device)


def _restore(resume: dict, model: VAE, optimizer: torch.optim.Optimizer, generator: torch.Generator,
             result: TrainResult, reseed: bool) -> dict | None:
    """Load a checkpoint payload's state into this run; returns its mid-epoch position (or None)."""
    model.load_state_dict(resume["model_state"])
    if resume.get("optimizer_state"):
        fused = [group.get("fused") for group in optimizer.param_groups]
        optimizer.load_state_dict(resume["optimizer_state"])
        for group, flag in zip(optimizer.param_groups, fused):  # keep this optimizer's kernel choice
            group["fused"] = flag
    result.history = {k: list(resume["history"].get(k, [])) for k in HISTORY_KEYS}
    position = resume.get("position")
    saved_device = resume.get("generator_device") or "cpu"
    state = resume.get("generator_state")
    if state is not None and saved_device != result.generator_device:
        if not reseed:
            raise ValueError(
                f"this run's random state was saved on {saved_device} and cannot continue on "
                f"{result.generator_device}: resume it with device='{saved_device}' (or 'auto') to continue "
                "exactly, or pass reseed_on_device_change=True to continue with a fresh random stream")
        generator.manual_seed(result.config.seed + 1 + 7919 * (result.epochs_done + 1))
        result.message = (f"resumed on {result.generator_device} from a {saved_device} run with a fresh random "
                          "stream: not bit-identical to an uninterrupted run")
        return None  # a mid-epoch position cannot be replayed without its random state: restart that epoch
    if state is not None:
        generator.set_state(state.cpu())
    if position is not None and position["epoch"] != result.epochs_done:
        raise ValueError(f"inconsistent checkpoint: it stopped in epoch {position['epoch'] + 1} but holds "
                         f"{result.epochs_done} finished epochs")
    return position


def train(
    config: TrainConfig,
    dataset: data_module.Dataset | None = None,
    *,
    data_dir: str | None = None,
    on_epoch: Callable[[EpochReport], None] | None = None,
    on_batch: Callable[[BatchProgress], None] | None = None,
    stop_event: threading.Event | None = None,
    resume: dict | None = None,
    batch_report_every: int = 20,
    reseed_on_device_change: bool = False,
) -> TrainResult:
    """Train one model as ``config`` says and return it with its history.

    ``dataset`` skips loading (pass a subset for quick runs). ``resume`` is a
    checkpoint payload (see :func:`dvae_engine.checkpoint.load_payload`): the run
    continues from where it stopped, inside an epoch too, with its optimizer and
    random state, so "train N epochs" and "train, stop anywhere, resume to N" are the
    same run (bit-identical on the same device). ``stop_event`` is checked before
    every batch; a stopped run returns with ``status="stopped"`` and its position.

    Every random draw (initialisation, shuffling, binarization, corruption, latent
    noise) comes from generators local to this run, so concurrent runs in other
    threads cannot change it. A non-finite objective, parameter or validation bound
    restores the last good state and raises :class:`TrainingDivergedError`.
    """
    if resume is not None:
        device = resume_device(config.device, resume.get("generator_device") or "cpu") \
            if not reseed_on_device_change else resolve_device(config.device)
    else:
        device = resolve_device(config.device)
    if dataset is None:
        dataset = data_module.load_dataset(config.dataset, data_dir, config.binarization)
    dataset = dataset.subset(config.max_train_examples, None).to(device)
    x_valid = dataset.valid
    if config.max_valid_examples is not None:
        x_valid = data_module.random_rows(x_valid, config.max_valid_examples)
    if config.noise == "mean-image" and uses_noise(config.objective):
        mean_image = dataset.train_mean()
    else:
        mean_image = None

    # the initialisation is drawn on the CPU from the run's own generator: the same on every device
    model = build_model(config.model_spec(dataset.input_dim, dataset.likelihood),
                        torch.Generator().manual_seed(config.seed))
    if config.output_bias == "data-mean":
        set_output_bias(model, dataset.train_mean().cpu())
    model = model.to(device)
    optimizer = make_optimizer(model, config)
    generator = torch.Generator(device=device).manual_seed(config.seed + 1)
    result = TrainResult(config, model, optimizer, generator_device=device.type)
    position = None if resume is None else _restore(resume, model, optimizer, generator, result,
                                                     reseed_on_device_change)
    notes = [result.message] if result.message else []

    objective_fn = ObjectiveFunction(config.compile)
    n_train = len(dataset.train)
    batches = math.ceil(n_train / config.batch_size)
    started = time.perf_counter()
    model.train()
    for epoch in range(result.epochs_done, config.epochs):
        lr = learning_rate(config, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        beta = kl_weight(config, epoch)
        # a tensor β only while warming up: a float 1.0 keeps the plain code path (bit for bit)
        beta_arg = beta if beta == 1.0 else torch.tensor(beta, device=device)
        resuming = position is not None
        if resuming:  # replay this epoch's shuffle and binarization from its starting random state
            current_state = generator.get_state()
            epoch_state = position["epoch_generator_state"]
            generator.set_state(epoch_state)
        else:
            epoch_state = generator.get_state()
        dataset.resample_train(generator)
        order = torch.randperm(n_train, generator=generator, device=device)
        if resuming:
            generator.set_state(current_state)
            first_batch, epoch_elapsed = int(position["batch"]), float(position["elapsed"])
            objective_sum = position["objective_sum"].to(device).clone()
        else:
            first_batch, epoch_elapsed = 0, 0.0
            objective_sum = torch.zeros((), device=device)  # summed on device: no host sync per step
        good = _GoodState.take(model, optimizer, generator, position, result.epochs_done)
        position = None
        epoch_start = time.perf_counter() - epoch_elapsed
        for b in range(first_batch, batches):
            if stop_event is not None and stop_event.is_set():
                result.status = "stopped"
                result.message = "; ".join([*notes, f"stopped in epoch {epoch + 1} after batch {b} of {batches}"])
                result.position = {"epoch": epoch, "batch": b, "epoch_generator_state": epoch_state,
                                   "objective_sum": objective_sum.detach().cpu().clone(),
                                   "elapsed": time.perf_counter() - epoch_start}
                result.generator_state = generator.get_state()
                model.eval()
                return result
            x_clean = dataset.train[order[b * config.batch_size:(b + 1) * config.batch_size]]
            x_noisy, eps = draw(x_clean, model.latent_dim, config.objective, config.noise, config.noise_level,
                                config.num_corruptions, config.num_samples, generator, mean_image)
            value = _step(objective_fn, optimizer,
                          (model, x_clean, x_noisy, eps, config.objective, config.analytic_kl, beta_arg))
            objective_sum += value.detach().sum()
            if on_batch is not None and ((b + 1) % batch_report_every == 0 or b + 1 == batches):
                seconds = time.perf_counter() - epoch_start
                examples = min((b + 1) * config.batch_size, n_train)
                on_batch(BatchProgress(epoch + 1, config.epochs, b + 1, batches, examples / max(seconds, 1e-9),
                                       time.perf_counter() - started))
        train_objective = objective_sum.item() / n_train
        valid_elbo, valid_iwae = math.nan, None
        healthy = math.isfinite(train_objective) and _all_finite(model, optimizer)
        if healthy:  # a finite last loss can still have left non-finite weights behind (its step came after)
            valid_elbo, valid_iwae = validation_bounds(model, x_valid, config, generator)
            healthy = math.isfinite(valid_elbo) and (valid_iwae is None or math.isfinite(valid_iwae))
        if not healthy:
            good.restore(model, optimizer, generator)
            where = (f"the state after epoch {good.epochs_done}" if good.position is None else
                     f"the state it was resumed from (epoch {epoch + 1}, batch {good.position['batch']})")
            result.status = "diverged"
            result.position = good.position
            result.generator_state = good.generator
            result.message = (f"the training objective or the weights became non-finite in epoch {epoch + 1} "
                              f"(lr={lr:g}); kept {where}. Try a lower learning rate.")
            model.eval()
            raise TrainingDivergedError(result.message, result)
        seconds = time.perf_counter() - epoch_start
        report = EpochReport(epoch + 1, config.epochs, train_objective, valid_elbo, valid_iwae, seconds,
                             (n_train - first_batch * config.batch_size) / max(seconds - epoch_elapsed, 1e-9)
                             if first_batch else n_train / seconds, lr)
        for key in HISTORY_KEYS:
            result.history[key].append(getattr(report, key))
        if on_epoch is not None:
            on_epoch(report)
    result.generator_state = generator.get_state()
    result.position = None
    result.message = "; ".join(n for n in [*notes, objective_fn.note] if n)
    model.eval()
    return result
