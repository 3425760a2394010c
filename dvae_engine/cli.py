"""Command line: ``python -m dvae_engine train|eval|info``.

    python -m dvae_engine train --dataset mnist --objective dvae --noise salt-pepper \\
        --noise-level 0.05 --epochs 100 --output runs/dvae.pt
    python -m dvae_engine train --resume runs/dvae.pt            # after Ctrl-C: the same run, continued
    python -m dvae_engine eval runs/dvae.pt --importance-samples 5000 --max-examples 1000 --json
    python -m dvae_engine info runs/dvae.pt

Every :class:`~dvae_engine.training.TrainConfig` field is a ``train`` flag (``--help``
lists each with its default and allowed values). Ctrl-C stops after the current batch,
saves the full state and prints the command that resumes it; the resumed run is the
uninterrupted one, bit for bit on the same device. Progress goes to stderr (tqdm);
``eval --json`` prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
from dataclasses import fields
from pathlib import Path

from tqdm import tqdm

from . import checkpoint as ckpt
from .corruption import NOISES
from .data import DATASETS, DatasetNotFoundError, load_dataset, random_rows
from .evaluation import evaluate, training_objective_kwargs
from .models import ACTIVATIONS
from .objectives import OBJECTIVES
from .paper import departures_for
from .training import (
    LR_SCHEDULES,
    OUTPUT_BIASES,
    BatchProgress,
    EpochReport,
    TrainConfig,
    TrainingDivergedError,
    resolve_device,
    train,
)

# one line per TrainConfig field: what it is and what it may be (argparse adds the default)
FLAG_HELP = {
    "dataset": "dataset to train on",
    "binarization": "grey-level datasets: 'static' = one seeded Bernoulli draw, 'dynamic' = a fresh draw every "
                    "epoch (with vae/iwae: the paper's data-augmentation baseline)",
    "objective": "training objective (dvae = Eq. 11, diwae = Eq. 12; noisy-vae = a VAE fitted to corrupted x̃)",
    "noise": "corruption p(x̃|x) for dvae/diwae/noisy-vae ('none' for vae/iwae)",
    "noise_level": "salt-pepper, masking, mean-image: a probability ν in [0, 1]; gaussian: σ >= 0 on [0, 1] pixels",
    "num_corruptions": "M, corrupted copies x̃ per example, integer >= 1 (must be 1 for vae/iwae)",
    "num_samples": "K, samples of z per corrupted copy, integer >= 1",
    "encoder": "inference network: an MLP, or the paper's GRU (Table 3)",
    "encoder_layers": "hidden layers of the MLP encoder: 1, 2 or 3",
    "hidden_units": "units per hidden layer, integer >= 1",
    "latent_dim": "size of z, integer >= 1 (2 gives exact posteriors and log p(x) by quadrature)",
    "activation": "hidden-layer activation (the paper: softplus for VAE, tanh for IWAE)",
    "batch_size": "examples per Adam step, integer >= 1",
    "lr": "Adam learning rate, > 0",
    "lr_schedule": "constant; iwae = Burda et al.'s 3^i-epoch stages down to lr/10; cosine = down to lr/10",
    "epochs": "passes over the training split, integer >= 1 (with --resume: the new total)",
    "seed": "seed of every random draw of the run (integer >= 0)",
    "device": "auto = CUDA, else MPS, else CPU",
    "analytic_kl": "ELBO-type objectives: exact KL(q(z|x̃) || p(z)) instead of its one-sample estimate",
    "compile": "torch.compile the objective (about 20 s once; faster steps; falls back to eager on failure)",
    "max_train_examples": "train on the first N training examples only ('none' = all)",
    "max_valid_examples": "validation bound on a random N examples ('none' = all)",
    "adam_eps": "Adam's epsilon, > 0 (Burda et al. used 1e-4)",
    "output_bias": "decoder output bias at start: PyTorch's default, or the logit of the training mean image",
    "kl_warmup_epochs": "KL warm-up: beta rises linearly to 1 over this many epochs (0 = none; integer >= 0)",
}
FLAG_CHOICES = {
    "dataset": DATASETS, "binarization": ("static", "dynamic"), "objective": OBJECTIVES, "noise": tuple(NOISES),
    "encoder": ("mlp", "gru"), "encoder_layers": (1, 2, 3), "activation": tuple(ACTIVATIONS),
    "lr_schedule": LR_SCHEDULES, "device": ("auto", "cpu", "cuda", "mps"), "output_bias": OUTPUT_BIASES,
}
RESUME_OVERRIDABLE = ("epochs", "device")  # anything else would make a resumed run another run


def _parse_optional_int(text: str) -> int | None:
    return None if text.lower() in ("none", "") else int(text)


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, not {text!r}")


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per TrainConfig field, typed from its default; unset flags stay None (see :func:`given`)."""
    group = parser.add_argument_group("run settings (TrainConfig)")
    for f in fields(TrainConfig):
        default = f.default
        text = f"{FLAG_HELP[f.name]} (default: {default})"
        kwargs = dict(default=None, help=text, dest=f.name)
        if isinstance(default, bool):
            kwargs.update(type=_bool, metavar="BOOL")
        elif default is None:
            kwargs.update(type=_parse_optional_int, metavar="N")
        else:
            kwargs.update(type=type(default))
        if f.name in FLAG_CHOICES:
            kwargs["choices"] = FLAG_CHOICES[f.name]
        group.add_argument(flag_name(f.name), **kwargs)


