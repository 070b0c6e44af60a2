"""Action parsers: turn model text into tool calls, code, answers or commands.

Every parser is total: for any input string it either returns a result or raises
:class:`ActionError`, whose message is written for the model to read and fix its action
(envs put it in the observation and set ``valid_action=False``). No other exception escapes —
not for JSON nested thousands deep (``RecursionError`` inside the decoder) nor for strings that
are not valid Unicode (a JSON ``"\ud800"`` escape decodes to a lone surrogate, which cannot be
encoded to UTF-8 and would fail later, far from the parser: see :func:`check_text`).

Formats:

* Hermes / Qwen tool calls: ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``,
  checked against the declared tools' JSON schemas.
* Fenced code: ```` ```python ... ``` ```` (the last block wins when there are several).
* Final answers: ``<answer>...</answer>`` or ``\\boxed{...}`` (nested braces allowed).
* Commands: ``name[argument]``, as in WebShop's ``search[red shoes]`` / ``click[Buy Now]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence

import jsonschema

from agentrl.types import ToolCall, ToolSpec


class ActionError(ValueError):
    """The action could not be understood; the message tells the model what to fix."""


_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_UNCLOSED_TOOL_CALL = re.compile(r"<tool_call>(?!.*</tool_call>)", re.DOTALL)
_CODE_BLOCK = re.compile(r"```(?:python|py)[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_COMMAND = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_\-]*)\s*\[(.*)\]\s*$", re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays/objects accepted in a tool call (tool arguments are shallow)."""


def check_text(text: str, what: str = "The action") -> None:
    """Raise :class:`ActionError` if ``text`` holds a lone UTF-16 surrogate (not valid Unicode)."""
    found = _SURROGATE.search(text)
    if found is not None:
        raise ActionError(
            f"{what} is not valid Unicode text: it holds a lone surrogate U+{ord(found.group()):04X} "
            f"at position {found.start()}. Write the character itself or an escape sequence in the code."
        )


def _load_json(raw: str, what: str) -> object:
    """``json.loads`` with the parser's guarantees: bounded depth, valid Unicode strings."""
    too_deep = ActionError(f"{what}: the JSON is nested too deeply (at most {MAX_JSON_DEPTH} levels).")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ActionError(f"{what}: the JSON does not parse ({exc.msg} at char {exc.pos}).") from None
    except RecursionError:
        raise too_deep from None
    stack = [(value, 0)]
    while stack:  # iterative: the value may be nested just under the decoder's own limit
        item, depth = stack.pop()
        if isinstance(item, str):
            check_text(item, f"{what}: a string")
        elif isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise too_deep
            if isinstance(item, dict):
                for key in item:
                    check_text(key, f"{what}: a key")
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return value


def has_tool_call(text: str) -> bool:
    return "<tool_call>" in text


def parse_tool_calls(text: str, tools: Sequence[ToolSpec]) -> list[ToolCall]:
    """All ``<tool_call>`` blocks in ``text``, validated against ``tools``.

    Raises :class:`ActionError` for an unclosed tag, bad JSON, a missing ``name``, an unknown
    tool, or arguments that do not match the tool's schema.
    """
    by_name = {t.name: t for t in tools}
    blocks = _TOOL_CALL.findall(text)
    if not blocks:
        if _UNCLOSED_TOOL_CALL.search(text):
            raise ActionError("Invalid tool call: <tool_call> is not closed with </tool_call>.")
        raise ActionError("No tool call found: wrap a JSON object in <tool_call>...</tool_call>.")
    calls = []
    for raw in blocks:
        payload = _load_json(raw.strip(), "Invalid tool call")
        if not isinstance(payload, dict):
            raise ActionError('Invalid tool call: expected a JSON object like {"name": ..., "arguments": {...}}.')
        name = payload.get("name")
        if not isinstance(name, str):
            raise ActionError('Invalid tool call: the object needs a string "name".')
        if name not in by_name:
            known = ", ".join(sorted(by_name)) or "(none)"
            raise ActionError(f"Unknown tool {name!r}. Available tools: {known}.")
        arguments = payload.get("arguments", {})
        if isinstance(arguments, str):  # some models emit arguments as a JSON string
            arguments = _load_json(arguments, f"Invalid arguments for {name}")
        if not isinstance(arguments, dict):
            raise ActionError(f"Invalid arguments for {name}: expected a JSON object.")
        check_arguments(by_name[name], arguments)
        calls.append(ToolCall(name=name, arguments=arguments))
    return calls


def check_arguments(tool: ToolSpec, arguments: dict) -> None:
    """Validate ``arguments`` against the tool's JSON schema with a model-readable error."""
    try:
        jsonschema.validate(arguments, tool.parameters)
    except jsonschema.ValidationError as exc:
        where = ".".join(str(p) for p in exc.absolute_path)
        field = f" (field {where!r})" if where else ""
        raise ActionError(f"Invalid arguments for {tool.name}{field}: {exc.message}.") from None


def extract_code(text: str) -> str:
    """The last fenced python block in ``text``."""
    blocks = _CODE_BLOCK.findall(text)
    if not blocks:
        if "```" in text:
            raise ActionError("Code block not recognised: open it with ```python on its own line and close it with ```.")
        raise ActionError("No code found: put Python code in a ```python ... ``` block.")
    return blocks[-1]


def extract_boxed(text: str) -> str | None:
    r"""The content of the last ``\boxed{...}``, honouring nested braces; None if absent."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j]
    return None


def extract_answer(text: str) -> str | None:
    r"""The final answer from ``<answer>...</answer>`` (last one) or ``\boxed{...}``; None if absent."""
    answers = _ANSWER.findall(text)
    if answers:
        return answers[-1].strip()
    boxed = extract_boxed(text)
    return boxed.strip() if boxed is not None else None


def parse_command(text: str, commands: Iterable[str]) -> tuple[str, str]:
    """Parse ``name[argument]`` where ``name`` is one of ``commands``; returns ``(name, argument)``."""
    allowed = list(commands)
    match = _COMMAND.match(text)
    if match is None:
        examples = " or ".join(f"{c}[...]" for c in allowed)
        raise ActionError(f"Invalid action format: write one command like {examples}.")
    name, argument = match.group(1).lower(), match.group(2).strip()
    if name not in allowed:
        raise ActionError(f"Unknown command {name!r}. Available commands: {', '.join(allowed)}.")
    return name, argument
