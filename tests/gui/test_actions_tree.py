"""The action language and the widget-tree rendering shared by both GUI tiers."""

import pytest
from agentrl_envs.gui.actions import Action, action_from_tool_call, parse_action
from agentrl_envs.gui.tree import Node, render_observation, render_tree, state_key

from agentrl.env import ActionError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("click(12)", Action("click", 12)),
        ('Action: click("3")', Action("click", 3)),
        ('I will type.\ntype(7, "a \\"q\\" (x)")', Action("type", 7, 'a "q" (x)')),
        ('press("enter")', Action("press", None, "Enter")),
        ('press(4, "Tab")', Action("press", 4, "Tab")),
        ('press("a")', Action("press", None, "a")),
        ('select(5, "Peru")', Action("select", 5, "Peru")),
        ('scroll("DOWN")', Action("scroll", None, "down")),
        ('scroll(2, "up")', Action("scroll", 2, "up")),
        ("click(1) then click(2)", Action("click", 2)),  # the last call wins
        ("click_at(57, 100)", Action("click_at", coords=(57, 100))),
        ('click_at(12.4, "30")', Action("click_at", coords=(12, 30))),  # rounded to whole pixels
        ("Action: drag(20, 70, 60.5, 90)", Action("drag", coords=(20, 70, 60, 90))),  # half to even
        ("click(3) then drag(1, 2, 3, 4)", Action("drag", coords=(1, 2, 3, 4))),
    ],
)
def test_parse_action(text, expected):
    assert parse_action(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Submit!", "No UI action found"),
        ("click(-1)", "element id must be a number"),
        ("click(2.5)", "element id must be a number"),
        ("click(None)", "numbers or quoted strings"),
        ("click_at(5)", "click_at takes 2 argument(s); use click_at(x, y)"),
        ("drag(1, 2, 3)", "drag takes 4 argument(s); use drag(x1, y1, x2, y2)"),
        ("click_at(-3, 10)", "cannot be negative; got -3"),
        ('click_at("left", 10)', "coordinates are numbers of pixels, e.g. click_at(x, y); got 'left'"),
        ("click_at(1e999, 10)", "coordinates must be finite numbers; got inf"),
        ('drag(1, 2, 3, "nan")', "coordinates must be finite numbers"),
        ("click_at(x=1, y=2)", "pass arguments by position"),
        ("click_at((1, 2))", "numbers or quoted strings"),
        ("click(x)", "numbers or quoted strings"),
        ('click("abc")', "element id must be a number"),
        ("type(1)", "type takes 2 argument(s)"),
        ('press("F13")', "unknown key 'F13'"),
        ('scroll("left")', 'direction must be "up" or "down"'),
        ("click(1, 2", "could not read the call"),
        ("click(id=3)", "pass arguments by position"),
    ],
)
def test_parse_errors_are_readable(text, message):
    with pytest.raises(ActionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_action(text)


def test_actions_round_trip_through_str():
    for action in (Action("click", 4), Action("type", 2, 'say "hi"\\'), Action("press", None, "Enter"),
                   Action("click_at", coords=(3, 9)), Action("drag", coords=(1, 2, 30, 40))):
        assert parse_action(str(action)) == action


def test_tool_call_form():
    assert action_from_tool_call("type", {"id": 3, "text": "bob"}) == Action("type", 3, "bob")
    assert action_from_tool_call("scroll", {"direction": "up"}) == Action("scroll", None, "up")
    assert action_from_tool_call("click_at", {"x": 4, "y": 5.2}) == Action("click_at", coords=(4, 5))
    assert action_from_tool_call("drag", {"x1": 1, "y1": 2, "x2": 3, "y2": 4}) == Action("drag", coords=(1, 2, 3, 4))
    with pytest.raises(ActionError, match="cannot be negative"):
        action_from_tool_call("drag", {"x1": 1, "y1": -2, "x2": 3, "y2": 4})


def test_render_and_state_key():
    roots = [
        Node(1, "checkbox", "xyz", checked=False),
        Node(2, "group", children=[Node(3, "textbox", "User", value="", focused=True)]),
        Node(4, "combobox", value="Peru", options=["Chad", "Peru"]),
        Node(5, "button", "ONE", box=[37, 80, 40, 40], focused=True),
    ]
    assert render_tree(roots) == (
        '[1] checkbox "xyz" checked=false\n'
        "[2] group\n"
        '  [3] textbox "User" value="" focused\n'
        '[4] combobox value="Peru" options=["Chad", "Peru"]\n'
        '[5] button "ONE" box=[37,80,40,40] focused'
    )
    assert render_observation("Do it.", roots, "Note.").startswith("Note.\nTask: Do it.\nPage:\n[1] checkbox")
    key = state_key("Do it.", roots)
    assert len(key) == 16
    assert key != state_key("Do that.", roots)  # the utterance is part of the state
    roots[0].checked = True
    assert key != state_key("Do it.", roots)
    assert Node.from_dict({"id": 1, "role": "text", "name": "a", "children": [{"id": 2, "role": "link"}]}) == Node(
        1, "text", "a", children=[Node(2, "link")]
    )
