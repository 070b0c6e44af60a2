"""OTC tables and worked example (§6), running minimum across a checkpoint reload, penalty and
turn-reward shapers, and the pipeline's composition and token expansion."""

import numpy as np
import pytest

from agentrl.algos import Pipeline, StepBatch, expand_to_tokens, get_estimator, get_shaper
from agentrl.algos.shapers.otc import OTCState, otc_grpo_tool_reward, otc_ppo_tool_reward


@pytest.mark.parametrize(
    "c, row",
    [
        (1, [1.0, 0.500, 0.309, 0.223, 0.174, 0.121]),
        (2, [1.0, 0.707, 0.500, 0.383, 0.309, 0.223]),
        (5, [1.0, 0.901, 0.766, 0.655, 0.568, 0.446]),
    ],
)
def test_otc_ppo_table(c, row):
    np.testing.assert_allclose(otc_ppo_tool_reward(np.array([0, 1, 2, 3, 4, 6]), c), row, atol=5e-4)


@pytest.mark.parametrize(
    "n, row",
    [
        (1, [0, 1.0, 0.866, 0.707, 0.588, 0.434, 0.342]),
        (2, [0, 0.866, 1.0, 0.951, 0.866, 0.707, 0.588]),
        (3, [0, 0.707, 0.951, 1.0, 0.975, 0.866, 0.756]),
    ],
)
def test_otc_grpo_table(n, row):
    np.testing.assert_allclose(otc_grpo_tool_reward(np.array([0, 1, 2, 3, 4, 6, 8]), n, 1.0), row, atol=5e-4)


def test_otc_grpo_special_cases():
    assert otc_grpo_tool_reward(np.array([0.0]), 0.0, 1.0)[0] == 1.0  # f = n = 0
    assert otc_grpo_tool_reward(np.array([2.0]), 0.0, 1.0)[0] == pytest.approx(np.cos(2 * np.pi / 5))  # n = 0
    assert otc_grpo_tool_reward(np.array([3.0]), np.inf, 1.0)[0] == 1.0  # no correct rollout: unchanged


def otc_group(tool_calls=(1, 3, 0, 2), correct=(1, 1, 0, 1), task="q", valid=None):
    n = len(tool_calls)
    return StepBatch.from_chains(
        traj=np.arange(n),
        group=[0] * n,
        final_reward=np.array(correct, float),
        tool_calls=tool_calls,
        valid=valid,
    ).replace(task_names=(task,))


def test_otc_worked_example_then_grpo():
    shaped = get_shaper("otc_grpo")(otc_group())
    np.testing.assert_allclose(shaped.episode_reward, [1.0, 0.7071, 0.0, 0.8660], atol=1e-4)
    out = Pipeline("grpo", shapers=[get_shaper("otc_grpo")])(otc_group())
    np.testing.assert_allclose(out.step, [0.8012, 0.1433, -1.4448, 0.5003], atol=1e-4)
    np.testing.assert_allclose(get_estimator("grpo")(otc_group()), [0.5, 0.5, -1.5, 0.5], atol=1e-4)


def test_otc_counts_tool_calls_along_the_episode_and_ignores_masked():
    # rollout 0 (correct) uses 1 + 1 tool calls over two steps; masked rollout 2 used 1 call
    b = StepBatch.from_chains(
        traj=[0, 0, 1, 2],
        group=[0, 0, 0],
        final_reward=[1.0, 1.0, 1.0],
        tool_calls=[1, 1, 4, 1],
        valid=[True, True, False],
    )
    shaped = get_shaper("otc_grpo")(b)
    # n = 2 (the masked rollout's m = 1 must not set the minimum); m = 4: f = 8/3, sin(2π/3)
    np.testing.assert_allclose(shaped.episode_reward, [1.0, np.sin(2 * np.pi / 3), 1.0], atol=1e-12)


