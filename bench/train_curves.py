"""Estimators or training modes compared on the toy maze from the same SFT start: eval success over seeds, one PNG.

Each (entry, seed) run is the embedded default (tiny model, SFT warm start on oracle
demonstrations, then RL on the 3x3 maze) with only the overrides of its entry in ``CONFIGS``
changed; runs with the same seed share a bit-identical warm start (the SFT is deterministic) and
the same eval episodes, so the curves differ only by the entry. Every estimator gets the same
reward shaping: the invalid-action penalty (−0.1 per invalid step, a step reward before
discounting). For GiGPO that is its own ``penalty_mode:
discounted`` (the embedded default), which is the ``invalid_action_penalty`` shaper applied
before it (the same function; advantages equal to 0.0); the others get the shaper.

    .venv/bin/python bench/train_curves.py --estimators grpo,gigpo --seeds 0,1,2,3,4 --steps 30 \
        --set eval.every=10 --set eval.episodes=256

Modes: ``gigpo_async`` is ``gigpo`` with ``mode: async``, ``rollout.max_staleness: 2`` and
``loss.off_policy: tis`` (``gigpo_async_none``: no correction), so ``--estimators
gigpo,gigpo_async`` compares async training with its off-policy correction against sync. An async
run is not reproducible to the bit the way a sync one is: which groups finish first, and so how
stale each trained group is, depends on timing; its warm start and eval episodes are the same.
On the maze, 5 seeds: async is −0.097 ± 0.077 behind sync at step 30 (sampled, paired); see
agentrl/train/README.md and bench/figures/sync_vs_async.png.

Per estimator and evaluation step the table gives the mean over seeds with its 95% t-interval,
sampled (at ``eval.temperature``) and greedy; then the difference of each later estimator from
the first, paired by seed (same warm start, same eval episodes), with its 95% t-interval. One
256-episode estimate near p = 0.7 has a standard error of ≈ 0.03. ``tree_grpo`` grows 3 trees
per task with 3 expansions each (≈ the generated tokens of 8 chains on the maze: 3 chains + 9
half-suffixes); the table prints each run's generated tokens so the budgets can be checked.
Runs go to <root>/<entry>-s<seed>/ (metrics.jsonl, config.yaml, wall.json with the wall time,
the load average before and after and its mean during the run); a finished run is reused, an
interrupted one resumed.
Numbers to <root>/<a>_vs_<b>.json, the figure to --figure (default <root>/<a>_vs_<b>.png).
Run it alone on the machine: one training run at a time (--jobs 1), under ``nice``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from statistics import mean

from learning import t_interval  # bench/learning.py, beside this script (on sys.path when run as a script)

PENALTY = "algo.shapers=[{name: invalid_action_penalty, config: {coef: 0.1}}]"
GIGPO = ["algo.estimator=gigpo", "algo.config={penalty_mode: discounted}", "algo.shapers=[]"]
ASYNC = ["mode=async", "rollout.max_staleness=2"]
CONFIGS = {
    "grpo": ["algo.estimator=grpo", "algo.config={}", PENALTY],
    "gigpo": GIGPO,
    "tree_grpo": [
        "algo.estimator=tree_grpo", "algo.config={}", PENALTY,
        "rollout.tree={num_trees: 3, rounds: 1, expansions_per_round: 3}",
    ],
    "gigpo_async": [*GIGPO, *ASYNC, "loss.off_policy=tis"],
    "gigpo_async_none": [*GIGPO, *ASYNC, "loss.off_policy=none"],
}


def run_one(root: Path, estimator: str, seed: int, steps: int, extra: list[str]) -> Path:
    out = root / f"{estimator}-s{seed}"
    if (out / "final").exists():
        return out  # finished earlier
    cmd = [sys.executable, "-m", "agentrl", "train", "--no-progress", "--output-dir", str(out), "--steps", str(steps)]
    for override in [f"seed={seed}", *CONFIGS[estimator], "tensorboard=false", *extra]:
        cmd += ["--set", override]
    if (out / "checkpoints").exists():
        cmd.append("--resume")
    load_before, start, loads = os.getloadavg(), time.time(), []
    with open(root / f"{estimator}-s{seed}.log", "a") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        while True:  # the 1-minute load average every 10 s, to read the wall time against
            loads.append(os.getloadavg()[0])
            try:
                proc.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                pass
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    wall = {"seconds": time.time() - start, "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
            "loadavg_mean": sum(loads) / len(loads)}
    (out / "wall.json").write_text(json.dumps(wall))
    return out


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]


def run_result(out: Path) -> dict:
    recs = records(out)
    evals = [r for r in recs if "eval/success" in r]
    wall = json.loads((out / "wall.json").read_text()) if (out / "wall.json").exists() else {}
    return {
        "steps": [r["step"] for r in evals],
        "sampled": [r["eval/success"] for r in evals],
        "greedy": [r["eval/greedy_success"] for r in evals],
        "episodes": evals[0]["eval/episodes"],
        "tokens": sum(r.get("rollout/tokens", 0.0) for r in recs),  # policy tokens the RL rollouts generated
        "staleness": mean([r.get("rollout/staleness_mean", 0.0) for r in recs if "rollout/tokens" in r]),
        **wall,
    }


def load(run: dict) -> float:
    """The mean load during the run (runs before that was sampled: the mean of before and after)."""
    return run["loadavg_mean"] if "loadavg_mean" in run else (run["loadavg_before"][0] + run["loadavg_after"][0]) / 2


def fmt(values: list[float]) -> str:
    return "{:.3f} ± {:.3f}".format(*t_interval(values))


def report(results: dict[str, dict[int, dict]]) -> None:
    estimators = list(results)
    first = results[estimators[0]]
    seeds = list(first)
    steps = first[seeds[0]]["steps"]
    episodes = int(first[seeds[0]]["episodes"])
    print(f"eval success, mean ± 95% t-interval over {len(seeds)} seeds ({seeds}), {episodes} episodes per point")
    print(f"{'run':<16} {'step':>4}  {'sampled':>15}  {'greedy':>15}   per seed (sampled / greedy)")
    for est, runs in results.items():
        for i, step in enumerate(steps):
            per_seed = ", ".join(f"{runs[s]['sampled'][i]:.3f}/{runs[s]['greedy'][i]:.3f}" for s in seeds)
            print(f"{est:<16} {step:>4}  {fmt([runs[s]['sampled'][i] for s in seeds]):>15}  "
                  f"{fmt([runs[s]['greedy'][i] for s in seeds]):>15}   {per_seed}")
        tokens = mean([runs[s]["tokens"] for s in seeds])
        staleness = mean([runs[s]["staleness"] for s in seeds])
        walls = ", ".join(f"s{s} {runs[s]['seconds']:.0f} s (load {load(runs[s]):.1f})" for s in seeds if "seconds" in runs[s])
        print(f"{est:<16} RL tokens generated per run {tokens:.0f}, mean staleness {staleness:.2f} versions; "
              f"wall time (mean 1-min load average during the run) {walls or 'not recorded'}")
    for est in estimators[1:]:
        print(f"{est} − {estimators[0]}, paired by seed (mean ± 95% t-interval):")
        for i, step in enumerate(steps):
            diff = {key: [results[est][s][key][i] - first[s][key][i] for s in seeds] for key in ("sampled", "greedy")}
            print(f"  step {step:>3}  sampled {fmt(diff['sampled']):>16}   greedy {fmt(diff['greedy']):>16}")


def plot(results: dict[str, dict[int, dict]], path: Path) -> None:
    """Sampled and greedy eval success (mean, 95% band, thin per-seed lines), then the paired differences."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = dict(zip(results, ("tab:blue", "tab:red", "tab:green")))
    first, *others = results
    seeds = list(results[first])
    steps = results[first][seeds[0]]["steps"]
    episodes = int(results[first][seeds[0]]["episodes"])

    def band(ax, series: list[list[float]], color: str, label: str, low: float = 0.0) -> None:
        stats = [t_interval([s[i] for s in series]) for i in range(len(steps))]
        mean = [m for m, _ in stats]
        ax.plot(steps, mean, color=color, linewidth=2, marker="o", markersize=3, label=label)
        ax.fill_between(steps, [max(low, m - h) for m, h in stats], [min(1.0, m + h) for m, h in stats],
                        color=color, alpha=0.15)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key in zip(axes, ("sampled", "greedy")):
        for est, runs in results.items():
            for s in seeds:
                ax.plot(steps, runs[s][key], color=colors[est], alpha=0.25, linewidth=1)
            band(ax, [runs[s][key] for s in seeds], colors[est], f"{est} (mean of {len(seeds)} seeds)")
        ax.set_title(f"eval success, {key} ({episodes} episodes per point)", fontsize=9)
        ax.set_ylim(-0.02, 1.02)
    diff_ax = axes[2]
    for est in others:
        for key, style in (("sampled", "-"), ("greedy", "--")):
            series = [[a - b for a, b in zip(results[est][s][key], results[first][s][key])] for s in seeds]
            band(diff_ax, series, colors[est], f"{est} − {first}, {key}", low=-1.0)
            diff_ax.lines[-1].set_linestyle(style)
    diff_ax.axhline(0.0, color="k", lw=0.8)
    diff_ax.set_title("paired difference by seed (same warm start)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    axes[0].set_ylabel("success rate (bands: 95% t-interval over seeds)", fontsize=8)
    fig.suptitle(f"toy maze: {' vs '.join(results)} from the same SFT start", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--estimators", default="grpo,gigpo", help=f"Two or more of {', '.join(CONFIGS)}.")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=1, help="Runs in parallel (1 on a shared machine).")
    parser.add_argument("--set", dest="extra", action="append", default=[], help="Config override for every run.")
    parser.add_argument("--root", default="bench/results/train_curves")
    parser.add_argument("--figure", default=None, help="Where the PNG goes (default: <root>/<a>_vs_<b>.png).")
    args = parser.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    estimators = args.estimators.split(",")
    jobs = [(est, seed) for seed in seeds for est in estimators]
    with ThreadPoolExecutor(args.jobs) as pool:
        outs = dict(zip(jobs, pool.map(lambda j: run_one(root, j[0], j[1], args.steps, args.extra), jobs)))
    results = {est: {s: run_result(outs[(est, s)]) for s in seeds} for est in estimators}
    report(results)
    name = "_vs_".join(estimators)
    (root / f"{name}.json").write_text(json.dumps(results, indent=1))
    figure = Path(args.figure) if args.figure else root / f"{name}.png"
    plot(results, figure)
    print(f"numbers: {root / f'{name}.json'}\nplot: {figure}")


if __name__ == "__main__":
    main()
