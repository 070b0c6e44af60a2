"""Estimators compared on the toy maze (default GRPO vs GiGPO): success-rate curves, several seeds, one PNG.

Each (estimator, seed) run is the embedded default (tiny model, SFT warm start on oracle
demonstrations, then RL) with the same budget; runs with the same seed share a bit-identical
warm start (the SFT is deterministic), so the curves differ only by the estimator. The figure
printed beside each estimator's final success is its ratio to the SFT start (the baseline,
measured in the same runs).

    .venv/bin/python bench/train_curves.py [--estimators grpo,gigpo] [--seeds 0,1,2] [--steps 20] [--jobs 2]
                                            [--set KEY=VALUE ...]

``tree_grpo`` grows 3 trees per task with 3 expansions each (≈ the generated tokens of 8 chains
on the maze: 3 chains + 9 half-suffixes); the table prints each run's generated tokens so the
budgets can be checked. Runs go to <root>/<estimator>-s<seed>/ (metrics.jsonl etc.); the plot to
<root>/<estimator>_vs_<estimator>.png.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ESTIMATOR_CONFIGS = {
    "grpo": ["algo.estimator=grpo", "algo.config={}"],
    "gigpo": ["algo.estimator=gigpo", "algo.config={penalty_mode: discounted}"],
    "tree_grpo": [
        "algo.estimator=tree_grpo", "algo.config={}", "rollout.tree={num_trees: 3, rounds: 1, expansions_per_round: 3}"
    ],
}


def run_one(root: Path, estimator: str, seed: int, steps: int, extra: list[str]) -> Path:
    out = root / f"{estimator}-s{seed}"
    if (out / "final").exists():
        return out  # finished earlier
    cmd = [sys.executable, "-m", "agentrl", "train", "--no-progress", "--output-dir", str(out), "--steps", str(steps)]
    for override in [f"seed={seed}", *ESTIMATOR_CONFIGS[estimator], *extra]:
        cmd += ["--set", override]
    if (out / "checkpoints").exists():
        cmd.append("--resume")
    with open(root / f"{estimator}-s{seed}.log", "w") as log:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=True)
    return out


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


def curves(out: Path) -> tuple[list[int], list[float]]:
    evals = [(r["step"], r["eval/success"]) for r in records(out) if "eval/success" in r]
    steps, values = zip(*evals)
    return list(steps), list(values)


def generated_tokens(out: Path) -> float:
    """Policy tokens the RL rollouts generated over the whole run."""
    return sum(r.get("rollout/tokens", 0.0) for r in records(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--estimators", default="grpo,gigpo", help=f"Two or more of {', '.join(ESTIMATOR_CONFIGS)}.")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2, help="Runs in parallel.")
    parser.add_argument("--set", dest="extra", action="append", default=[], help="Config override for every run.")
    parser.add_argument("--root", default="bench/results/train_curves")
    args = parser.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    estimators = args.estimators.split(",")
    jobs = [(est, seed) for seed in seeds for est in estimators]
    with ThreadPoolExecutor(args.jobs) as pool:
        outs = dict(zip(jobs, pool.map(lambda j: run_one(root, j[0], j[1], args.steps, args.extra), jobs)))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    print(f"{'estimator':<10} {'SFT start':>10} {'final':>10} {'final/start':>12} {'gen. tokens':>12}"
          "   (eval success, mean ± std over seeds; RL tokens generated per run)")
    for est, color in zip(estimators, ("tab:blue", "tab:red", "tab:green")):
        runs = [curves(outs[(est, s)]) for s in seeds]
        steps = runs[0][0]
        values = np.array([r[1] for r in runs])
        for r in runs:
            ax.plot(r[0], r[1], color=color, alpha=0.25, linewidth=1)
        mean, std = values.mean(0), values.std(0)
        ax.plot(steps, mean, color=color, linewidth=2, label=f"{est} (mean of {len(seeds)} seeds)")
        ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.12)
        start, final = values[:, 0], values[:, -1]
        tokens = np.mean([generated_tokens(outs[(est, s)]) for s in seeds])
        print(f"{est:<10} {start.mean():>6.3f}±{start.std():.2f} {final.mean():>6.3f}±{final.std():.2f} "
              f"{final.mean() / max(start.mean(), 1e-9):>11.2f}x {tokens:>12.0f}")
    ax.set_xlabel("RL step")
    ax.set_ylabel("success rate (eval, fixed episodes)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"toy maze: {' vs '.join(estimators)} from the same SFT start")
    fig.tight_layout()
    path = root / f"{'_vs_'.join(estimators)}.png"
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
