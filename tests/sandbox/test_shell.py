"""The kernel's shortcuts around IPython give exactly IPython's answer: a cell no token transform
can change is not tokenized, a cell without ``await`` / ``async`` is not compiled a second time;
magics, shell escapes and top-level await still work in a real kernel (both backends)."""

from __future__ import annotations

import pytest
from agentrl_sandboxes.shell import SandboxShell, _Transforms, make_shell
from IPython.core.inputtransformer2 import TransformerManager
from IPython.core.interactiveshell import InteractiveShell

PLAIN = [
    "print(1 + 1)",
    "x = 1",
    "for k in range(10):\n    if k % 3 == 0:\n        total = k / 2, k // 2\n",
    "a = 1; b = a % 2",
    "x = '%s' % 3",
    "y = (1,\n     2)",
    "s = '''\n text\n'''",
    "def f():\n  return 1\n",
    "'abc",  # unterminated: IPython's transforms leave it to the compiler
    "",
]
IPYTHON = [
    "%pwd",
    "  %pwd",
    "x = %pwd",
    "x = !echo hi",
    "x = \\\n  %pwd",
    "!echo hi",
    "!!ls",
    "%%timeit\n1",
    "len?",
    "len??",
    "/print 1",
    ",print a b",
    ";print a b",
    "if True:\n    %pwd",
    "print('?')",
    "d = {'a': 1}  # what?",
    "def f():\n  return 1\n %pwd",
]


def transform(manager: TransformerManager, cell: str) -> str:
    try:
        return manager.transform_cell(cell)
    except Exception as exc:  # noqa: BLE001 - the same failure is the same answer
        return f"raised {type(exc).__name__}"


class CountingTransforms(_Transforms):
    looked = 0

    def do_one_token_transform(self, lines):
        CountingTransforms.looked += 1
        return super().do_one_token_transform(lines)


@pytest.mark.parametrize("cell", PLAIN + IPYTHON)
def test_transforms_match_ipython(cell):
    assert transform(_Transforms(), cell) == transform(TransformerManager(), cell)


def test_only_cells_a_token_transform_may_change_are_tokenized():
    manager = CountingTransforms()
    for cell in PLAIN:
        manager.transform_cell(cell)
    assert CountingTransforms.looked == 0
    for cell in IPYTHON:
        if cell.startswith("%%"):  # a cell magic is a line transform: nothing left to tokenize
            continue
        before = CountingTransforms.looked
        transform(manager, cell)
        assert CountingTransforms.looked > before, cell


@pytest.mark.parametrize(
    "cell",
    [
        "print(1)",
        "await x",
        "async with a:\n    pass",
        "[y async for y in z]",
        "async def f():\n    await g()",
        "def f(): pass",
        "x = 'await'",
    ],
)
def test_should_run_async_matches_ipython(cell):
    shell = make_shell()
    assert isinstance(shell, SandboxShell)
    assert shell.should_run_async(cell, transformed_cell=cell) == InteractiveShell.should_run_async(
        shell, cell, transformed_cell=cell
    )


@pytest.mark.asyncio(loop_scope="module")
async def test_magics_shell_escapes_and_top_level_await_in_a_kernel(pool):
    async with pool.sandbox(timeout=120) as sb:
        assert (await sb.run_code("x = !echo hi\nx")).result == "['hi']"
        assert (await sb.run_code("here = %pwd\nhere")).result == "'/work'"
        assert (await sb.run_code("!echo shell")).stdout.splitlines() == ["shell"]
        awaited = await sb.run_code("import asyncio\nawait asyncio.sleep(0)\n'awaited'")
        assert awaited.result == "'awaited'"
        assert (await sb.run_code("k = 7\nk % 3")).result == "1"
