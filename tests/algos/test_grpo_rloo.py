"""GRPO and RLOO: the reference's worked examples (§1, §2) and the edge-case policy (§0.2)."""

import numpy as np
import pytest

from agentrl.algos import StepBatch, get_estimator

grpo, rloo = get_estimator("grpo"), get_estimator("rloo")


def outcomes(rewards, groups=None, valid=None):
    n = len(rewards)
    return StepBatch.from_chains(
        traj=np.arange(n), group=groups or [0] * n, final_reward=rewards, valid=valid
    )


@pytest.mark.parametrize(
    "rewards, grpo_adv, rloo_adv",
    [
        ([1, 0, 0, 1], [0.8660, -0.8660, -0.8660, 0.8660], [0.6667, -0.6667, -0.6667, 0.6667]),
        ([1, 0, 1, 1], [0.5, -1.5, 0.5, 0.5], [0.3333, -1.0, 0.3333, 0.3333]),
    ],
)
def test_reference_examples(rewards, grpo_adv, rloo_adv):
    b = outcomes(rewards)
    np.testing.assert_allclose(grpo(b), grpo_adv, atol=1e-4)
    np.testing.assert_allclose(rloo(b), rloo_adv, atol=1e-4)


def test_mean_norm_has_no_std_division():
    np.testing.assert_allclose(grpo(outcomes([1, 0, 1, 1]), mode="mean_norm"), [0.25, -0.75, 0.25, 0.25])


def test_every_step_gets_its_episode_advantage():
    b = StepBatch.from_chains(traj=[0, 0, 0, 1], group=[0, 0], final_reward=[1.0, 0.0])
    np.testing.assert_allclose(grpo(b), [0.7071, 0.7071, 0.7071, -0.7071], atol=1e-4)
    # step-weighted statistics over [1, 1, 1, 0]: mean 0.75, std 0.5
    np.testing.assert_allclose(grpo(b, episode_stats="step"), [0.5, 0.5, 0.5, -1.5], atol=1e-4)


def test_zero_std_all_fail_all_success_give_zero():
    for rewards in ([0, 0, 0], [1, 1, 1], [0.3, 0.3]):
        assert np.all(grpo(outcomes(rewards)) == 0.0)
        assert np.all(rloo(outcomes(rewards)) == 0.0)


def test_singleton_rule():
    b = outcomes([0.7, 1.0, 0.0], groups=[0, 1, 1])
    assert grpo(b)[0] == 0.0 and rloo(b)[0] == 0.0
    assert grpo(b, singleton="raw")[0] == pytest.approx(0.7, abs=1e-6)  # reference: mean 0, std 1
    assert grpo(b, singleton="raw", mode="mean_norm")[0] == 0.7


def test_masked_rollouts_leave_the_statistics_and_get_zero():
    # the masked member (reward 0, as an infra failure would be scored) must not move the others
    b = outcomes([1, 0, 1, 1, 0], valid=[True, True, True, True, False])
    np.testing.assert_allclose(grpo(b), [0.5, -1.5, 0.5, 0.5, 0.0], atol=1e-4)
    np.testing.assert_allclose(rloo(b), [0.3333, -1.0, 0.3333, 0.3333, 0.0], atol=1e-4)
    # one valid member left: singleton rule, not a baseline built from the masked one
    b = outcomes([1, 0], valid=[True, False])
    assert grpo(b).tolist() == [0.0, 0.0] and rloo(b).tolist() == [0.0, 0.0]


def test_groups_are_independent():
    b = outcomes([1, 0, 5, 7], groups=[0, 0, 1, 1])
    np.testing.assert_allclose(rloo(b), [1, -1, -2, 2])


def test_config_errors_are_readable():
    with pytest.raises(ValueError, match="Known keys"):
        grpo(outcomes([1, 0]), modee="mean_norm")
    with pytest.raises(KeyError, match="ambiguous"):
        get_estimator("gtpo")
