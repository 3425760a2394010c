"""Reproduce the paper's Table 1 (MNIST): DVAE K=1, DVAE K=5, DIWAE K=5 × 1 or 2 encoder layers × salt-and-pepper 0–15%.

    python experiments/reproduce_table1.py --epochs 50 --seeds 0 1 2
    python experiments/reproduce_table1.py --epochs 2 --max-train-examples 2000 --eval-examples 200  # smoke run

Trains the grid (on a GPU with the sweep: all cells of one shape batched; on a CPU one
model at a time, which is faster there), evaluates each model on clean test data as soon
as it is trained (see experiments/harness.py) and rewrites
``experiments/results/table1.{csv,md,json}`` after every model. Run the same command
again after an interruption and it resumes: cells already evaluated with the same budget
are kept (``--fresh`` starts over). The budget is printed under the table: compare with
the paper only what was trained long enough.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dvae_engine.data import load_dataset  # noqa: E402
from dvae_engine.paper import TABLE1  # noqa: E402
from dvae_engine.training import TrainConfig  # noqa: E402
from experiments.harness import Cell, machine_description, run_table  # noqa: E402

ROWS = (("DVAE K=1", "dvae", 1), ("DVAE K=5", "dvae", 5), ("DIWAE K=5", "diwae", 5))


def table1_cells(args) -> list[Cell]:
    cells = []
    for layers in args.layers:
        for label, objective, k in ROWS:
            for level in args.noise_levels:
                config = TrainConfig(
                    dataset=args.dataset, binarization="static", objective=objective, noise="salt-pepper",
                    noise_level=level, num_samples=k, encoder_layers=layers, epochs=args.epochs,
                    lr=args.lr, device=args.device, max_train_examples=args.max_train_examples,
                    max_valid_examples=args.max_valid_examples,
                )
                cells.append(Cell(f"{label}, {layers} layer{'s' if layers > 1 else ''}, {100 * level:g}%", config,
                                  TABLE1.get((label, layers, round(level, 4)))))
    return cells


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="mnist", help="mnist (the paper's) or digits (smoke tests)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--noise-levels", type=float, nargs="+", default=[0.0, 0.05, 0.10, 0.15])
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-train-examples", type=int, default=None)
    parser.add_argument("--max-valid-examples", type=int, default=2000)
    parser.add_argument("--eval-examples", type=int, default=2000, help="random clean test rows (0: all)")
    parser.add_argument("--importance-samples", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--name", default="table1")
    parser.add_argument("--sweep", action=argparse.BooleanOptionalAction, default=None,
                        help="batch compatible cells with vmap (default: on a GPU only; on a CPU one by one is faster)")
    parser.add_argument("--fresh", action="store_true",
                        help="ignore results of an interrupted earlier run with the same budget (default: resume)")
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
    md = run_table(cells, dataset, meta, args.out, args.name, sweep=args.sweep, fresh=args.fresh)
    print(md.read_text())


if __name__ == "__main__":
    main()
