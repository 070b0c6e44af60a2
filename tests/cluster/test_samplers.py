"""Two samplers behind the router on a real two-node Ray cluster: conversation affinity, the
control plane's fan-out, partial rollouts across a weight update (a turn cut mid-decode), a
killed sampler survived and replaced."""

import asyncio
import copy
import sys
import time

import pytest
import torch

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'agentrl[ray]')")

from agentrl.cluster.ray_rollout import ClusterError
from agentrl.cluster.sampler import NoSamplerLeft, Router, SamplerServer
from agentrl.policy import SamplingParams
from agentrl.policy.hf import HFPolicy
from agentrl.rollout import RolloutEngine, group_specs
from agentrl.train.config import load_config
from agentrl.train.sft import run_sft
from agentrl.train.trainer import Trainer, build_model, build_policy
from tests.cluster.conftest import on_cluster
from tests.policy.test_partial import perturbed


def test_the_router_keeps_a_conversation_and_sends_new_ones_to_the_least_bound_server():
    router = Router(2)
    assert [router.pick(k) for k in "abc"] == [0, 1, 0]  # ties go to the lowest index
    assert [router.pick(k) for k in "abc"] == [0, 1, 0]  # each conversation stays on its server
    assert router.pick("d") == 1 and router.bound == [2, 2]
    router.release("a")
    assert router.bound == [1, 2] and router.pick("e") == 0  # the freed server takes the next one
    assert router.mark_dead(0, 0) is True and router.mark_dead(0, 0) is False and router.lost == [(0, 0)]
    assert router.pick("c") == 1 and router.bound == [1, 3]  # c moves off the dead server
    router.mark_dead(1, 0)
    with pytest.raises(NoSamplerLeft, match="no sampler left: all 2 samplers died"):
        router.pick("f")
    router.revive(0, 1)  # slot 0's replacement (generation 1)
    assert router.pick("f") == 0
    assert router.mark_dead(0, 0) is False and router.alive[0]  # a late failure of the server it replaced
    assert router.mark_dead(0, 1) is True and router.lost == [(0, 0), (1, 0), (0, 1)]


def test_on_a_cluster_the_trainer_builds_no_vllm_engine_of_its_own():
    """With model.backend vllm the sampler actors are the vLLM engines; the trainer keeps the
    in-process policy over its model (vLLM is not installed here: building one would fail)."""
    config = load_config(overrides=["model.backend=vllm", "cluster.address=local", "cluster.sampler_gpus=1"])
    model, tokenizer = build_model(config, torch.device("cpu"))
    policy = build_policy(config, model, tokenizer)
    assert isinstance(policy, HFPolicy) and policy.model is model and "vllm" not in sys.modules


# ------------------------------------------------------------------------------ on the cluster
SMALL = ["rollout.group_size=4", "rollout.max_tokens=8", "env.options.max_turns=6"]


@pytest.fixture(scope="module")
def trainer(cluster, tmp_path_factory):
    """A default-config trainer whose rollouts run on 2 env workers and 2 samplers."""
    config = load_config(overrides=[
        f"output_dir={tmp_path_factory.mktemp('samplers')}", "sft.episodes=0", "model.device=cpu", *SMALL,
        *on_cluster(cluster, samplers=2, episodes_per_worker=8, sampler_restarts=1),
    ])
    trainer = Trainer(config, progress=False, log=lambda *_: None)
    # A short warm start: the random tiny model rarely ends a turn; this one plays 5-6 turn episodes.
    run_sft(trainer.learner, trainer.env_factory("train"), trainer.renderer, episodes=16, steps=12, batch_rows=32,
            lr=3e-3, seed=0)
    run(trainer.sync_weights())  # version 1 here and on every sampler
    try:
        yield trainer
    finally:
        trainer.cluster.close()


def run(coro):
    return asyncio.run(coro)


def members(groups):
    return [t for g in groups for t in g.members]


def behaviour_logprobs(model, prompt: list[int], completion: list[int]) -> torch.Tensor:
    """log_softmax(logits / T)[token] of each completion token under ``model`` (T = 1, the default)."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float()
    logp = torch.log_softmax(logits[len(prompt) - 1 : -1], dim=-1)
    return logp.gather(1, torch.tensor(completion)[:, None])[:, 0]


def token_error(prompt, completion, logprobs, versions, models: dict[int, torch.nn.Module]) -> float:
    """The largest gap between a recorded logprob and the one its token's version gives."""
    by_version = {v: behaviour_logprobs(models[v], prompt, completion) for v in set(versions)}
    return max(abs(by_version[v][i].item() - lp) for i, (v, lp) in enumerate(zip(versions, logprobs)))


def max_logprob_error(trajectories, models: dict[int, torch.nn.Module]) -> float:
    """The largest gap, over every token of every step, between its recorded logprob and the
    one its recorded version gives."""
    return max(
        token_error(s.prompt_token_ids, s.completion_token_ids, s.logprobs, s.completion_versions(), models)
        for t in trajectories
        for s in t.steps
    )