def given(args: argparse.Namespace) -> dict:
    """The TrainConfig fields set on the command line."""
    return {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None}


def format_eta(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _error(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def cmd_train(args: argparse.Namespace) -> int:
    settings = given(args)
    resume = None
    if args.resume:
        refused = [flag_name(k) for k in settings if k not in RESUME_OVERRIDABLE]
        if refused:
            return _error(f"--resume continues the saved run with its own settings; {', '.join(refused)} would make "
                          f"it another run (only {', '.join(flag_name(k) for k in RESUME_OVERRIDABLE)} may change)")
        try:
            resume = ckpt.load_payload(args.resume)
        except ckpt.CheckpointError as err:
            return _error(str(err))
        settings = {**resume["config"], **settings}
    if args.output is None and args.resume is None:
        return _error("--output is required (the checkpoint file to write)")
    output = Path(args.output or args.resume)
    try:
        config = TrainConfig.from_dict(settings) if resume else TrainConfig(**settings)
        if resume is None:
            resolve_device(config.device)
    except ValueError as err:
        return _error(str(err))
    try:
        dataset = load_dataset(config.dataset, args.data_dir, config.binarization)
    except DatasetNotFoundError as err:
        return _error(str(err))

    stop = threading.Event()

    def on_interrupt(*_) -> None:  # first Ctrl-C: finish the batch, save, exit; a second one aborts
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, on_interrupt)
    batches = math.ceil(min(len(dataset.train), config.max_train_examples or len(dataset.train)) / config.batch_size)
    done_before = 0
    if resume is not None:
        position = resume.get("position") or {}
        done_before = len(resume["history"].get("epoch", [])) * batches + int(position.get("batch", 0))
    bar = tqdm(total=config.epochs * batches, initial=done_before, unit="batch", file=sys.stderr,
               desc="training", dynamic_ncols=True, mininterval=0.2)
    state = {"done": done_before}

    def on_batch(p: BatchProgress) -> None:
        now = (p.epoch - 1) * p.batches_per_epoch + p.batch
        bar.update(now - state["done"])
        state["done"] = now
        bar.set_description(f"epoch {p.epoch}/{p.epochs}", refresh=False)

    def on_epoch(r: EpochReport) -> None:
        bar.set_postfix_str(f"valid ELBO {r.valid_elbo:.2f} nats", refresh=True)

    tqdm.write(f"{'resuming' if resume else 'training'} {config.describe()} on "
               f"{resolve_device(config.device) if resume is None else 'its saved device type'}", file=sys.stderr)
    for note in departures_for(config):
        tqdm.write(f"note (differs from the paper): {note}", file=sys.stderr)
    try:
        result = train(config, dataset, on_epoch=on_epoch, on_batch=on_batch, stop_event=stop, resume=resume,
                       reseed_on_device_change=args.reseed_on_device_change)
    except TrainingDivergedError as err:
        result = err.result
    except ValueError as err:  # e.g. a run saved on CUDA resumed where there is none
        bar.close()
        return _error(str(err))
    bar.close()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    metrics = {}
    if result.status == "finished" and args.eval_importance_samples >= 0:
        x_test = random_rows(dataset.test, args.eval_examples) if args.eval_examples else dataset.test
        device = next(result.model.parameters()).device
        mean_image = dataset.train_mean().to(device)
        exact = result.model.latent_dim == 2 if args.exact is None else args.exact
        with tqdm(total=1.0, desc="evaluating", file=sys.stderr, dynamic_ncols=True,
                  bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}") as eval_bar:
            def progress(name: str, done: int, total: int) -> None:
                eval_bar.set_description(f"evaluating {name}", refresh=False)
                eval_bar.n = done / total
                eval_bar.refresh()

            metrics = evaluate(result.model, x_test, importance_samples=args.eval_importance_samples,
                               training_objective=training_objective_kwargs(config, mean_image), config=config,
                               exact_2d=exact, mean_image=mean_image, progress=progress)
        metrics["split"] = "test"
    path = ckpt.save_checkpoint(result, output, dataset.image_shape, metrics)
    summary = {"status": result.status, "epochs": result.epochs_done, "checkpoint": str(path), **metrics}
    print(json.dumps(summary, indent=2))
    if result.status == "diverged":
        print(f"error: {result.message}", file=sys.stderr)
        return 1
    if result.status == "stopped":
        print(f"{result.message}. Saved the full state to {path}; continue the same run with:\n"
              f"  python -m dvae_engine train --resume {path}", file=sys.stderr)
        return 130
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    try:
        loaded = ckpt.load_checkpoint(args.checkpoint, device=resolve_device(args.device))
        dataset = load_dataset(loaded.config.dataset, args.data_dir, loaded.config.binarization)
    except (ckpt.CheckpointError, DatasetNotFoundError, ValueError) as err:
        return _error(str(err))
    x = dataset.split(args.split)
    if args.max_examples:
        x = random_rows(x, args.max_examples, seed=args.seed)
    device = next(loaded.model.parameters()).device
    mean_image = dataset.train_mean().to(device)
    exact = loaded.model.latent_dim == 2 if args.exact is None else args.exact
    bar = None if args.quiet else tqdm(total=1.0, file=sys.stderr, dynamic_ncols=True,
                                       bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")

    def progress(name: str, done: int, total: int) -> None:
        bar.set_description(name, refresh=False)
        bar.n = done / total
        bar.refresh()

    metrics = evaluate(
        loaded.model, x, importance_samples=args.importance_samples, iwae_samples=tuple(args.iwae_samples),
        seed=args.seed, training_objective=training_objective_kwargs(loaded.config, mean_image),
        config=loaded.config, exact_2d=exact, mean_image=mean_image, progress=None if bar is None else progress,
    )
    if bar is not None:
        bar.close()
    metrics.update({"split": args.split, "checkpoint": str(args.checkpoint), "model": loaded.config.describe()})
    if args.json:
        print(json.dumps(metrics))
    else:
        for key, value in metrics.items():
            print(f"{key:28s} {value}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    try:
        loaded = ckpt.load_checkpoint(args.checkpoint)
    except ckpt.CheckpointError as err:
        return _error(str(err))
    position = loaded.payload.get("position")
    info = {"model": loaded.config.describe(), "config": loaded.config.to_dict(),
            "epochs": len(loaded.history.get("epoch", [])), "metrics": loaded.metrics,
            "status": loaded.payload.get("status"), "message": loaded.payload.get("message", ""),
            "resumable": loaded.payload.get("optimizer_state") is not None,
            "stopped_in_epoch": None if not position else int(position["epoch"]) + 1,
            "differs_from_paper": departures_for(loaded.config)}
    print(json.dumps(info, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dvae_engine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one model and save a checkpoint",
                       description="Train one model (every run setting below) and save a checkpoint. "
                                   "Ctrl-C stops after the current batch and saves a resumable checkpoint.")
    add_config_flags(p)
    p.add_argument("--output", default=None, help="checkpoint file to write (with --resume: default the same file)")
    p.add_argument("--data-dir", default=None, help="dataset directory (default: $DVAE_DATA_DIR, else "
                                                    "~/.cache/dvae_explorer/data)")
    p.add_argument("--resume", default=None, metavar="CHECKPOINT",
                   help="continue a stopped or finished run exactly (only --epochs, the new total, and --device "
                        "may be given with it)")
    p.add_argument("--reseed-on-device-change", action="store_true",
                   help="resume a run saved on another device type with a fresh random stream (not exact)")
    p.add_argument("--eval-examples", type=int, default=1000,
                   help="random clean test rows for the final metrics, integer >= 0 (0: all; default: 1000)")
    p.add_argument("--eval-importance-samples", type=int, default=1000,
                   help="importance samples for the final -log p(x) estimates, integer >= 0 (0: skip them; "
                        "-1: no evaluation at all; default: 1000)")
    p.add_argument("--exact", action=argparse.BooleanOptionalAction, default=None,
                   help="also compute log p(x) exactly by quadrature (2-D latent models only; default: on for them)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint on clean data")
    p.add_argument("checkpoint")
    p.add_argument("--importance-samples", type=int, default=5000,
                   help="samples for the -log p(x) estimates, integer >= 0 (0: skip; default: 5000)")
    p.add_argument("--iwae-samples", type=int, nargs="*", default=[],
                   help="also report IWAE bounds for these k (integers >= 1)")
    p.add_argument("--max-examples", type=int, default=0, help="random subset of the split (0: all; default: 0)")
    p.add_argument("--split", default="test", choices=("train", "valid", "test"), help="default: test")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation's draws (default: 0)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "mps"), help="default: auto")
    p.add_argument("--data-dir", default=None, help="dataset directory (default: $DVAE_DATA_DIR)")
    p.add_argument("--exact", action=argparse.BooleanOptionalAction, default=None,
                   help="log p(x) by quadrature (2-D latent models only; default: on for them)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("info", help="print a checkpoint's config, history length, metrics and resumability")
    p.add_argument("checkpoint")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)
