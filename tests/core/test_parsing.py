import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentrl.env.parsing import (
    ActionError,
    check_text,
    extract_answer,
    extract_boxed,
    extract_code,
    parse_command,
    parse_tool_calls,
)
from agentrl.types import ToolSpec

TOOLS = [
    ToolSpec(
        name="search",
        description="search",
        parameters={
            "type": "object",
            "properties": {"query": {"type": "string"}, "k": {"type": "integer", "minimum": 1}},
            "required": ["query"],
            "additionalProperties": False,
        },
    )
]


def test_tool_calls_parse_several_and_string_arguments():
    text = (
        'think <tool_call>{"name": "search", "arguments": {"query": "a", "k": 2}}</tool_call>'
        '<tool_call>{"name": "search", "arguments": "{\\"query\\": \\"b\\"}"}</tool_call>'
    )
    calls = parse_tool_calls(text, TOOLS)
    assert [(c.name, c.arguments) for c in calls] == [("search", {"query": "a", "k": 2}), ("search", {"query": "b"})]


@pytest.mark.parametrize(
    "text, message",
    [
        ("<tool_call>{bad json}</tool_call>", "does not parse"),
        ('<tool_call>{"name": "fly"}</tool_call>', "Unknown tool 'fly'. Available tools: search"),
        ('<tool_call>{"name": "search", "arguments": {}}</tool_call>', "'query' is a required property"),
        ('<tool_call>{"name": "search", "arguments": {"query": 5}}</tool_call>', "field 'query'"),
        ('<tool_call>{"name": "search", "arguments": {"query": "x", "k": 0}}</tool_call>', "field 'k'"),
        ('<tool_call>{"name": "search", "arguments": {"query": "x", "z": 1}}</tool_call>', "Additional properties"),
        ('<tool_call>{"name": "search"', "not closed"),
        ("<tool_call>[1, 2]</tool_call>", "expected a JSON object"),
        ('<tool_call>{"arguments": {}}</tool_call>', 'needs a string "name"'),
        ("no call here", "No tool call found"),
    ],
)
def test_tool_call_errors_are_model_readable(text, message):
    with pytest.raises(ActionError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_tool_calls(text, TOOLS)


def test_code_answer_and_command_extraction():
    text = "first\n```python\nx = 1\n```\nthen\n```py\nprint(x)\n```"
    assert extract_code(text) == "print(x)\n"
    with pytest.raises(ActionError, match="open it with ```python"):
        extract_code("```\nx\n```")
    assert extract_boxed(r"so \boxed{\frac{1}{2}} done") == r"\frac{1}{2}"
    assert extract_boxed(r"\boxed{unclosed") is None
    assert extract_answer("<answer> 42 </answer> and <answer>43</answer>") == "43"
    assert extract_answer(r"The answer is \boxed{7}.") == "7"
    assert extract_answer("nothing") is None
    assert parse_command("search[red shoes]", ["search", "click"]) == ("search", "red shoes")
    assert parse_command("  Click[Buy Now] ", ["search", "click"]) == ("click", "Buy Now")
    with pytest.raises(ActionError, match="Unknown command 'buy'"):
        parse_command("buy[x]", ["search", "click"])
    with pytest.raises(ActionError, match="write one command like search"):
        parse_command("search red shoes", ["search", "click"])


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('<>tool_call{}[]"\\:,` \nabcpythonboxedanswer/0123')), max_size=120) | st.text())
def test_no_input_crashes_a_parser(text):
    """Every parser returns a value or raises ActionError — nothing else, whatever the input."""
    for parse in (
        lambda t: parse_tool_calls(t, TOOLS),
        extract_code,
        lambda t: parse_command(t, ["search", "click"]),
    ):
        try:
            parse(text)
        except ActionError as exc:
            assert str(exc)
    extract_answer(text)
    extract_boxed(text)


def deep(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "text",
    [
        '<tool_call>{"name": "search", "arguments": {"query": ' + deep(5000) + "}}</tool_call>",
        '<tool_call>{"name": "search", "arguments": {"query": "1", "x": ' + deep(65) + "}}</tool_call>",
        '<tool_call>{"name": "search", "arguments": "' + "[" * 5000 + '"}</tool_call>',
    ],
    ids=["past_the_decoder_limit", "past_our_limit", "arguments_string"],
)
def test_deep_json_is_an_action_error(text):
    with pytest.raises(ActionError, match="nested too deeply \\(at most 64 levels\\)"):
        parse_tool_calls(text, TOOLS)


def test_json_at_the_depth_limit_parses():
    nested = deep(62)  # the call object and its arguments are levels 1 and 2: 62 more make 64
    schema_free = [ToolSpec(name="f", description="", parameters={"type": "object"})]
    (call,) = parse_tool_calls('<tool_call>{"name": "f", "arguments": {"x": ' + nested + "}}</tool_call>", schema_free)
    assert call.name == "f"


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "\\ud83d"])  # lone halves; "\\ud83d\\ude00" is fine
def test_a_lone_surrogate_in_a_tool_call_is_an_action_error(escape):
    text = '<tool_call>{"name": "search", "arguments": {"query": "s = \'' + escape + "'\"}}</tool_call>"
    with pytest.raises(ActionError, match=f"lone surrogate U\\+{escape[2:].upper()}"):
        parse_tool_calls(text, TOOLS)
    (call,) = parse_tool_calls('<tool_call>{"name": "search", "arguments": {"query": "\\ud83d\\ude00"}}</tool_call>', TOOLS)
    assert call.arguments["query"] == "\U0001f600"  # a proper pair decodes to one character


def test_check_text_names_the_position():
    check_text("plain text \U0001f600")
    with pytest.raises(ActionError, match="U\\+D800 at position 3"):
        check_text("abc\ud800")


# Every bundled env that is cheap to run (no sandbox, no browser): no action text makes step raise.
CHEAP_ENVS = ["agentrl/Bandit-v0", "agentrl/ContextualBandit-v0", "agentrl/Calculator-v0", "agentrl/Maze-v0",
              "agentrl/GuiSim-v0", "agentrl/SearchQA-v0", "agentrl/WebShop-v0"]  # fmt: skip
HOSTILE = st.sampled_from(
    [
        "\ud800",
        "\udfff tail",
        '<tool_call>{"name": "search", "arguments": {"query": "\\ud800"}}</tool_call>',
        '<tool_call>{"name": "click", "arguments": {"x": ' + deep(5000) + "}}</tool_call>",
        "<tool_call>" + deep(5000) + "</tool_call>",
        "search[" + "\ud800" + "]",
        "click[" + "]" * 3000,
        "\x00\x1b[31m\r\n",
        "```python\n" + "(" * 5000 + "\n```",
        "\\boxed{" * 2000,
        "x" * 200_000,
    ]
)


@pytest.fixture(scope="module")
def cheap_envs():
    import agentrl

    envs = {env_id: agentrl.make(env_id) for env_id in CHEAP_ENVS}
    yield envs
    for env in envs.values():
        env.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(HOSTILE | st.text(max_size=40), min_size=1, max_size=3))
def test_no_action_text_makes_step_raise(cheap_envs, parts):
    action = "".join(parts)
    for env_id, env in cheap_envs.items():
        if env.done:
            env.reset(seed=0)
        obs, reward, _terminated, _truncated, info = env.step(action)
        assert isinstance(obs, str) and isinstance(reward, float), env_id
        if "\ud800" in action or "\udfff" in action:
            assert not info["valid_action"] and "lone surrogate" in obs, env_id
