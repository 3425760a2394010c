"""Train (and resume) the pretrained models shipped in ``checkpoints/``, then export them.

    python experiments/train_checkpoints.py train --only mnist-vae-dynamic mnist-dvae-sp05-dynamic --until 500
    python experiments/train_checkpoints.py train --group headline --until 500 --hours 6
    python experiments/train_checkpoints.py export --group headline

``train`` works round-robin: every selected run advances ``--chunk`` epochs at a time and
is saved to ``runs/<name>.pt`` with its full state (weights, Adam, random state, and the
position inside an epoch when the deadline hits), so killing it at any moment and starting
it again continues exactly the same runs. The state with the best clean validation bound of
the run's own kind (ELBO for VAE/DVAE, IWAE with M·K samples for IWAE/DIWAE) among the
chunk ends is kept in ``runs/<name>.best.pt``.

``export`` evaluates each kept state on the clean test split — the negative ELBO on all of
it; −log p(x) by the comparison estimator (defensive-mixture importance sampling, k = 5000;
exact quadrature for 2-D latents) and by the plain estimator, and the run's own training
objective, example by example, on a fixed random subset — slims it (no optimizer state),
writes ``checkpoints/<shipped name>.pt`` and its ``checkpoints/manifest.json`` entry, and
saves the per-example values (for paired comparisons) to
``experiments/results/per_example/<name>.pt``.

The recipe (see RESULTS.md, "Finding the recipe"): batch 100, Adam (ε = 1e-8), learning rate
1e-3 in Burda et al.'s stages (3^i epochs at 1e-3·10^(−i/7)), a KL warm-up over the first 10
epochs, PyTorch's default initialisation, softplus, 784-200-200-50 with a 2-layer encoder; MNIST
binarized once (static) or afresh every epoch (dynamic).
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
from dvae_engine.training import TrainConfig  # noqa: E402
from experiments.longrun import advance, epochs_done  # noqa: E402

RUNS_DIR = ROOT / "runs"
OUT_DIR = ROOT / "checkpoints"
PER_EXAMPLE_DIR = ROOT / "experiments" / "results" / "per_example"

RECIPE = dict(batch_size=100, lr=1e-3, lr_schedule="iwae", kl_warmup_epochs=10, activation="softplus",
              device="cpu", compile=True)
MNIST = dict(dataset="mnist", encoder_layers=2, latent_dim=50, **RECIPE)
HEADLINE = {  # model: (TrainConfig fields, description)
    "vae": (dict(objective="vae", noise="none", noise_level=0.0), "VAE"),
    "dvae-sp05": (dict(objective="dvae", noise="salt-pepper", noise_level=0.05), "DVAE, salt-and-pepper 5%"),
    "iwae-k5": (dict(objective="iwae", noise="none", noise_level=0.0, num_samples=5), "IWAE, K=5"),
    "diwae-k5-sp05": (dict(objective="diwae", noise="salt-pepper", noise_level=0.05, num_samples=5),
                      "DIWAE, K=5, salt-and-pepper 5%"),
}


def headline_runs() -> dict[str, tuple[TrainConfig, str]]:
    runs = {}
    for model, (fields, description) in HEADLINE.items():
        for binarization in ("dynamic", "static"):
            for seed in (0, 1, 2):
                name = f"mnist-{model}-{binarization}" + ("" if seed == 0 else f"-s{seed}")
                runs[name] = (TrainConfig(**MNIST, **fields, binarization=binarization, seed=seed),
                              f"{description} on MNIST ({binarization} binarization), 2-layer encoder, 50 latents"
                              + ("" if seed == 0 else f", seed {seed}"))
            # seed 0 again under its own name: the same run from the start (training is deterministic), kept
            # for equal-budget seed comparisons at milestones the headline run has already passed
            runs[f"mnist-{model}-{binarization}-s0"] = runs[f"mnist-{model}-{binarization}"]
    return runs


FREY = dict(dataset="frey", encoder_layers=2, latent_dim=10, batch_size=100, lr=1e-3, device="cpu", compile=True)


def frey_runs() -> dict[str, tuple[TrainConfig, str]]:
    """The shipped Frey Face pair (VAE and DVAE at σ = 0.025) with the recipe of the first export, 6 seeds."""
    runs = {}
    for seed in range(6):
        suffix = "" if seed == 0 else f"-s{seed}"
        runs[f"frey-vae{suffix}"] = (TrainConfig(**FREY, objective="vae", noise="none", noise_level=0.0, seed=seed),
                                     "VAE on Frey Face (Gaussian output), 10 latents")
        runs[f"frey-dvae-g025{suffix}"] = (
            TrainConfig(**FREY, objective="dvae", noise="gaussian", noise_level=0.025, seed=seed),
            "DVAE on Frey Face, Gaussian noise sigma=0.025 (paper level 2.5)")
    return runs


RUNS: dict[str, tuple[TrainConfig, str]] = {**headline_runs(), **frey_runs()}
GROUPS = {
    "headline": [n for n in RUNS if n.startswith("mnist-") and n.endswith(("-dynamic", "-static"))],
    "dynamic": [n for n in RUNS if n.startswith("mnist-") and n.endswith("-dynamic")],
    "static": [n for n in RUNS if n.startswith("mnist-") and n.endswith("-static")],
    "seeds": [n for n in RUNS if n.startswith("mnist-") and n.endswith(("-s0", "-s1", "-s2"))],
    "frey": [n for n in RUNS if n.startswith("frey-")],
}

_datasets: dict[str, object] = {}


def dataset_for(config: TrainConfig):
    key = f"{config.dataset}:{config.binarization}"
    if key not in _datasets:
        _datasets[key] = load_dataset(config.dataset, binarization=config.binarization)
    return _datasets[key]


def selected(args) -> list[str]:
    names = list(args.only or [])
    for group in args.group or []:
        names += GROUPS[group]
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        raise SystemExit(f"unknown run(s) {', '.join(unknown)}; known: {', '.join(RUNS)}")
    return list(dict.fromkeys(names))


def cmd_train(args) -> None:
    RUNS_DIR.mkdir(exist_ok=True)
    torch.set_num_threads(args.threads)
    deadline = time.time() + 3600 * args.hours
    active = selected(args)
    while active and time.time() < deadline:
        for name in list(active):
            config, _ = RUNS[name]
            path = RUNS_DIR / f"{name}.pt"
            target = min(epochs_done(path) + args.chunk, args.until)
            done, status = advance(config, dataset_for(config), path, target, deadline=deadline)
            if status == "finished" and done % args.milestone == 0:  # kept for equal-budget comparisons
                ckpt.save_payload(ckpt.load_payload(path), RUNS_DIR / f"{name}.e{done}.pt")
            if done >= args.until or status == "diverged":
                active.remove(name)
            if time.time() >= deadline:
                break


def cmd_evaluate(args) -> None:
    """Evaluate kept states (best, or the milestone at ``--at-epoch``) without shipping them."""
    torch.set_num_threads(args.threads)
    for name in selected(args):
        source = RUNS_DIR / (f"{name}.e{args.at_epoch}.pt" if args.at_epoch else f"{name}.best.pt")
        if not source.exists():
            print(f"{name}: no {source.name}, skipped", flush=True)
            continue
        label = name if not args.at_epoch else f"{name}-e{args.at_epoch}"
        evaluate_state(source, label, args)


def cmd_export(args) -> None:
    torch.set_num_threads(args.threads)
    OUT_DIR.mkdir(exist_ok=True)
    for name in selected(args):
        source = RUNS_DIR / f"{name}.best.pt"
        if not source.exists():
            print(f"{name}: not trained yet, skipped", flush=True)
            continue
        _, description = RUNS[name]
        shipped = args.ship_as.get(name, name) if args.ship_as else name
        export_one(source, description, shipped, args)


def cmd_reexport(args) -> None:
    """Re-measure shipped checkpoints in place with today's estimators (their weights unchanged)."""
    torch.set_num_threads(args.threads)
    manifest = json.loads((OUT_DIR / "manifest.json").read_text())["models"]
    entries = {m["name"]: m for m in manifest}
    for name in args.only or list(entries):
        export_one(OUT_DIR / f"{name}.pt", entries[name]["description"], name, args)


