import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentrl.env.parsing import (
    ActionError,
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
