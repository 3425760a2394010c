"""How exact and how fast is the Posterior page's true posterior? The adaptive grid against a fine fixed one.

    python experiments/check_posterior_grid.py --examples 30

For the shipped 2-D models and ``--examples`` random clean MNIST test images, computes the true posterior
p(z|x) as the Posterior page does (:func:`dvae_engine.analysis.true_posterior_grid` with the model's
:func:`~dvae_engine.analysis.decoder_grid`, the adaptive nested fine grid) and, as the reference, on a fixed
641² grid over a box that leaves out at most 1e-9 of the mass. Both are scored the way the page scores
them (:func:`~dvae_engine.analysis.compare_posteriors` at salt-and-pepper ν = 0.1, N = 32): log p(x),
KL(p ‖ clean q(z|x)) and KL(p ‖ mixture q̃(z|x)). Prints one markdown table: the largest error relative to the
reference (|error| / max(1, |reference|)), the fine grid sizes chosen, and the time per image.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dvae_engine import analysis  # noqa: E402
from dvae_engine.checkpoint import load_checkpoint  # noqa: E402
from dvae_engine.data import load_test_split, random_rows  # noqa: E402

MODELS = ("mnist2d-vae", "mnist2d-dvae-sp10")


def scores(model, grid, mixture) -> np.ndarray:
    fit = analysis.compare_posteriors(model, grid, mixture, seed=0)
    return np.array([fit.log_evidence, fit.kl_true_clean, fit.kl_true_mixture])


@torch.no_grad()
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=30)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)

    images = random_rows(load_test_split("mnist"), args.examples, seed=args.seed)
    print(f"{args.examples} random clean MNIST test images (seed {args.seed}); errors relative to a 641² grid "
          "(mass threshold 1e-9), |error| / max(1, |reference|).\n")
    print("| model | log p(x), largest rel. error | KL(p ‖ q), largest | KL(p ‖ q̃), largest | fine grids chosen "
          "| ms per image: median / 90th pct / max |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    for name in MODELS:
        model = load_checkpoint(ROOT / "checkpoints" / f"{name}.pt").model
        search = analysis.decoder_grid(model)
        worst, times, sizes = np.zeros(3), [], collections.Counter()
        for x in images:
            mixture = analysis.mixture_posterior(model, x, "salt-pepper", 0.1, 32, 0)
            reference = scores(model, analysis.true_posterior_grid(model, x, grid_size=641, decoder_grid=search,
                                                                   mass_threshold=1e-9), mixture)
            start = time.perf_counter()
            grid = analysis.true_posterior_grid(model, x, decoder_grid=search)
            times.append(1000 * (time.perf_counter() - start))
            sizes[f"{len(grid.z1)}²"] += 1
            error = np.abs(scores(model, grid, mixture) - reference) / np.maximum(1.0, np.abs(reference))
            worst = np.maximum(worst, error)
        chosen = ", ".join(f"{size} × {count}" for size, count in sorted(sizes.items(), key=lambda kv: int(kv[0][:-1])))
        print(f"| `{name}` | {worst[0]:.1e} | {worst[1]:.1e} | {worst[2]:.1e} | {chosen} | "
              f"{np.median(times):.0f} / {np.percentile(times, 90):.0f} / {max(times):.0f} |")


if __name__ == "__main__":
    main()
