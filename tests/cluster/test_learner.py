"""The learner as a torch.distributed group of Ray actors (2 ranks, gloo, FSDP2) on the real
two-node cluster of ``conftest.py``: the same step as one process, the default config's numbers,
a killed rank survived, bad input caught before any work."""

import copy
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'agentrl[ray]')")

from click.testing import CliRunner

from agentrl.cli import main
from agentrl.cluster import ClusterConfig
from agentrl.cluster.learner import LearnerGroup
from agentrl.cluster.ray_rollout import connect
from agentrl.policy.tiny import build_tiny_model, build_tiny_tokenizer
from agentrl.rollout.batch import TokenRow
from agentrl.train.config import ConfigError, OptimConfig, PolicyLossConfig, load_config
from agentrl.train.learner import Learner, split_rows
from agentrl.train.loss import loss_normalizer, loss_weights, token_logprobs_and_entropy
from agentrl.train.trainer import Trainer
from tests.cluster.conftest import on_cluster

LEARNERS = {"learner_ranks": 2, "learner_cpus": 0.25}


def test_rows_split_disjoint_balanced_by_tokens_and_deterministic():
    lengths = [30, 5, 12, 12, 40, 7, 9]
    parts = split_rows(lengths, 2)
    # Longest first, each to the lighter rank: 40→0, 30→1, 12→1 (42), 12→0 (52), 9→1 (51), 7→1 (58), 5→0 (57).
    assert parts == [[1, 3, 4], [0, 2, 5, 6]]
    assert [sum(lengths[i] for i in p) for p in parts] == [57, 58]
    assert split_rows(lengths, 2) == parts and split_rows(lengths, 1) == [list(range(7))]
    assert split_rows([3], 3) == [[0], [], []]  # fewer rows than ranks: the others get none


@pytest.mark.parametrize("aggregation", ["token-mean", "seq-mean"])
def test_slices_weighed_with_summed_normalizers_equal_the_whole(aggregation):
    mask = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 0], [0, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 1]])
    whole = loss_weights(mask, aggregation)
    parts = [[0, 1], [2, 3, 4]]
    total = sum(loss_normalizer(mask[p], aggregation) for p in parts)
    assert float(total) == (9.0 if aggregation == "token-mean" else 4.0)  # Σ mask; rows with a policy token
    for p in parts:
        assert torch.equal(loss_weights(mask[p], aggregation, total), whole[p])
    # A rank's own mean would weigh the tokens otherwise: the slices' weights then do not sum to 1.
    assert sum(float(loss_weights(mask[p], aggregation).sum()) for p in parts) == pytest.approx(2.0)


