"""Does denoising help? Plain vs denoising-trained models, compared by the corrected log-likelihood estimator.

    python experiments/denoising_helps.py --mnist-labels "mnist-{model}-dynamic{seed}-e200" --seeds 0 1 2

Reads the per-example evaluations written by ``python experiments/train_checkpoints.py evaluate``
(``experiments/results/per_example/<label>.pt``: log p(x) per clean test image, the same images for
every model) and, for each pair (VAE vs DVAE 5 %, IWAE K=5 vs DIWAE K=5 5 % on MNIST; VAE vs DVAE
σ = 0.025 on Frey Face):

* per seed, −log p(x) of each model (mean over the images);
* over seeds, the mean and a 95 % t-interval (n − 1 degrees of freedom) for each model and for the
  difference denoising − plain (positive: denoising is worse, in nats per example);
* over images, a paired test: per image the difference of log p(x) averaged over the seeds, its mean,
  standard error, t statistic and two-sided p-value, and a Wilcoxon signed-rank p-value.

Writes ``experiments/results/denoising.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch
from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
PER_EXAMPLE = ROOT / "experiments" / "results" / "per_example"

PAIRS = {  # name: (plain model, denoising model, dataset)
    "MNIST, VAE vs DVAE (salt-and-pepper 5 %)": ("vae", "dvae-sp05", "mnist"),
    "MNIST, IWAE K=5 vs DIWAE K=5 (salt-and-pepper 5 %)": ("iwae-k5", "diwae-k5-sp05", "mnist"),
    "Frey Face, VAE vs DVAE (Gaussian σ = 0.025)": ("vae", "dvae-g025", "frey"),
}


def load_log_px(label: str) -> np.ndarray | None:
    """log p(x) per image by the comparison estimator (exact where stored, else the mixture estimate)."""
    path = PER_EXAMPLE / f"{label}.pt"
    if not path.exists():
        return None
    stored = torch.load(path, weights_only=True)
    values = stored["log_px_exact"] if stored.get("log_px_exact") is not None else stored["log_px_mix"]
    return values.double().numpy()


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Mean and the half-width of a t-interval over ``values`` (nan half-width for one value)."""
    n = len(values)
    if n < 2:
        return float(values.mean()), math.nan
    half = stats.t.ppf(0.5 + level / 2, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return float(values.mean()), float(half)


def compare(plain: list[np.ndarray], noisy: list[np.ndarray]) -> dict:
    """Both models' per-seed log p(x) arrays (same images) → the summary described in the module docstring."""
    nll_plain = np.array([-a.mean() for a in plain])
    nll_noisy = np.array([-a.mean() for a in noisy])
    per_image = np.mean([b - a for a, b in zip(plain, noisy)], axis=0)  # log p_noisy − log p_plain, seed-averaged
    t_result = stats.ttest_1samp(per_image, 0.0)
    wilcoxon = stats.wilcoxon(per_image) if np.any(per_image != 0) else None
    return {
        "seeds": len(plain),
        "images": int(len(per_image)),
        "nll_plain_per_seed": nll_plain.tolist(),
        "nll_denoising_per_seed": nll_noisy.tolist(),
        "nll_plain": t_interval(nll_plain),
        "nll_denoising": t_interval(nll_noisy),
        "difference": t_interval(nll_noisy - nll_plain),  # > 0: denoising worse
        "paired_mean_log_px_gain": float(per_image.mean()),  # > 0: denoising better
        "paired_stderr": float(per_image.std(ddof=1) / math.sqrt(len(per_image))),
        "paired_t": float(t_result.statistic),
        "paired_p": float(t_result.pvalue),
        "wilcoxon_p": None if wilcoxon is None else float(wilcoxon.pvalue),
        "images_where_denoising_is_better": int((per_image > 0).sum()),
    }


def fmt(pair: tuple[float, float]) -> str:
    mean, half = pair
    return f"{mean:.2f}" if math.isnan(half) else f"{mean:.2f} ± {half:.2f}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-labels", default="mnist-{model}-dynamic{seed}",
                        help="label pattern of the MNIST evaluations; {model} and {seed} ('' for seed 0, '-s1', …)")
    parser.add_argument("--frey-labels", default="frey-{model}{seed}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seed0-suffix", default="",
                        help="the {seed} text for MNIST seed 0 ('' by default; '-s0' for the seed-comparison copies)")
    parser.add_argument("--budget", default="", help="a sentence on the training budget, printed under the table")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results")
    args = parser.parse_args(argv)

    results = {}
    for name, (plain_model, noisy_model, dataset) in PAIRS.items():
        pattern = args.mnist_labels if dataset == "mnist" else args.frey_labels
        plain, noisy, seeds = [], [], []
        for seed in args.seeds:
            suffix = (args.seed0_suffix if dataset == "mnist" else "") if seed == 0 else f"-s{seed}"
            a = load_log_px(pattern.format(model=plain_model, seed=suffix))
            b = load_log_px(pattern.format(model=noisy_model, seed=suffix))
            if a is not None and b is not None:
                plain.append(a)
                noisy.append(b)
                seeds.append(seed)
        if plain:
            results[name] = {**compare(plain, noisy), "seed_list": seeds,
                             "labels": [pattern.format(model=m, seed="{seed}") for m in (plain_model, noisy_model)]}
    lines = ["| comparison | seeds | −log p(x), plain | −log p(x), denoising | denoising − plain (95 % CI over "
             "seeds) | paired over images: mean log p(x) gain ± s.e. | t-test p | Wilcoxon p | images better |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, r in results.items():
        wil = "—" if r["wilcoxon_p"] is None else f"{r['wilcoxon_p']:.2g}"
        lines.append(
            f"| {name} | {r['seeds']} | {fmt(r['nll_plain'])} | {fmt(r['nll_denoising'])} | {fmt(r['difference'])} "
            f"| {r['paired_mean_log_px_gain']:+.3f} ± {r['paired_stderr']:.3f} | {r['paired_p']:.2g} | {wil} "
            f"| {r['images_where_denoising_is_better']} / {r['images']} |")
    lines += ["", "−log p(x) in nats per example on clean test images (lower is better), by importance sampling "
                  "with k = 5000 from the defensive mixture proposal; ± the half-width of a 95 % t-interval over "
                  "seeds. The paired columns average each image's log p(x) difference (denoising − plain) over "
                  "the seeds: positive means denoising fits the image better.", args.budget]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "denoising.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "denoising.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not results:
        print("no evaluations found: run experiments/train_checkpoints.py evaluate first", file=sys.stderr)


if __name__ == "__main__":
    main()
