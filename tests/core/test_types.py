import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentrl.types import (
    Message,
    RolloutTree,
    StepRecord,
    ToolCall,
    ToolSpec,
    Trajectory,
    TreeLeaf,
    TreeNode,
    read_jsonl,
    write_jsonl,
)


def step(i: int, **kw) -> StepRecord:
    return StepRecord(
        index=i,
        observation=f"obs {i} ü\n",
        action=f"move[{i}]",
        prompt_token_ids=[1, 2, 3 + i],
        completion_token_ids=[7, 8],
        logprobs=[-0.5, -1.25],
        reward=0.5 * i,
        tool_calls=i,
        state_key=f"s{i}",
        **kw,
    )


def sample_records():
    traj = Trajectory(
        env_id="agentrl/Maze-v0",
        task_id="t1",
        group_id="g",
        seed=3,
        steps=[step(0), step(1, valid_action=False, info={"error": "bad"})],
        final_reward=1.0,
        success=True,
        status="truncated",
        truncation="max_turns",
        policy_version=4,
    )
    tree = RolloutTree(
        task_id="t1",
        nodes=[
            TreeNode(node_id=0, step=step(0)),
            TreeNode(node_id=1, parent_id=0, step=step(1)),
            TreeNode(node_id=2, parent_id=0, step=step(1)),
        ],
        leaves=[TreeLeaf(node_id=1, final_reward=1.0, success=True), TreeLeaf(node_id=2, status="infra_error")],
    )
    return [
        Message(role="assistant", content="hi", tool_calls=[ToolCall(name="f", arguments={"x": [1, 2]})]),
        ToolSpec(name="lookup", description="d", parameters={"type": "object", "properties": {}}),
        ToolCall(name="calc", arguments={"expression": "1+2"}, id="c1"),
        step(3),
        traj,
        tree,
    ]


@pytest.mark.parametrize("record", sample_records(), ids=lambda r: type(r).__name__)
def test_jsonl_round_trip_every_type(tmp_path, record):
    path = tmp_path / "r.jsonl"
    assert write_jsonl(path, [record, record]) == 2
    back = read_jsonl(path, type(record))
    assert back == [record, record]


def test_read_jsonl_names_the_bad_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, [ToolCall(name="a")])
    with open(path, "a") as f:
        f.write('{"name": 3}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not a valid ToolCall"):
        read_jsonl(path, ToolCall)


def test_step_record_rejects_mismatched_logprobs_and_unknown_fields():
    with pytest.raises(ValueError, match="logprobs has 1 entries but completion_token_ids has 2"):
        StepRecord(index=0, observation="", action="", completion_token_ids=[1, 2], logprobs=[0.0])
    with pytest.raises(ValueError, match="rewrd"):
        StepRecord(index=0, observation="", action="", rewrd=1.0)


def test_tree_paths_share_prefix_and_chain_round_trip():
    tree = sample_records()[-1]
    paths = tree.paths()
    assert [len(p.steps) for p in paths] == [2, 2]
    assert paths[0].steps[0] == paths[1].steps[0]
    assert [p.status for p in paths] == ["ok", "infra_error"]
    assert paths[1].learnable is False and paths[0].learnable is True

    chain = sample_records()[4]
    as_tree = RolloutTree.from_trajectory(chain)
    (path,) = as_tree.paths()
    assert path.steps == chain.steps
    assert (path.final_reward, path.success, path.status, path.truncation) == (1.0, True, "truncated", "max_turns")


def test_tree_rejects_child_before_parent_and_unknown_leaf():
    s = step(0)
    with pytest.raises(ValueError, match="comes before its parent"):
        RolloutTree(task_id="t", nodes=[TreeNode(node_id=1, parent_id=0, step=s), TreeNode(node_id=0, step=s)])
    with pytest.raises(ValueError, match="unknown node 5"):
        RolloutTree(task_id="t", nodes=[TreeNode(node_id=0, step=s)], leaves=[TreeLeaf(node_id=5)])


def test_message_to_chat_and_tool_openai_format():
    msg = Message(role="assistant", content="x", tool_calls=[ToolCall(name="f", arguments={"a": 1})])
    assert msg.to_chat() == {
        "role": "assistant",
        "content": "x",
        "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}],
    }
    spec = ToolSpec(name="f", description="does f")
    assert spec.to_openai()["function"]["name"] == "f"
    with pytest.raises(ValueError):
        ToolSpec(name="bad name!", description="")


@given(st.text(), st.floats(allow_nan=False, allow_infinity=False), st.lists(st.integers(0, 2**31)))
def test_step_record_text_round_trip(text, reward, tokens):
    record = StepRecord(index=0, observation=text, action=text[::-1], reward=reward, prompt_token_ids=tokens)
    assert StepRecord.model_validate_json(record.model_dump_json()) == record


@given(st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF)))  # includes lone surrogates
def test_any_text_round_trips_through_jsonl_exactly(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("jsonl") / "t.jsonl"
    trajectory = Trajectory(env_id="e", task_id="t", seed=0, steps=[step(0).model_copy(update={"action": text})])
    write_jsonl(path, [trajectory], append=True)
    assert read_jsonl(path, Trajectory) == [trajectory]


def test_a_lone_surrogate_from_a_chat_api_is_kept_not_lost(tmp_path):
    path = tmp_path / "t.jsonl"
    message = Message(role="assistant", content="ok \ud800 ok")
    write_jsonl(path, [message, Message(role="user", content="plain")])
    assert [m.content for m in read_jsonl(path, Message)] == ["ok \ud800 ok", "plain"]
    assert "\\ud800" in path.read_text().splitlines()[0]
