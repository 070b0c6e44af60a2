"""Driving one MiniWoB++ task page: start an instance, read it, act on it.

Every function here takes a selenium driver and runs on the browser's worker thread (see
:meth:`Browser.run`). The task pages are the ones shipped in the ``miniwob`` wheel, opened from
``file://`` (no web server).

Episode protocol (``miniwob/html/core/core.js``): ``Math.seedrandom(seed)`` fixes the instance,
``core.setDataMode(mode)`` picks the train/test distribution of tasks that have one,
``core.startEpisodeReal()`` runs ``genProblem()``. We lift the page's wall-clock limit
(``core.EPISODE_MAX_TIME``, 10 s, which LLM latency would turn into a timeout of −1) to a day:
the env's ``max_turns`` bounds the episode instead. The task signals its end through
``core.endEpisode(r)``; we read the *raw* reward ``WOB_RAW_REWARD_GLOBAL`` (no time decay).
"""

from __future__ import annotations

import dataclasses
import os
import time
from functools import cache
from typing import Any

from agentrl_envs.gui.actions import Action
from agentrl_envs.gui.tree import Node

EPISODE_MAX_MS = 24 * 3600 * 1000
READY_TIMEOUT_S = 5.0
_SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))


@cache
def miniwob_html_dir() -> str:
    try:
        import miniwob
    except ImportError:  # pragma: no cover - the gui extra installs it
        raise ImportError("the browser tier needs the miniwob package: pip install 'agentrl[gui]'") from None
    return os.path.join(os.path.dirname(miniwob.__file__), "html", "miniwob")


@cache
def snapshot_script() -> str:
    with open(os.path.join(_SCRIPT_DIR, "snapshot.js"), encoding="utf-8") as f:
        return f.read()


@dataclasses.dataclass
class PageState:
    """What one read of the page returns."""

    utterance: str
    roots: list[Node]
    done: bool
    raw_reward: float
    reason: str | None


def start_episode(
    driver: Any, page: str, seed: str, mode: str, root: str | None = None, boxes: bool = False
) -> PageState:
    """Load ``page`` fresh and start the instance fixed by ``seed``; return its first state.

    ``root`` is the pages folder as the browser sees it (a container mounts the host's
    :func:`miniwob_html_dir` elsewhere); the page is checked to exist on the host. ``boxes``:
    the tree carries element boxes (pointer families).
    """
    path = os.path.join(miniwob_html_dir(), page)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MiniWoB page {page!r} not found in {miniwob_html_dir()}")
    driver.get("file://" + os.path.join(root or miniwob_html_dir(), page))
    driver.execute_script(
        "Math.seedrandom(arguments[0]); core.setDataMode(arguments[1]);"
        "core.EPISODE_MAX_TIME = arguments[2]; core.startEpisodeReal();",
        seed,
        mode,
        EPISODE_MAX_MS,
    )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not driver.execute_script("return WOB_TASK_READY;"):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{page} did not become ready within {READY_TIMEOUT_S} s")
        time.sleep(0.02)
    return read_state(driver, boxes)


def read_state(driver: Any, boxes: bool = False) -> PageState:
    """The widget tree (with element boxes if ``boxes``), utterance and episode status in one
    round trip."""
    snap = driver.execute_script(
        snapshot_script().replace("return (function", "var __tree = (function", 1)
        + "\nreturn [__tree, WOB_DONE_GLOBAL, WOB_RAW_REWARD_GLOBAL, WOB_REWARD_REASON];",
        boxes,
    )
    tree, done, raw, reason = snap
    return PageState(
        utterance=tree["utterance"],
        roots=[Node.from_dict(r) for r in tree["roots"]],
        done=bool(done),
        raw_reward=float(raw),
        reason=None if reason is None else str(reason),
    )


_SELENIUM_KEYS = {
    "Enter": "ENTER", "Tab": "TAB", "Backspace": "BACKSPACE", "Delete": "DELETE", "Escape": "ESCAPE",
    "Space": "SPACE", "ArrowUp": "ARROW_UP", "ArrowDown": "ARROW_DOWN", "ArrowLeft": "ARROW_LEFT",
    "ArrowRight": "ARROW_RIGHT", "Home": "HOME", "End": "END", "PageUp": "PAGE_UP", "PageDown": "PAGE_DOWN",
}


