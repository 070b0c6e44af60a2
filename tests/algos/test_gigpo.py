"""GiGPO: reference §3.7 worked examples A–C, edge cases §3.6, similarity anchors."""

import numpy as np
import pytest

from agentrl.algos import StepBatch, get_estimator
from agentrl.algos.gigpo import GiGPOConfig, gigpo_parts
from agentrl.types import StepRecord, Trajectory

gigpo = get_estimator("gigpo")


def example_a(action_valid=None):
    """τ1: s0 → s1 → s2, reward 10 at step 3; τ2: s0 → s3 → s4, failure (γ = 0.95, N = 2)."""
    return StepBatch.from_chains(
        traj=[0, 0, 0, 1, 1, 1],
        group=[0] * 6,
        reward=[0, 0, 10, 0, 0, 0],
        state=[0, 1, 2, 0, 3, 4],
        action_valid=action_valid,
    )


def test_example_a_mean_norm():
    np.testing.assert_allclose(
        gigpo(example_a(), mode="mean_norm"), [9.5125, 5, 5, -9.5125, -5, -5], atol=1e-4
    )


def test_example_a_mean_std_norm_both_episode_weightings():
    a_e, a_s = gigpo_parts(example_a(), GiGPOConfig())
    np.testing.assert_allclose(a_s, [0.7071, 0, 0, -0.7071, 0, 0], atol=1e-4)
    np.testing.assert_allclose(a_e, [0.7071] * 3 + [-0.7071] * 3, atol=1e-4)
    a_e, _ = gigpo_parts(example_a(), GiGPOConfig(episode_stats="step"))
    np.testing.assert_allclose(a_e, [0.9129] * 3 + [-0.9129] * 3, atol=1e-4)


def test_gamma_shapes_step_returns_from_records():
    # Same example through real Trajectory records: returns (9.025, 9.5, 10) for τ1.
    def traj(states, rewards):
        steps = [
            StepRecord(index=i, observation="", action="", reward=r, state_key=s)
            for i, (s, r) in enumerate(zip(states, rewards))
        ]
        return Trajectory(task_id="t", group_id="g", steps=steps, final_reward=sum(rewards))

    b = StepBatch.from_trajectories(
        [traj(["s0", "s1", "s2"], [0, 0, 10]), traj(["s0", "s3", "s4"], [0, 0, 0])]
    )
    _, a_s = gigpo_parts(b, GiGPOConfig(mode="mean_norm", gamma=0.5))
    np.testing.assert_allclose(a_s, [1.25, 0, 0, -1.25, 0, 0])  # {10·0.25, 0} around 1.25


@pytest.mark.parametrize(
    "stats, mode, expected",
    [
        ("trajectory", "mean_norm", (5.0, -5.0)),
        ("step", "mean_norm", (6.6667, -3.3333)),
        ("trajectory", "mean_std_norm", (0.7071, -0.7071)),
        ("step", "mean_std_norm", (1.2910, -0.6455)),
    ],
)
def test_example_b_episode_stats(stats, mode, expected):
    """τ1 succeeds in 2 steps (10), τ2 fails after 4 (0); no shared state."""
    b = StepBatch.from_chains(traj=[0, 0, 1, 1, 1, 1], group=[0] * 6, reward=[0, 10, 0, 0, 0, 0])
    adv = gigpo(b, mode=mode, episode_stats=stats)
    np.testing.assert_allclose(adv, [expected[0]] * 2 + [expected[1]] * 4, atol=1e-4)


def test_example_c_penalty_row_mode():
    b = example_a(action_valid=[True, False, True, True, True, True])
    a_e, a_s = gigpo_parts(b, GiGPOConfig(mode="mean_norm"))
    # the invalid row's episode score is 9.9 (mean over unpenalised trajectories stays 5)
    np.testing.assert_allclose(a_e, [5, 4.9, 5, -5, -5, -5])
    # its return becomes 9.4 but it is alone in anchor s1; R_1 stays 9.025 (A^S = ±4.5125)
    np.testing.assert_allclose(a_s, [4.5125, 0, 0, -4.5125, 0, 0], atol=1e-9)
    # step-weighted: the penalised row score enters the statistics, mean = 29.9/6
    a_e, _ = gigpo_parts(b, GiGPOConfig(mode="mean_norm", episode_stats="step"))
    np.testing.assert_allclose(a_e, np.array([10, 9.9, 10, 0, 0, 0]) - 29.9 / 6)


def test_example_c_penalty_discounted_mode():
    b = example_a(action_valid=[True, False, True, True, True, True])
    a_e, a_s = gigpo_parts(b, GiGPOConfig(mode="mean_norm", penalty_mode="discounted"))
    # r = (0, −0.1, 10) → R = (8.93, 9.4, 10); the s0 anchor {8.93, 0} → ±4.465
    np.testing.assert_allclose(a_s, [4.465, 0, 0, -4.465, 0, 0], atol=1e-9)
    np.testing.assert_allclose(a_e, [4.95] * 3 + [-4.95] * 3)  # scores 9.9 vs 0


def test_all_fail_group_with_penalty_is_pm_0707():
    # Both fail; τ2's action at the shared state s0 is invalid: anchor {0, −0.1} → z = ±0.707.
    b = StepBatch.from_chains(traj=[0, 1], group=[0, 0], state=[0, 0], action_valid=[True, False])
    a_e, a_s = gigpo_parts(b, GiGPOConfig())
    np.testing.assert_allclose(a_s, [0.7071, -0.7071], atol=1e-4)
    # Episode level: scores {0, 0} have std 0, so both normalise to 0; the invalid row then
    # pays the penalty at its own scale (−0.1), not −0.1/ε (the reference mix gave −1e5).
    np.testing.assert_allclose(a_e, [0.0, -0.1], atol=1e-9)


