"""What the agent sees after its code ran.

Layout (each part only when present)::

    <stdout, then stderr>
    Out: <text/plain of the last expression's value>
    [displayed: image/png]                       (rich output the model cannot read)
    Traceback (most recent call last, shortened):
    <the last few frames, ANSI colours removed>
    <ename>: <evalue>

An execution that printed nothing says ``(no output)`` so the model knows the code did run.
The whole text is capped at ``budget`` characters: the head and the tail are kept (errors and
final prints are at the end) around a ``…(N characters truncated)…`` marker. When the sandbox
itself cut the output short (its own cap on megabytes of prints), the text ends with
``…(output truncated by the sandbox)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TRACEBACK_FRAMES = 3
_HEADER = re.compile(r"^\w[\w.]*\s+Traceback \(most recent call last\)$")  # IPython's "ZeroDivisionError   Traceback (...)"


def strip_ansi(text: str) -> str:
    return ANSI.sub("", text)


def clip(text: str, budget: int) -> str:
    """``text`` if it fits in ``budget`` characters, else its head and tail around a marker."""
    if len(text) <= budget:
        return text
    marker_room = 40
    keep = max(budget - marker_room, 0)
    head, tail = keep // 2, keep - keep // 2
    cut = len(text) - head - tail
    return f"{text[:head]}\n…({cut} characters truncated)…\n{text[len(text) - tail:] if tail else ''}"


def short_traceback(frames: Sequence[str] | str, ename: str, evalue: str, max_frames: int = TRACEBACK_FRAMES) -> str:
    """The last ``max_frames`` frames of an IPython traceback, then ``ename: evalue``.

    IPython's traceback list holds a dashed header, one block per frame and the final
    ``ename: evalue`` line; the header and the final line are rebuilt here so that every
    backend's traceback looks the same.
    """
    blocks = [frames] if isinstance(frames, str) else list(frames)
    cleaned = [strip_ansi(b).strip("\n") for b in blocks]
    body = [b for b in cleaned if b.strip() and not set(b.strip()) <= {"-"} and not _HEADER.match(b.strip())]
    final = f"{ename}: {evalue}" if evalue else ename
    if body and body[-1].strip().startswith(ename):
        body = body[:-1]
    kept = body[-max_frames:]
    lines = []
    if kept:
        skipped = len(body) - len(kept)
        lines.append("Traceback (most recent call last" + (f", {skipped} frame{'s' * (skipped > 1)} omitted" if skipped else "") + "):")
        lines.extend(kept)
    lines.append(final)
    return "\n".join(lines)


def format_execution(
    *,
    stdout: str = "",
    stderr: str = "",
    result: str | None = None,
    display: Sequence[str] = (),
    error: str | None = None,
    sandbox_truncated: bool = False,
    budget: int = 2000,
) -> str:
    """The observation text for one executed cell (see the module docstring).

    ``error`` is the already shortened traceback (:func:`short_traceback`); ``display`` lists the
    MIME types of rich outputs.
    """
    parts = []
    streams = strip_ansi(stdout) + strip_ansi(stderr)
    if streams:
        parts.append(streams.rstrip("\n"))
    if result is not None:
        parts.append(f"Out: {strip_ansi(result)}")
    for mime in display:
        parts.append(f"[displayed: {mime}]")
    if error is not None:
        parts.append(error)
    text = "\n".join(parts) if parts else "(no output)"
    text = clip(text, budget)
    if sandbox_truncated:
        text += "\n…(output truncated by the sandbox)"
    return text
