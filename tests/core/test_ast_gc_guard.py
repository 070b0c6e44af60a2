"""The guard of tests/ast_gc_guard.py: on the affected CPython versions a parse during which the
garbage collector runs a finalizer that parses too fails (the crash pytest hit while printing a
failure); with the guard no parse fails."""

import ast
import gc

import pytest

from tests import ast_gc_guard

SOURCE = "\n".join(f"def f{i}(x):\n    return [y for y in x if (y + {i}) * 2]" for i in range(300))


class Finalizer:
    """Garbage whose finalizer parses source, as 3.11's traceback formatting does when an
    asyncio or Ray future logs an exception nobody retrieved."""

    def __del__(self):
        ast.parse("x = (1 + (2 * (3 - f(a[b], c))))\n" * 5)


def failed_parses(parse, tries: int = 3) -> list[str]:
    """Parse SOURCE ``tries`` times with parsing garbage pending; the errors seen."""
    threshold = gc.get_threshold()
    errors = []
    gc.set_threshold(50)
    try:
        for _ in range(tries):
            for _ in range(200):
                garbage = Finalizer()
                garbage.me = garbage  # a cycle: only the collector frees it
            del garbage
            try:
                parse(SOURCE)
            except (SystemError, RecursionError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        gc.set_threshold(*threshold)
        gc.collect()
    return errors


@pytest.mark.skipif(not ast_gc_guard.AFFECTED, reason="this CPython keeps the AST recursion counter per call")
def test_a_finalizer_parsing_inside_a_parse_breaks_it_and_the_guard_prevents_it():
    assert ast.parse is ast_gc_guard._guarded_parse  # installed by tests/conftest.py
    errors = failed_parses(ast_gc_guard._parse)  # the interpreter's own parse
    assert errors and all("AST constructor recursion depth mismatch" in e or "Recursion" in e for e in errors)
    assert failed_parses(ast.parse) == []
    assert gc.isenabled()  # switched back on after every guarded parse