def synthetic_rows(model, n: int = 7, seed: int = 0) -> list[TokenRow]:
    """Rows of uneven lengths and masks; behaviour log-probs near the model's (ratios near 1)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        length = int(rng.integers(10, 48))
        ids = rng.integers(3, 300, size=length).tolist()
        prompt = int(rng.integers(2, length // 2))
        mask = [0] * prompt + [int(rng.random() < 0.8) for _ in range(length - prompt)]
        with torch.no_grad():
            logp, _ = token_logprobs_and_entropy(model(input_ids=torch.tensor([ids])).logits[:, :-1], torch.tensor([ids[1:]]))
        old = [0.0] + (logp[0] + torch.from_numpy(rng.normal(0, 0.3, length - 1)).float()).tolist()
        adv = float(rng.normal()) * (1 if i % 3 else -1)
        rows.append(TokenRow(ids, mask, old, [adv * m for m in mask]))
    return rows


def tiny_learner(aggregation: str) -> Learner:
    tokenizer = build_tiny_tokenizer(vocab_size=512)
    model = build_tiny_model(tokenizer, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                             initializer_range=0.1, seed=3)
    optim = OptimConfig(lr=1e-3, ppo_epochs=2, minibatches=2, micro_batch_tokens=64, max_grad_norm=0.5)
    loss = PolicyLossConfig(kl_coef=0.1, entropy_coef=0.01, aggregation=aggregation)
    return Learner(model, optim, loss, pad_id=0, seed=5)


def with_tis(learner: Learner, rows: list[TokenRow]) -> tuple[list[TokenRow], dict[str, float]]:
    """The trainer's ``loss.off_policy: tis`` correction of ``rows`` against ``learner``'s current
    weights (π_prox: the trainer's own model, which the group keeps at the latest weights)."""
    config = SimpleNamespace(loss=PolicyLossConfig(off_policy="tis", tis_cap=1.2))
    return Trainer.correct_off_policy(SimpleNamespace(config=config, learner=learner), rows)


@pytest.mark.slow
def test_two_ranks_make_the_single_process_step(cluster):
    """seq-mean; PPO epochs x mini-batches x uneven micro-batches, KL and entropy terms, an active
    clip: loss, gradient norm, updated weights and Adam moments agree with one process to 1e-5.
    A second update with ``loss.off_policy: tis`` on other rows (behaviour log-probs 0.3 off, so
    the weights are not 1): its π_prox comes from the trainer's model, which must hold the first
    update's weights — the same loss as one process. (token-mean: the default config's run below.)"""
    single = tiny_learner("seq-mean")
    driver = copy.deepcopy(single)  # the trainer's learner the group stands in for
    rows, later = synthetic_rows(single.model), synthetic_rows(single.model, seed=1)
    lengths = [len(r) for r in rows]
    # The ranks' slices differ in tokens and sequences, so per-rank means would give another step.
    slices = split_rows(lengths, 2)
    assert len({sum(sum(rows[i].mask) for i in s) for s in slices}) == 2
    stale, _ = with_tis(single, later)  # π_prox at the starting weights: what a stale model would give
    expected = [single.update(rows)]
    assert expected[0]["grad_norm"] > 0.5  # the clip is active
    corrected, correction = with_tis(single, later)
    assert 0 < correction["is_capped_frac"] < 1 and correction["behav_prox_kl"] > 0.01  # weights not 1, some capped
    # The first update moved π_prox: a group that left the trainer's model stale would train other rows.
    gap = max(abs(a - b) for x, y in zip(stale, corrected, strict=True) for a, b in zip(x.old_logp, y.old_logp, strict=True))
    assert gap > 1e-3
    expected.append(single.update(corrected))

    connect(ClusterConfig(address=cluster.address))
    group = LearnerGroup(ClusterConfig(address=cluster.address, **LEARNERS), driver)
    try:
        got = [group.update(rows)]
        corrected, got_correction = with_tis(driver, later)
        got.append(group.update(corrected))
        group.pull()
    finally:
        group.close()
        ray.shutdown()
    for key, value in correction.items():
        assert got_correction[key] == pytest.approx(value, rel=1e-5, abs=1e-7), key
    for mine, theirs in zip(got, expected, strict=True):
        for key in ("loss", "pg_loss", "kl", "entropy", "clip_frac", "approx_kl", "grad_norm", "lr", "trained_tokens"):
            assert mine[key] == pytest.approx(theirs[key], rel=1e-5, abs=1e-7), key
    start, want = copy.deepcopy(driver.reference.state_dict()), single.model.state_dict()
    assert max(float((want[k] - start[k]).abs().max()) for k in want) > 1e-3  # the steps moved the weights
    for name, tensor in driver.model.state_dict().items():  # ~1e-6 apart (float32 sums in another order)
        torch.testing.assert_close(tensor, want[name], rtol=1e-5, atol=1e-5, msg=name)
    mine, theirs = driver.optimizer.state_dict(), single.optimizer.state_dict()
    assert mine["state"].keys() == theirs["state"].keys() and mine["param_groups"][0]["params"] == theirs["param_groups"][0]["params"]
    for i, state in theirs["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(mine["state"][i][key], state[key], rtol=1e-4, atol=1e-8)
        assert float(mine["state"][i]["step"]) == float(state["step"]) == 8.0  # 2 updates x 2 epochs x 2 mini-batches
    assert driver.rng.bit_generator.state == single.rng.bit_generator.state  # the same shuffles were drawn


def make_trainer(tmp_path, overrides, log=None):
    config = load_config(overrides=[f"output_dir={tmp_path}", "model.device=cpu", *overrides])
    return Trainer(config, progress=False, log=log or (lambda *_: None))


@pytest.mark.slow
def test_default_config_on_two_learner_ranks_matches_one_process_through_a_killed_rank(cluster, tmp_path):
    """The default maze config, 2 RL steps (2 env workers, 2 samplers, 2 learner ranks) against one
    process on the same seeds; rank 1 is killed at the second update, so the group is rebuilt from
    the step-1 checkpoint and step 2 runs again — with the same numbers and weights. The ranks'
    checkpoint is one process's files (optimizer, schedule, generators): a run saved by 2 ranks
    resumes in one process."""
    common = ["sft.episodes=0", "checkpoint.every=1", "eval.episodes=2", "eval.greedy=false", "steps=2"]
    make_trainer(tmp_path / "local", common).run()
    lines: list[str] = []
    placement = {**LEARNERS, "samplers": 2, "sampler_cpus": 0.25, "env_worker_cpus": 0.25}  # 1.5 of the 2 CPUs
    trainer = make_trainer(tmp_path / "ray", [*common, *on_cluster(cluster, **placement)], log=lines.append)
    group, update, ranks_at_call = trainer.learners, trainer.learners.update, []

    def update_killing_rank_1_at_the_second_call(rows):
        ranks_at_call.append(len(group.ranks))
        if len(ranks_at_call) == 2:
            ray.kill(group.ranks[1])
        return update(rows)

    group.update = update_killing_rank_1_at_the_second_call
    samplers: set[int] = set()
    rollout = trainer.rollout

    async def recording(step):
        batch, seconds, skipped = await rollout(step)
        samplers.update(s for g in batch.groups for t in g.members for s in t.info["samplers"])
        return batch, seconds, skipped

    trainer.rollout = recording
    summary = trainer.run()
    assert summary["steps"] == 2 and not ray.is_initialized()
    assert samplers == {0, 1}  # both samplers served the training rollouts
    assert ranks_at_call == [0, 2, 0]  # built at the first update, killed, rebuilt after the restore
    assert any("a learner rank died during update" in line and "restored from step 1 (1/3)" in line for line in lines)
    local, remote = (records(tmp_path / run) for run in ("local", "ray"))
    assert [r["step"] for r in local] == [r["step"] for r in remote] == [0, 1, 2]  # step 2 once: the lost attempt's record is gone
    assert_same_steps(local[1:], remote[1:])
    saved = [tmp_path / run / "checkpoints" / "step_00000002" for run in ("local", "ray")]
    assert_same_weights(*saved)
    want, have = (torch.load(folder / "optimizer.pt", weights_only=False) for folder in saved)
    assert have["scheduler"] == want["scheduler"]
    betas_as_tuple = [{**g, "betas": tuple(g["betas"])} for g in have["optimizer"]["param_groups"]]  # a list via the ranks
    assert betas_as_tuple == want["optimizer"]["param_groups"]
    assert have["optimizer"]["state"].keys() == want["optimizer"]["state"].keys()
    for i, state in want["optimizer"]["state"].items():
        assert float(have["optimizer"]["state"][i]["step"]) == float(state["step"])
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(have["optimizer"]["state"][i][key], state[key], rtol=1e-4, atol=1e-8)
    want, have = (json.loads((folder / "state.json").read_text()) for folder in saved)
    assert have == want


def records(run_dir) -> list[dict]:
    """metrics.jsonl's records, one per step (the evaluation's keys merged into their step's)."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same_steps(expected: list[dict], got: list[dict]) -> None:
    for a, b in zip(expected, got, strict=True):
        for key in ("train/loss", "train/grad_norm", "train/kl", "adv/mean", "adv/abs_mean", "adv/nonzero_frac",
                    "train/trained_tokens", "rollout/success"):
            assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), (a["step"], key)


def assert_same_weights(expected, got) -> None:
    want, have = (load_file(folder / "model.safetensors") for folder in (expected, got))
    assert want.keys() == have.keys()
    for name, tensor in want.items():
        torch.testing.assert_close(have[name], tensor, rtol=1e-5, atol=1e-5, msg=name)


def test_learner_ranks_without_a_cluster_or_with_a_shared_gpu_are_config_errors():
    with pytest.raises(ConfigError, match=r"cluster\.learner_ranks: more than one learner rank needs a cluster"):
        load_config(overrides=["cluster.learner_ranks=2"])
    with pytest.raises(ConfigError, match=r"cluster\.learner_gpus: 0\.5: each learner rank drives one GPU \(0 or 1\)"):
        load_config(overrides=["cluster.address=local", "cluster.learner_ranks=2", "cluster.learner_gpus=0.5"])


@pytest.mark.slow
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"learner_ranks": 4, "learner_cpus": 1},
         "the placement needs 5.5 CPUs (2 env workers x 0.5 + 1 samplers x 0.5 + 4 learner ranks x 1) but the cluster has 2"),
        ({**LEARNERS, "learner_gpus": 1}, "the placement needs 2 GPUs (1 samplers x 0 + 2 learner ranks x 1) but the cluster has 0"),
    ],
)
def test_learner_ranks_the_cluster_cannot_place_are_one_line_before_any_work(cluster, tmp_path, changes, message):
    args = ["train", "--set", f"output_dir={tmp_path}", "--set", "model.device=cpu", "--set", "sft.episodes=0"]
    for override in on_cluster(cluster, **changes):
        args += ["--set", override]
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0 and not ray.is_initialized()
    assert f"Error: {message}\n" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "metrics.jsonl").exists()
