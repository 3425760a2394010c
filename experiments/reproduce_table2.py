"""Reproduce the paper's Table 2 (Frey Face, Gaussian noise): 1-layer rows by default.

    python experiments/reproduce_table2.py --epochs 500 --seeds 0 1 2 [--address auto | --no-ray]

Gaussian noise levels 0, 2.5, 5, 7.5 are read as σ = 0, .025, .05, .075 on
pixels scaled to [0, 1]. Frey Face has a Gaussian decoder, so log-likelihoods
are densities (positive numbers of nats are normal here). Writes
``experiments/results/table2.{csv,md,json}``. Runs as a Ray Tune experiment by default,
one trial per (cell, seed) (see experiments/reproduce_table1.py and experiments/tune.py);
``--no-ray`` trains in this process.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dvae_engine.data import load_dataset  # noqa: E402
from experiments import grids  # noqa: E402
from experiments.harness import machine_description, run_table  # noqa: E402
from experiments.tune import add_ray_arguments, run_with_ray  # noqa: E402

ROWS = grids.ROWS


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1])
    parser.add_argument("--noise-levels", type=float, nargs="+", default=[0.0, 0.025, 0.05, 0.075])
    parser.add_argument("--latent-dim", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--importance-samples", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=None,
                        help="batch compatible cells with vmap (without Ray default: on a GPU only); with Ray: one "
                             "trial per seed and group of cells")
    parser.add_argument("--fresh", action="store_true",
                        help="start over: ignore (without Ray) or delete (with Ray) an earlier run of the same name")
    add_ray_arguments(parser, "table2")
    args = parser.parse_args(argv)
    args.dataset = "frey"

    dataset = load_dataset("frey")
    cells = grids.table2(layers=args.layers, noise_levels=args.noise_levels, latent_dim=args.latent_dim,
                         epochs=args.epochs, lr=args.lr, device=args.device)
    meta = {"epochs": args.epochs, "seeds": args.seeds, "dataset": "frey", "train_examples": len(dataset.train),
            "eval_examples": len(dataset.test), "importance_samples": args.importance_samples,
            "machine": machine_description(args.device), "device": args.device}
    if args.ray:
        md = run_with_ray(cells, meta, args, "table2", "table2")
    else:
        md = run_table(cells, dataset, meta, args.out, "table2", sweep=args.sweep, fresh=args.fresh)
    print(md.read_text())


if __name__ == "__main__":
    main()
