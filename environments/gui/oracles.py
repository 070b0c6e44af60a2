"""Scripted solutions for the GUI task families, shared by both tiers.

An oracle sees only what the agent sees — the utterance, the widget tree, the actions it took
so far in the episode and the pages it was shown (``seen``: the rendered tree after the reset
and after each action, the last one being the current page) — and returns the next action
text. That one oracle solves a family
on the real MiniWoB++ page *and* on its Python re-implementation is the check that the two
tiers present the same task in the same form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from agentrl_envs.gui.actions import click, click_at, drag, press, select, type_text
from agentrl_envs.gui.tree import Node

Oracle = Callable[[str, list[Node], list[str], list[str]], str]
ORACLES: dict[str, Oracle] = {}


class OracleError(RuntimeError):
    """The oracle could not read the page (a bug in the env or the oracle, never the agent's)."""


def oracle(*families: str) -> Callable[[Oracle], Oracle]:
    def add(fn: Oracle) -> Oracle:
        for family in families:
            ORACLES[family] = fn
        return fn

    return add


def nodes(roots: list[Node], role: str | None = None, name: str | None = None) -> list[Node]:
    found = [n for root in roots for n in root.walk()]
    return [n for n in found if (role is None or n.role == role) and (name is None or n.name == name)]


def one(roots: list[Node], role: str, name: str | None = None) -> Node:
    found = nodes(roots, role, name)
    if not found:
        raise OracleError(f"no {role} {name!r} on the page")
    return found[0]


def quoted(utterance: str, index: int = 0) -> str:
    found = re.findall(r'"([^"]*)"', utterance)
    if len(found) <= index:
        raise OracleError(f"expected a quoted value in {utterance!r}")
    return found[index]


def clicked(node: Node, history: list[str]) -> bool:
    return click(node.id) in history


def fill_then_submit(fields: list[tuple[Node, str]], submit: Node) -> str:
    for field, text in fields:
        if field.value != text:
            return type_text(field.id, text)
    return click(submit.id)


@oracle("click-test")
def _click_test(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    return click(one(roots, "button").id)


def uncovered_point(node: Node, covers: list[Node]) -> tuple[int, int]:
    """A point of ``node``'s box outside every box in ``covers`` (its centre when free)."""
    left, top, width, height = node.box
    candidates = [(left + width // 2, top + height // 2)]
    candidates += [(left + width * i // 8, top + height * j // 8) for i in range(1, 8) for j in range(1, 8)]
    for x, y in candidates:
        if not any(c.box[0] <= x < c.box[0] + c.box[2] and c.box[1] <= y < c.box[1] + c.box[3] for c in covers):
            return x, y
    raise OracleError(f"[{node.id}] is covered everywhere")


@oracle("click-test-2")
def _click_test_2(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    # Aimed by coordinates: TWO is drawn over ONE where they overlap.
    return click_at(*uncovered_point(one(roots, "button", "ONE"), nodes(roots, "button", "TWO")))


@oracle("drag-box")
def _drag_box(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    small, large = one(roots, "text", "s"), one(roots, "text", "L")
    dx, dy = small.box[0] - large.box[0], small.box[1] - large.box[1]
    if 0 < dx < 30 and 0 < dy < 30:
        return click(one(roots, "button", "Submit").id)
    # Grab the small box by its centre; put its corner 15 px inside the large one's.
    x, y = small.box[0] + small.box[2] // 2, small.box[1] + small.box[3] // 2
    return drag(x, y, x + 15 - dx, y + 15 - dy)


def shown_value(page: str, handle_id: int) -> int:
    """The number shown after slider handle ``handle_id`` in a rendered page."""
    after = page.split(f"[{handle_id}] group", 1)[1]
    return int(re.search(r'\] text "(-?\d+)"', after).group(1))


@oracle("use-slider", "use-slider-2")
def _use_sliders(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    # Per slider, in order: learn its range with Home and End (the value is shown next to it),
    # click the track where the wanted value lies (unless it is within 1), then arrow keys.
    combination = re.search(r"combination (\[[-\d,\s]*\])", utterance)
    single = re.search(r"Select (-?\d+) with", utterance)
    wanted = json.loads(combination.group(1)) if combination else [int(single.group(1))]
    for track, goal in zip(nodes(roots, "slider"), wanted, strict=True):
        handle = track.children[0]
        value = shown_value(seen[-1], handle.id)
        if value == goal:
            continue
        home, end = press("Home", handle.id), press("End", handle.id)
        for key in (home, end):
            if key not in history:
                return key
        low, high = (shown_value(seen[history.index(key) + 1], handle.id) for key in (home, end))
        clicked = any(a.startswith("click_at") for a in history[history.index(end) + 1 :])
        if not clicked and abs(goal - value) > 1:
            left, top, width, height = track.box
            fraction = (goal - low) / (high - low)
            vertical = height > width
            x = left + width // 2 if vertical else min(left + round(fraction * width), left + width - 1)
            y = min(top + round((1 - fraction) * height), top + height - 1) if vertical else top + height // 2
            hx, hy, hw, hh = handle.box
            covered = hx <= x < hx + hw and hy <= y < hy + hh  # a press on the handle would not jump
            if not covered:
                return click_at(x, y)
            if abs(goal - value) > 3:
                return home if value == high else end
        return press("ArrowUp" if value < goal else "ArrowDown", handle.id)
    return click(one(roots, "button", "Submit").id)


@oracle("click-button-sequence")
def _click_named_buttons(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    for name in re.findall(r"button (ONE|TWO)", utterance):
        button = one(roots, "button", name)
        if not clicked(button, history):
            return click(button.id)
    raise OracleError("all buttons already clicked")


@oracle("click-button")
def _click_button(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    return click(one(roots, "button", quoted(utterance)).id)


@oracle("click-link")
def _click_link(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    return click(one(roots, "link", quoted(utterance)).id)


@oracle("click-dialog")
def _click_dialog(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    return click(one(roots, "button", "Close").id)


@oracle("click-dialog-2")
def _click_dialog_2(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    label = quoted(utterance)
    return click(one(roots, "button", "Close" if label == "x" else label).id)


@oracle("click-tab")
def _click_tab(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    number = re.search(r"Tab #(\d+)", utterance)
    if number is None:
        raise OracleError(f"no tab number in {utterance!r}")
    return click(one(roots, "tab", f"Tab #{number.group(1)}").id)


@oracle("click-checkboxes", "click-option")
def _click_checkboxes(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    match = re.match(r"Select (.*) and click Submit\.", utterance)
    if match is None:
        raise OracleError(f"unexpected utterance {utterance!r}")
    wanted = set() if match.group(1) == "nothing" else set(match.group(1).split(", "))
    for box in nodes(roots, "checkbox") + nodes(roots, "radio"):
        if bool(box.checked) != (box.name in wanted):
            return click(box.id)
    return click(one(roots, "button", "Submit").id)


@oracle("click-collapsible")
def _click_collapsible(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    header = one(roots, "heading")
    if not header.expanded:
        return click(header.id)
    return click(one(roots, "button", "Submit").id)


@oracle("choose-list")
def _choose_list(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    match = re.match(r"Select (.*) from the list and click Submit\.", utterance)
    if match is None:
        raise OracleError(f"unexpected utterance {utterance!r}")
    box = one(roots, "combobox")
    if box.value != match.group(1):
        return select(box.id, match.group(1))
    return click(one(roots, "button", "Submit").id)


@oracle("enter-text", "enter-text-dynamic")
def _enter_text(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    return fill_then_submit([(one(roots, "textbox"), quoted(utterance))], one(roots, "button", "Submit"))


@oracle("enter-text-2")
def _enter_text_2(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    text = quoted(utterance)
    text = text.upper() if "upper case" in utterance else text.lower()
    return fill_then_submit([(one(roots, "textbox"), text)], one(roots, "button", "Submit"))


@oracle("enter-password")
def _enter_password(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    password = quoted(utterance)
    return fill_then_submit([(box, password) for box in nodes(roots, "textbox")], one(roots, "button", "Submit"))


@oracle("login-user")
def _login_user(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    user_box, password_box = nodes(roots, "textbox")[:2]
    fields = [(user_box, quoted(utterance, 0)), (password_box, quoted(utterance, 1))]
    return fill_then_submit(fields, one(roots, "button", "Login"))


@oracle("focus-text")
def _focus_text(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    return click(one(roots, "textbox").id)


@oracle("focus-text-2")
def _focus_text_2(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    position = re.search(r"(\d)(?:st|nd|rd|th) input", utterance)
    if position is None:
        raise OracleError(f"no position in {utterance!r}")
    return click(nodes(roots, "textbox")[int(position.group(1)) - 1].id)


_OPERATORS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "x": lambda a, b: a * b}


@oracle("simple-arithmetic")
def _simple_arithmetic(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    for node in nodes(roots, "text"):
        match = re.fullmatch(r"(-?\d+) ([+\-x]) (-?\d+) =", node.name)
        if match:
            answer = _OPERATORS[match.group(2)](int(match.group(1)), int(match.group(3)))
            return fill_then_submit([(one(roots, "textbox"), str(answer))], one(roots, "button", "Submit"))
    raise OracleError("no arithmetic problem on the page")


@oracle("find-word")
def _find_word(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    position = re.search(r"(\d+)(?:st|nd|rd|th) word", utterance)
    if position is None:
        raise OracleError(f"no position in {utterance!r}")
    paragraph = one(roots, "text").name
    word = re.sub(r"[^a-zA-Z]", "", paragraph.split()[int(position.group(1)) - 1])
    return fill_then_submit([(one(roots, "textbox"), word)], one(roots, "button", "Submit"))


@oracle("odd-or-even")
def _odd_or_even(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    flat = [n for root in roots for n in root.walk()]
    for i, node in enumerate(flat):
        if node.role == "text" and re.fullmatch(r"-?\d+", node.name):
            wanted = "Odd" if int(node.name) % 2 else "Even"
            # Each number sits between its Odd button (before) and its Even button (after).
            button = flat[i - 1] if wanted == "Odd" else flat[i + 1]
            if not button.selected:
                return click(button.id)
    return click(one(roots, "button", "Submit").id)


@oracle("email-inbox-delete")
def _email_inbox_delete(utterance: str, roots: list[Node], history: list[str], seen: list[str]) -> str:
    match = re.match(r"Find the email by (.+?) and click the trash icon", utterance)
    if match is None:
        raise OracleError(f"unexpected utterance {utterance!r}")
    flat = [n for root in roots for n in root.walk()]
    start = next(i for i, n in enumerate(flat) if n.role == "link" and n.name == match.group(1))
    trash = next(n for n in flat[start:] if n.role == "button" and n.name == "trash")
    return click(trash.id)
