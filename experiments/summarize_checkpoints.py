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
HEADLINE = [  # (row, shipped name, metric, published, target static, target dynamic)
    ("VAE, −log p(x)", "mnist-vae", "nll", "88.71 fixed binarization; 86.76 dynamic (Burda et al. 2016)", 88.7, 86.8),
    ("IWAE K=5, −log p(x)", "mnist-iwae-k5", "nll", "87.63 fixed; 85.54 dynamic (Burda et al. 2016)", 87.6, 85.5),
    ("DVAE 5 %, −ELBO", "mnist-dvae-sp05", "neg_elbo",
     f"{TABLE1[('DVAE K=1', 2, 0.05)][0]:.2f} (the paper's Table 1, 2 layers)", 95.3, 95.3),
    ("DIWAE K=5 5 %, −IWAE₅ bound", "mnist-diwae-k5-sp05", "neg_iwae_5",
     f"{TABLE1[('DIWAE K=5', 2, 0.05)][0]:.2f} (the paper's Table 1, 2 layers)", 93.1, 93.1),
]


def stored_metrics(label: str) -> dict | None:
    path = PER_EXAMPLE / f"{label}.pt"
    return torch.load(path, weights_only=True)["metrics"] if path.exists() else None


def cell(metrics: dict | None, key: str, target: float) -> str:
    if metrics is None or key not in metrics:
        return "not evaluated yet"
    value = metrics[key]
    verdict = "target met" if value <= target else f"{value - target:.2f} short of {target}"
    return (f"{value:.2f} ± {metrics[f'{key}_stderr']:.2f} ({metrics.get('selected_epoch', '?')} of "
            f"{metrics.get('epochs_trained', '?')} epochs; {verdict})")


def headline_table() -> list[str]:
    lines = ["| model | ours, static binarization (shipped) | ours, dynamic binarization | published for this "
             "architecture |", "| --- | ---: | ---: | ---: |"]
    rows, samples = [], set()
    for label, shipped, key, published, target_static, target_dynamic in HEADLINE:
        static, dynamic = stored_metrics(shipped), stored_metrics(f"{shipped}-dynamic")
        for m in (static, dynamic):
            if m:
                samples.add((m.get("nll_examples"), m.get("importance_samples")))
        rows.append(f"| {label} | {cell(static, key, target_static)} | {cell(dynamic, key, target_dynamic)} | "
                    f"{published} |")
    sizes = "; ".join(f"k = {k} on a fixed random {n} clean test images" for n, k in sorted(samples, key=str))
    lines += rows + ["", f"−log p(x): importance sampling from the defensive mixture proposal ({sizes}); −ELBO and "
                         "−IWAE₅: all 10,000; ± one standard error over the images; (kept epoch of epochs trained), "
                         "the kept epoch chosen by the clean validation bound. Static: `checkpoints/<name>.pt`; "
                         "dynamic: `runs/<name>-dynamic.best.pt`."]
    return lines


def shipped_table() -> list[str]:
    manifest = json.loads((ROOT / "checkpoints" / "manifest.json").read_text())["models"]
    lines = ["| checkpoint | model | epochs (kept) | −ELBO, test | −log p(x), compared by | −log p(x), plain q(z\\|x) "
             "| −training objective | objective > log p(x) |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for entry in manifest:
        m = load_checkpoint(ROOT / "checkpoints" / entry["file"]).metrics
        if "nll" not in m:
            lines.append(f"| `{entry['name']}` | {entry['description']} | not re-measured yet | | | | | |")
            continue
        how = "exact" if m.get("nll_method") == "nll_exact" else "mixture IS"
        lines.append(
            f"| `{entry['name']}` | {entry['description']} | {m.get('epochs_trained', entry['epochs_trained'])} "
            f"({m.get('selected_epoch', '?')}) | {m['neg_elbo']:.2f} ± {m['neg_elbo_stderr']:.2f} "
            f"| {m['nll']:.2f} ± {m['nll_stderr']:.2f} ({how}) | {m['nll_is']:.2f} ± {m['nll_is_stderr']:.2f} "
            f"| {m['neg_train_objective']:.2f} | {m['objective_above_loglik']} / {m['nll_examples']} |")
    lines += ["", "Clean test data, nats per example (Frey Face: a negative −log p(x) is a log-density above 0, "
                  "normal for real-valued pixels). −ELBO on the whole test split; −log p(x) and the training "
                  "objective on a fixed random subset (its size is the denominator of the last column; log p(x) is "
                  "exact by quadrature for the 2-D models), k = 5000; ± one standard error over the images. "
                  "'objective > log p(x)': images where the run's own objective exceeds log p(x) by more than 3 "
                  "Monte Carlo standard errors."]
    return lines


def estimator_table() -> list[str]:
    """The plain and the mixture estimates (and the exact value for 2-D latents) image by image, per checkpoint."""
    manifest = json.loads((ROOT / "checkpoints" / "manifest.json").read_text())["models"]
    lines = ["| checkpoint | −log p(x), plain q(z\\|x) | −log p(x), defensive mixture | −log p(x), exact "
             "| mixture > plain by > 1 nat | plain > mixture by > 1 nat | mixture − exact, mean (worst) "
             "| plain − exact, mean (worst) |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for entry in manifest:
        path = PER_EXAMPLE / f"{entry['name']}.pt"
        if not path.exists():
            continue
        stored = torch.load(path, weights_only=True)
        plain, mix, exact = stored["log_px_plain"], stored["log_px_mix"], stored.get("log_px_exact")
        n = len(plain)
        row = (f"| `{entry['name']}` | {-plain.mean():.2f} | {-mix.mean():.2f} | "
               f"{'—' if exact is None else f'{-exact.mean():.2f}'} | {int((mix - plain > 1).sum())} / {n} | "
               f"{int((plain - mix > 1).sum())} / {n} | ")
        if exact is None:
            row += "— | — |"
        else:
            row += (f"{(exact - mix).mean():.2f} ({(exact - mix).max():.1f}) | "
                    f"{(exact - plain).mean():.2f} ({(exact - plain).max():.1f}) |")
        lines.append(row)
    lines += ["", "The same random clean test rows in every column of a row; k = 5000 samples for each estimator; "
                  "the mixture is ½ q(z|x) + ½ of 16 encoders of corrupted copies (the run's own noise; "
                  "salt-and-pepper 10 % / Gaussian σ = 0.05 for runs trained without noise). Each estimate is the "
                  "log of an unbiased estimate of p(x), so it is below log p(x) on average: the lower −log p(x) "
                  "of two is closer to the truth. 'mixture − exact': how far each estimate falls below the exact "
                  "log p(x), nats per image."]
    return lines


def main() -> None:
    print("\n".join(["### The headline models against the literature", "", *headline_table(), "",
                     "### Every shipped checkpoint", "", *shipped_table(), "",
                     "### The estimators side by side", "", *estimator_table()]))


if __name__ == "__main__":
    main()
