"""The bridge on every shipped checkpoint: L_cvae bracketed, the KL gap, and the independent reading vs log p(x).

    DVAE_DATA_DIR=/work/shared/data python experiments/bridge_checkpoints.py --examples 100 --threads 1

For each checkpoint, on the same random clean test images: the estimators of
:mod:`dvae_engine.semi_implicit` at the run's own corruption (the reference corruption — salt-and-pepper
10 %, Gaussian σ = 0.05 for Frey Face — for runs trained without noise), K = 1, 2, 4, …, ``--max-k``,
``--repeats`` replicates per image, and log p(x) by the comparison estimator (exact quadrature for the
2-D models, else defensive-mixture importance sampling with ``--importance-samples``). Reports the
averages of L⁽⁰⁾ = L_dvae, L⁽ᴷ⁾, U⁽ᴷ⁾, U⁽¹⁾ (the independent reading), the KL-gap bracket, and how many
images have U⁽¹⁾ above log p(x) by more than 3 standard errors (possible: U⁽ᴷ⁾ bounds L_cvae, not log p(x)).
Writes ``experiments/results/bridge_checkpoints.{md,json}``.
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

from dvae_engine.checkpoint import load_checkpoint  # noqa: E402
from dvae_engine.data import load_dataset, random_rows  # noqa: E402
from dvae_engine.semi_implicit import bridge_report, default_ks  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", type=Path, default=ROOT / "checkpoints")
    parser.add_argument("--only", nargs="*", help="checkpoint file stems (default: every one in the manifest)")
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--max-k", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=16)
    parser.add_argument("--importance-samples", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    manifest = json.loads((args.checkpoints / "manifest.json").read_text())["models"]
    stems = args.only or [Path(m["file"]).stem for m in manifest]
    rows, datasets, started = [], {}, time.time()
    for stem in stems:
        ckpt = load_checkpoint(args.checkpoints / f"{stem}.pt")
        config = ckpt.config
        if config.dataset not in datasets:
            datasets[config.dataset] = load_dataset(config.dataset, args.data_dir)
        data = datasets[config.dataset]
        x = random_rows(data.test, args.examples)
        t0 = time.time()
        out = bridge_report(ckpt.model, x, config, ks=default_ks(args.max_k), repeats=args.repeats, seed=0,
                            importance_samples=args.importance_samples, exact_2d=True,
                            mean_image=data.train_mean() if config.noise == "mean-image" else None)
        above = (out["upper"][:, 0] - out["log_px"]) > 3 * out["upper_stderr"][:, 0]
        row = {
            "checkpoint": stem, "describe": config.describe(), "noise": out["noise"], "level": out["noise_level"],
            "log_px_method": out["log_px_method"], "log_px": out["mean_log_px"],
            "lower0": float(out["mean_lower0"]), "lower": float(out["mean_lower"][-1]),
            "lower_se": float(out["mean_lower_mc_stderr"][-1]), "upper": float(out["mean_upper"][-1]),
            "upper_se": float(out["mean_upper_mc_stderr"][-1]), "upper1": float(out["mean_upper"][0]),
            "kl_gap_low": out["kl_gap_low"], "kl_gap_high": out["kl_gap_high"],
            "num_upper1_above_log_px": int(above.sum()), "num_lower_above_log_px": out["num_lower_above_log_px"],
            "seconds": time.time() - t0,
        }
        rows.append(row)
        print(f"{stem}: log p(x) {row['log_px']:.2f} ({row['log_px_method']}), L0 {row['lower0']:.2f}, "
              f"L_cvae in [{row['lower']:.2f}, {row['upper']:.2f}], U1 {row['upper1']:.2f}, "
              f"KL gap [{row['kl_gap_low']:.2f}, {row['kl_gap_high']:.2f}], U1 > log p(x): "
              f"{row['num_upper1_above_log_px']}/{args.examples}", flush=True)
    command = "python experiments/bridge_checkpoints.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta = {**vars(args), "checkpoints": str(args.checkpoints), "out": str(args.out),
            "seconds": time.time() - started, "command": command}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bridge_checkpoints.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    k = args.max_k
    lines = [
        "# The bridge on the shipped checkpoints", "",
        f"{args.examples} random clean test images per checkpoint; {args.repeats} replicates of (x̃₀..x̃_{k}, z) per "
        f"image; K = 1, 2, 4, …, {k}. log p(x): exact (2-D latents) or defensive-mixture IS with k = "
        f"{args.importance_samples}. Nats per example, means over the images; ± Monte Carlo standard errors. "
        "'U⁽¹⁾ > log p(x)' counts images where the independent reading exceeds log p(x) by more than 3 s.e. "
        "(against an IS estimate, which is itself low, this overstates the count a little).", "",
        f"| checkpoint | corruption | log p(x) | U⁽¹⁾ (independent) | U⁽{k}⁾ | L⁽{k}⁾ | L⁽⁰⁾ = L_dvae | "
        "KL gap L_cvae − L_dvae | U⁽¹⁾ > log p(x) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| `{r['checkpoint']}` | {r['noise']} {r['level']:g} | {r['log_px']:.2f} ({r['log_px_method']}) | "
            f"{r['upper1']:.2f} | {r['upper']:.2f} ± {r['upper_se']:.2f} | {r['lower']:.2f} ± {r['lower_se']:.2f} | "
            f"{r['lower0']:.2f} | [{r['kl_gap_low']:.2f}, {r['kl_gap_high']:.2f}] | "
            f"{r['num_upper1_above_log_px']} / {args.examples} |")
    (args.out / "bridge_checkpoints.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
