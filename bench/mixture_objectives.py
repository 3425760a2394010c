"""Cost per training step of the mixture objectives against DVAE / DIWAE at the same M and K.

    python bench/mixture_objectives.py --threads 1

One 784-200-200-50 model, batch 100 of random binary rows (no dataset needed), salt-and-pepper 10 %,
M = 5 and K = 1 by default: the engine's training step (draws, objective, backward, Adam) for dvae,
dvae-mix, diwae and diwae-mix, interleaved over several rounds, the median of each reported.
Writes ``bench/results/mixture_objectives-<device>.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dvae_engine.models import ModelSpec, build_model  # noqa: E402
from dvae_engine.objectives import draw  # noqa: E402
from dvae_engine.training import ObjectiveFunction, TrainConfig, _step, make_optimizer  # noqa: E402

OBJECTIVES = ("dvae", "dvae-mix", "diwae", "diwae-mix")


def seconds_per_step(objective: str, m: int, k: int, steps: int, x: torch.Tensor) -> float:
    config = TrainConfig(objective=objective, noise="salt-pepper", noise_level=0.1, num_corruptions=m, num_samples=k)
    model = build_model(ModelSpec(input_dim=784), torch.Generator().manual_seed(0))
    optimizer = make_optimizer(model, config)
    objective_fn = ObjectiveFunction(False)
    g = torch.Generator().manual_seed(1)

    def one() -> None:
        x_noisy, eps = draw(x, model.latent_dim, objective, "salt-pepper", 0.1, m, k, g)
        _step(objective_fn, optimizer, (model, x, x_noisy, eps, objective, True, 1.0))

    for _ in range(3):
        one()
    started = time.perf_counter()
    for _ in range(steps):
        one()
    return (time.perf_counter() - started) / steps


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-corruptions", type=int, default=5)
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    x = torch.bernoulli(torch.full((100, 784), 0.13), generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {o: [] for o in OBJECTIVES}
    for _ in range(args.rounds):  # interleaved, so a slow moment of the machine hits every objective
        for objective in OBJECTIVES:
            times[objective].append(seconds_per_step(objective, args.num_corruptions, args.num_samples, args.steps, x))
    median = {o: statistics.median(t) for o, t in times.items()}
    result = {"num_corruptions": args.num_corruptions, "num_samples": args.num_samples, "batch": 100,
              "threads": torch.get_num_threads(), "torch": torch.__version__,
              "ms_per_step": {o: 1000 * v for o, v in median.items()},
              "all_ms": {o: [1000 * v for v in t] for o, t in times.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "mixture_objectives-cpu.json").write_text(json.dumps(result, indent=1))
    lines = [f"# Training step cost, M = {args.num_corruptions}, K = {args.num_samples}, batch 100, 784-200-200-50, "
             f"CPU, {torch.get_num_threads()} thread(s), torch {torch.__version__}", "",
             f"Median of {args.rounds} interleaved rounds of {args.steps} steps (draws + objective + backward + Adam).",
             "", "| objective | ms per step | relative to its plain form |", "|---|---|---|"]
    for o in OBJECTIVES:
        base = median[o.removesuffix("-mix")]
        lines.append(f"| {o} | {1000 * median[o]:.2f} | {median[o] / base:.2f}× |")
    (args.out / "mixture_objectives-cpu.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
