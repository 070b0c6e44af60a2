"""MiniWoB-style task families for the Python tier.

Each family re-implements one MiniWoB++ task from its published description and reward rule
(the task pages in the MIT-licensed ``miniwob`` wheel): the same utterance template, a widget
tree shaped like the browser tier's rendering of the real page, and the same raw reward, so the
shared oracles in :mod:`agentrl_envs.gui.oracles` solve both tiers. Instances come from
``self.rng`` (seeded by the task id), so they are deterministic.
"""

from __future__ import annotations

import json
import math
import string

from agentrl_envs.gui.actions import Action
from agentrl_envs.gui.sim.page import SimPage, inside
from agentrl_envs.gui.tree import Node

LOREM = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua", "enim", "ad", "minim", "veniam", "quis", "nostrud", "exercitation", "ullamco", "laboris", "nisi", "aliquip", "ex", "ea", "commodo", "consequat", "duis", "aute", "irure", "in", "reprehenderit", "voluptate", "velit", "esse", "cillum", "fugiat", "nulla", "pariatur", "excepteur", "sint", "occaecat", "cupidatat", "non", "proident", "sunt", "culpa", "qui", "officia", "deserunt", "mollit", "anim", "id", "est", "laborum"]
NAMES = ["Alice", "Bob", "Carol", "Dave", "Erin", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj", "Olivia", "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Yvonne", "Zelda", "Marcus", "Nina", "Oscar", "Priya", "Quinn", "Rosa", "Sam", "Tara", "Uma"]
COUNTRIES = ["Peru", "Chad", "Italy", "Belgium", "Kenya", "Chile", "Norway", "Japan", "Egypt", "Ghana", "Nepal", "Spain", "Cuba", "Fiji", "Iran", "Mali", "Oman", "Togo", "Laos", "Malta", "Brazil", "Canada", "Mexico", "Poland", "Sweden", "Greece", "Jordan", "Latvia", "Panama", "Qatar"]
BUTTONS = ("submit", "okay", "ok", "yes", "no", "cancel", "next", "previous")
ALNUM = string.ascii_letters + string.digits


class _Page(SimPage):
    def words(self, n: int) -> str:
        return " ".join(self.sample(LOREM) for _ in range(n))

    def sentences(self, n: int) -> str:
        """``n`` words as MiniWoB's ``ui_utils.generateWords`` writes them: capitalised
        sentences (a word ends one with probability 0.2), a full stop at the end."""
        out, capital = [], True
        for i in range(n):
            word = self.sample(LOREM)
            if capital:
                word, capital = word.capitalize(), False
            if i + 1 < n and self.rng.random() < 0.2:
                word, capital = word + ".", True
            out.append(word)
        return " ".join(out) + "."

    def random_string(self, low: int, high: int) -> str:
        return "".join(self.sample(ALNUM) for _ in range(self.randi(low, high + 1)))

    def submit_button(self, name: str = "Submit") -> Node:
        self.submit = self.node("button", name)
        return self.submit


class ClickButton(_Page):
    family = "click-button"

    def build(self) -> None:
        buttons: list[Node] = []
        for i in range(6):
            u = self.rng.random()
            last_chance = i == 5 and not buttons
            if u < 0.33 and not last_chance:
                self.roots.append(self.node("text", self.words(3)))
            elif u < 0.66 and not last_chance:
                if self.rng.random() < 0.5:
                    self.roots.append(self.node("text", self.words(3) + ":"))
                self.roots.append(self.node("textbox", value=""))
            else:
                name = self.sample(BUTTONS)
                buttons.append(self.node("button", name.capitalize() if self.rng.random() < 0.5 else name))
                self.roots.append(buttons[-1])
        self.target = self.sample(buttons).name
        self.utterance = f'Click on the "{self.target}" button.'

    def on_click(self, node: Node) -> None:
        if node.role == "button":
            self.end(1.0 if node.name == self.target else -1.0)


class ClickLink(_Page):
    family = "click-link"

    def build(self) -> None:
        # MiniWoB: 20 words, each made a link with probability 0.2, redrawn until one is (so
        # about 4 links); every link with the target's text is right.
        while True:
            words = self.sentences(20).split()
            is_link = self.rng.random(len(words)) < 0.2
            if is_link.any():
                break
        links = [self.node("link", w) for w, link in zip(words, is_link, strict=True) if link]
        self.target = self.sample(links).name
        paragraph = " ".join(w for w, link in zip(words, is_link, strict=True) if not link)
        self.roots = [self.node("text", paragraph, children=links)]
        self.utterance = f'Click on the link "{self.target}".'

    def on_click(self, node: Node) -> None:
        if node.role == "link":
            self.end(1.0 if node.name == self.target else -1.0)


class ClickCheckboxes(_Page):
    family = "click-checkboxes"

    def build(self) -> None:
        # MiniWoB: core.randi(2, 7) boxes (2..6, drawn once), labels of 2..7 characters
        # (generateString(2, 8)); a repeated label is redrawn so the utterance is unambiguous.
        count, names = self.randi(2, 7), []
        while len(names) < count:
            name = self.random_string(2, 7)
            if name not in names:
                names.append(name)
        self.wanted = {name for name in names if self.rng.random() < 0.5}
        self.roots = [self.node("checkbox", name, checked=False) for name in names] + [self.submit_button()]
        chosen = ", ".join(n for n in names if n in self.wanted) or "nothing"
        self.utterance = f"Select {chosen} and click Submit."

    def on_click(self, node: Node) -> None:
        if node is self.submit:
            boxes = [n for n in self.roots if n.role == "checkbox"]
            score = sum(1.0 if n.checked == (n.name in self.wanted) else -1.0 for n in boxes)
            self.end(score / len(boxes))


class ClickOption(_Page):
    family = "click-option"

    def build(self) -> None:
        names = list(dict.fromkeys(self.random_string(2, 6) for _ in range(self.randi(2, 7))))
        self.target = self.sample(names)
        self.roots = [self.node("radio", name, checked=False) for name in names] + [self.submit_button()]
        self.utterance = f"Select {self.target} and click Submit."

    def on_click(self, node: Node) -> None:
        if node is self.submit:
            chosen = [n.name for n in self.roots if n.role == "radio" and n.checked]
            self.end(1.0 if chosen == [self.target] else -1.0)


class ClickTab(_Page):
    family = "click-tab"

    def build(self) -> None:
        self.target = self.randi(1, 4)
        active = 1 if self.target == 2 else self.sample([i for i in (1, 2, 3) if i != self.target])
        self.roots = []
        for i in (1, 2, 3):
            item = self.node("listitem", expanded=i == active)
            item.children = [self.node("tab", f"Tab #{i}", selected=i == active)]
            self.roots.append(item)
        self.roots.append(self.node("text", self.words(20).capitalize() + "."))
        self.utterance = f"Click on Tab #{self.target}."

    def on_click(self, node: Node) -> None:
        if node.role == "tab":
            self.end(1.0 if node.name == f"Tab #{self.target}" else -1.0)


class ClickCollapsible(_Page):
    family = "click-collapsible"

    def build(self) -> None:
        self.header = self.node("heading", f"Section #{self.randi(1, 51)}", expanded=False)
        self.body = self.node("text", self.words(20).capitalize() + ".")
        self.roots = [self.header, self.node("group", expanded=False, children=[self.submit_button()])]
        self.utterance = "Expand the section below and click submit."

    def on_click(self, node: Node) -> None:
        if node is self.header:
            self.header.expanded = not self.header.expanded
            if self.header.expanded:
                self.roots.insert(1, self.body)
            else:
                self.roots.remove(self.body)
        elif node is self.submit:
            self.end(1.0 if self.header.expanded else -1.0)


class _Form(_Page):
    """Text fields plus a submit button; reward 1 iff every field holds its expected text."""

    expected: list[str]

    def on_click(self, node: Node) -> None:
        if node is self.submit:
            fields = [n for n in self.all_nodes() if n.role == "textbox"]
            self.end(1.0 if [f.value for f in fields] == self.expected else -1.0)


class EnterText(_Form):
    family = "enter-text"

    def build(self) -> None:
        word = self.sample(NAMES)
        self.expected = [word]
        self.roots = [self.node("textbox", value=""), self.submit_button()]
        self.utterance = f'Enter "{word}" into the text field and press Submit.'


class EnterPassword(_Form):
    family = "enter-password"

    def build(self) -> None:
        password = self.random_string(2, 6)
        self.expected = [password, password]
        self.roots = [self.node("label", "Password"), self.node("textbox", value=""),
                      self.node("label", "Verify password"), self.node("textbox", value=""), self.submit_button()]
        self.utterance = f'Enter the password "{password}" into both text fields and press submit.'


class LoginUser(_Form):
    family = "login-user"

    def build(self) -> None:
        user, password = self.sample(NAMES).lower(), self.random_string(2, 6)
        self.expected = [user, password]
        self.roots = [self.node("label", "Username"), self.node("textbox", value=""),
                      self.node("label", "Password"), self.node("textbox", value=""), self.submit_button("Login")]
        self.utterance = (f'Enter the username "{user}" and the password "{password}" into the text fields '
                          "and press login.")


class ChooseList(_Page):
    family = "choose-list"

    def build(self) -> None:
        pool = list(NAMES if self.rng.random() < 0.5 else COUNTRIES)
        self.rng.shuffle(pool)
        items = pool[: self.randi(3, 10)]
        self.target = self.sample(items)
        self.box = self.node("combobox", value=items[0], options=items)
        self.roots = [self.box, self.submit_button()]
        self.utterance = f"Select {self.target} from the list and click Submit."

    def on_click(self, node: Node) -> None:
        if node is self.submit:
            self.end(1.0 if self.box.value == self.target else -1.0)


class FocusText2(_Page):
    family = "focus-text-2"

    def build(self) -> None:
        self.target = self.randi(0, 3)
        self.roots = [self.node("textbox", value="") for _ in range(3)]
        self.utterance = f"Focus into the {('1st', '2nd', '3rd')[self.target]} input textbox."

    def on_focus(self, node: Node) -> None:
        if node.role == "textbox":
            self.end(1.0 if node is self.roots[self.target] else -1.0)


class ClickTest2(_Page):
    family = "click-test-2"

    def build(self) -> None:
        # MiniWoB: two 40x40 buttons at left randi(0, 118), top randi(0, 118) + 50 (page
        # pixels); TWO comes later in the page, so it is on top where they overlap.
        self.one, self.two = (self.node("button", name, box=[self.randi(0, 118), self.randi(0, 118) + 50, 40, 40])
                              for name in ("ONE", "TWO"))
        self.roots = [self.one, self.two]
        self.utterance = "Click button ONE."

    def on_click(self, node: Node) -> None:
        if node.role == "button":
            self.end(1.0 if node is self.one else -1.0)


class ClickButtonSequence(_Page):
    family = "click-button-sequence"

    def build(self) -> None:
        self.roots = [self.node("button", "ONE"), self.node("button", "TWO")]
        self.pushed: list[str] = []
        self.utterance = "Click button ONE, then click button TWO."

    def on_click(self, node: Node) -> None:
        # MiniWoB: the second button click ends it, +1 only for ONE then TWO.
        if node.role == "button":
            self.pushed.append(node.name)
            if len(self.pushed) == 2:
                self.end(1.0 if self.pushed == ["ONE", "TWO"] else -1.0)


class ClickDialog2(_Page):
    family = "click-dialog-2"

    def build(self) -> None:
        # MiniWoB: a jQuery UI dialog with generateWords(4, 8) (4-7 words), its title-bar close
        # button ("x") and Cancel / OK (Cancel focused); the named one gives +1, the others -1.
        text = self.sentences(self.randi(4, 8))
        self.target = self.sample(["Cancel", "OK", "x"])
        buttons = [self.node("button", "Cancel", focused=True), self.node("button", "OK")]
        self.close = self.node("button", "Close")
        self.roots = [self.node("dialog", children=[self.close, self.node("text", text), *buttons])]
        self.utterance = f'Click the button in the dialog box labeled "{self.target}".'

    def on_click(self, node: Node) -> None:
        if node.role == "button":
            self.end(1.0 if ("x" if node is self.close else node.name) == self.target else -1.0)

    def on_key(self, node: Node | None, key: str) -> None:
        if key == "Escape" and self.roots:  # jQuery UI closes the dialog; the task never ends
            self.roots = []


class DragBox(_Page):
    family = "drag-box"
    INSIDE = (2, 52)  # top-left of the 154x100 drag area on the page

    def build(self) -> None:
        # MiniWoB: boxes of 20 and 50 px (28 and 58 px with padding and border) at random
        # CSS offsets in the drag area; solved iff after Submit 0 < small - large < 30 on both
        # axes (the small box's offsets minus the large one's).
        left, top = self.INSIDE
        self.small = self.node("text", "s", box=[left + int(self.rng.random() * 129), top + int(self.rng.random() * 75), 28, 28])
        self.large = self.node("text", "L", box=[left + int(self.rng.random() * 99), top + int(self.rng.random() * 45), 58, 58])
        self.submit = self.node("button", "Submit", box=[2, 157, 101, 31])
        self.roots = [self.small, self.large, self.submit]
        self.utterance = "Drag the smaller box so that it is completely inside the larger box."

    def hit(self, x: int, y: int) -> Node | None:
        for node in (self.small, self.large, self.submit):  # z-index: small 20 over large 2
            if inside(node.box, x, y):
                return node
        return None

    def on_drag(self, node: Node | None, dx: int, dy: int) -> bool:
        if node is not self.small and node is not self.large:
            return False
        node.box = [node.box[0] + dx, node.box[1] + dy, *node.box[2:]]
        return True

    def on_click(self, node: Node) -> None:
        if node is self.submit:
            dx, dy = self.small.box[0] - self.large.box[0], self.small.box[1] - self.large.box[1]
            self.end(1.0 if 0 < dx < 30 and 0 < dy < 30 else -1.0)


class JQuerySlider:
    """One jQuery UI 1.12 slider (step 1), reproduced to the pixel from its source.

    ``track`` is the slider's element (its ``box`` set by the page's layout), ``handle`` the
    14 px square inside it, centred on the value's position: ``p`` of the track's inner length
    (outer minus the 1 px borders), ``p`` the value's fraction of the range, truncated to
    Chromium's 1/64 px layout unit (which decides values at half-way pixels). A press on the
    track jumps to the value under the pointer; a press on the handle keeps the value and a
    drag then moves it with the pointer, offset by where the handle was grabbed; the focused
    handle takes Home / End / PageUp / PageDown (a fifth of the range) / arrows (1). Pointer to
    value: pixel from the track's start / its outer length, clamped to [0, 1], reversed when
    vertical, rounded half up.
    """

    def __init__(self, track: Node, handle: Node, low: int, high: int, vertical: bool, value: int):
        self.track, self.handle = track, handle
        self.low, self.high, self.vertical, self.value = low, high, vertical, value
        self.grab: tuple[float, float] | None = None  # jQuery UI's _clickOffset while pressed

    def handle_corner(self) -> tuple[float, float]:
        left, top, width, height = self.track.box
        percent = (self.value - self.low) / (self.high - self.low) * 100  # jQuery's style: left / bottom %
        if self.vertical:  # 1 px border, bottom at percent of the inner height, -6 px margin, 14 px tall
            return left - 2, top + 1 + (height - 2) - _layout_unit(percent * (height - 2) / 100) - 8
        return left + 1 + _layout_unit(percent * (width - 2) / 100) - 6, top - 2

    def place_handle(self) -> None:
        x, y = self.handle_corner()
        self.handle.box = [_round(x), _round(y), 14, 14]

    def on_handle(self, x: int, y: int) -> bool:
        # Chromium hits an element whose box overlaps the pixel at (x, y): its enclosing
        # whole-pixel box (the handle's corner is fractional), measured against the real page.
        hx, hy = self.handle_corner()
        return hx - 1 < x < hx + 14 and hy - 1 < y < hy + 14

    def value_at(self, x: float, y: float) -> int:
        left, top, width, height = self.track.box
        if self.grab is not None:
            x, y = x - self.grab[0], y - self.grab[1]
        fraction = (y - top) / height if self.vertical else (x - left) / width
        fraction = min(max(fraction, 0.0), 1.0)
        if self.vertical:
            fraction = 1 - fraction
        value = self.low + fraction * (self.high - self.low)
        if value <= self.low or value >= self.high:
            return self.low if value <= self.low else self.high
        rest = math.fmod(value - self.low, 1)  # _trimAlignValue with step 1
        return int(value - rest + (1 if 2 * rest >= 1 else 0))

    def gesture(self, x1: int, y1: int, end: tuple[int, int] | None) -> None:
        """Mouse down at (x1, y1) (``_mouseCapture``), moved to ``end`` if given, released."""
        self.grab = None
        if self.on_handle(x1, y1):
            hx, hy = self.handle_corner()
            self.grab = (x1 - hx - 6, y1 - hy - 8)  # offset from the handle's centre, borders included
        else:
            self.value = self.value_at(x1, y1)
        if end is not None and end != (x1, y1):
            self.value = self.value_at(*end)
        self.grab = None

    def key(self, key: str) -> None:
        span, value = self.high - self.low, self.value
        moves = {"Home": self.low, "End": self.high, "PageUp": value + span / 5, "PageDown": value - span / 5,
                 "ArrowUp": value + 1, "ArrowRight": value + 1, "ArrowDown": value - 1, "ArrowLeft": value - 1}
        if key in moves:
            self.value = min(max(round(moves[key]), self.low), self.high)


class _SliderPage(_Page):
    """A page of jQuery UI sliders: pointer gestures and keys go to the slider they hit."""

    sliders: list[JQuerySlider]

    def layout(self) -> None:
        """Place every box and shown value for the sliders' current values."""
        raise NotImplementedError

    def hit(self, x: int, y: int) -> Node | None:
        handle = next((s.handle for s in self.sliders if s.on_handle(x, y)), None)
        return handle or super().hit(x, y)

    def apply(self, action: Action, node: Node | None) -> None:
        slider = next((s for s in self.sliders if node in (s.track, s.handle)), None)
        if action.name == "click" and slider is not None:
            # WebDriver clicks an element at the floor of its centre.
            left, top, width, height = node.box
            action = Action("click_at", coords=(left + width // 2, top + height // 2))
        if action.name in ("click_at", "drag"):
            x1, y1 = action.coords[:2]
            under = self.hit(x1, y1)
            slider = next((s for s in self.sliders if under in (s.track, s.handle)), None)
            if slider is not None:
                slider.gesture(x1, y1, tuple(action.coords[2:]) if action.name == "drag" else None)
                self.focus(slider.handle)
                self.layout()
                return
        super().apply(action, node)

    def focus(self, node: Node | None) -> None:
        if any(node is s.handle for s in self.sliders):  # handles have tabindex 0
            for other in self.all_nodes():
                other.focused = other is node
        else:
            super().focus(node)

    def on_key(self, node: Node | None, key: str) -> None:
        for slider in self.sliders:
            if node is slider.handle:
                slider.key(key)
                self.layout()

    def new_slider(self, low: int, high: int, vertical: bool, value: int) -> JQuerySlider:
        track, handle = self.node("slider"), self.node("group")
        track.children = [handle]
        return JQuerySlider(track, handle, low, high, vertical, value)


class UseSlider(_SliderPage):
    """MiniWoB use-slider: one slider, horizontal or vertical, range and length drawn per task.

    The track is ``style`` (50-114) px long plus its border and 10 px thick. The value is shown
    after the track, on the same line unless it no longer fits (then it wraps and the line moves
    up); the geometry is the one measured on the real page in Chromium.
    """

    family = "use-slider"
    LEFT = 10

    def build(self) -> None:
        low = self.sample([-100, 0, 10, 100])
        high = low + self.sample([5, 10, 50, 100])
        vertical = self.sample(["horizontal", "vertical"]) == "vertical"
        value = self.randi(low, high + 1)
        self.length = self.randi(50, 115) + 2  # outer length: the style's plus the border
        self.target = self.randi(low, high + 1)
        self.slider = self.new_slider(low, high, vertical, value)
        self.sliders = [self.slider]
        self.track, self.handle = self.slider.track, self.slider.handle
        self.shown = self.node("text")
        self.submit = self.node("button", "Submit")
        self.roots = [self.track, self.shown, self.submit]
        self.layout()
        self.utterance = f"Select {self.target} with the slider and hit Submit."

    def layout(self) -> None:
        vertical = self.slider.vertical
        self.shown.name = text = str(self.slider.value)
        text_width = 6.367 * len(text.lstrip("-")) + 3.6 * text.startswith("-")  # Arial digits, minus
        after = self.LEFT + (10 if vertical else self.length) + 8.19  # a space and a 5 px margin
        if vertical:
            self.track.box = [self.LEFT, 60, 10, self.length]
            shown, submit_top = [after, 60 + self.length - 9], 60 + self.length + 7
        elif after + text_width > 150:  # past the area's right edge: the value wraps
            self.track.box = [self.LEFT, 60, self.length, 10]
            shown, submit_top = [15, 77], 93
        else:
            self.track.box = [self.LEFT, 64, self.length, 10]
            shown, submit_top = [after, 65], 81
        self.shown.box = [_round(shown[0]), shown[1], _round(text_width), 11]
        self.submit.box = [10, submit_top, 101, 31]
        self.slider.place_handle()

    def on_click(self, node: Node) -> None:
        if node is self.submit:
            self.end(1.0 if self.slider.value == self.target else -1.0)


class UseSlider2(_SliderPage):
    """MiniWoB use-slider-2: three full-width horizontal sliders 0-20, each value shown in a
    line below it; +1 iff Submit is pressed with the combination asked for."""

    family = "use-slider-2"

    def build(self) -> None:
        self.sliders = [self.new_slider(0, 20, False, self.randi(0, 21)) for _ in range(3)]
        self.target = [self.randi(0, 21) for _ in range(3)]
        self.shown = [self.node("text") for _ in self.sliders]
        self.submit = self.node("button", "Submit", box=[10, 128, 101, 31])
        self.roots = [node for pair in zip((s.track for s in self.sliders), self.shown, strict=True) for node in pair]
        self.roots.append(self.submit)
        self.layout()
        self.utterance = f"Set the sliders to the combination {json.dumps(self.target, separators=(',', ':'))} and submit."

    def layout(self) -> None:
        for i, (slider, shown) in enumerate(zip(self.sliders, self.shown, strict=True)):
            slider.track.box = [10, 60 + 21 * i, 140, 10]
            shown.name, shown.box = str(slider.value), [10, 70 + 21 * i, 140, 11]
            slider.place_handle()

    def on_click(self, node: Node) -> None:
        if node is self.submit:
            self.end(1.0 if [s.value for s in self.sliders] == self.target else -1.0)


def _layout_unit(x: float) -> float:
    """A length as Chromium lays it out: truncated to its 1/64 px LayoutUnit."""
    return math.trunc(x * 64) / 64


def _round(x: float) -> int:
    """JavaScript's Math.round (halves up), as the browser rounds boxes."""
    return math.floor(x + 0.5)


FAMILIES: dict[str, type[SimPage]] = {
    cls.family: cls
    for cls in (ClickButton, ClickLink, ClickCheckboxes, ClickOption, ClickTab, ClickCollapsible, EnterText,
                EnterPassword, LoginUser, ChooseList, FocusText2, ClickTest2, ClickButtonSequence, ClickDialog2,
                DragBox, UseSlider, UseSlider2)
}
