"""The run_code hot path: output semantics on both backends (the server reads a short cell's
output once, with its reply, and streams a long cell's), and a server that breaks the channel's
framing is an infrastructure error at once, never a hang or a wrong answer."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from agentrl_sandboxes.kernel import OUTPUT_WATCH_DELAY
from agentrl_sandboxes.messages import CHANNEL, RESULT, ExecResult, Health, frame, read_frame
from aiohttp import web

from agentrl.errors import InfraError
from agentrl.sandbox import CodeCrashed, SandboxCrashed, SandboxTimeout
from agentrl.sandbox.base import ServerSandbox

pytestmark = pytest.mark.asyncio(loop_scope="module")

PIPE = 65_536  # what a Linux pipe holds by default: more than this must be read during the cell


async def test_short_and_long_cells_keep_all_output_in_order(pool):
    async with pool.sandbox(timeout=120) as sb:
        # well past the delay after which the server starts streaming: print, a child, print
        slow = await sb.run_code(
            "import os, time\nprint('a')\ntime.sleep(0.05)\nos.system('echo b; echo c >&2')\n"
            "time.sleep(0.05)\nprint('d')"
        )
        assert OUTPUT_WATCH_DELAY < 0.05
        assert (slow.stdout, slow.stderr) == ("a\nb\nd\n", "c\n")
        # more than a pipe holds, at once: the kernel waits for the server, it does not block
        started = time.monotonic()
        big = await sb.run_code("import sys\nsys.stdout.write('x' * 300_000)\nprint('end')", timeout=10)
        assert big.stdout == "x" * 300_000 + "end\n" and 300_000 > 4 * PIPE
        child = await sb.run_code("import os\nos.system(\"head -c 300000 /dev/zero | tr '\\\\0' y\")")
        assert child.stdout == "y" * 300_000
        assert time.monotonic() - started < 5


async def test_a_crashed_or_timed_out_cell_keeps_what_it_printed(pool):
    async with pool.sandbox(timeout=120) as sb:
        with pytest.raises(CodeCrashed) as crashed:
            await sb.run_code("print('before')\nimport os\nos._exit(3)", timeout=10)
        assert crashed.value.result.stdout == "before\n" and crashed.value.exit_code == 3
        with pytest.raises(SandboxTimeout) as timed_out:
            await sb.run_code("print('start')\nwhile True:\n    pass", timeout=0.5)
        assert timed_out.value.result.stdout == "start\n" and timed_out.value.state_kept


async def test_output_written_between_cells_is_dropped(pool):
    async with pool.sandbox(timeout=120) as sb:
        await sb.run_code("import subprocess\nsubprocess.Popen(['sh', '-c', 'sleep 0.2; echo late'])")
        await asyncio.sleep(0.6)
        assert (await sb.run_code("print('next')")).stdout == "next\n"


# ------------------------------------------------------------------ a server that breaks the framing
OK = frame(RESULT + ExecResult(stdout="2\n").model_dump_json().encode())


class ScriptedServer(ServerSandbox):
    """The host client against a stand-in server: a real /health over HTTP, and a channel that
    plays ``script`` after the token: ``None`` waits for the next cell, bytes are sent as they
    are, a number pauses that many seconds."""

    backend = "scripted"

    def __init__(self, script: list[bytes | float | None]):
        super().__init__()
        self.script = script
        self.folder = Path(tempfile.mkdtemp(prefix="agentrl-channel-"))
        self.runner: web.AppRunner | None = None
        self.channel: asyncio.Server | None = None

    async def _launch(self) -> Path:
        async def health(request: web.Request) -> web.Response:
            body = Health(ok=True, kernel_alive=True, pid=0, workdir="/work").model_dump_json()
            return web.Response(body=body, content_type="application/json")

        async def cells(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_frame(reader)  # the token
            for step in self.script:
                if step is None:
                    await read_frame(reader)
                elif isinstance(step, bytes):
                    writer.write(step)
                else:
                    await asyncio.sleep(step)
            await reader.read()  # keep the connection until the client closes it

        app = web.Application()
        app.add_routes([web.get("/health", health)])
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.UnixSite(self.runner, str(self.folder / "sandbox.sock")).start()
        self.channel = await asyncio.start_unix_server(cells, self.folder / CHANNEL)
        return self.folder / "sandbox.sock"

    async def _server_gone(self) -> bool:
        return False

    async def _terminate(self) -> None:
        if self.channel is not None:
            self.channel.close()
        if self.runner is not None:
            await self.runner.cleanup()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.mark.parametrize(
    "reply",
    [
        b"\xff\xff\xff\xff",  # a length past MAX_FRAME: waiting for it would hang until the timeout
        frame(RESULT + b"not json"),
        frame(RESULT + b'{"outcome": "maybe"}'),  # JSON that fails ExecResult
        frame(b"Z{}"),  # a kind the protocol does not have
        OK + frame(RESULT + b"{}"),  # the reply plus a frame nobody asked for
    ],
    ids=["oversize_length", "not_json", "fails_the_model", "unknown_kind", "extra_frame"],
)
async def test_a_malformed_reply_is_an_infra_error_at_once(reply):
    sb = await ScriptedServer([None, reply]).start()
    try:
        started = time.monotonic()
        with pytest.raises(SandboxCrashed, match="malformed reply") as caught:
            await sb.run_code("print(1 + 1)", timeout=30)
        assert isinstance(caught.value, InfraError) and not sb.alive
        assert time.monotonic() - started < 1.0  # not the 30 s + slack of a host-side timeout
    finally:
        await sb.close()


async def test_a_frame_sent_between_calls_is_never_taken_for_the_next_reply():
    stale = frame(RESULT + ExecResult(stdout="stale\n").model_dump_json().encode())
    sb = await ScriptedServer([None, OK, 0.05, stale]).start()
    try:
        assert (await sb.run_code("print(1 + 1)")).stdout == "2\n"
        await asyncio.sleep(0.3)  # the unasked frame arrives
        with pytest.raises(SandboxCrashed):
            await sb.run_code("print('next')")
        assert not sb.alive
    finally:
        await sb.close()