def perform(driver: Any, action: Action, target: Node | None) -> str:
    """Carry out a checked action; return a short note when it had no effect ("" otherwise).

    ``target`` is the node the action names, already checked by the env to exist on the page
    and to suit the action. A click the page refuses (covered or not interactable element) is a
    valid action that did nothing, as it would be for a person.
    """
    from selenium.common.exceptions import (
        ElementClickInterceptedException,
        ElementNotInteractableException,
        StaleElementReferenceException,
    )
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    if action.name in ("click_at", "drag"):
        from selenium.common.exceptions import MoveTargetOutOfBoundsException

        try:
            _pointer(driver, action.coords)
        except MoveTargetOutOfBoundsException:  # a window configured smaller than the task area
            return f"{action} had no effect: the point is outside the browser window."
        return ""
    element = None
    if target is not None:
        found = driver.find_elements(By.CSS_SELECTOR, f'[data-agentrl-id="{target.id}"]')
        if not found:
            return f"Element [{target.id}] is no longer on the page."
        element = found[0]
    try:
        if action.name == "click":
            _click(driver, element)
        elif action.name == "type":
            element.click()
            element.clear()
            element.send_keys(action.text)
        elif action.name == "select":
            Select(element).select_by_visible_text(_option_text(element, action.text))
        elif action.name == "press":
            if element is not None:
                driver.execute_script("arguments[0].focus();", element)
            key = getattr(Keys, _SELENIUM_KEYS[action.text]) if action.text in _SELENIUM_KEYS else action.text
            ActionChains(driver).send_keys(key).perform()
        elif action.name == "scroll":
            sign = 1 if action.text == "down" else -1
            if element is not None:
                driver.execute_script("arguments[0].scrollTop += arguments[1] * arguments[0].clientHeight * 0.8;",
                                      element, sign)
            else:
                driver.execute_script("window.scrollBy(0, arguments[0] * window.innerHeight * 0.8);", sign)
    except (ElementClickInterceptedException, ElementNotInteractableException) as exc:
        reason = "it is covered by another element" if isinstance(exc, ElementClickInterceptedException) else (
            "it cannot be interacted with right now")
        return f"{action.name}({target.id if target else ''}) had no effect: {reason}."
    except StaleElementReferenceException:
        return f"Element [{target.id if target else ''}] disappeared before the action."
    return ""


# A point of the element that is on top (not covered), as an offset from its centre, or null.
_VISIBLE_POINT = """
var el = arguments[0], r = el.getBoundingClientRect();
for (var i = 1; i < 8; i++) for (var j = 1; j < 8; j++) {
  var x = r.left + r.width * i / 8, y = r.top + r.height * j / 8, top = document.elementFromPoint(x, y);
  if (top && (top === el || el.contains(top))) return [x - (r.left + r.width / 2), y - (r.top + r.height / 2)];
}
return null;
"""


def _click(driver: Any, element: Any) -> None:
    """Click the element where a person would: its centre, or else a part of it that is not covered."""
    from selenium.common.exceptions import ElementClickInterceptedException
    from selenium.webdriver.common.action_chains import ActionChains

    try:
        element.click()
    except ElementClickInterceptedException:
        offset = driver.execute_script(_VISIBLE_POINT, element)
        if offset is None:
            raise
        ActionChains(driver).move_to_element_with_offset(element, int(offset[0]), int(offset[1])).click().perform()


DRAG_STEPS = 5  # intermediate pointer moves of a drag (jQuery UI starts a drag on movement)
POINTER_MOVE_MS = 20


def _pointer(driver: Any, coords: tuple[int, ...]) -> None:
    """A real mouse gesture at page coordinates: a click at (x, y), or press at (x1, y1), move
    to (x2, y2) in a few steps, release."""
    from selenium.webdriver.common.actions.action_builder import ActionBuilder

    builder = ActionBuilder(driver, duration=POINTER_MOVE_MS)
    mouse = builder.pointer_action
    x1, y1 = coords[:2]
    mouse.move_to_location(x1, y1)
    mouse.pointer_down()
    if len(coords) == 4:
        x2, y2 = coords[2:]
        for step in range(1, DRAG_STEPS + 1):
            mouse.move_to_location(round(x1 + (x2 - x1) * step / DRAG_STEPS), round(y1 + (y2 - y1) * step / DRAG_STEPS))
    mouse.pointer_up()
    builder.perform()


def _option_text(element: Any, wanted: str) -> str:
    """The exact option text matching ``wanted`` up to surrounding / repeated whitespace."""
    squash = " ".join(wanted.split())
    for option in element.find_elements("tag name", "option"):
        text = option.get_attribute("textContent")
        if " ".join(text.split()) == squash:
            return text
    return wanted


def screenshot(driver: Any) -> bytes:
    """The viewport as PNG bytes."""
    return driver.get_screenshot_as_png()
