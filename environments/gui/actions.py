"""The text action language shared by both GUI tiers, and its parser.

Actions are Python-style calls naming elements by the ``[id]`` shown in the observation::

    click(12)                 click element 12
    type(7, "alice")          replace the text of field 7 with "alice" (focuses it first)
    press("Enter")            press a key on the focused element
    press(7, "Enter")         focus element 7, then press the key
    select(5, "Peru")         choose the option labelled "Peru" in drop-down 5
    scroll("down")            scroll the page ("up" or "down")
    scroll(4, "down")         scroll inside element 4
    click_at(57, 100)         click the point x=57, y=100 (pixels from the page's top-left)
    drag(20, 70, 60, 90)      press at (20, 70), move to (60, 90), release

The coordinate actions (``click_at``, ``drag``) aim at the ``box=[left, top, width, height]``
that pages of the pointer families show; coordinates are numbers (rounded to whole pixels),
not negative. Whether a point lies on the page is the env's check.

Ids may be written as numbers or strings (``click("12")``). Text may surround the call
(``Action: click(12)``, code fences); the *last* call in the text is taken. Anything else
raises :class:`agentrl.env.ActionError` with a message the model can act on.
"""

from __future__ import annotations

import ast
import dataclasses
import math
import re

from agentrl.env import ActionError
from agentrl.types import ToolSpec

KEYS = (
    "Enter",
    "Tab",
    "Backspace",
    "Delete",
    "Escape",
    "Space",
    "ArrowUp",
    "ArrowDown",
    "ArrowLeft",
    "ArrowRight",
    "Home",
    "End",
    "PageUp",
    "PageDown",
)
DIRECTIONS = ("up", "down")
SIGNATURES = {
    "click": "click(id)",
    "type": 'type(id, "text")',
    "press": 'press("Key") or press(id, "Key")',
    "select": 'select(id, "option")',
    "scroll": 'scroll("down") or scroll(id, "up")',
    "click_at": "click_at(x, y)",
    "drag": "drag(x1, y1, x2, y2)",
}
COORDINATE_ACTIONS = ("click_at", "drag")
_CALL_START = re.compile(r"\b(click_at|click|type|press|select|scroll|drag)\s*\(")


@dataclasses.dataclass(frozen=True)
class Action:
    """One parsed UI action: ``name``, the target element id (if any), a text argument and,
    for the coordinate actions, the points ``(x, y)`` or ``(x1, y1, x2, y2)``."""

    name: str
    target: int | None = None
    text: str | None = None
    coords: tuple[int, ...] | None = None

    def __str__(self) -> str:
        if self.coords is not None:
            return f"{self.name}({', '.join(map(str, self.coords))})"
        args = [str(self.target)] if self.target is not None else []
        if self.text is not None:
            args.append(_quote(self.text))
        return f"{self.name}({', '.join(args)})"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def click(target: int) -> str:
    return str(Action("click", target))


def type_text(target: int, text: str) -> str:
    return str(Action("type", target, text))


def press(key: str, target: int | None = None) -> str:
    return str(Action("press", target, key))


def select(target: int, option: str) -> str:
    return str(Action("select", target, option))


def scroll(direction: str, target: int | None = None) -> str:
    return str(Action("scroll", target, direction))


def click_at(x: int, y: int) -> str:
    return str(Action("click_at", coords=(x, y)))


def drag(x1: int, y1: int, x2: int, y2: int) -> str:
    return str(Action("drag", coords=(x1, y1, x2, y2)))


def parse_action(text: str) -> Action:
    """Parse the last UI call in ``text`` (see the module docstring for the grammar)."""
    starts = list(_CALL_START.finditer(text))
    if not starts:
        raise ActionError(f"No UI action found. Reply with one of: {', '.join(SIGNATURES.values())}.")
    start = starts[-1]
    name = start.group(1)
    call = _parse_call(text[start.start() :], name)
    args = call.args
    if call.keywords:
        raise ActionError(f"{name}: pass arguments by position, e.g. {SIGNATURES[name]}.")
    values = [_literal(name, arg) for arg in args]
    if name in COORDINATE_ACTIONS:
        _arity(name, values, 2 if name == "click_at" else 4)
        return Action(name, coords=tuple(_coordinate(name, v) for v in values))
    if name == "click":
        _arity(name, values, 1)
        return Action(name, _element_id(name, values[0]))
    if name in ("type", "select"):
        _arity(name, values, 2)
        return Action(name, _element_id(name, values[0]), _string(name, values[1]))
    if name == "press":
        _arity(name, values, 1, 2)
        target = _element_id(name, values[0]) if len(values) == 2 else None
        return Action(name, target, _key(values[-1]))
    # scroll
    _arity(name, values, 1, 2)
    target = _element_id(name, values[0]) if len(values) == 2 else None
    direction = _string(name, values[-1]).lower()
    if direction not in DIRECTIONS:
        raise ActionError(f'scroll: direction must be "up" or "down", not {values[-1]!r}.')
    return Action(name, target, direction)


