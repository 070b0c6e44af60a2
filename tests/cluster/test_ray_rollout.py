"""Rollouts on a real two-node Ray cluster started on this machine (``ray.cluster_utils.Cluster``):
the same tokens and losses as one process, a killed env worker survived and replaced, bad input
caught early."""

import asyncio
import json
import socket

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'agentrl[ray]')")

from click.testing import CliRunner

from agentrl.cli import main
from agentrl.cluster import ClusterConfig
from agentrl.cluster.learner import place_learners
from agentrl.cluster.ray_rollout import ClusterError, connect, place
from agentrl.rollout import group_specs
from agentrl.train.config import TrainConfig, load_config
from agentrl.train.trainer import Trainer
from tests.cluster.conftest import on_cluster

pytestmark = pytest.mark.slow


def make_trainer(tmp_path, overrides):
    config = load_config(overrides=[f"output_dir={tmp_path}", "sft.episodes=0", "model.device=cpu", *overrides])
    return Trainer(config, progress=False, log=lambda *_: None)


def train_steps(trainer, steps: int):
    """``steps`` RL steps (rollout → advantages → update → weight sync): tokens, versions, records."""

    async def run():
        out = []
        for step in range(1, steps + 1):
            batch, *_ = await trainer.rollout(step)
            trajectories = [t for g in batch.groups for t in g.members]
            record = trainer.update(batch)
            await trainer.sync_weights()
            out.append(
                {
                    "tokens": [[s.completion_token_ids for s in t.steps] for t in trajectories],
                    "versions": {s.policy_version for t in trajectories for s in t.steps},
                    "workers": {t.info.get("env_worker") for t in trajectories},
                    "record": record,
                }
            )
        await trainer.policy.aclose()
        return out

    try:
        return asyncio.run(run())
    finally:
        if trainer.cluster is not None:
            trainer.cluster.close()


def test_default_config_on_two_env_workers_matches_one_process(cluster, tmp_path):
    local = train_steps(make_trainer(tmp_path / "local", []), steps=2)
    remote = train_steps(make_trainer(tmp_path / "ray", on_cluster(cluster)), steps=2)
    assert not ray.is_initialized()  # the trainer disconnected; the cluster itself stays up
    default = TrainConfig().rollout
    for step, (a, b) in enumerate(zip(local, remote), start=1):
        assert len(a["tokens"]) == default.groups_per_step * default.group_size  # the default's episodes
        assert b["tokens"] == a["tokens"]  # token for token, step 2 sampled with the pushed weights
        assert a["versions"] == b["versions"] == {step - 1}  # every token records its policy version
        assert a["workers"] == {None} and b["workers"] == {0, 1}  # both env workers played episodes
        for key in ("train/loss", "adv/mean", "adv/abs_mean", "adv/nonzero_frac", "train/trained_tokens"):
            assert b["record"][key] == pytest.approx(a["record"][key], rel=1e-5, abs=1e-7), key


def test_a_killed_env_worker_loses_and_duplicates_no_episode_and_is_replaced(cluster, tmp_path):
    overrides = ["rollout.group_size=4", "rollout.max_tokens=8", "env.options.max_turns=4"]
    trainer = make_trainer(tmp_path, [*overrides, *on_cluster(cluster, episodes_per_worker=4)])
    engine, pool = trainer.engine, trainer.cluster
    specs = group_specs(3, seed=11)

    async def run():
        rollout = asyncio.ensure_future(engine.run(specs))
        while pool.load[0] == 0:  # worker 0 has attempts in flight
            await asyncio.sleep(0.005)
        in_flight, dead = pool.load[0], pool.workers[0]
        ray.kill(dead)
        groups, stats = await rollout, dict(engine.stats)
        replaced = pool.workers[0] is not dead
        return in_flight, groups, stats, replaced, await engine.run(group_specs(2, seed=12))

    try:
        in_flight, groups, stats, replaced, after = asyncio.run(run())
    finally:
        pool.close()
    members = [t for g in groups for t in g.members]
    assert [len(g.members) for g in groups] == [4, 4, 4]  # none lost
    assert len({t.id for t in members}) == 12  # none duplicated
    assert all(t.group_id == g.group_id and t.seed == g.spec.seed for g in groups for t in g.members)
    assert all(t.status != "infra_error" for t in members)  # each retry succeeded
    retried = [t for t in members if t.info["attempts"] > 1]
    assert in_flight >= 1 and len(retried) >= 1
    assert stats["infra_errors"] == stats["retries"] == sum(t.info["attempts"] - 1 for t in members)
    assert stats["attempts"] == 12 + stats["infra_errors"]
    # worker 0 was replaced by a new actor in its bundle, which plays episodes again
    assert replaced and pool.alive == [True, True] and pool.restarts == [1, 0]
    assert pool.stats["workers_lost"] == pool.stats["workers_restarted"] == 1
    assert {t.info["env_worker"] for g in after for t in g.members} == {0, 1}


def test_a_one_step_off_run_end_to_end_on_the_cluster(cluster, tmp_path):
    """``Trainer.run``: warm start, eval and RL steps on the env workers, a push per update, and
    the actors and the connection gone at the end."""
    small = ["steps=2", "mode=one_step_off", "rollout.groups_per_step=2", "rollout.group_size=2",
             "rollout.max_tokens=8", "env.options.max_turns=3", "eval.episodes=2", "eval.greedy=false"]
    trainer = make_trainer(tmp_path, [*small, *on_cluster(cluster)])
    summary = trainer.run()
    assert summary["steps"] == 2 and not ray.is_initialized()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [0, 1, 2]
    assert [r.get("policy_version") for r in records[1:]] == [1, 2]
    assert records[2]["rollout/staleness"] <= 1 and records[2]["rollout/infra_errors"] == 0
    assert records[2]["rollout/sampler_retries"] == records[2]["rollout/env_worker_restarts"] == 0  # cluster counters
    assert "eval/success" in records[2]


def test_too_few_cpus_and_unplaceable_bundles_are_named(cluster):
    assert connect(ClusterConfig(address=cluster.address)) is True
    try:
        with pytest.raises(ClusterError, match=r"needs 5 CPUs \(4 env workers x 1 \+ 1 samplers x 1\) but the cluster has 2"):
            place(ClusterConfig(address=cluster.address, env_workers=4))
        unplaceable = ClusterConfig(
            address=cluster.address, env_workers=1, env_worker_cpus=1.5, sampler_cpus=0.5, placement_timeout_s=2
        )
        with pytest.raises(ClusterError, match=r"could not be placed within 2s .* a bundle must fit on one node"):
            place(unplaceable)
        big_ranks = ClusterConfig(address=cluster.address, learner_ranks=2, learner_cpus=1.5, placement_timeout_s=2)
        with pytest.raises(ClusterError, match=r"learner placement group \(2 x \{'CPU': 1.5\}\) could not be placed within 2s"):
            place_learners(big_ranks)
    finally:
        ray.shutdown()


def test_an_address_that_does_not_answer_is_one_line_before_any_work(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = CliRunner().invoke(
        main, ["train", "--set", f"cluster.address=127.0.0.1:{port}", "--set", f"output_dir={tmp_path}"]
    )
    assert result.exit_code != 0
    assert f"cluster.address 127.0.0.1:{port}: nothing answers there" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "metrics.jsonl").exists()
