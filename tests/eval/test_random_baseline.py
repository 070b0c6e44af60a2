"""The random baseline of `agentrl eval run` draws independently for every task.

Episode (task, sample i) resets the env with seed ``seed + i`` for every task (so two agents meet
identical episodes), but the random agent's own choices must not repeat across tasks: with one
stream per sample, every task of sample i got the same draws, and the run's 16 "episodes" were
one random draw seen 16 times (on SearchQA-MultiHop every episode was the same four moves).
"""

import asyncio
import json
import re
from collections import Counter

import pytest

from agentrl.eval.runner import AGENT_DRAWS, AgentSpec, EvalSettings, evaluate, scripted_episode_fn


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


def test_a_run_begun_under_the_per_sample_draws_is_not_resumed_with_new_ones(tmp_path):
    """Runs begun before the agent drew per (seed, task) have no ``agent_draws`` in run.json. Resuming
    a random or sampled one would mix two draw rules in one run (and its retried episodes would not
    draw what their first attempt did), so it is refused; an oracle or greedy run draws nothing and
    resumes as before."""
    def begun_before_the_rule(out):
        run = json.loads((out / "run.json").read_text())
        assert run.pop("agent_draws") == AGENT_DRAWS
        (out / "run.json").write_text(json.dumps(run))

    for kind in ("random", "oracle"):
        settings = EvalSettings(env_id="agentrl/ContextualBandit-v0", agent=AgentSpec(kind=kind), samples_per_task=2)
        out = tmp_path / kind
        asyncio.run(evaluate(settings, scripted_episode_fn(settings), out, 2, False))
        assert len(asyncio.run(evaluate(settings, scripted_episode_fn(settings), out, 2, False))) == 4  # resumes
        begun_before_the_rule(out)
        if kind == "random":
            with pytest.raises(ValueError, match="agent's draws"):
                asyncio.run(evaluate(settings, scripted_episode_fn(settings), out, 2, False))
        else:
            assert len(asyncio.run(evaluate(settings, scripted_episode_fn(settings), out, 2, False))) == 4

    async def play(task_id, seed):
        raise RuntimeError("played")

    # A model sampling at temperature > 0 draws too (refused before any episode); greedy does not.
    for temperature, refusal in ((1.0, pytest.raises(ValueError, match="agent's draws")),
                                 (0.0, pytest.raises(RuntimeError, match="played"))):
        settings = EvalSettings(env_id="agentrl/ContextualBandit-v0",
                                agent=AgentSpec(kind="hf", model="m", temperature=temperature))
        out = tmp_path / f"hf-{temperature}"
        out.mkdir()
        (out / "run.json").write_text(json.dumps(settings.model_dump(mode="json")))
        with refusal:
            asyncio.run(evaluate(settings, play, out, 1, False))