@pytest.mark.slow
def test_two_samplers_equal_one_process_and_keep_each_conversation_on_one_server(trainer):
    engine, pool = trainer.engine, trainer.cluster
    local = RolloutEngine(engine.env_factory, trainer.policy, trainer.renderer, engine.config)
    specs = group_specs(3, seed=5)
    here, there = members(run(local.run(specs))), members(run(engine.run(specs)))
    assert [[s.completion_token_ids for s in t.steps] for t in there] == [
        [s.completion_token_ids for s in t.steps] for t in here
    ]  # token for token: seeds fix every turn, whichever server decodes it
    for t in there:
        assert len(t.info["samplers"]) == len(t.steps) and len(set(t.info["samplers"])) == 1  # affinity
    assert {t.info["samplers"][0] for t in there} == {0, 1}  # both servers took conversations
    assert {t.info["env_worker"] for t in there} == {0, 1} and pool.stats["sampler_retries"] == 0


@pytest.mark.slow
def test_pause_resume_and_a_push_reach_every_sampler(trainer):
    pool = trainer.cluster

    async def scenario():
        await pool.push_weights(trainer.model, 5)
        pushed = await pool.sampler_status()
        await pool.pause()
        paused = await pool.sampler_status()
        rollout = asyncio.ensure_future(trainer.engine.run(group_specs(1, seed=7)))
        waiting = 0
        for _ in range(400):  # the requests reach the samplers and wait at the closed gate
            await asyncio.sleep(0.05)
            waiting = sum(s["waiting"] for s in await pool.sampler_status())
            if waiting:
                break
        held = rollout.done()
        await pool.resume()
        return pushed, paused, waiting, held, await rollout, await pool.sampler_status()

    pushed, paused, waiting, held, groups, resumed = run(scenario())
    assert [(s["index"], s["version"], s["paused"]) for s in pushed] == [(0, 5, False), (1, 5, False)]
    assert [s["paused"] for s in paused] == [True, True] and all(s["in_flight"] == 0 for s in paused)
    assert waiting >= 1 and not held  # nothing was decoded while paused
    assert [s["paused"] for s in resumed] == [False, False]
    assert {s.policy_version for t in members(groups) for s in t.steps} == {5}


@pytest.mark.slow
def test_an_episode_in_flight_across_an_update_keeps_its_tokens_and_versions(trainer):
    engine, pool = trainer.engine, trainer.cluster
    old = run(pool.sampler_status())[0]["version"]
    models = {old: copy.deepcopy(trainer.model), old + 1: perturbed(trainer.model, seed=1)}
    run(pool.push_weights(models[old], old))

    async def served() -> int:
        return sum(s["served"] for s in await pool.sampler_status())

    async def scenario():
        start = await served()
        rollout = asyncio.ensure_future(engine.run(group_specs(3, seed=9)))
        while await served() < start + 12:  # about one turn of each of the 12 episodes is done
            await asyncio.sleep(0.01)
        await pool.push_weights(models[old + 1], old + 1)
        return await rollout

    trajectories = members(run(scenario()))
    versions = [[v for s in t.steps for v in s.completion_versions()] for t in trajectories]  # per token
    assert all(v == sorted(v) and set(v) <= {old, old + 1} for v in versions)  # never back to the old weights
    spanning = [t for t, v in zip(trajectories, versions) if len(set(v)) == 2]
    assert spanning, "no episode was in flight across the update"
    assert all(t.status != "infra_error" for t in trajectories)
    # Each recorded logprob is the behaviour logprob of the version recorded with its step ...
    assert max_logprob_error(trajectories, models) < 1e-4
    # ... and labelling the new-weights steps with the old version would be caught.
    swapped = {old: models[old + 1], old + 1: models[old]}
    assert max_logprob_error(spanning, swapped) > 1e-2


