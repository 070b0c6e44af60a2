"""Training rows from recorded steps, and micro-batch packing by token count."""

import numpy as np
import pytest

from agentrl.train.rows import build_rows, collate, pack_microbatches
from agentrl.types import StepRecord, Trajectory


def step(i, prompt, completion, version=0):
    return StepRecord(
        index=i, observation="o", action="a", prompt_token_ids=prompt, completion_token_ids=completion,
        logprobs=[-0.1 * (k + 1) for k in range(len(completion))], policy_version=version,
    )


def test_extending_contexts_make_one_row_with_completion_mask():
    traj = Trajectory(task_id="t", steps=[step(0, [1, 2], [3, 4]), step(1, [1, 2, 3, 4, 5], [6], version=1)])
    (row,) = build_rows([traj], np.array([0.5, 0.5, -1.0]))
    assert row.input_ids == [1, 2, 3, 4, 5, 6]
    assert row.mask == [0, 0, 1, 1, 0, 1]
    assert row.old_logp == pytest.approx([0, 0, -0.1, -0.2, 0, -0.1])
    assert row.advantage == [0, 0, 0.5, 0.5, 0, -1.0]
    assert row.policy_version == 0  # the oldest version that produced a token


def test_a_context_that_does_not_extend_starts_a_new_row():
    traj = Trajectory(task_id="t", steps=[step(0, [1, 2], [3]), step(1, [9, 2, 3, 4], [5])])
    rows = build_rows([traj], np.array([1.0, 2.0]))
    assert [r.input_ids for r in rows] == [[1, 2, 3], [9, 2, 3, 4, 5]]
    assert [r.mask for r in rows] == [[0, 0, 1], [0, 0, 0, 0, 1]]


def test_token_mask_removes_infra_failed_tokens_from_the_loss():
    traj = Trajectory(task_id="t", steps=[step(0, [1, 2], [3, 4])])
    (row,) = build_rows([traj], np.array([1.0, 1.0]), token_mask=np.array([False, False]))
    assert row.mask == [0, 0, 0, 0]


def test_advantage_count_must_match_tokens():
    traj = Trajectory(task_id="t", steps=[step(0, [1], [2, 3])])
    with pytest.raises(ValueError, match="expected 2 token advantages"):
        build_rows([traj], np.array([1.0]))


def test_pack_first_fit_decreasing():
    # lengths 10, 3, 7, 2 with 12 slots: [10] | [7] | [3, 2]  (2·10 and 2·7 exceed 12)
    assert pack_microbatches([10, 3, 7, 2], 12) == [[0], [2], [1, 3]]
    assert pack_microbatches([4, 4, 4], 12) == [[0, 1, 2]]
    assert pack_microbatches([20], 12) == [[0]]  # too long: alone


def test_collate_pads_right():
    traj = Trajectory(task_id="t", steps=[step(0, [1, 2], [3])])
    rows = build_rows([traj, Trajectory(task_id="u", steps=[step(0, [7], [8, 9])])], np.array([1.0, 2.0, 3.0]))
    batch = collate(rows, pad_id=0)
    assert batch.input_ids.tolist() == [[1, 2, 3], [7, 8, 9]]
    assert batch.mask.tolist() == [[0, 0, 1], [0, 1, 1]]
    assert batch.advantage.tolist() == [[0, 0, 1.0], [0, 2.0, 3.0]]
    assert batch.num_tokens == 6