def evaluate_state(source: Path, label: str, args) -> tuple[ckpt.Checkpoint, dict]:
    """Clean test metrics of a saved state; per-example log p(x) estimates go to ``per_example/<label>.pt``.

    The ELBO uses the whole test split; −log p(x) (comparison estimator and plain one) and the run's own
    objective use a fixed random subset (the same rows for every model, so models can be compared pairwise).
    """
    loaded = ckpt.load_checkpoint(source)
    config = loaded.config
    dataset = dataset_for(config)
    started = time.time()
    metrics = evaluate(loaded.model, dataset.test, importance_samples=0, seed=0,
                       iwae_samples=(config.num_corruptions * config.num_samples,)
                       if config.objective in ("iwae", "diwae") else ())
    n = args.is_examples
    exact = loaded.model.latent_dim == 2
    if exact:  # quadrature costs ~0.2 s per image: fewer of them
        n = min(n or len(dataset.test), args.exact_examples)
    x = random_rows(dataset.test, n) if n else dataset.test
    versus = objective_vs_loglik(loaded.model, x, training_objective_kwargs(config, dataset.train_mean()),
                                 importance_samples=args.importance_samples, repeats=8, seed=0, exact_2d=exact,
                                 config=config)
    count = versus["num_examples"]

    def mean_stderr(values: torch.Tensor) -> tuple[float, float]:
        return -float(values.mean()), float(values.std() / count ** 0.5)

    metrics["nll_mix"], metrics["nll_mix_stderr"] = mean_stderr(versus["log_px_mix"])
    metrics["nll_is"], metrics["nll_is_stderr"] = mean_stderr(versus["log_px_plain"])
    if "log_px_exact" in versus:
        metrics["nll_exact"], metrics["nll_exact_stderr"] = mean_stderr(versus["log_px_exact"])
    best = "nll_exact" if exact else "nll_mix"
    metrics.update({
        "nll": metrics[best], "nll_stderr": metrics[f"{best}_stderr"], "nll_method": best,
        "nll_examples": count, "importance_samples": args.importance_samples,
        "plain_samples": args.importance_samples,
        "mixture_noise": versus["mixture_noise"], "mixture_level": versus["mixture_level"],
        "mixture_components": 16, "mixture_clean_weight": 0.5,
        "neg_train_objective": -float(versus["objective"].mean()),
        "objective_gap": versus["mean_gap"], "objective_above_loglik": versus["num_above"],
        "objective_above_plain": versus["num_above_plain"],
    })
    metrics.update({k: v for k, v in loaded.metrics.items() if k.startswith("selected_")})
    metrics["epochs_trained"] = len(loaded.payload["history"]["epoch"])
    metrics["split"] = "test"
    metrics["eval_seconds"] = round(time.time() - started, 1)
    PER_EXAMPLE_DIR.mkdir(parents=True, exist_ok=True)
    torch.save({"log_px_mix": versus["log_px_mix"], "log_px_plain": versus["log_px_plain"],
                "log_px_exact": versus.get("log_px_exact"), "objective": versus["objective"],
                "rows_seed": 0, "num_rows": count, "metrics": metrics, "config": config.to_dict()},
               PER_EXAMPLE_DIR / f"{label}.pt")
    print(f"{label}: -ELBO {metrics['neg_elbo']:.2f}  -log p(x) {metrics['nll']:.2f} ({best}; plain "
          f"{metrics['nll_is']:.2f}) ({metrics['eval_seconds']}s)", flush=True)
    return loaded, metrics