def test_no_repeated_states_reduces_to_grpo():
    rng = np.random.default_rng(0)
    traj = np.repeat(np.arange(8), 3)
    b = StepBatch.from_chains(traj=traj, group=traj // 4, reward=rng.random(24), state=np.arange(24))
    np.testing.assert_allclose(gigpo(b, invalid_penalty=0.0), get_estimator("grpo")(b))
    b_none = b.replace(state=np.full(24, -1))  # rows without a state key are singletons too
    np.testing.assert_allclose(gigpo(b_none), get_estimator("grpo")(b))


def test_revisits_and_different_times_share_an_anchor():
    # τ1 visits s0 at t=0 and again at t=2; τ2 reaches s0 at t=1. One anchor group of three rows.
    b = StepBatch.from_chains(
        traj=[0, 0, 0, 1, 1], group=[0] * 5, reward=[0, 0, 3, 0, 0], state=[0, 1, 0, 2, 0]
    )
    _, a_s = gigpo_parts(b, GiGPOConfig(mode="mean_norm", gamma=1.0))
    # returns: τ1 (3, 3, 3), τ2 (0, 0); anchor s0 = rows 0, 2, 4 with {3, 3, 0}, mean 2
    np.testing.assert_allclose(a_s, [1, 0, 1, 0, -2])


def test_anchors_do_not_cross_groups():
    b = StepBatch.from_chains(traj=[0, 1], group=[0, 1], reward=[1, 0], state=[0, 0])
    assert np.all(gigpo_parts(b, GiGPOConfig())[1] == 0)


def test_masked_trajectory_is_invisible():
    base = example_a()
    masked = StepBatch.from_chains(
        traj=[0, 0, 0, 1, 1, 1, 2, 2],
        group=[0] * 8,
        reward=[0, 0, 10, 0, 0, 0, 0, 5],
        state=[0, 1, 2, 0, 3, 4, 0, 1],
        valid=[True, True, False],
    )
    adv = gigpo(masked, mode="mean_norm")
    np.testing.assert_allclose(adv[:6], gigpo(base, mode="mean_norm"))
    assert adv[6:].tolist() == [0.0, 0.0]


def test_singleton_episode_group():
    # One trajectory that revisits s0: returns (1, 0) form a step group even without a peer.
    b = StepBatch.from_chains(traj=[0, 0], group=[0, 0], reward=[1, 0], state=[0, 0])
    a_e, a_s = gigpo_parts(b, GiGPOConfig(mode="mean_norm", gamma=1.0))
    np.testing.assert_allclose(a_s, [0.5, -0.5])
    assert a_e.tolist() == [0.0, 0.0]  # singleton "zero": no episode baseline
    a_e, _ = gigpo_parts(b, GiGPOConfig(mode="mean_norm", singleton="raw"))
    assert a_e.tolist() == [1.0, 1.0]  # reference: the raw score


def test_similarity_anchors_greedy_first_match():
    keys = ("aaaaaaaaab", "aaaaaaaaac", "zzzzzzzzzz", "aaaaaaaacc")
    # ratio(k0, k1) = 0.9, ratio(k0, k3) = 0.8, ratio(k1, k3) = 0.9: k3 joins no cluster at 0.85
    # because the first representative (k0) is too far, even though k1 (not a representative) is close.
    b = StepBatch.from_chains(
        traj=[0, 1, 2, 3], group=[0] * 4, reward=[1, 0, 0, 0], state=[0, 1, 2, 3], state_keys=keys
    )
    from agentrl.algos.anchors import similarity_anchors

    anchor, n = similarity_anchors(b, 0.85)
    assert n == 3 and anchor[0] == anchor[1] and len({anchor[0], anchor[2], anchor[3]}) == 3
    _, a_s = gigpo_parts(b, GiGPOConfig(anchor_match="similarity", similarity_thresh=0.85, mode="mean_norm"))
    np.testing.assert_allclose(a_s, [0.5, -0.5, 0, 0])


@pytest.mark.parametrize("position", [0, 1, 2])
def test_masked_rows_never_shape_similarity_clusters(position):
    # The masked key is close to both valid keys, which are not close to each other (0.9, 0.9, 0.8
    # at 0.85): clustering it would pull the two valid rows into one anchor group.
    keys = ("abcdefghiX", "Xbcdefghij", "abcdefghij")
    valid_rows = [(0, 1.0), (1, 0.0)]
    rows = list(valid_rows)
    rows.insert(position, (2, 5.0))
    cfg = {"anchor_match": "similarity", "similarity_thresh": 0.85, "mode": "mean_norm"}

    def batch(rows):
        return StepBatch.from_chains(
            traj=np.arange(len(rows)),
            group=[0] * len(rows),
            reward=[r for _, r in rows],
            state=[s for s, _ in rows],
            valid=[s != 2 for s, _ in rows],
            state_keys=keys,
        )

    with_masked = gigpo(batch(rows), **cfg)
    assert with_masked[position] == 0.0
    np.testing.assert_array_equal(np.delete(with_masked, position), gigpo(batch(valid_rows), **cfg))
