"""Train (and resume) the pretrained models shipped in ``checkpoints/``, then export them.

    python experiments/train_checkpoints.py train [--only NAME ...] [--hours H]
    python experiments/train_checkpoints.py export [--is-examples N] [--importance-samples K]

``train`` works round-robin: every run advances ``chunk`` epochs at a time
and is saved to ``runs/<name>.pt`` (full state: optimizer and RNG too, so it
resumes exactly) after each chunk; the state with the best clean validation
bound among those chunk ends (ELBO for VAE/DVAE, IWAE with M·K samples for
IWAE/DIWAE) is kept in ``runs/<name>.best.pt``. Stop it at any
time and start it again: it picks up where each run left off.

``export`` evaluates each best state on the clean test split — the negative
ELBO on all of it; −log p(x) by importance sampling (k=5000) and the run's own
training objective, example by example, on a random 2000 of it — slims it (no
optimizer state) and writes ``checkpoints/<name>.pt`` plus ``checkpoints/manifest.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dvae_engine import checkpoint as ckpt  # noqa: E402
from dvae_engine.boundlab import objective_vs_loglik  # noqa: E402
from dvae_engine.data import load_dataset, random_rows  # noqa: E402
from dvae_engine.evaluation import evaluate, training_objective_kwargs  # noqa: E402
from dvae_engine.training import TrainConfig, train  # noqa: E402

RUNS_DIR = ROOT / "runs"
OUT_DIR = ROOT / "checkpoints"

MNIST = dict(dataset="mnist", binarization="static", encoder_layers=2, latent_dim=50, device="cpu", compile=True)
SP = dict(noise="salt-pepper")
FREY = dict(dataset="frey", encoder_layers=2, latent_dim=10, device="cpu", noise="gaussian", compile=True)

# name: (config, max epochs, epochs per chunk, one-line description)
RUNS: dict[str, tuple[TrainConfig, int, int, str]] = {
    "mnist-vae": (TrainConfig(**MNIST, objective="vae", noise="none", noise_level=0.0), 1000, 10,
                  "VAE on MNIST (static binarization), 2-layer encoder, 50 latents"),
    "mnist-dvae-sp05": (TrainConfig(**MNIST, **SP, objective="dvae", noise_level=0.05), 1000, 10,
                        "DVAE, salt-and-pepper 5%"),
    "mnist-dvae-sp10": (TrainConfig(**MNIST, **SP, objective="dvae", noise_level=0.10), 1000, 10,
                        "DVAE, salt-and-pepper 10%"),
    "mnist-dvae-sp15": (TrainConfig(**MNIST, **SP, objective="dvae", noise_level=0.15), 1000, 10,
                        "DVAE, salt-and-pepper 15%"),
    "mnist-iwae-k5": (TrainConfig(**MNIST, objective="iwae", noise="none", noise_level=0.0, num_samples=5),
                      1000, 10, "IWAE, K=5"),
    "mnist-diwae-k5-sp05": (TrainConfig(**MNIST, **SP, objective="diwae", noise_level=0.05, num_samples=5),
                            1000, 10, "DIWAE, K=5, salt-and-pepper 5%"),
    "mnist-diwae-k5-sp10": (TrainConfig(**MNIST, **SP, objective="diwae", noise_level=0.10, num_samples=5),
                            1000, 10, "DIWAE, K=5, salt-and-pepper 10%"),
    "mnist2d-vae": (TrainConfig(**{**MNIST, "latent_dim": 2}, objective="vae", noise="none", noise_level=0.0),
                    300, 20, "VAE with a 2-D latent space (for exact posteriors)"),
    "mnist2d-dvae-sp10": (TrainConfig(**{**MNIST, "latent_dim": 2}, **SP, objective="dvae", noise_level=0.10),
                          300, 20, "DVAE with a 2-D latent space, salt-and-pepper 10%"),
    "frey-vae": (TrainConfig(**{**FREY, "noise": "none"}, objective="vae", noise_level=0.0), 2000, 100,
                 "VAE on Frey Face (Gaussian output), 10 latents"),
    "frey-dvae-g025": (TrainConfig(**FREY, objective="dvae", noise_level=0.025), 2000, 100,
                       "DVAE on Frey Face, Gaussian noise sigma=0.025 (paper level 2.5)"),
}

_datasets: dict[str, object] = {}


def dataset_for(config: TrainConfig):
    key = f"{config.dataset}:{config.binarization}"
    if key not in _datasets:
        _datasets[key] = load_dataset(config.dataset, binarization=config.binarization)
    return _datasets[key]


def advance(name: str) -> bool:
    """Train run ``name`` one chunk further; False when it has reached its maximum."""
    config, max_epochs, chunk, _ = RUNS[name]
    last = RUNS_DIR / f"{name}.pt"
    payload = ckpt.load_payload(last) if last.exists() else None
    done = len(payload["history"]["epoch"]) if payload else 0
    if done >= max_epochs:
        return False
    dataset = dataset_for(config)
    target = min(done + chunk, max_epochs)
    result = train(config.replace(epochs=target), dataset, resume=payload)
    new_payload = ckpt.make_payload(result, dataset.image_shape)
    ckpt.save_payload(new_payload, last)
    # keep the state with the best clean validation bound of the run's own kind: the ELBO for VAE/DVAE,
    # the IWAE bound with the run's M·K samples for IWAE/DIWAE (their encoders are not trained for the ELBO)
    best_path = RUNS_DIR / f"{name}.best.pt"
    best = ckpt.load_payload(best_path)["metrics"].get("selected_valid_bound") if best_path.exists() else None
    kind = "valid_iwae" if result.history["valid_iwae"][-1] is not None else "valid_elbo"
    valid = result.history[kind][-1]
    if best is None or valid > best:
        new_payload["metrics"] = {"selected_epoch": result.epochs_done, "selected_valid_bound": valid,
                                  "selected_by": kind}
        ckpt.save_payload(new_payload, best_path)
    h = result.history
    print(f"{time.strftime('%H:%M:%S')} {name}: epoch {result.epochs_done}/{max_epochs} "
          f"train {h['train_objective'][-1]:.2f} {kind} {valid:.2f} ({sum(h['seconds'][-chunk:]):.0f}s)",
          flush=True)
    return True


def cmd_train(args) -> None:
    RUNS_DIR.mkdir(exist_ok=True)
    torch.set_num_threads(args.threads)
    names = args.only or list(RUNS)
    deadline = time.time() + 3600 * args.hours
    active = list(names)
    while active and time.time() < deadline:
        active = [n for n in active if advance(n)]


def cmd_export(args) -> None:
    torch.set_num_threads(args.threads)
    OUT_DIR.mkdir(exist_ok=True)
    manifest_path = OUT_DIR / "manifest.json"
    exported: dict[str, dict] = {}
    for name in args.only or list(RUNS):
        source = RUNS_DIR / f"{name}.best.pt"
        if not source.exists():
            print(f"{name}: not trained yet, skipped", flush=True)
            continue
        config, _, _, description = RUNS[name]
        loaded = ckpt.load_checkpoint(source)
        dataset = dataset_for(config)
        started = time.time()
        # the ELBO on the whole clean test split (cheap); log p(x) and the run's own objective, per example,
        # on a random subset (importance sampling with k=5000 costs ~45 s per 1000 MNIST images on 2 cores)
        metrics = evaluate(loaded.model, dataset.test, importance_samples=0, seed=0)
        n_is = args.is_examples
        if loaded.model.latent_dim == 2:  # exact log p(x) by quadrature too: ~0.5 s per image, so fewer
            n_is = min(n_is or len(dataset.test), args.exact_examples)
        x_is = random_rows(dataset.test, n_is) if n_is else dataset.test
        versus = objective_vs_loglik(loaded.model, x_is, training_objective_kwargs(config, dataset.train_mean()),
                                     importance_samples=args.importance_samples, repeats=8, seed=0, exact_2d=True)
        n_is = versus["num_examples"]
        metrics.update({
            "nll_is": -float(versus["log_px_is"].mean()),
            "nll_is_stderr": float(versus["log_px_is"].std() / n_is ** 0.5),
            "nll_is_examples": n_is,
            "importance_samples": args.importance_samples,
            "neg_train_objective": -float(versus["objective"].mean()),
            "objective_gap": versus["mean_gap"],
            "objective_above_loglik": versus["num_above"],
        })
        if "log_px_exact" in versus:
            metrics.update({
                "nll_exact": -float(versus["log_px_exact"].mean()),
                "nll_exact_stderr": float(versus["log_px_exact"].std() / n_is ** 0.5),
                "objective_above_exact": versus["num_above_exact"],
            })
        metrics.update(loaded.metrics)
        metrics["split"] = "test"
        metrics["eval_seconds"] = round(time.time() - started, 1)
        payload = loaded.payload
        payload["metrics"] = metrics
        payload["optimizer_state"] = None
        payload["generator_state"] = None
        out = OUT_DIR / f"{name}.pt"
        ckpt.save_payload(payload, out)
        exported[out.name] = {
            "file": out.name,
            "name": name,
            "description": description,
            "model": loaded.config.model_name,
            "dataset": config.dataset,
            "epochs_trained": len(loaded.payload["history"]["epoch"]),
            "selected_epoch": metrics.get("selected_epoch"),
            "test_neg_elbo": round(metrics["neg_elbo"], 3),
            "test_nll_is": round(metrics["nll_is"], 3),
            "test_nll_exact": round(metrics["nll_exact"], 3) if "nll_exact" in metrics else None,
            "test_neg_train_objective": round(metrics["neg_train_objective"], 3),
            "test_examples": metrics["num_examples"],
            "nll_is_examples": metrics["nll_is_examples"],
            "importance_samples": metrics["importance_samples"],
        }
        print(f"{name}: -ELBO {metrics['neg_elbo']:.2f}  -log p(x) {metrics.get('nll_is', float('nan')):.2f} "
              f"({metrics['eval_seconds']}s)", flush=True)
        _update_manifest(manifest_path, exported[out.name])


def _update_manifest(manifest_path: Path, entry: dict) -> None:
    """Add or replace one model's entry, re-reading the file so parallel exports of other runs are kept."""
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": []}
    entries = {m["file"]: m for m in manifest["models"]} | {entry["file"]: entry}
    manifest["models"] = sorted(entries.values(), key=lambda m: list(RUNS).index(m["name"]) if m["name"] in RUNS
                                else 99)
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(manifest_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train")
    p_train.add_argument("--only", nargs="*")
    p_train.add_argument("--hours", type=float, default=1000.0)
    p_train.add_argument("--threads", type=int, default=2)
    p_export = sub.add_parser("export")
    p_export.add_argument("--only", nargs="*")
    p_export.add_argument("--is-examples", type=int, default=2000,
                          help="random test rows for log p(x) and the objective (0: whole test split)")
    p_export.add_argument("--importance-samples", type=int, default=5000)
    p_export.add_argument("--exact-examples", type=int, default=500,
                          help="test rows for 2-D latent models, which also get log p(x) by quadrature")
    p_export.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    {"train": cmd_train, "export": cmd_export}[args.command](args)


if __name__ == "__main__":
    main()