def export_one(source: Path, description: str, shipped: str, args, manifest_path: Path | None = None) -> dict:
    """Evaluate a kept state on clean test data and write it as ``checkpoints/<shipped>.pt`` (slim)."""
    loaded, metrics = evaluate_state(source, shipped, args)
    config = loaded.config
    payload = loaded.payload
    payload["metrics"] = metrics
    payload["optimizer_state"] = payload["generator_state"] = payload["position"] = None
    out = OUT_DIR / f"{shipped}.pt"
    ckpt.save_payload(payload, out)
    entry = {
        "file": out.name, "name": shipped, "description": description, "model": config.model_name,
        "dataset": config.dataset, "binarization": config.binarization, "seed": config.seed,
        "epochs_trained": metrics["epochs_trained"], "selected_epoch": metrics.get("selected_epoch"),
        "test_neg_elbo": round(metrics["neg_elbo"], 3),
        "test_nll": round(metrics["nll"], 3), "test_nll_method": metrics["nll_method"],
        "test_nll_mix": round(metrics["nll_mix"], 3), "test_nll_is": round(metrics["nll_is"], 3),
        "test_nll_exact": round(metrics["nll_exact"], 3) if "nll_exact" in metrics else None,
        "test_neg_train_objective": round(metrics["neg_train_objective"], 3),
        "test_examples": metrics["num_examples"], "nll_examples": metrics["nll_examples"],
        "importance_samples": metrics["importance_samples"],
    }
    _update_manifest(manifest_path or OUT_DIR / "manifest.json", entry)
    return metrics