def test_otc_running_minimum_survives_a_checkpoint():
    shaper = get_shaper("otc_grpo", running_min=True)
    shaper(otc_group(tool_calls=(1, 4), correct=(1, 1)))  # history: n = 1 for question q
    state = shaper.state.state_dict()
    assert state == {"q": 1}
    reloaded = get_shaper("otc_grpo", running_min=True)
    reloaded.state.load_state_dict(state)
    later = otc_group(tool_calls=(2, 3), correct=(1, 1))  # group-only n would be 2
    np.testing.assert_allclose(reloaded(later).episode_reward, [0.8660, 0.7071], atol=1e-4)
    np.testing.assert_allclose(get_shaper("otc_grpo")(later).episode_reward, [1.0, 0.9511], atol=1e-4)
    # an all-wrong group does not touch the history
    reloaded(otc_group(tool_calls=(0, 0), correct=(0, 0)))
    assert reloaded.state.state_dict() == {"q": 1}
    assert isinstance(reloaded.state, OTCState)


def test_otc_ppo_needs_no_group():
    shaped = get_shaper("otc_ppo", c=2.0)(otc_group())
    np.testing.assert_allclose(shaped.episode_reward, [0.7071, 0.3827, 0.0, 0.5], atol=1e-4)


def test_invalid_action_penalty_and_turn_reward_hook():
    b = StepBatch.from_chains(
        traj=[0, 0, 1], group=[0, 0], reward=[0.0, 1.0, 0.0], action_valid=[False, True, False]
    )
    p = get_shaper("invalid_action_penalty", coef=0.25)(b)
    assert p.reward.tolist() == [-0.25, 1.0, -0.25] and p.episode_reward.tolist() == [0.75, -0.25]
    hook = get_shaper("turn_reward", fn=lambda batch: batch.step * 0.5)
    h = hook(b)
    assert h.reward.tolist() == [0.0, 1.5, 0.0] and h.episode_reward.tolist() == [1.5, 0.0]
    with pytest.raises(ValueError, match="one value per row"):
        get_shaper("turn_reward", fn=lambda batch: np.zeros(2))(b)


def test_pipeline_token_expansion_and_masks():
    b = StepBatch.from_chains(
        traj=[0, 0, 1, 2],
        group=[0, 0, 0],
        final_reward=[1.0, 0.0, 1.0],
        n_tokens=[2, 1, 3, 2],
        valid=[True, True, False],
    )
    out = Pipeline("grpo")(b)
    np.testing.assert_allclose(out.step, [0.7071, 0.7071, -0.7071, 0.0], atol=1e-4)
    np.testing.assert_allclose(out.token, [0.7071] * 3 + [-0.7071] * 3 + [0, 0], atol=1e-4)
    assert out.token_mask.tolist() == [True] * 6 + [False] * 2
    np.testing.assert_allclose(expand_to_tokens(out.step, b.n_tokens), out.token)
    tok = Pipeline("gtpo_entropy")(b.replace(episode_success=b.episode_reward > 0, token_entropy=np.ones(8)))
    assert tok.step is None and tok.token.shape == (8,)


def test_padding_rows_never_change_advantages():
    # Duplicating rows as padding *after* the advantages is the caller's business; masked filler
    # trajectories added *before* must leave every real advantage unchanged.
    real = StepBatch.from_chains(traj=[0, 0, 1, 2], group=[0, 0, 0], reward=[0, 1, 0, 1], state=[0, 1, 0, 0])
    padded = StepBatch.from_chains(
        traj=[0, 0, 1, 2, 3, 4],
        group=[0, 0, 0, 0, 0],
        reward=[0, 1, 0, 1, 1, 1],
        state=[0, 1, 0, 0, 0, 1],
        valid=[True, True, True, False, False],
    )
    for name in ("grpo", "rloo", "gigpo", "gtpo_turn", "tree_grpo"):
        np.testing.assert_allclose(get_estimator(name)(padded)[:4], get_estimator(name)(real), err_msg=name)
        assert np.all(get_estimator(name)(padded)[4:] == 0.0), name
