"""Which proposal for the importance-sampled log p(x)? Three single estimators side by side (no maximum).

    python experiments/loglik_proposals.py --examples 500

For every shipped checkpoint, on the same random clean test rows, each a complete estimator of its own
(k = 5000 samples each):

* plain — proposals from q(z|x) alone (Burda et al. 2015);
* equal mixture — (1/(C+1)) [q(z|x) + Σ_c q(z|x̃_c)], the clean encoder one component among C + 1 = 17;
* defensive mixture — ½ q(z|x) + ½ (1/C) Σ_c q(z|x̃_c), the estimator models are compared by
  (:func:`dvae_engine.evaluation.mixture_is_per_example`);
* for 2-D latent models, the exact value by quadrature.

Each is the log of an unbiased estimate of p(x): a stochastic lower bound. Taking per image the larger of two
of them is not an estimator of log p(x) (the log of the larger of two unbiased estimates can exceed log p(x) by
up to log 2), so no such column appears. Corrupted copies use the run's own noise (salt-and-pepper 10 % /
Gaussian σ = 0.05 for runs trained without noise). Writes ``experiments/results/loglik_proposals.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dvae_engine.boundlab import objective_vs_loglik  # noqa: E402
from dvae_engine.checkpoint import load_checkpoint  # noqa: E402
from dvae_engine.data import load_dataset, random_rows  # noqa: E402
from dvae_engine.evaluation import mixture_is_per_example, training_objective_kwargs  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints")
    parser.add_argument("--only", nargs="*")
    parser.add_argument("--examples", type=int, default=500)
    parser.add_argument("--importance-samples", type=int, default=5000)
    parser.add_argument("--components", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results")
    parser.add_argument("--tables-only", action="store_true",
                        help="rewrite the markdown table from an earlier run's loglik_proposals.json")
    args = parser.parse_args(argv)
    if args.tables_only:
        write_table(json.loads((args.out / "loglik_proposals.json").read_text()), args)
        return
    if args.threads:
        torch.set_num_threads(args.threads)

    manifest = json.loads((args.checkpoints / "manifest.json").read_text())["models"]
    rows, datasets = [], {}
    for entry in manifest:
        if args.only and entry["name"] not in args.only:
            continue
        started = time.time()
        loaded = load_checkpoint(args.checkpoints / entry["file"])
        config = loaded.config
        key = (config.dataset, config.binarization)
        if key not in datasets:
            datasets[key] = load_dataset(config.dataset, binarization=config.binarization)
        dataset = datasets[key]
        x = random_rows(dataset.test, args.examples)
        versus = objective_vs_loglik(loaded.model, x, training_objective_kwargs(config, dataset.train_mean()),
                                     importance_samples=args.importance_samples, repeats=8, seed=0, config=config,
                                     exact_2d=loaded.model.latent_dim == 2)
        noise, level = versus["mixture_noise"], versus["mixture_level"]
        g = torch.Generator().manual_seed(1)
        mean_image = dataset.train_mean() if noise == "mean-image" else None
        equal = torch.cat([mixture_is_per_example(loaded.model, xb, args.importance_samples, noise, level,
                                                  args.components, g, mean_image=mean_image,
                                                  clean_weight=1 / (args.components + 1))
                           for xb in x.split(100)]).double()
        plain, defensive = versus["log_px_plain"], versus["log_px_mix"]
        margin = 3 * versus["objective_stderr"]
        row = {
            "name": entry["name"], "model": config.model_name, "noise": noise, "level": level,
            "examples": len(x),
            "neg_log_px_plain": -float(plain.mean()), "neg_log_px_equal": -float(equal.mean()),
            "neg_log_px_defensive": -float(defensive.mean()),
            "neg_log_px_exact": -float(versus["log_px_exact"].mean()) if "log_px_exact" in versus else None,
            "defensive_above_plain_by_1nat": int((defensive - plain > 1).sum()),
            "plain_above_defensive_by_1nat": int((plain - defensive > 1).sum()),
            "neg_objective": -float(versus["objective"].mean()),
            "objective_above_plain": int((versus["objective"] - plain > margin).sum()),
            "objective_above_defensive": int((versus["objective"] - defensive > margin).sum()),
            "objective_above_exact": (int((versus["objective"] - versus["log_px_exact"] > margin).sum())
                                      if "log_px_exact" in versus else None),
            "seconds": round(time.time() - started, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "loglik_proposals.json").write_text(json.dumps(rows, indent=1) + "\n")
    write_table(rows, args)


def write_table(rows: list[dict], args) -> None:
    k = args.importance_samples
    lines = [
        "| checkpoint | −log p(x), plain q(z\\|x) | −log p(x), equal mixture | −log p(x), defensive mixture "
        "(compared by) | −log p(x), exact | defensive > plain by > 1 nat | plain > defensive by > 1 nat "
        "| −training objective | objective > plain | objective > defensive | objective > exact |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        n = r["examples"]
        exact = "—" if r["neg_log_px_exact"] is None else f"{r['neg_log_px_exact']:.2f}"
        above_exact = "—" if r["objective_above_exact"] is None else f"{r['objective_above_exact']} / {n}"
        lines.append(f"| `{r['name']}` | {r['neg_log_px_plain']:.2f} | {r['neg_log_px_equal']:.2f} | "
                     f"{r['neg_log_px_defensive']:.2f} | {exact} | {r['defensive_above_plain_by_1nat']} / {n} | "
                     f"{r['plain_above_defensive_by_1nat']} / {n} | {r['neg_objective']:.2f} | "
                     f"{r['objective_above_plain']} / {n} | {r['objective_above_defensive']} / {n} | {above_exact} |")
    lines += ["", f"k = {k} samples for each estimator; {args.components} corrupted copies at the run's own noise "
              "(salt-and-pepper 10 % / Gaussian σ = 0.05 for runs trained without noise); the same random clean test "
              "rows for every column; 'objective > …': by more than 3 Monte Carlo standard errors of the objective "
              "(8 draws). Nats per example."]
    (args.out / "loglik_proposals.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
