"""A simulated page: a widget tree with browser-like default behaviour and task hooks.

:class:`SimPage` does what a browser does for any page — a click toggles a checkbox, checks a
radio (unchecking the others), focuses a field; ``type`` replaces a field's text; ``select``
picks an option; ``Tab`` moves the focus; Enter / Space click a focused button, Space toggles
a focused checkbox — and calls the task's hooks (``on_click``,
``on_focus``, ``on_key``) the way a MiniWoB page's event handlers run. A family subclasses it,
builds its tree in ``build()`` from ``self.rng`` and ends the episode with ``self.end(reward)``.
Pages have no layout, so ``scroll`` changes nothing — except the pointer families, which give
their nodes a ``box`` (``[left, top, width, height]`` as the real page lays them out):
``click_at`` clicks the topmost node under the point (:meth:`hit`) and ``drag`` calls
``on_drag`` with the node under the start point (a drag that does not move anything and ends on
the node it started on is a click, as in a browser). The whole page is plain data: ``fork()``
of the env is a ``copy.deepcopy``.
"""

from __future__ import annotations

import numpy as np
from agentrl_envs.gui.actions import Action
from agentrl_envs.gui.tree import Node

FOCUSABLE = ("textbox", "combobox", "button", "checkbox", "radio", "link", "tab")


class SimPage:
    """Base of every simulated family (see the module docstring)."""

    family = ""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.utterance = ""
        self.roots: list[Node] = []
        self.done = False
        self.raw_reward = 0.0
        self._next_id = 1
        self._made: list[Node] = []
        self.build()
        # Number the shown elements top to bottom (as the browser tier does), then the ones
        # built for later (e.g. a section's hidden body), whatever order build() made them in.
        shown = self.all_nodes()
        later = [n for n in self._made if all(n is not s for s in shown)]
        for new_id, made in enumerate(shown + later, start=1):
            made.id = new_id
        self._next_id = len(self._made) + 1
        del self._made

    # ----------------------------------------------------------------- for families
    def build(self) -> None:
        raise NotImplementedError

    def node(self, role: str, name: str = "", children: list[Node] | None = None, **fields) -> Node:
        """A new element with the next id (ids are never reused within an episode)."""
        made = Node(id=self._next_id, role=role, name=name, children=children or [], **fields)
        self._next_id += 1
        if hasattr(self, "_made"):
            self._made.append(made)
        return made

    def end(self, reward: float) -> None:
        """End the episode with MiniWoB raw reward ``reward`` (only the first call counts)."""
        if not self.done:
            self.done, self.raw_reward = True, float(reward)

    def on_click(self, node: Node) -> None: ...

    def on_focus(self, node: Node) -> None: ...

    def on_key(self, node: Node | None, key: str) -> None: ...

    def on_drag(self, node: Node | None, dx: int, dy: int) -> bool:
        """Drag ``node`` by (dx, dy); True if something moved. Default: nothing is draggable."""
        return False

    def hit(self, x: int, y: int) -> Node | None:
        """The topmost node whose box holds (x, y): the last in document order by default."""
        under = [n for n in self.all_nodes() if n.box is not None and inside(n.box, x, y)]
        return under[-1] if under else None

    def all_nodes(self) -> list[Node]:
        return [n for root in self.roots for n in root.walk()]

    def sample(self, items):
        return items[int(self.rng.integers(len(items)))]

    def randi(self, low: int, high: int) -> int:
        """Uniform integer in [low, high) like MiniWoB's ``core.randi``."""
        return int(self.rng.integers(low, high))

    # ----------------------------------------------------------------- browser behaviour
    def apply(self, action: Action, node: Node | None) -> None:
        if action.name == "click_at":
            node = self.hit(*action.coords)
            if node is not None:
                self.apply(Action("click", node.id), node)
        elif action.name == "drag":
            x1, y1, x2, y2 = action.coords
            node = self.hit(x1, y1)
            if not self.on_drag(node, x2 - x1, y2 - y1) and node is not None and self.hit(x2, y2) is node:
                self.apply(Action("click", node.id), node)
        elif action.name == "click":
            if node.role == "checkbox":
                node.checked = not node.checked
            elif node.role == "radio":
                for other in self.all_nodes():
                    if other.role == "radio":
                        other.checked = other is node
            self.focus(node)
            self.on_click(node)
        elif action.name == "type" or action.name == "select":
            self.focus(node)
            node.value = action.text
        elif action.name == "press":
            if node is not None:
                self.focus(node)
            focused = next((n for n in self.all_nodes() if n.focused), None)
            if action.text == "Tab":
                order = [n for n in self.all_nodes() if n.role in FOCUSABLE]
                if order:
                    index = order.index(focused) + 1 if focused in order else 0
                    self.focus(order[index % len(order)])
            self.on_key(focused, action.text)
            # Keyboard activation, as Chromium does it: Enter or Space clicks a focused button,
            # Space toggles a focused checkbox or radio.
            space = action.text in ("Space", " ")
            if focused is not None and not self.done and (
                (focused.role == "button" and (space or action.text == "Enter"))
                or (focused.role in ("checkbox", "radio") and space)
            ):
                self.apply(Action("click", focused.id), focused)

    def focus(self, node: Node | None) -> None:
        if node is not None and node.role not in FOCUSABLE:
            return
        changed = node is not None and not node.focused
        for other in self.all_nodes():
            other.focused = other is node
        if changed:
            self.on_focus(node)


def inside(box: list[int], x: int, y: int) -> bool:
    left, top, width, height = box
    return left <= x < left + width and top <= y < top + height
