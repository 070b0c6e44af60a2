"""GTPO-turn (+ partial credit), GTPO-entropy, GRPO-S and EMPG: reference §5A, §5B, §7 examples."""

import numpy as np
import pytest

from agentrl.algos import Pipeline, StepBatch, get_estimator, get_shaper
from agentrl.algos.shapers.partial_credit import trigram_cosine
from agentrl.types import StepRecord, Trajectory


def turn(i, reward=0.0, valid=True, action="x = 1"):
    return StepRecord(index=i, observation="", action=action, reward=reward, valid_action=valid)


def gtpo_example(sim=0.6):
    t1 = Trajectory(task_id="q", steps=[turn(0), turn(1), turn(2, 1.0)], final_reward=1.0, success=True)
    t2 = Trajectory(task_id="q", steps=[turn(0, valid=False), turn(1)], final_reward=0.0)
    batch = StepBatch.from_trajectories([t1, t2], keep_text=True)
    pipe = Pipeline("gtpo_turn", shapers=[get_shaper("gtpo_partial_credit", similarity=lambda a, b: sim)])
    return pipe, batch


def test_gtpo_turn_reference_example():
    pipe, batch = gtpo_example()
    out = pipe(batch)
    # r = (0, 0, 1) and (−0.1, 0.3): R = (0.81, 0.9, 1.0) and (0.17, 0.3), z over the 5 turns
    np.testing.assert_allclose(out.step, [0.4640, 0.7040, 0.9706, -1.2426, -0.8960], atol=1e-4)
    assert out.batch.episode_reward.tolist() == [1.0, 0.3]  # credit moved the outcome
    assert out.batch.episode_success.tolist() == [True, False]  # success is never shaped


def test_gtpo_turn_batch_scope_and_edge_cases():
    t = [
        Trajectory(task_id=q, steps=[turn(0, r)], final_reward=r, success=r > 0)
        for q, r in [("a", 1.0), ("a", 0.0), ("b", 1.0), ("b", 1.0)]
    ]
    b = StepBatch.from_trajectories(t)
    gtpo = get_estimator("gtpo_turn")
    np.testing.assert_allclose(gtpo(b), [0.7071, -0.7071, 0, 0], atol=1e-4)  # all-pass group b → 0
    np.testing.assert_allclose(gtpo(b, norm_scope="batch"), [0.5, -1.5, 0.5, 0.5], atol=1e-4)
    # all fail without format errors: every return is 0, so A = 0; partial credit has no P
    fail = StepBatch.from_trajectories(
        [Trajectory(task_id="a", steps=[turn(0)]) for _ in range(3)], keep_text=True
    )
    assert np.all(Pipeline("gtpo_turn", shapers=[get_shaper("gtpo_partial_credit")])(fail).step == 0)


def test_partial_credit_default_similarity_and_masking():
    assert trigram_cosine("abcd", "abcd") == pytest.approx(1.0)
    assert trigram_cosine("abc", "xyz") == 0.0 and trigram_cosine("ab", "ab") == 0.0
    # "abcab" has trigrams abc, bca, cab; "abcx" has abc, bcx: cosine = 1/√(3·2)
    assert trigram_cosine("abcab", "abcx") == pytest.approx(1 / np.sqrt(6))
    ok = Trajectory(task_id="q", steps=[turn(0, 1.0, action="abcab")], final_reward=1.0, success=True)
    bad = Trajectory(task_id="q", steps=[turn(0, action="abcx")])
    broken = Trajectory(task_id="q", steps=[turn(0, action="abcab")], status="infra_error")
    b = get_shaper("gtpo_partial_credit")(StepBatch.from_trajectories([ok, bad, broken], keep_text=True))
    # "\n" ends each turn's code: trigrams of "abcab\n" and "abcx\n" share only "abc" → 1/√(4·3)
    assert b.reward[1] == pytest.approx(0.5 / np.sqrt(12))
    assert b.reward[2] == 0.0  # masked rollouts get no credit
    with pytest.raises(ValueError, match="keep_text"):
        get_shaper("gtpo_partial_credit")(StepBatch.from_trajectories([ok, bad]))


