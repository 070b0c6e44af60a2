"""GRPO vs GiGPO on the toy maze: success-rate curves over RL steps, several seeds, one PNG.

Each (estimator, seed) run is the embedded default (tiny model, SFT warm start on oracle
demonstrations, then RL) with the same budget; runs with the same seed share a bit-identical
warm start (the SFT is deterministic), so the curves differ only by the estimator. The figure
printed beside each estimator's final success is its ratio to the SFT start (the baseline,
measured in the same runs).

    .venv/bin/python bench/train_curves.py [--seeds 0,1,2] [--steps 20] [--jobs 2] [--set KEY=VALUE ...]

Runs go to bench/results/train_curves/<estimator>-s<seed>/ (metrics.jsonl etc.); the plot to
bench/results/train_curves/grpo_vs_gigpo.png.
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


def curves(out: Path) -> tuple[list[int], list[float]]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = [(r["step"], r["eval/success"]) for r in records if "eval/success" in r]
    steps, values = zip(*evals)
    return list(steps), list(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2, help="Runs in parallel.")
    parser.add_argument("--set", dest="extra", action="append", default=[], help="Config override for every run.")
    parser.add_argument("--root", default="bench/results/train_curves")
    args = parser.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [(est, seed) for seed in seeds for est in ESTIMATOR_CONFIGS]
    with ThreadPoolExecutor(args.jobs) as pool:
        outs = dict(zip(jobs, pool.map(lambda j: run_one(root, j[0], j[1], args.steps, args.extra), jobs)))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    print(f"{'estimator':<8} {'SFT start':>10} {'final':>10} {'final/start':>12}   (eval success, mean ± std over seeds)")
    for est, color in zip(ESTIMATOR_CONFIGS, ("tab:blue", "tab:red")):
        runs = [curves(outs[(est, s)]) for s in seeds]
        steps = runs[0][0]
        values = np.array([r[1] for r in runs])
        for r in runs:
            ax.plot(r[0], r[1], color=color, alpha=0.25, linewidth=1)
        mean, std = values.mean(0), values.std(0)
        ax.plot(steps, mean, color=color, linewidth=2, label=f"{est} (mean of {len(seeds)} seeds)")
        ax.fill_between(steps, mean - std, mean + std, color=color, alpha=0.12)
        start, final = values[:, 0], values[:, -1]
        print(f"{est:<8} {start.mean():>6.3f}±{start.std():.2f} {final.mean():>6.3f}±{final.std():.2f} "
              f"{final.mean() / max(start.mean(), 1e-9):>11.2f}x")
    ax.set_xlabel("RL step")
    ax.set_ylabel("success rate (eval, fixed episodes)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("toy maze: GRPO vs GiGPO from the same SFT start")
    fig.tight_layout()
    path = root / "grpo_vs_gigpo.png"
    fig.savefig(path, dpi=120)
    print(f"plot: {path}")


if __name__ == "__main__":
    main()
