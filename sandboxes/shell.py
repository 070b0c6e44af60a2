"""The kernel process: one persistent IPython ``InteractiveShell`` driven over pipes.

Built once per sandbox in the zygote (:func:`make_shell`) and served in each kernel process the
zygote forks (:func:`serve`), in the work dir, in its own session.

Why not ipykernel: a default ipykernel spends 4-7 ms per request in its own dispatch (ZeroMQ,
message signing, the IOPub thread, busy/idle status messages), while ``InteractiveShell.run_cell``
of a trivial cell takes about 0.3 ms. This process keeps what the kernel gives — persistent
state, IPython semantics (``Out``, ``_``, magics, ``!cmd``), rich display data through IPython's
display formatter (the matplotlib inline backend → PNG), interrupt by SIGINT — and drops the
messaging layer.

Channels (all pipes owned by the server):

* fd 0 is ``/dev/null`` (``input()`` gets EOF; no stdin to steal);
* fd 1 / fd 2 are the cell's stdout / stderr: ``print`` (line-buffered) and the output of
  ``os.system`` and child processes land in the same pipes, in order, and are all in the pipe
  before the reply is written;
* ``REQUEST_FD``: one JSON line per cell, ``{"code": str}``;
* ``REPLY_FD``: one JSON line ``{"ready": true}`` at start-up, then one per cell
  ``{"outputs": [[kind, content], ...], "execution_count": n}`` where ``kind`` and ``content``
  follow the Jupyter message types ``execute_result`` / ``display_data`` (``data``: mime →
  text, binary as base64) and ``error`` (``ename``, ``evalue``, ``traceback``).

SIGINT is ignored between cells and raises ``KeyboardInterrupt`` inside one, so an interrupt
that arrives late cannot kill the process. A child that user code forks (``os.fork()`` without
``exec``) and lets run to the end of the cell exits there, silently: only the shell replies.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import sys
from typing import Any

from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.inputtransformer2 import TransformerManager
from IPython.core.interactiveshell import InteractiveShell
from traitlets import Instance
from traitlets.config import Config

TOKEN_TRANSFORM_HINT = re.compile(r"\?|^[ \t]*[!%/,;]|=[\s\\]*[!%]", re.MULTILINE)
"""What each of IPython's token transforms needs in a cell to act: ``x = %magic`` / ``x = !cmd``
(``=`` then ``%`` or ``!``), an escaped command (``%``, ``!``, ``/``, ``,``, ``;`` or ``?``
opening a line) or help (``obj?``). A cell without any of it is left as it is by them."""
_TOKEN_TRANSFORMERS = TransformerManager().token_transformers


def _encode(data: dict[str, Any]) -> dict[str, Any]:
    """Format dict → JSON-safe: bytes (PNG, JPEG) as base64 text."""
    return {m: base64.b64encode(v).decode() if isinstance(v, bytes) else v for m, v in data.items()}


class _Publisher(DisplayPublisher):
    """``display(...)`` → a ``display_data`` output of the running cell."""

    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
        self.shell.outputs.append(["display_data", {"data": _encode(data)}])

    def clear_output(self, wait=False):
        pass


class _ResultHook(DisplayHook):
    """The cell's value (``Out[n]``) → an ``execute_result`` output instead of a printed prompt."""

    def write_output_prompt(self):
        pass

    def write_format_data(self, format_dict, md_dict=None):
        self.shell.outputs.append(
            ["execute_result", {"data": _encode(format_dict), "execution_count": self.prompt_count}]
        )


class _Transforms(TransformerManager):
    """IPython's input transforms, without tokenizing a cell none of its token transforms can
    change (the tokenizer is most of ``transform_cell``: ~0.2 ms for a 15-line cell)."""

    def do_token_transforms(self, lines: list[str]) -> list[str]:
        if self.token_transformers == _TOKEN_TRANSFORMERS and not TOKEN_TRANSFORM_HINT.search("".join(lines)):
            return lines
        return super().do_token_transforms(lines)


class SandboxShell(InteractiveShell):
    """InteractiveShell whose outputs are collected per cell instead of printed."""

    outputs: list
    display_pub_class = _Publisher
    displayhook_class = _ResultHook
    input_transformer_manager = Instance(_Transforms, args=())

    def should_run_async(self, raw_cell: str, *, transformed_cell=None, preprocessing_exc_tuple=None) -> bool:
        # Top-level ``await`` / ``async for`` / ``async with`` spell one of these words; IPython
        # finds out by compiling the whole cell once more.
        if (
            transformed_cell is not None
            and "await" not in transformed_cell
            and "async" not in transformed_cell
        ):
            return False
        return super().should_run_async(
            raw_cell, transformed_cell=transformed_cell, preprocessing_exc_tuple=preprocessing_exc_tuple
        )

    def _showtraceback(self, etype, evalue, stb):
        self.outputs.append(
            ["error", {"ename": etype.__name__, "evalue": str(evalue), "traceback": list(stb)}]
        )

    def run(self, code: str) -> dict[str, Any]:
        self.outputs = []
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.run_cell(code, store_history=True)
        except KeyboardInterrupt:  # landed just outside run_cell's own handler
            if not any(kind == "error" for kind, _ in self.outputs):
                self.outputs.append(["error", {"ename": "KeyboardInterrupt", "evalue": "", "traceback": []}])
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            sys.stdout.flush()
            sys.stderr.flush()
        return {"outputs": self.outputs, "execution_count": self.execution_count}


def make_shell() -> SandboxShell:
    """The shell, built once in the zygote (:mod:`agentrl_sandboxes.zygote`) before any fork."""
    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "nocolor"
    return SandboxShell.instance(config=config)


def serve(shell: SandboxShell, request_fd: int, reply_fd: int) -> None:
    """Run cells from ``request_fd`` until EOF (in a kernel process forked from the zygote)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in (request_fd, reply_fd):
        os.set_inheritable(fd, False)  # child processes of user code do not get the channels
    # line-buffered, never failing on odd characters: a lone surrogate is written escaped
    sys.stdout = open(1, "w", buffering=1, errors="backslashreplace", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)  # noqa: SIM115
    with open(request_fd, "rb") as requests, open(reply_fd, "wb") as replies:

        def reply(message: dict[str, Any]) -> None:
            replies.write(json.dumps(message, default=str).encode() + b"\n")
            replies.flush()

        reply({"ready": True})
        owner = os.getpid()
        for line in requests:
            result = shell.run(json.loads(line)["code"])
            if os.getpid() != owner:  # a child that user code forked and let fall out of the cell
                os._exit(0)
            reply(result)
