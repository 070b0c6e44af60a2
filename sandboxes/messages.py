"""The typed messages between a sandbox client (agentrl.sandbox) and the in-sandbox server.

Every request and response that crosses the process (or container) boundary is one of these
pydantic models, parsed on arrival, so a malformed message fails loudly at the edge with a
clear error instead of deep inside the kernel code.

Routes (all JSON unless noted)::

    GET  /health                 -> Health
    POST /execute  ExecuteRequest -> ExecResult      (code in the persistent jupyter kernel)
    POST /exec     ProcRequest    -> ProcResult      (argv as a child process, no shell)
    PUT  /files?path=REL  <bytes> -> FileInfo        (write a file under the work dir)
    GET  /files?path=REL          -> <bytes>         (read a file under the work dir)
    POST /reset    ResetRequest   -> Health          (fresh kernel, children killed, work dir wiped)

Errors come back as ``ErrorBody`` with an HTTP status (400 bad request, 404 missing file,
409 busy, 500 server fault).

The hot path, ``run_code``, has its own socket beside the HTTP one (``channel.sock``): one
connection per sandbox kept open, frames of a 4-byte big-endian length and a payload (see
:func:`frame`). Client → server: the token first, then one ``ExecuteRequest`` (JSON) per cell.
Server → client, per cell: :data:`RESULT` + ``ExecResult`` or :data:`ERROR` + ``ErrorBody`` (a
request that fails its model).
"""

from __future__ import annotations

import asyncio
import base64
import struct
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MAX_OUTPUT = 1_000_000
"""Characters of stdout + stderr + result text kept per call; the rest is dropped (``truncated``)."""

Outcome = Literal["ok", "error", "timeout", "crashed"]

CHANNEL = "channel.sock"
RESULT, ERROR = b"R", b"E"
MAX_FRAME = 1 << 30
"""Bytes a frame's payload may announce; a longer one breaks the framing (:class:`FrameError`)."""
_LENGTH = struct.Struct(">I")
HEADER = _LENGTH.size


class FrameError(ValueError):
    """Bytes on the channel that are not a frame (a length past :data:`MAX_FRAME`, a frame
    nobody asked for): the connection cannot be trusted any more."""


def frame(payload: bytes) -> bytes:
    """One frame of the run_code channel: the payload's length (4 bytes, big-endian), the payload."""
    return _LENGTH.pack(len(payload)) + payload


def frame_length(data: bytes | bytearray) -> int:
    """The payload length a frame's header (the first :data:`HEADER` bytes of ``data``) announces."""
    (length,) = _LENGTH.unpack_from(data)
    if length > MAX_FRAME:
        raise FrameError(f"a frame of {length} bytes (at most {MAX_FRAME})")
    return length


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    """The next frame's payload; ``asyncio.IncompleteReadError`` at EOF, FrameError if malformed."""
    return await reader.readexactly(frame_length(await reader.readexactly(HEADER)))


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExecuteRequest(Message):
    code: str
    timeout: float = Field(30.0, gt=0, le=24 * 3600, description="Seconds before the kernel is interrupted.")
    max_output: int = Field(DEFAULT_MAX_OUTPUT, ge=0)


class Display(Message):
    """One rich output (``display_data`` or an ``execute_result`` that carries an image).

    ``data`` is text for text mime types and base64 for binary ones (``image/png``).
    """

    mime: str
    data: str

    def payload(self) -> bytes:
        """The raw bytes: base64-decoded for images, UTF-8 for text."""
        if self.mime.startswith("image/") and not self.mime.endswith("+xml"):
            return base64.b64decode(self.data)
        return self.data.encode()


class ExecError(Message):
    """The exception the cell raised: ``name: value`` and an ANSI-free traceback."""

    name: str
    value: str
    traceback: list[str] = Field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.name}: {self.value}"


class ExecResult(Message):
    """What one cell produced.

    ``outcome`` is ``ok``, ``error`` (the code raised: a normal result for the agent),
    ``timeout`` (ran past ``timeout``: interrupted; ``state_kept`` says whether the interrupt
    sufficed or the kernel had to be restarted) or ``crashed`` (the kernel died, ``exit_code``
    says how; a fresh kernel was started, state lost). The client turns ``timeout`` / ``crashed`` into typed exceptions.
    """

    outcome: Outcome = "ok"
    stdout: str = ""
    stderr: str = ""
    result: str | None = Field(None, description="text/plain of the execute_result, if any")
    display: list[Display] = Field(default_factory=list)
    error: ExecError | None = None
    duration: float = 0.0
    truncated: bool = False
    execution_count: int | None = None
    state_kept: bool = True
    exit_code: int | None = Field(
        None, description="the dead kernel's exit status (crashed); negative: a signal"
    )

    @property
    def images(self) -> list[bytes]:
        """PNG bytes of every image display, in output order."""
        return [d.payload() for d in self.display if d.mime == "image/png"]

    def text(self) -> str:
        """The observation an agent sees: stdout, stderr, result, then ``name: value`` + traceback."""
        parts = [p for p in (self.stdout, self.stderr, self.result) if p]
        if self.error is not None:
            parts.append("\n".join(self.error.traceback) or str(self.error))
        return "\n".join(p.rstrip("\n") for p in parts)


class ProcRequest(Message):
    argv: list[str] = Field(min_length=1)
    timeout: float = Field(30.0, gt=0, le=24 * 3600)
    stdin: str | None = None
    max_output: int = Field(DEFAULT_MAX_OUTPUT, ge=0)


class ProcResult(Message):
    """A finished child process; ``returncode`` is negative for a signal (``-9`` after a timeout kill)."""

    returncode: int
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    truncated: bool = False
    timed_out: bool = False


class ResetRequest(Message):
    wipe_workdir: bool = True


class FileInfo(Message):
    path: str
    size: int


class Health(Message):
    ok: bool
    kernel_alive: bool
    pid: int
    executions: int = 0
    kernel_restarts: int = 0
    workdir: str


class ErrorBody(Message):
    error: str
    detail: str = ""