def entropy_batch(split_first=False):
    """Correct o1 = [1.0, 0.5], o2 = [3.0]; wrong o3 = [0.5, 2.0], o4 = [2.0, 2.0]."""
    if split_first:  # o1 as two turns of one token each: positions still count across turns
        traj, n_tok = [0, 0, 1, 2, 3], [1, 1, 1, 2, 2]
    else:
        traj, n_tok = [0, 1, 2, 3], [2, 1, 2, 2]
    return StepBatch.from_chains(
        traj=traj,
        group=[0] * 4,
        final_reward=[1.0, 1.0, 0.0, 0.0],
        success=[True, True, False, False],
        n_tokens=n_tok,
        token_entropy=[1.0, 0.5, 3.0, 0.5, 2.0, 2.0, 2.0],
    )


@pytest.mark.parametrize("split_first", [False, True])
def test_gtpo_entropy_reference_table(split_first):
    est = get_estimator("gtpo_entropy")
    assert est.level == "token"
    b = entropy_batch(split_first)
    np.testing.assert_allclose(est(b, norm="split"), [-1.0, 0.0, 1.0, -1.2247, 0.0, 1.2247, 0.0], atol=1e-4)
    np.testing.assert_allclose(
        est(b), [1.0258, 1.0683, 1.1107, -0.8522, -0.8012, -0.7502, -0.8012], atol=1e-4
    )


def test_gtpo_entropy_masked_and_one_sided():
    b = entropy_batch().replace(episode_valid=np.array([True, True, True, False]))
    # o4 masked: h_1 = 1 at t1 and t2, so o3's tokens get −1 − 0.1 = −1.1 each
    adv = get_estimator("gtpo_entropy")(b, norm="split")
    np.testing.assert_allclose(adv[3:5], [0.0, 0.0], atol=1e-6)  # equal values → zero std
    assert adv[5:].tolist() == [0.0, 0.0]
    # all-fail group: only negative shaping, still a z-score of the confident-mistake penalties
    fail = entropy_batch().replace(episode_success=np.zeros(4, bool), episode_reward=np.zeros(4))
    adv = get_estimator("gtpo_entropy")(fail)
    assert adv[3] < 0 and adv[0] > adv[3]  # o3,t1 (H = 0.5) is penalised more than o1,t1 (H = 1)
    assert abs(adv.mean()) < 1e-12


def test_grpo_s_reference_example():
    adv = get_estimator("grpo_s")(entropy_batch())
    np.testing.assert_allclose(adv, [0.8181, 0.9125, -0.8834, -0.8471], atol=1e-4)


def test_empg_reference_example():
    # τ1 (A = +1) steps with H = 0.2, 1.0; τ2 (A = −1) one step with H = 0.6
    b = StepBatch.from_chains(
        traj=[0, 0, 1],
        group=[0, 0],
        final_reward=[1.0, -1.0],
        n_tokens=[1, 1, 1],
        token_entropy=[0.2, 1.0, 0.6],
    )
    adv = get_estimator("empg")(b, base_config={"mode": "mean_norm"})
    np.testing.assert_allclose(adv, [1.1584, 0.1611, -1.3195], atol=1e-4)
    assert adv.sum() == pytest.approx(0.0, abs=1e-12)


def test_empg_edge_cases():
    b = StepBatch.from_chains(
        traj=[0, 0, 1, 2],
        group=[0, 0, 0],
        final_reward=[1.0, 0.0, 5.0],
        n_tokens=[1] * 4,
        token_entropy=[0.4] * 4,
        valid=[True, True, False],
    )
    base = get_estimator("grpo")(b)
    adv = get_estimator("empg")(b, zeta=0.0)
    # all entropies equal: g = 1, so A_mod = A − mean(A) over valid rows; masked row stays 0
    np.testing.assert_allclose(adv[:3], base[:3] - base[:3].mean())
    assert adv[3] == 0.0
    with pytest.raises(ValueError, match="token entropies"):
        get_estimator("empg")(StepBatch.from_chains(traj=[0], group=[0]))
    with pytest.raises(ValueError, match="step-level"):
        get_estimator("empg")(b, base="gtpo_entropy")
