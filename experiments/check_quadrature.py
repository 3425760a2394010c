"""Is the grid's log p(x) right? An independent check on the image where importance sampling is worst.

    python experiments/check_quadrature.py --model mnist2d-vae --examples 40

Among ``--examples`` random clean test images, takes the one where the k=5000
estimate from q(z|x) falls furthest below the grid quadrature
(:func:`dvae_engine.analysis.true_posterior_grid`), and computes its log p(x) four
ways: the grid at 241² and 961² points, the grid after a wider and finer coarse
search, and importance sampling from the prior p(z) with ``--prior-samples`` draws,
which uses no grid and no encoder. Prints one markdown table.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dvae_engine.analysis import true_posterior_grid  # noqa: E402
from dvae_engine.checkpoint import load_checkpoint  # noqa: E402
from dvae_engine.data import load_dataset, random_rows  # noqa: E402
from dvae_engine.evaluation import iwae_per_example  # noqa: E402


@torch.no_grad()
def prior_importance_sampling(model, x: torch.Tensor, num_samples: int, generator: torch.Generator,
                              chunk: int = 50_000) -> float:
    """log (1/k) Σ p(x|z_i), z_i ~ p(z): unbiased for p(x), needs no encoder and no grid."""
    total, done = -math.inf, 0
    while done < num_samples:
        n = min(chunk, num_samples - done)
        z = torch.randn(n, model.latent_dim, generator=generator)
        total = float(torch.logaddexp(torch.tensor(total), torch.logsumexp(model.log_likelihood(x, z).double(), 0)))
        done += n
    return total - math.log(num_samples)


@torch.no_grad()
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mnist2d-vae")
    parser.add_argument("--examples", type=int, default=40)
    parser.add_argument("--prior-samples", type=int, default=2_000_000)
    args = parser.parse_args(argv)

    loaded = load_checkpoint(ROOT / "checkpoints" / f"{args.model}.pt")
    model = loaded.model
    x = random_rows(load_dataset(loaded.config.dataset, binarization=loaded.config.binarization).test,
                    args.examples)
    g = torch.Generator().manual_seed(0)
    plain = iwae_per_example(model, x, 5000, g)
    grid = torch.tensor([true_posterior_grid(model, xi, grid_size=241).log_evidence for xi in x])
    worst = int(torch.argmax(grid - plain))
    xi = x[worst]
    rows = [
        ("IS from q(z|x), k=5000", float(plain[worst])),
        ("grid, 241²", float(grid[worst])),
        ("grid, 961²", true_posterior_grid(model, xi, grid_size=961).log_evidence),
        ("grid, 961², coarse search 256² over [−8, 8]², threshold 1e-9",
         true_posterior_grid(model, xi, grid_size=961, coarse_size=256, coarse_extent=8.0,
                             mass_threshold=1e-9).log_evidence),
        (f"IS from the prior p(z), k={args.prior_samples:,}", prior_importance_sampling(model, xi, args.prior_samples,
                                                                                      g)),
    ]
    print(f"`{args.model}`, test image with the largest IS deficit among {args.examples} random ones:\n")
    print("| method | log p(x) |\n| --- | ---: |")
    for name, value in rows:
        print(f"| {name} | {value:.2f} |")


if __name__ == "__main__":
    main()
