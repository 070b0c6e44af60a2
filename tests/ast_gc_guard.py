"""A guard against a CPython bug that turns a failing test into a pytest INTERNALERROR.

CPython 3.11.0–3.11.7 and 3.12.0–3.12.1 keep the AST constructor's recursion counter in
interpreter-wide state (python/cpython#106905, fixed in 3.11.8 / 3.12.2 by #113476 / #113472).
pytest parses source while it prints a failure (and when it rewrites the asserts of a module it
imports). If the garbage collector runs during that parse and a finalizer parses source too, the
finalizer's parse resets the counter under pytest's, and pytest dies with ``SystemError: AST
constructor recursion depth mismatch`` or a ``RecursionError``. Such finalizers are common in the
cluster tests: an asyncio or Ray future whose exception nobody retrieved logs it when collected,
and 3.11's traceback formatting parses every line it prints (to place its ``^^^`` carets). That
is the INTERNALERROR seen once in tests/cluster/test_samplers.py under load.

:func:`install` (called by tests/conftest.py on those versions) makes every ``ast.parse`` run
with automatic garbage collection off, so no finalizer runs inside one. Another thread cannot
interleave either: without the collector, a parse runs no Python code, so it keeps the GIL.
"""

from __future__ import annotations

import ast
import gc
import sys
import threading

AFFECTED = (3, 11) <= sys.version_info[:3] < (3, 11, 8) or (3, 12) <= sys.version_info[:3] < (3, 12, 2)

_parse = ast.parse
_lock = threading.RLock()  # re-entrant: a finalizer may parse while its thread updates the count
_parsing = 0
_collector_was_on = False


def _guarded_parse(*args, **kwargs):
    global _parsing, _collector_was_on
    with _lock:
        if not _parsing:
            _collector_was_on = gc.isenabled()
            gc.disable()
        _parsing += 1
    try:
        return _parse(*args, **kwargs)
    finally:
        with _lock:
            _parsing -= 1
            if not _parsing and _collector_was_on:
                gc.enable()


def install() -> None:
    """Parse with the collector off from now on (this process)."""
    ast.parse = _guarded_parse
