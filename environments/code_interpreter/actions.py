r"""The action protocol: one action per turn, found in the model's text.

An action is one of

* **code** — a fenced ```` ```python ```` block, or a ``python`` tool call
  ``<tool_call>{"name": "python", "arguments": {"code": "..."}}</tool_call>``;
* **answer** — ``\boxed{...}``, ``<answer>...</answer>``, or an ``answer`` tool call
  ``<tool_call>{"name": "answer", "arguments": {"answer": "..."}}</tool_call>``.

**The first action in the text wins** and the rest is ignored, as if generation had stopped at
the end of that block (what ReTool / ToRL do with stop strings). A model that writes code and
then a guessed ``\boxed{}`` in the same turn gets its code run; it never gets credit for an
answer written before it saw the output. Anything else raises :class:`ActionError` with a
message the model can act on; the env shows it and marks the step invalid.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from agentrl.env.parsing import ActionError, extract_boxed, extract_code, parse_tool_calls
from agentrl.types import ToolSpec

PYTHON_TOOL = ToolSpec(
    name="python",
    description=(
        "Run Python code in a persistent Jupyter kernel (variables and imports survive across calls). "
        "Returns stdout, the value of the last expression, and errors with a short traceback."
    ),
    parameters={
        "type": "object",
        "properties": {"code": {"type": "string", "description": "Python source to execute."}},
        "required": ["code"],
        "additionalProperties": False,
    },
)
ANSWER_TOOL = ToolSpec(
    name="answer",
    description="Submit the final answer. Ends the episode.",
    parameters={
        "type": "object",
        "properties": {"answer": {"type": "string", "description": "The final answer."}},
        "required": ["answer"],
        "additionalProperties": False,
    },
)
TOOLS = [PYTHON_TOOL, ANSWER_TOOL]

_MARKERS = {"```": "fence", "<tool_call>": "tool", "\\boxed{": "boxed", "<answer>": "tag"}
_CLOSERS = {"fence": "```", "tool": "</tool_call>", "tag": "</answer>"}

NO_ACTION = (
    "No action found. Run code in a ```python ... ``` block (or call the python tool), "
    "or give the final answer as \\boxed{...} (or <answer>...</answer>, or the answer tool)."
)


@dataclasses.dataclass(frozen=True)
class Action:
    """A parsed action: ``kind`` is ``code`` or ``answer``; ``via`` says how it was written."""

    kind: Literal["code", "answer"]
    text: str
    via: Literal["block", "tool"]


def _first_marker(text: str) -> tuple[int, str] | None:
    found = [(text.find(marker), kind) for marker, kind in _MARKERS.items() if marker in text]
    return min(found) if found else None


def parse_action(text: str, tools: list[ToolSpec] = TOOLS) -> Action:
    """The first action in ``text`` (see the module docstring); raises :class:`ActionError`."""
    first = _first_marker(text)
    if first is None:
        raise ActionError(NO_ACTION)
    start, kind = first
    if kind == "boxed":
        # Cut before any later code or tool call; the last \\boxed{} before that point counts.
        later = [text.find(m, start) for m in ("```", "<tool_call>") if text.find(m, start) >= 0]
        answer = extract_boxed(text[start : min(later)] if later else text[start:])
        if answer is None:
            raise ActionError("The final answer is not closed: write \\boxed{ANSWER} with balanced braces.")
        return _answer(answer, "block")
    close = text.find(_CLOSERS[kind], start + 3)
    if kind == "tag":
        if close < 0:
            raise ActionError("The final answer is not closed: end it with </answer>.")
        return _answer(text[start + len("<answer>") : close], "block")
    segment = text[: close + len(_CLOSERS[kind])] if close >= 0 else text
    if kind == "fence":
        code = extract_code(segment)
        if not code.strip():
            raise ActionError("The code block is empty.")
        return Action("code", code, "block")
    (call,) = parse_tool_calls(segment[start:], tools)
    if call.name == "python":
        if not call.arguments["code"].strip():
            raise ActionError("The python tool was called with empty code.")
        return Action("code", call.arguments["code"], "tool")
    return _answer(call.arguments["answer"], "tool")


def _answer(text: str, via: Literal["block", "tool"]) -> Action:
    """Edge blank lines and trailing space are dropped; leading indentation is kept (code bodies)."""
    if not text.strip():
        raise ActionError("The final answer is empty.")
    return Action("answer", text.strip("\r\n").rstrip(), via)
