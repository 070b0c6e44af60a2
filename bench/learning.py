"""Learning curves over seeds on tasks whose answer is known: does training learn, and how fast?

    .venv/bin/python bench/learning.py                                  # every task, seeds 0,1,2
    .venv/bin/python bench/learning.py --tasks contextual_bandit --seeds 0,1,2,3,4
    .venv/bin/python bench/learning.py --tasks calculator --jobs 2               # two runs at once
    .venv/bin/python bench/learning.py --tasks maze --set algo.estimator=grpo --set algo.config={}

Each task is an example config (examples/*.yaml) run for its stated number of RL steps with
every seed; the table gives, per evaluation step, the mean evaluation success over seeds with a
95% t-interval across seeds, beside the task's target, a random policy and the optimum (1.0 on
all of them). Curves go to bench/figures/learning.png, numbers to
bench/results/learning.json; a run of some tasks replaces their entries and keeps the others', so
the figure shows every task run so far.
Run it alone on the machine (``nice``; threads from the config, one per run on 2 cores, so
``--jobs 2`` fills them).
The targets are the ones tests/train/test_learning.py asserts for seed 0.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Task:
    config: str
    steps: int
    target: float  # eval success (sampled) to reach by `steps`
    random: float  # success of a uniformly random valid action
    overrides: tuple[str, ...] = field(default_factory=tuple)


TASKS = {
    # door 2 pays; random valid doors 0.5.
    "bandit": Task("examples/bandit.yaml", steps=10, target=0.8, random=0.5),
    # the paying door depends on the room (one prompt token); ignoring it caps success at 0.5.
    "contextual_bandit": Task("examples/contextual_bandit.yaml", steps=10, target=0.9, random=0.5),
    # the embedded default: 3x3 mazes, 6 turns; random valid moves ~0.15-0.3.
    "maze": Task("examples/default.yaml", steps=40, target=0.8, random=0.2),
    # lookup + calculator tools, then the answer; random actions never answer right (0.0, measured
    # on 16 episodes in the README). The SFT start (~0.4) fails by sampling noise in the JSON.
    "calculator": Task("examples/calculator.yaml", steps=20, target=0.8, random=0.0),
}


# Student's t, two-sided 95%, by degrees of freedom (1.96 beyond the table).
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def t_interval(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval across seeds (0 for a single seed)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, T975.get(n - 1, 1.96) * sd / math.sqrt(n)


def run_one(task: Task, seed: int, extra: list[str]) -> dict:
    from agentrl.train.config import load_config
    from agentrl.train.trainer import Trainer

    with tempfile.TemporaryDirectory() as out:
        config = load_config(
            ROOT / task.config,
            overrides=[*task.overrides, f"steps={task.steps}", f"seed={seed}", f"output_dir={out}",
                       "tensorboard=false", f"checkpoint.every={task.steps}", *extra],
        )
        start = time.perf_counter()
        summary = Trainer(config, progress=False, log=lambda *_: None).run()
        seconds = time.perf_counter() - start
        records = [json.loads(line) for line in Path(summary["metrics"]).read_text().splitlines()]
    evals = [r for r in records if "eval/success" in r]
    return {
        "seed": seed,
        "seconds": seconds,
        "steps": [r["step"] for r in evals],
        "success": [r["eval/success"] for r in evals],
        "greedy": [r.get("eval/greedy_success") for r in evals],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override for every run")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once (one torch thread each is the default)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "learning.json"))
    parser.add_argument("--figure", default=str(ROOT / "bench" / "figures" / "learning.png"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    # The tasks not rerun keep their last results (file and figure show every task run so far).
    results = json.loads(out.read_text()) if out.exists() else {}
    names = args.tasks.split(",")
    with ProcessPoolExecutor(args.jobs) as pool:  # a process per run: each sets its own torch threads
        futures = {(name, seed): pool.submit(run_one, TASKS[name], seed, args.overrides) for name in names for seed in seeds}
    for name in names:
        task = TASKS[name]
        runs = [futures[name, seed].result() for seed in seeds]
        results[name] = {"task": task.__dict__ | {"overrides": list(task.overrides)}, "runs": runs}
        print(f"\n{name}: {task.config}, {task.steps} RL steps, target {task.target:.2f}, "
              f"random {task.random:.2f}, optimum 1.00; {len(seeds)} seeds, "
              f"{sum(r['seconds'] for r in runs) / len(runs):.0f} s per run")
        print(f"  {'step':>4}  {'sampled (mean ± 95%)':>22}  {'greedy':>16}")
        for i, step in enumerate(runs[0]["steps"]):
            mean, half = t_interval([r["success"][i] for r in runs])
            greedy = [r["greedy"][i] for r in runs if r["greedy"][i] is not None]
            g = "{:.3f} ± {:.3f}".format(*t_interval(greedy)) if greedy else "-"
            print(f"  {step:>4}  {mean:>13.3f} ± {half:.3f}  {g:>16}")
        final = [r["success"][-1] for r in runs]
        print(f"  final ≥ target in {sum(f >= task.target for f in final)}/{len(final)} seeds: {final}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    plot(results, Path(args.figure))
    print(f"\n{out}\n{args.figure}")
    return 0


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(4 * len(results), 3.4), squeeze=False)
    for ax, (name, result) in zip(axes[0], results.items()):
        runs, task = result["runs"], result["task"]
        steps = runs[0]["steps"]
        for key, label, color in (("success", "sampled", "C0"), ("greedy", "greedy", "C3")):
            if any(v is None for r in runs for v in r[key]):
                continue
            stats = [t_interval([r[key][i] for r in runs]) for i in range(len(steps))]
            mean = [m for m, _ in stats]
            ax.plot(steps, mean, marker="o", markersize=3, color=color, label=f"eval {label}")
            low, high = [max(0.0, m - h) for m, h in stats], [min(1.0, m + h) for m, h in stats]
            ax.fill_between(steps, low, high, color=color, alpha=0.15)
        ax.axhline(task["target"], color="k", ls="--", lw=0.8, label="target")
        ax.axhline(task["random"], color="0.5", ls=":", lw=0.8, label="random")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{name} ({len(runs)} seeds, 95% t-interval)", fontsize=9)
        ax.set_xlabel("RL step")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("success")
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
