"""The widget tree both GUI tiers show the agent, its text rendering and its state key.

A page is a tree of :class:`Node` s — the browser tier builds it from the live DOM (see
``browser/snapshot.js``), the Python tier keeps one as its state. Only what an accessibility
tree would expose is kept: a role, the visible name, a value, checked / selected / focused /
disabled flags, a select's options. Every node carries an integer ``id`` that stays the same
for the whole episode (a new element gets a new id; ids are never reused), and actions name
elements by that id.

Rendering (one line per node, children indented by two spaces)::

    [3] button "Submit"
    [7] textbox "Username" value="" focused
    [9] checkbox "xyz" checked=false
    [5] combobox value="Peru" options=["Chad", "Peru"]
    [12] text "Lorem ipsum"
    [4] button "ONE" box=[37,80,40,40]

Pages of the pointer families (:data:`LAYOUT_FAMILIES`) also show each element's box,
``[left, top, width, height]`` in CSS pixels from the page's top-left corner, so that
``click_at(x, y)`` and ``drag(x1, y1, x2, y2)`` can be aimed.

``state_key`` hashes the rendered tree together with the utterance: two steps share a key
exactly when the agent saw the same page (timers and reward displays are never part of the
tree, so waiting does not change the key).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from typing import Any

ROLES = (
    "button",
    "link",
    "checkbox",
    "radio",
    "textbox",
    "combobox",
    "tab",
    "heading",
    "label",
    "text",
    "listitem",
    "dialog",
    "group",
    "image",
    "slider",
)
# Families whose observation shows element boxes (the pointer / drag tasks).
LAYOUT_FAMILIES = frozenset({"click-test-2", "drag-box", "use-slider", "use-slider-2"})


@dataclasses.dataclass
class Node:
    """One element of the page as the agent sees it."""

    id: int
    role: str
    name: str = ""
    value: str | None = None
    checked: bool | None = None
    selected: bool | None = None
    expanded: bool | None = None
    focused: bool = False
    disabled: bool = False
    options: list[str] | None = None
    box: list[int] | None = None  # [left, top, width, height] in page pixels (layout families)
    children: list[Node] = dataclasses.field(default_factory=list)

    def walk(self) -> Iterator[Node]:
        """This node and all its descendants, depth first in document order."""
        yield self
        for child in self.children:
            yield from child.walk()

    def find(self, node_id: int) -> Node | None:
        return next((n for n in self.walk() if n.id == node_id), None)

    def line(self) -> str:
        parts = [f"[{self.id}] {self.role}"]
        if self.name:
            parts.append(json.dumps(self.name, ensure_ascii=False))
        if self.value is not None:
            parts.append(f"value={json.dumps(self.value, ensure_ascii=False)}")
        for flag in ("checked", "selected", "expanded"):
            value = getattr(self, flag)
            if value is not None:
                parts.append(f"{flag}={'true' if value else 'false'}")
        if self.options is not None:
            parts.append(f"options={json.dumps(self.options, ensure_ascii=False)}")
        if self.box is not None:
            parts.append("box=[{},{},{},{}]".format(*self.box))
        if self.focused:
            parts.append("focused")
        if self.disabled:
            parts.append("disabled")
        return " ".join(parts)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Node:
        """Build from the JSON the browser snapshot returns (same field names)."""
        fields = {k: v for k, v in data.items() if k != "children"}
        return cls(**fields, children=[cls.from_dict(c) for c in data.get("children", [])])


def render_tree(roots: list[Node]) -> str:
    """The page as indented text, one node per line."""
    lines: list[str] = []

    def visit(node: Node, depth: int) -> None:
        lines.append("  " * depth + node.line())
        for child in node.children:
            visit(child, depth + 1)

    for root in roots:
        visit(root, 0)
    return "\n".join(lines)


def render_observation(utterance: str, roots: list[Node], message: str = "") -> str:
    """The full observation: feedback on the last action (if any), the task, the page."""
    head = f"{message}\n" if message else ""
    return f"{head}Task: {utterance}\nPage:\n{render_tree(roots)}"


def state_key(utterance: str, roots: list[Node]) -> str:
    """A 16-hex-digit hash of the utterance and the rendered tree."""
    digest = hashlib.sha256(f"{utterance}\n{render_tree(roots)}".encode()).hexdigest()
    return digest[:16]