@pytest.mark.slow
def test_a_pause_cuts_an_hf_turn_mid_decode_and_it_goes_on_under_the_new_weights(trainer):
    """One SamplerServer actor on the cluster decoding a 30-token turn (each forward slowed to
    40 ms): the pause returns within a few decode steps, not at the turn's end; while paused the
    turn stays in flight and nothing is served; after the load and resume the turn ends with its
    first tokens from the old version and the rest from the new, each logprob that of its own
    version."""
    old, new = perturbed(trainer.model, seed=1), perturbed(trainer.model, seed=2)
    slow = copy.deepcopy(old)
    slow.register_forward_pre_hook(lambda module, args: time.sleep(0.04))
    tokenizer = trainer.tokenizer

    def build():  # pickled by value into the actor (a closure over the model and tokenizer only)
        policy = HFPolicy(slow, tokenizer)
        policy.eos_token_ids = set()  # no early end of turn: the cut always lands inside the turn
        return policy

    server = ray.remote(SamplerServer).options(num_cpus=0, max_restarts=0).remote(0, build)
    prompt = trainer.tokenizer("You are in a grid maze.").input_ids

    async def scenario():
        turn = server.generate.remote(prompt, SamplingParams(max_tokens=30, seed=3))
        while not (await server.status.remote())["in_flight"]:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # about 5 tokens in
        start = time.perf_counter()
        await server.pause.remote()
        pause_s = time.perf_counter() - start
        await asyncio.sleep(0.2)
        paused = await server.status.remote()
        ready, _ = ray.wait([turn], timeout=0)
        await server.load_weights.remote(new.state_dict(), 1)
        await server.resume.remote()
        return await turn, pause_s, paused, bool(ready)

    try:
        completion, pause_s, paused, done_while_paused = run(scenario())
    finally:
        ray.kill(server)
    k = completion.token_versions.count(0)
    assert 0 < k < 30 and completion.token_versions == [0] * k + [1] * (30 - k) and completion.policy_version == 0
    assert pause_s < 0.5  # the turn had (30 - k) x 40 ms of decoding left, about 1 s
    assert paused["paused"] and paused["in_flight"] == 1 and paused["served"] == 0 and not done_while_paused
    args = (prompt, completion.token_ids, completion.logprobs, completion.token_versions)
    assert token_error(*args, {0: old, 1: new}) < 1e-4
    assert token_error(*args, {0: new, 1: old}) > 1e-2  # swapped labels are caught


@pytest.mark.slow
def test_a_killed_sampler_is_survived_and_replaced_and_none_left_is_a_cluster_error(trainer):
    engine, pool = trainer.engine, trainer.cluster
    version = run(pool.sampler_status())[0]["version"]
    model = copy.deepcopy(trainer.model)  # the weights of trainer.policy, the one-process reference
    run(pool.push_weights(model, version))
    retries = pool.stats["sampler_retries"]
    dead = pool.samplers[0]

    async def scenario():
        await pool.pause()
        rollout = asyncio.ensure_future(engine.run(group_specs(2, seed=13)))
        for _ in range(400):  # requests are queued at sampler 0 when it dies
            await asyncio.sleep(0.05)
            if (await dead.status.remote())["waiting"]:
                break
        ray.kill(dead)
        await pool.resume()
        return await rollout

    groups = run(scenario())
    trajectories = members(groups)
    assert [len(g.members) for g in groups] == [4, 4] and len({t.id for t in trajectories}) == 8
    assert all(t.status != "infra_error" and t.info["attempts"] == 1 for t in trajectories)
    moved = sum(t.info["sampler_retries"] for t in trajectories)
    assert moved >= 1 and pool.stats["sampler_retries"] - retries == moved
    assert all(set(t.info["samplers"]) == {1} for t in trajectories)  # every turn ran after the kill
    assert max_logprob_error(trajectories, {version: model}) < 1e-4  # the retried turns are exact
    # Slot 0 holds a new actor, loaded with the last push before it took a request ...
    assert pool.samplers[0] is not dead and pool.samplers_alive == [True, True]
    assert pool.sampler_restarts == [1, 0] and pool.stats["samplers_lost"] == pool.stats["samplers_restarted"] == 1
    assert [(s["index"], s["version"]) for s in run(pool.sampler_status())] == [(0, version), (1, version)]
    assert pool.metrics() == {
        "rollout/sampler_retries": float(pool.stats["sampler_retries"]), "rollout/sampler_restarts": 1.0,
        "rollout/env_worker_restarts": 0.0,
    }
    # ... and serves the next rollout: the version pushed, the tokens of one process (a new actor
    # built but not loaded would decode the start weights as version 0).
    specs = group_specs(2, seed=19)
    after = members(run(engine.run(specs)))
    local = RolloutEngine(engine.env_factory, trainer.policy, trainer.renderer, engine.config)
    assert [[s.completion_token_ids for s in t.steps] for t in after] == [
        [s.completion_token_ids for s in t.steps] for t in members(run(local.run(specs)))
    ]
    assert {t.info["samplers"][0] for t in after} == {0, 1}
    assert {s.policy_version for t in after for s in t.steps} == {version}

    # Both die: slot 0 has no restart left, slot 1 is replaced; the attempts that found no sampler
    # are infra failures, retried once a sampler is back; none lost or duplicated.
    ray.kill(pool.samplers[0])
    ray.kill(pool.samplers[1])
    groups = run(engine.run(group_specs(2, seed=23)))
    trajectories = members(groups)
    assert [len(g.members) for g in groups] == [4, 4] and len({t.id for t in trajectories}) == 8
    assert all(t.status != "infra_error" for t in trajectories)
    assert max(t.info["attempts"] for t in trajectories) >= 2  # the attempts in flight found none
    assert pool.samplers_alive == [False, True] and pool.sampler_restarts == [1, 1]
    assert all(set(t.info["samplers"]) == {1} for t in trajectories)
    assert {s.policy_version for t in trajectories for s in t.steps} == {version}

    ray.kill(pool.samplers[1])  # no restart left anywhere
    with pytest.raises(ClusterError, match="all 2 samplers died"):
        run(engine.run(group_specs(1, seed=17)))
