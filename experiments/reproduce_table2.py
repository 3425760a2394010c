"""Reproduce the paper's Table 2 (Frey Face, Gaussian noise): 1-layer rows by default.

    python experiments/reproduce_table2.py --epochs 500 --seeds 0 1 2

Gaussian noise levels 0, 2.5, 5, 7.5 are read as σ = 0, .025, .05, .075 on
pixels scaled to [0, 1]. Frey Face has a Gaussian decoder, so log-likelihoods
are densities (positive numbers of nats are normal here). Writes
``experiments/results/table2.{csv,md,json}``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dvae_engine.data import load_dataset  # noqa: E402
from dvae_engine.paper import TABLE2  # noqa: E402
from dvae_engine.training import TrainConfig  # noqa: E402
from experiments.harness import Cell, machine_description, run_table  # noqa: E402

ROWS = (("DVAE K=1", "dvae", 1), ("DVAE K=5", "dvae", 5), ("DIWAE K=5", "diwae", 5))


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
                        help="batch compatible cells with vmap (default: on a GPU only; on a CPU one by one is faster)")
    parser.add_argument("--fresh", action="store_true",
                        help="ignore results of an interrupted earlier run with the same budget (default: resume)")
    args = parser.parse_args(argv)

    dataset = load_dataset("frey")
    cells = []
    for layers in args.layers:
        for label, objective, k in ROWS:
            for level in args.noise_levels:
                config = TrainConfig(dataset="frey", objective=objective, noise="gaussian", noise_level=level,
                                     num_samples=k, encoder_layers=layers, latent_dim=args.latent_dim,
                                     epochs=args.epochs, lr=args.lr, device=args.device)
                cells.append(Cell(f"{label}, {layers} layer{'s' if layers > 1 else ''}, σ={level:g}", config,
                                  TABLE2.get((label, layers, round(level, 4)))))
    meta = {"epochs": args.epochs, "seeds": args.seeds, "dataset": "frey", "train_examples": len(dataset.train),
            "eval_examples": len(dataset.test), "importance_samples": args.importance_samples,
            "machine": machine_description(args.device), "device": args.device}
    md = run_table(cells, dataset, meta, args.out, "table2", sweep=args.sweep, fresh=args.fresh)
    print(md.read_text())


if __name__ == "__main__":
    main()