def _update_manifest(manifest_path: Path, entry: dict) -> None:
    """Add or replace one model's entry, re-reading the file so parallel exports of other runs are kept."""
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"models": []}
    entries = {m["file"]: m for m in manifest["models"]} | {entry["file"]: entry}
    order = list(SHIPPED_ORDER)
    manifest["models"] = sorted(entries.values(), key=lambda m: order.index(m["name"]) if m["name"] in order
                                else len(order))
    tmp = manifest_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(manifest_path)


SHIPPED_ORDER = ("mnist-vae", "mnist-dvae-sp05", "mnist-dvae-sp10", "mnist-dvae-sp15", "mnist-iwae-k5",
                 "mnist-diwae-k5-sp05", "mnist-diwae-k5-sp10", "mnist2d-vae", "mnist2d-dvae-sp10", "frey-vae",
                 "frey-dvae-g025")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_train = sub.add_parser("train")
    p_train.add_argument("--only", nargs="*")
    p_train.add_argument("--group", nargs="*", choices=list(GROUPS))
    p_train.add_argument("--until", type=int, default=1000, help="train each run up to this many epochs")
    p_train.add_argument("--chunk", type=int, default=5, help="epochs per turn of the round-robin")
    p_train.add_argument("--hours", type=float, default=1000.0)
    p_train.add_argument("--milestone", type=int, default=100,
                         help="also keep the full state every this many epochs (runs/<name>.e<epoch>.pt)")
    p_train.add_argument("--threads", type=int, default=1)
    for command in ("export", "evaluate", "reexport"):
        p = sub.add_parser(command)
        p.add_argument("--only", nargs="*")
        if command != "reexport":
            p.add_argument("--group", nargs="*", choices=list(GROUPS))
        if command == "export":
            p.add_argument("--ship-as", type=lambda s: dict(p.split("=") for p in s.split(",")), default=None,
                           help="run=shipped-name pairs, comma-separated (default: the run's own name)")
        if command == "evaluate":
            p.add_argument("--at-epoch", type=int, default=None,
                           help="evaluate the milestone state runs/<name>.e<epoch>.pt instead of the best one")
        p.add_argument("--is-examples", type=int, default=2000,
                       help="random test rows for log p(x) and the objective (0: whole test split)")
        p.add_argument("--importance-samples", type=int, default=5000)
        p.add_argument("--exact-examples", type=int, default=500,
                       help="test rows for 2-D latent models, which also get log p(x) by quadrature")
        p.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    {"train": cmd_train, "export": cmd_export, "evaluate": cmd_evaluate, "reexport": cmd_reexport}[args.command](args)


if __name__ == "__main__":
    main()
