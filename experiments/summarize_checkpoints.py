"""Print the results tables of the pretrained models (markdown), from their stored evaluations.

    python experiments/summarize_checkpoints.py

1. The four headline models against the published numbers for this architecture, on static and on
   dynamic binarization (from ``experiments/results/per_example/<run>.pt``, written by
   ``python experiments/train_checkpoints.py evaluate|export``).
2. Every shipped checkpoint (``checkpoints/manifest.json`` and the metrics stored in each file).

Every number is on clean test data, in nats per example; re-measure a file with ``python -m dvae_engine eval``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dvae_engine.checkpoint import load_checkpoint  # noqa: E402
from dvae_engine.paper import TABLE1  # noqa: E402

PER_EXAMPLE = ROOT / "experiments" / "results" / "per_example"
# (row label, run prefix, metric key, what it is, published value and source); the targets of the issue
HEADLINE = [
    ("VAE, −log p(x)", "mnist-vae", "nll", "88.71 fixed binarization; 86.76 dynamic (Burda et al. 2016)"),
    ("IWAE K=5, −log p(x)", "mnist-iwae-k5", "nll", "87.63 fixed; 85.54 dynamic (Burda et al. 2016)"),
    ("DVAE 5 %, −ELBO", "mnist-dvae-sp05", "neg_elbo",
     f"{TABLE1[('DVAE K=1', 2, 0.05)][0]:.2f} (the paper's Table 1, 2 layers)"),
    ("DIWAE K=5 5 %, −IWAE₅ bound", "mnist-diwae-k5-sp05", "neg_iwae_5",
     f"{TABLE1[('DIWAE K=5', 2, 0.05)][0]:.2f} (the paper's Table 1, 2 layers)"),
]


def stored_metrics(label: str) -> dict | None:
    path = PER_EXAMPLE / f"{label}.pt"
    return torch.load(path, weights_only=True)["metrics"] if path.exists() else None


def cell(metrics: dict | None, key: str) -> str:
    if metrics is None or key not in metrics:
        return "not trained yet"
    value = f"{metrics[key]:.2f} ± {metrics[f'{key}_stderr']:.2f}"
    return f"{value} ({metrics.get('selected_epoch', '?')} of {metrics.get('epochs_trained', '?')} epochs)"


def headline_table() -> list[str]:
    lines = ["| model | ours, static binarization | ours, dynamic binarization | published for this architecture |",
             "| --- | ---: | ---: | ---: |"]
    for label, prefix, key, published in HEADLINE:
        lines.append(f"| {label} | {cell(stored_metrics(f'{prefix}-static'), key)} | "
                     f"{cell(stored_metrics(f'{prefix}-dynamic'), key)} | {published} |")
    lines += ["", "−log p(x): importance sampling (k = 5000) from the defensive mixture proposal on a fixed random "
                  "2000 clean test images; −ELBO and −IWAE₅: all 10,000; ± one standard error over the images; "
                  "(kept epoch of epochs trained), the kept epoch chosen by the clean validation bound."]
    return lines


def shipped_table() -> list[str]:
    manifest = json.loads((ROOT / "checkpoints" / "manifest.json").read_text())["models"]
    lines = ["| checkpoint | model | epochs (kept) | −ELBO, test | −log p(x), compared by | −log p(x), plain q(z\\|x) "
             "| −training objective | objective > log p(x) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for entry in manifest:
        m = load_checkpoint(ROOT / "checkpoints" / entry["file"]).metrics
        how = "exact" if m.get("nll_method") == "nll_exact" else "mixture IS"
        lines.append(
            f"| `{entry['name']}` | {entry['description']} | {m.get('epochs_trained', entry['epochs_trained'])} "
            f"({m.get('selected_epoch', '?')}) | {m['neg_elbo']:.2f} ± {m['neg_elbo_stderr']:.2f} "
            f"| {m['nll']:.2f} ± {m['nll_stderr']:.2f} ({how}) | {m['nll_is']:.2f} ± {m['nll_is_stderr']:.2f} "
            f"| {m['neg_train_objective']:.2f} | {m['objective_above_loglik']} / {m['nll_examples']} |")
    lines += ["", "Clean test data, nats per example (Frey Face: a negative −log p(x) is a log-density above 0, "
                  "normal for real-valued pixels). −ELBO on the whole test split; −log p(x) and the training "
                  "objective on a fixed random subset (2000 MNIST images, 500 for the 2-D models whose log p(x) is "
                  "exact by quadrature, all 200 Frey faces), k = 5000; ± one standard error over the images. "
                  "'objective > log p(x)': images where the run's own objective exceeds log p(x) by more than 3 "
                  "Monte Carlo standard errors."]
    return lines


def main() -> None:
    print("\n".join(["### The headline models against the literature", "", *headline_table(), "",
                     "### Every shipped checkpoint", "", *shipped_table()]))


if __name__ == "__main__":
    main()
