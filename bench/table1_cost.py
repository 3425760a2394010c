"""What the whole Table 1 grid costs at the paper's budget on this machine: measured epochs, extrapolated.

    python bench/table1_cost.py                       # 1 thread, as each Ray trial on a CPU
    python bench/table1_cost.py --threads 2 --eval-examples 100

Trains ONE epoch on the full MNIST training split for each of the six model shapes of Table 1
(DVAE K=1, DVAE K=5, DIWAE K=5 × 1 or 2 encoder layers, at 10 % salt-and-pepper; the noise level does
not change the cost), with the validation bound on 2000 examples as in the real runs, and evaluates
one model of each shape as the trials do (−test bound, −log p(x) with k = 5000, the training objective)
on ``--eval-examples`` clean test rows. It then extrapolates to the command in the README
(3280 epochs, 10 seeds, evaluation on all 10,000 test examples): an EXTRAPOLATION from one epoch,
assuming every epoch costs the same and trials running side by side do not slow each other.
Writes ``bench/results/table1_cost-<device>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from dvae_engine.data import load_dataset, random_rows  # noqa: E402
from dvae_engine.training import train  # noqa: E402
from experiments import grids  # noqa: E402
from experiments.harness import evaluate_run, machine_description  # noqa: E402

EPOCHS, SEEDS, TEST_EXAMPLES = 3280, 10, 10_000


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--eval-examples", type=int, default=200)
    parser.add_argument("--importance-samples", type=int, default=5000)
    parser.add_argument("--parallel", type=int, default=2, help="trials side by side in the extrapolated wall time")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    data = load_dataset("mnist")
    x_test = random_rows(data.test, args.eval_examples)
    shapes = [c for c in grids.table1(epochs=1, device=args.device, max_valid_examples=2000)
              if c.config.noise_level == 0.10]
    rows = []
    for cell in shapes:
        started = time.perf_counter()
        result = train(cell.config, data)
        epoch = time.perf_counter() - started
        started = time.perf_counter()
        evaluate_run(cell, cell.config, result, x_test, data, args.importance_samples, 8, log=lambda *_: None)
        evaluation = (time.perf_counter() - started) * TEST_EXAMPLES / args.eval_examples
        row = {"shape": cell.row, "epoch_s": epoch, "eval_s_full_test": evaluation,
               "run_h": (EPOCHS * epoch + evaluation) / 3600}
        rows.append(row)
        print(f"{cell.row}: one epoch {epoch:.1f} s, evaluation on {TEST_EXAMPLES} test rows ≈ {evaluation:.0f} s, "
              f"one run of {EPOCHS} epochs ≈ {row['run_h']:.1f} h", flush=True)
    per_shape_cells = 4  # four noise levels per shape
    cpu_hours = sum(r["run_h"] for r in rows) * per_shape_cells * SEEDS
    wall_days = cpu_hours / args.parallel / 24
    machine = machine_description(args.device)
    lines = [
        f"Table 1 at the paper's budget on this machine — **extrapolated** from one measured epoch per model shape "
        f"(`python bench/table1_cost.py --threads {args.threads} --eval-examples {args.eval_examples}`; {machine}).",
        "",
        "| model shape | one epoch (measured) | evaluation, 10,000 test rows, k=5000 (scaled from "
        f"{args.eval_examples}) | one run: {EPOCHS} epochs + evaluation |",
        "| --- | ---: | ---: | ---: |",
        *[f"| {r['shape']} | {r['epoch_s']:.1f} s | {r['eval_s_full_test'] / 60:.1f} min | {r['run_h']:.1f} h |"
          for r in rows],
        "",
        f"24 cells × {SEEDS} seeds = 240 runs ≈ **{cpu_hours:,.0f} trial-hours** of {args.threads} thread(s); with "
        f"{args.parallel} trials side by side ≈ **{wall_days:,.0f} days** of wall time (an extrapolation: it assumes "
        "every epoch costs what the measured one did and that trials side by side do not slow each other).",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"table1_cost-{torch.device(args.device).type}"
    (args.out / f"{name}.md").write_text("\n".join(lines) + "\n")
    (args.out / f"{name}.json").write_text(json.dumps({"machine": machine, "threads": args.threads, "rows": rows,
                                                       "trial_hours": cpu_hours, "wall_days": wall_days}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
