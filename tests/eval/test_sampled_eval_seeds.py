"""A sampled model eval (`--temperature > 0`) draws from the seed of each (task, sample).

Before, the model sampled from the policy's one shared generator: `--seed` changed nothing the
model did, and which tokens an episode got depended on how the concurrent episodes happened to be
batched (`--concurrency 1` and the default 8 gave different runs), so a sampled run could not be
reproduced, and an interrupted one resumed with draws unrelated to the first part.
"""

import asyncio

from agentrl.eval.agents import build_runner
from agentrl.eval.runner import AgentSpec, EvalSettings, evaluate


def sampled_tokens(model_dir, out_dir, *, seed: int, concurrency: int) -> dict:
    settings = EvalSettings(
        env_id="agentrl/Maze-v0", agent=AgentSpec(kind="hf", model=str(model_dir), temperature=1.0, max_tokens=6),
        samples_per_task=2, max_tasks=3, seed=seed,
    )

    async def run():
        runner = build_runner(settings)
        try:
            return await evaluate(settings, runner.play, out_dir, concurrency, False)
        finally:
            await runner.aclose()

    runs = asyncio.run(run())
    assert len(runs) == 6 and all(t.status != "infra_error" for t in runs)
    return {(t.task_id, t.info["sample"]): [s.completion_token_ids for s in t.steps] for t in runs}


def test_sampled_eval_depends_on_the_seed_not_on_batching(model_dir, tmp_path):
    one_at_a_time = sampled_tokens(model_dir, tmp_path / "c1", seed=0, concurrency=1)
    batched = sampled_tokens(model_dir, tmp_path / "c6", seed=0, concurrency=6)
    assert batched == one_at_a_time  # same (task, sample) -> same tokens, however the episodes were batched
    other_seed = sampled_tokens(model_dir, tmp_path / "s1", seed=1, concurrency=6)
    # --seed 1: every episode draws from another stream (6-token turns of a random-init model:
    # two streams agreeing on an episode's first turn is vanishingly unlikely).
    assert all(other_seed[key][0] != batched[key][0] for key in batched)
