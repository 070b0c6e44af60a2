"""``mode: async`` on the real two-node cluster of ``conftest.py``: the group stream drives the
env workers and samplers, pushes land while episodes are in flight, and the staleness bound,
the recorded versions and the rollout buffer hold as in one process."""

import json

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'agentrl[ray]')")

from agentrl.train.config import load_config
from agentrl.train.trainer import Trainer
from tests.cluster.conftest import on_cluster


@pytest.mark.slow
def test_async_on_the_cluster_keeps_the_staleness_bound_and_every_group(cluster, tmp_path):
    """3 async steps at max_staleness 1 (2 groups a step, so up to 4 admitted at a version): every
    consumed group is at most 1 version old and the groups admitted with the first ones are exactly
    1 old; every turn's version was pushed before it (never decreasing in an episode); consumed +
    buffered group ids are the drawn ones, each once, with all its members."""
    small = ["steps=3", "mode=async", "rollout.max_staleness=1", "rollout.groups_per_step=2",
             "rollout.group_size=2", "rollout.max_tokens=8", "env.options.max_turns=3", "sft.episodes=0",
             "eval.episodes=2", "eval.greedy=false", "loss.off_policy=tis"]
    config = load_config(overrides=[f"output_dir={tmp_path}", "model.device=cpu", *small, *on_cluster(cluster)])
    trainer = Trainer(config, progress=False, log=lambda *_: None)
    pushed: list[int] = []  # versions, in push order
    push = trainer.cluster.push_weights

    async def recording_push(weights, version):
        await push(weights, version)
        pushed.append(version)

    trainer.cluster.push_weights = recording_push
    consumed: list[tuple[str, int, list[list[int]]]] = []  # group id, version it was trained at, members' turn versions
    take = trainer.take

    async def recording_take(stream):
        batch, seconds, skipped = await take(stream)
        for g in batch.groups:
            assert len(g.members) == 2 and all(t.status != "infra_error" for t in g.members), g.group_id
            versions = [[s.policy_version for s in t.steps] for t in g.members]
            consumed.append((g.group_id, trainer.policy.policy_version, versions))
        return batch, seconds, skipped

    trainer.take = recording_take
    summary = trainer.run()
    assert summary["steps"] == 3 and not ray.is_initialized()
    assert pushed == [1, 2, 3]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("policy_version") for r in records[1:]] == [1, 2, 3]
    assert all(r["rollout/staleness_max"] <= 1 and r["rollout/infra_errors"] == 0 for r in records[1:])
    staleness = []
    for group_id, trained_at, members in consumed:
        for turns in members:
            assert turns == sorted(turns) and set(turns) <= {0, *pushed[:trained_at]}, (group_id, turns)
        staleness.append(trained_at - min(min(turns) for turns in members))
    assert [v for _, v, _ in consumed] == [0, 0, 1, 1, 2, 2] and max(staleness) <= 1
    # Admission let 4 groups start at version 0; the 2 not trained at step 1 are due at step 2.
    assert staleness[2:4] == [1, 1]
    buffer = json.loads((tmp_path / "checkpoints" / "step_00000003" / "rollout_buffer.json").read_text())
    ids = [g for g, _, _ in consumed]
    left = [e["spec"]["group_id"] for e in buffer["entries"]]
    assert len(ids) == len(set(ids)) == 6 and not set(ids) & set(left)
    assert sorted(ids + left) == [f"g{i:07d}" for i in range(buffer["drawn"])]
