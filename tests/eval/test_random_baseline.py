"""The random baseline of `agentrl eval run` draws independently for every task.

Episode (task, sample i) resets the env with seed ``seed + i`` for every task (so two agents meet
identical episodes), but the random agent's own choices must not repeat across tasks: with one
stream per sample, every task of sample i got the same draws, and the run's 16 "episodes" were
one random draw seen 16 times (on SearchQA-MultiHop every episode was the same four moves).
"""

import asyncio
import re
from collections import Counter

from agentrl.eval.runner import AgentSpec, EvalSettings, evaluate, scripted_episode_fn


def test_random_agent_draws_per_task_not_once_per_sample(tmp_path):
    # 9 rooms x 9 doors: each room pays on a different door (9 - (r - 1) % 9), 20 samples per room.
    settings = EvalSettings(env_id="agentrl/ContextualBandit-v0", agent=AgentSpec(kind="random"),
                            samples_per_task=20, env_options={"rooms": 9, "doors": 9})
    runs = asyncio.run(evaluate(settings, scripted_episode_fn(settings), tmp_path, 4, False))
    assert len(runs) == 9 * 20 and all(t.status != "infra_error" for t in runs)
    doors: dict[int, set[int]] = {}
    for t in runs:
        doors.setdefault(t.info["sample"], set()).add(int(re.fullmatch(r"door\[(\d)\]", t.steps[0].action)[1]))
    # One stream per sample: the 9 rooms of a sample all opened the same door (20 sets of size 1).
    # Independent draws: all 9 alike has probability 9 * 9**-9 ~ 2e-8 per sample.
    assert all(len(opened) > 1 for opened in doors.values()), doors
    # With one door per sample exactly one room paid in every sample: 20 of 180, no spread at all.
    # Independent: successes per sample are Binomial(9, 1/9), so they cannot all be 1.
    per_sample = Counter(t.info["sample"] for t in runs if t.success)
    assert {per_sample.get(s, 0) for s in range(20)} != {1}
