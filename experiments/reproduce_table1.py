"""Reproduce the paper's Table 1 (MNIST): DVAE K=1, DVAE K=5, DIWAE K=5 × 1 or 2 encoder layers × salt-and-pepper 0–15%.

    python experiments/reproduce_table1.py --epochs 50 --seeds 0 1 2
    python experiments/reproduce_table1.py --epochs 3280 --lr-schedule iwae --seeds 0 1 2 3 4 5 6 7 8 9 \\
        --eval-examples 0 [--address auto]                                        # the paper's budget
    python experiments/reproduce_table1.py --dataset digits --epochs 2 --eval-examples 200  # smoke run

By default the grid runs as a Ray Tune experiment (experiments/tune.py): one trial per
(cell, seed), reporting every epoch and checkpointing the full run state, on a local Ray
started for the run or, with ``--address`` (or ``$RAY_ADDRESS``), on a running cluster.
Watch it fill on the app's Experiments page. Interrupt it (Ctrl-C) and the same command
resumes it: finished trials are kept, the others continue from their last checkpoint. At the
end (or after an interruption) ``experiments/results/table1.{csv,md,json}`` are written from
the experiment folder: mean ± std over the seeds that finished, and how many did.

``--no-ray`` trains in this process instead (experiments/harness.py: on a GPU with the
sweep, on a CPU one model at a time), rewriting the tables after every model and resuming
from them. Both paths give the same numbers for the same seeds on a CPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dvae_engine.data import load_dataset  # noqa: E402
from experiments import grids  # noqa: E402
from experiments.harness import Cell, machine_description, run_table  # noqa: E402
from experiments.tune import add_ray_arguments, run_with_ray  # noqa: E402

ROWS = grids.ROWS


def table1_cells(args) -> list[Cell]:
    return grids.table1(dataset=args.dataset, layers=args.layers, noise_levels=args.noise_levels, epochs=args.epochs,
                        lr=args.lr, lr_schedule=args.lr_schedule, device=args.device,
                        max_train_examples=args.max_train_examples, max_valid_examples=args.max_valid_examples)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist", help="mnist (the paper's) or digits (smoke tests)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--noise-levels", type=float, nargs="+", default=[0.0, 0.05, 0.10, 0.15])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-schedule", default="constant", choices=("constant", "iwae", "cosine"),
                        help="iwae: Burda et al.'s 3^i epochs at lr·10^(-i/7), i = 0..7 (3280 epochs in all)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-train-examples", type=int, default=None)
    parser.add_argument("--max-valid-examples", type=int, default=2000)
    parser.add_argument("--eval-examples", type=int, default=2000, help="random clean test rows (0: all)")
    parser.add_argument("--importance-samples", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--name", default="table1", help="file name of the tables")
    parser.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=None,
                        help="batch compatible cells with vmap (without Ray default: on a GPU only; on a CPU one by "
                             "one is faster); with Ray: one trial per seed and group of cells")
    parser.add_argument("--fresh", action="store_true",
                        help="start over: ignore (without Ray) or delete (with Ray) an earlier run of the same name")
    add_ray_arguments(parser, "table1")
    args = parser.parse_args(argv)

    dataset = load_dataset(args.dataset, binarization="static")
    cells = table1_cells(args)
    meta = {
        "epochs": args.epochs, "seeds": args.seeds, "dataset": args.dataset,
        "train_examples": min(args.max_train_examples or len(dataset.train), len(dataset.train)),
        "eval_examples": min(args.eval_examples or len(dataset.test), len(dataset.test)),
        "importance_samples": args.importance_samples, "machine": machine_description(args.device),
        "device": args.device,
    }
    if args.ray:
        md = run_with_ray(cells, meta, args, "table1", args.name)
    else:
        md = run_table(cells, dataset, meta, args.out, args.name, sweep=args.sweep, fresh=args.fresh)
    print(md.read_text())


if __name__ == "__main__":
    main()
