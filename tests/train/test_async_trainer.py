"""mode async end to end (tiny model, the maze): the metrics, dynamic sampling, and a stop after a
checkpoint with buffered groups that resumes losing and duplicating no group."""

import asyncio
import json
import time

import pytest
import torch

from agentrl.rollout import Group, GroupSpec
from agentrl.train.config import load_config
from agentrl.train.trainer import Trainer, informative
from agentrl.types import Trajectory

from .test_trainer import write_config


def traj(reward, status="ok"):
    return Trajectory(task_id="t", final_reward=reward, status=status)


def group(*members):
    return Group(spec=GroupSpec(seed=0), members=list(members))


def test_informative_groups_use_valid_members_only():
    assert informative(group(traj(1.0), traj(0.0)))
    assert not informative(group(traj(1.0), traj(1.0), traj(1.0)))
    assert not informative(group(traj(0.0), traj(0.0)))
    # A masked member (its reward stands at 0) neither makes a group informative ...
    assert not informative(group(traj(1.0), traj(1.0), traj(0.0, "infra_error")))
    # ... nor hides the signal of the valid ones.
    assert informative(group(traj(1.0), traj(0.0), traj(1.0, "infra_error")))
    assert not informative(group(traj(1.0), traj(0.0, "infra_error")))  # one valid member: no signal


def trainer(tmp_path, **changes):
    config = load_config(write_config(tmp_path, mode="async", tensorboard=False, **changes))
    t = Trainer(config, progress=False, log=lambda *_: None)
    taken: list[str] = []
    take = t.take

    async def recording(stream):
        batch, seconds, skipped = await take(stream)
        taken.extend(g.group_id for g in batch.groups)
        return batch, seconds, skipped

    t.take = recording
    return t, taken


def records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_async_trains_within_the_staleness_bound(tmp_path):
    t, taken = trainer(tmp_path, steps=3, loss={"kl_coef": 0.1, "off_policy": "decoupled"})
    t.run()
    rl = [r for r in records(tmp_path / "run") if r["step"] > 0]
    assert [r["step"] for r in rl] == [1, 2, 3] and rl[-1]["policy_version"] == 3
    assert len(taken) == len(set(taken)) == 3 * 2
    for r in rl:
        assert r["rollout/staleness_max"] <= 2 and r["rollout/staleness"] <= 2
        assert abs(sum(v for k, v in r.items() if k.startswith("rollout/staleness_hist/")) - 1.0) < 1e-9
        assert {"train/is_weight_mean", "train/is_weight_max", "train/is_capped_frac", "train/behav_prox_kl"} <= r.keys()
    assert rl[0]["train/behav_prox_kl"] == pytest.approx(0.0, abs=1e-6)  # step 1: all sampled by version 0
    assert (tmp_path / "run" / "checkpoints" / "step_00000003" / "rollout_buffer.json").exists()


@pytest.mark.slow
def test_dynamic_sampling_skips_groups_without_signal(tmp_path):
    t, taken = trainer(tmp_path, steps=2, rollout={"groups_per_step": 2, "group_size": 2, "max_tokens": 8,
                                                    "dynamic_sampling": True, "dynamic_sampling_max_draws": 4})
    t.run()
    rl = [r for r in records(tmp_path / "run") if r["step"] > 0]
    assert all(0 <= r["rollout/skipped_groups"] <= 6 for r in rl)
    # The maze's random tiny policy mostly fails: most groups are all-0 and are skipped.
    assert sum(r["rollout/skipped_groups"] for r in rl) > 0
    assert len(taken) == 4


def hold_the_stop_until_a_group_is_buffered(t, timeout=120.0):
    """Make the final evaluation (the last thing before the final checkpoint) wait until the
    stream holds a finished, untaken group. The stream admits in the background, so without the
    wait the tiny 2-episode evaluation can end, and the stop be saved, before the pump has admitted
    (bound 0: not before the last step's version) or finished any group."""
    evaluate = t.evaluate

    async def evaluate_then_wait():
        record = await evaluate()
        if t.stream is not None and t.step == t.config.steps:
            deadline = time.monotonic() + timeout
            while not any(e["members"] is not None for e in t.stream.state()["entries"]):
                assert time.monotonic() < deadline, f"no group finished in the stream within {timeout} s"
                await asyncio.sleep(0.01)  # the rollouts run on this loop
        return record

    t.evaluate = evaluate_then_wait


def consumed_and_buffered(tmp_path, bound, split):
    """Consumed group ids of a 4-step async run, uninterrupted (split None) or stopped after the
    checkpoint of step ``split`` and resumed; and the ids left in the final buffer."""
    tmp_path.mkdir()
    changes = {"rollout": {"groups_per_step": 2, "group_size": 2, "max_tokens": 8, "max_staleness": bound}}
    if split is None:
        t, taken = trainer(tmp_path, steps=4, **changes)
        t.run()
    else:
        t, taken = trainer(tmp_path, steps=split, **changes)
        hold_the_stop_until_a_group_is_buffered(t)
        t.run()
        state = json.loads((tmp_path / "run" / "checkpoints" / f"step_{split:08d}" / "rollout_buffer.json").read_text())
        assert any(e["members"] is not None for e in state["entries"]), "the stop must leave a finished group in the buffer"
        first = list(taken)
        t, taken = trainer(tmp_path, steps=4, **changes)
        t.run(resume=True)
        assert not set(first) & set(taken)  # nothing trained twice
        taken = first + taken
    final = json.loads((tmp_path / "run" / "checkpoints" / "step_00000004" / "rollout_buffer.json").read_text())
    return taken, [e["spec"]["group_id"] for e in final["entries"]], final["drawn"]


@pytest.mark.slow
def test_resume_with_buffered_groups_loses_and_duplicates_nothing(tmp_path):
    # Bound 0: each step trains exactly the groups admitted at its version, so the consumed set
    # is a function of the seed: the interrupted run's equals the uninterrupted run's.
    straight, _, _ = consumed_and_buffered(tmp_path / "a", 0, None)
    resumed, _, _ = consumed_and_buffered(tmp_path / "b", 0, 2)
    assert sorted(resumed) == sorted(straight) == [f"g{i:07d}" for i in range(8)]
    # Bound 2: which groups finish first depends on timing, but every drawn spec is trained
    # exactly once or still in the final buffer (finished or rolling out), across the stop.
    taken, left, drawn = consumed_and_buffered(tmp_path / "c", 2, 2)
    assert len(taken) == len(set(taken)) == 8 and not set(taken) & set(left)
    assert sorted(taken + left) == [f"g{i:07d}" for i in range(drawn)]


def test_the_overlapping_sampler_decodes_from_its_own_copy_until_the_sync(tmp_path):
    t, _ = trainer(tmp_path, steps=1)
    assert t.sampler_model is not t.model and t.policy.model is t.sampler_model
    learner, sampler = next(t.model.parameters()), next(t.sampler_model.parameters())
    with torch.no_grad():
        learner.add_(1.0)  # an optimizer step of the learner, mid-rollout
    assert not torch.equal(learner, sampler) and t.policy.policy_version == 0  # rollouts still see version 0
    asyncio.run(t.sync_weights())
    assert torch.equal(learner, sampler) and t.policy.policy_version == 1
