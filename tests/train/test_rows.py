"""Micro-batch packing by token count, and padded tensors (the rows come from RolloutBatch:
tests/rollout/test_batch.py)."""

from agentrl.rollout.batch import RolloutBatch
from agentrl.train.rows import collate, pack_microbatches
from agentrl.types import StepRecord, Trajectory


def step(i, prompt, completion):
    return StepRecord(
        index=i,
        observation="o",
        action="a",
        prompt_token_ids=prompt,
        completion_token_ids=completion,
        logprobs=[-0.1] * len(completion),
    )


def test_pack_first_fit_decreasing():
    # lengths 10, 3, 7, 2 with 12 slots: [10] | [7] | [3, 2]  (2·10 and 2·7 exceed 12)
    assert pack_microbatches([10, 3, 7, 2], 12) == [[0], [2], [1, 3]]
    assert pack_microbatches([4, 4, 4], 12) == [[0, 1, 2]]
    assert pack_microbatches([20], 12) == [[0]]  # too long: alone


def test_collate_pads_right():
    a = Trajectory(task_id="t", final_reward=1.0, steps=[step(0, [1, 2], [3])])
    b = Trajectory(task_id="t", final_reward=0.0, steps=[step(0, [7], [8, 9])])
    batch = RolloutBatch.from_members([a, b])
    from agentrl.algos import Pipeline

    rows = batch.with_advantages(Pipeline("rloo")(batch.steps)).tokens  # RLOO: A = ±1
    out = collate(rows, pad_id=0)
    assert out.input_ids.tolist() == [[1, 2, 3], [7, 8, 9]]
    assert out.mask.tolist() == [[0, 0, 1], [0, 1, 1]]
    assert out.advantage.tolist() == [[0, 0, 1.0], [0, 0, 0]]
    assert out.advantage_neg.tolist() == [[0, 0, 0], [0, -1.0, -1.0]]
    assert out.num_tokens == 6