def _parse_call(fragment: str, name: str) -> ast.Call:
    """The call expression at the start of ``fragment``, trying each closing parenthesis."""
    for end in (m.end() for m in re.finditer(r"\)", fragment)):
        try:
            tree = ast.parse(fragment[:end].strip(), mode="eval")
        except SyntaxError:
            continue
        if isinstance(tree.body, ast.Call) and isinstance(tree.body.func, ast.Name):
            return tree.body
    raise ActionError(f"{name}: could not read the call; write it like {SIGNATURES[name]} with quoted text.")


def _literal(name: str, arg: ast.expr) -> int | float | str:
    """A number (optionally signed) or a string constant; anything else is an error."""
    node, sign = arg, 1
    if isinstance(arg, ast.UnaryOp) and isinstance(arg.op, (ast.USub, ast.UAdd)):
        node, sign = arg.operand, -1 if isinstance(arg.op, ast.USub) else 1
    if not isinstance(node, ast.Constant) or isinstance(node.value, bool):
        raise ActionError(f"{name}: arguments must be numbers or quoted strings, e.g. {SIGNATURES[name]}.")
    value = node.value
    if isinstance(value, (int, float)):
        return sign * value
    if isinstance(value, str) and node is arg:
        return value
    raise ActionError(f"{name}: arguments must be numbers or quoted strings, e.g. {SIGNATURES[name]}.")


def _coordinate(name: str, value: float | str) -> int:
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ActionError(f"{name}: coordinates are numbers of pixels, e.g. {SIGNATURES[name]}; "
                              f"got {value!r}.") from None
    if not math.isfinite(value):
        raise ActionError(f"{name}: coordinates must be finite numbers; got {value!r}.")
    if value < 0:
        raise ActionError(f"{name}: coordinates are pixels from the page's top-left corner and cannot be "
                          f"negative; got {value!r}.")
    return round(value)


def _arity(name: str, values: list, *allowed: int) -> None:
    if len(values) not in allowed:
        raise ActionError(f"{name} takes {' or '.join(map(str, allowed))} argument(s); use {SIGNATURES[name]}.")


def _element_id(name: str, value: float | str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or value < 0:
        raise ActionError(f"{name}: the element id must be a number from the page listing, like [12]; got {value!r}.")
    return value


def _string(name: str, value: int | str) -> str:
    return value if isinstance(value, str) else str(value)


def _key(value: int | str) -> str:
    key = str(value)
    canonical = {k.lower(): k for k in KEYS}
    if key.lower() in canonical:
        return canonical[key.lower()]
    if len(key) == 1:
        return key
    raise ActionError(f"press: unknown key {key!r}; use a single character or one of {', '.join(KEYS)}.")


TOOLS = [
    ToolSpec(name="click", description="Click an element.", parameters={
        "type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}),
    ToolSpec(name="type", description="Replace the text of an input field.", parameters={
        "type": "object", "properties": {"id": {"type": "integer"}, "text": {"type": "string"}},
        "required": ["id", "text"]}),
    ToolSpec(name="press", description="Press a key, on an element (optional) or the focused one.", parameters={
        "type": "object", "properties": {"id": {"type": "integer"}, "key": {"type": "string"}},
        "required": ["key"]}),
    ToolSpec(name="select", description="Choose an option of a drop-down list.", parameters={
        "type": "object", "properties": {"id": {"type": "integer"}, "option": {"type": "string"}},
        "required": ["id", "option"]}),
    ToolSpec(name="scroll", description="Scroll the page or an element up or down.", parameters={
        "type": "object", "properties": {"id": {"type": "integer"}, "direction": {"enum": ["up", "down"]}},
        "required": ["direction"]}),
    ToolSpec(name="click_at", description="Click the point (x, y), in pixels from the page's top-left corner.",
             parameters={"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                         "required": ["x", "y"]}),
    ToolSpec(name="drag", description="Press at (x1, y1), move to (x2, y2) and release.", parameters={
        "type": "object", "properties": {k: {"type": "number"} for k in ("x1", "y1", "x2", "y2")},
        "required": ["x1", "y1", "x2", "y2"]}),
]

INSTRUCTIONS = (
    "You operate a web page to complete the task it shows. Each turn you see the task and the page as a "
    "tree of elements, each with an [id]. Reply with exactly one action:\n"
    + "\n".join(f"  {sig}" for sig in SIGNATURES.values())
    + f"\nKeys for press: a single character or one of {', '.join(KEYS)}. "
    "type() replaces the field's text. click_at and drag take pixel coordinates and work on pages that show "
    "element boxes (box=[left, top, width, height]). The episode ends when the task is complete."
)


def action_from_tool_call(name: str, arguments: dict) -> Action:
    """The :class:`Action` for a Hermes-style tool call (``TOOLS`` schema), checked like text."""
    if name in COORDINATE_ACTIONS:
        keys = ("x", "y") if name == "click_at" else ("x1", "y1", "x2", "y2")
        return parse_action(f"{name}({', '.join(repr(arguments.get(k)) for k in keys)})")
    target = arguments.get("id")
    text = {"type": "text", "press": "key", "select": "option", "scroll": "direction"}.get(name)
    call = Action(name, int(target) if target is not None else None, arguments.get(text) if text else None)
    return parse_action(str(call))
