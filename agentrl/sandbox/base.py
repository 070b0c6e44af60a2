"""The Sandbox protocol and the HTTP client every backend shares.

A backend only decides *where* the in-sandbox server (:mod:`agentrl_sandboxes.server`) runs —
a child process (``local``) or a container (``docker``) — and hands back the path of its Unix
socket. Everything else (requests, timeouts, error mapping) lives here once.

Async-first: every method is a coroutine; use ``async with await create(...) as sb`` or
:class:`~agentrl.sandbox.pool.SandboxPool`. Calls on one sandbox are serialised by the server
(one kernel, one cell at a time); run many sandboxes for parallelism.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Protocol, Self, runtime_checkable

import aiohttp
from agentrl_sandboxes.messages import (
    CHANNEL,
    DEFAULT_MAX_OUTPUT,
    ERROR,
    HEADER,
    RESULT,
    ErrorBody,
    ExecResult,
    ExecuteRequest,
    FileInfo,
    FrameError,
    Health,
    ProcRequest,
    ProcResult,
    ResetRequest,
    frame,
    frame_length,
)
from pydantic import BaseModel, ValidationError

from agentrl.sandbox.errors import (
    CodeCrashed,
    SandboxCrashed,
    SandboxError,
    SandboxTimeout,
    SandboxUnavailable,
)
from agentrl.sandbox.limits import Limits

# Seconds a call may take beyond its own timeout: interrupt grace (2 s) + a kernel restart.
CALL_SLACK = 30.0
# Seconds to wait, after the connection dropped, for the backend to confirm the server exited.
EXIT_GRACE = 2.0
# Seconds between "has the server exited?" checks while waiting for a starting one to answer.
GONE_CHECK_S = 0.5


class Channel(asyncio.Protocol):
    """The host end of the run_code channel (framing: :mod:`agentrl_sandboxes.messages`): one
    frame out and one back per call, the reply handed to the waiting call straight from
    ``data_received`` (no stream reader, no task, no timeout context).

    :meth:`call` raises ``ConnectionResetError`` when the connection drops, ``TimeoutError``
    past ``timeout`` and :class:`FrameError` for bytes that are not the one reply expected.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._buffer = bytearray()
        self._reply: asyncio.Future | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if len(self._buffer) < HEADER:
            return
        try:
            end = HEADER + frame_length(self._buffer)
            if self._reply is None or self._reply.done() or len(self._buffer) > end:
                raise FrameError("a frame no call was waiting for")
        except FrameError as exc:
            self._fail(exc)
            return
        if len(self._buffer) == end:
            payload, self._buffer = bytes(self._buffer[HEADER:]), bytearray()
            self._reply.set_result(payload)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionResetError("the sandbox server closed the run_code channel"))

    def _fail(self, exc: Exception) -> None:
        if self._reply is not None and not self._reply.done():
            self._reply.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    async def call(self, payload: bytes, timeout: float) -> bytes:
        loop = asyncio.get_running_loop()
        reply = self._reply = loop.create_future()
        timer = loop.call_later(timeout, _fail_future, reply, TimeoutError)
        try:
            self.transport.write(frame(payload))
            return await reply
        finally:
            timer.cancel()
            self._reply = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _fail_future(future: asyncio.Future, exc: type[Exception]) -> None:
    if not future.done():
        future.set_exception(exc())


@runtime_checkable
class Sandbox(Protocol):
    """What envs use. All backends implement it; see :class:`ServerSandbox` for semantics."""

    limits: Limits

    async def run_code(
        self, code: str, timeout: float = 30.0, max_output: int = DEFAULT_MAX_OUTPUT
    ) -> ExecResult: ...
    async def exec(self, argv: list[str], timeout: float = 30.0, stdin: str | None = None) -> ProcResult: ...
    async def put_file(self, path: str, data: bytes) -> FileInfo: ...
    async def get_file(self, path: str) -> bytes: ...
    async def reset(self, wipe_workdir: bool = True) -> None: ...
    async def health(self) -> Health: ...
    async def close(self) -> None: ...
    @property
    def alive(self) -> bool: ...


class ServerSandbox:
    """Client of one in-sandbox server; subclasses implement ``_launch`` / ``_terminate``.

    Lifecycle: ``await sb.start()`` (raises :class:`SandboxUnavailable` if the server is not
    healthy within ``limits.start_timeout_s``) … ``await sb.close()`` (idempotent).
    ``alive`` turns False once the sandbox is known dead; a dead sandbox raises
    :class:`SandboxCrashed` on every call and should be closed and replaced (the pool does).
    """

    backend = "?"

    def __init__(self, limits: Limits | None = None):
        self.limits = limits or Limits()
        self.token = secrets.token_hex(32)  # sent on every request; the server rejects others
        self.socket_path: Path | None = None
        self._session: aiohttp.ClientSession | None = None
        self._channel: Channel | None = None
        self._channel_lock = asyncio.Lock()
        self._alive = False
        self._closed = False

    # ------------------------------------------------------------- backend hooks
    async def _launch(self) -> Path:
        """Start the server (its ``--token-file`` holding :attr:`token`); return the Unix socket
        path it will listen on."""
        raise NotImplementedError

    async def _terminate(self) -> None:
        """Stop the server and free every resource (process group, container, temp files)."""
        raise NotImplementedError

    async def _server_gone(self) -> bool:
        """True if the server process/container has exited (used to tell crash from hang)."""
        raise NotImplementedError

    def info(self) -> dict:
        """Backend facts (isolation actually applied, ids) for logs and reports."""
        return {"backend": self.backend, "socket": str(self.socket_path)}

    # ------------------------------------------------------------- lifecycle
    @property
    def alive(self) -> bool:
        return self._alive and not self._closed

    async def start(self) -> ServerSandbox:
        deadline = time.monotonic() + self.limits.start_timeout_s
        try:
            self.socket_path = await asyncio.wait_for(self._launch(), self.limits.start_timeout_s)
            self._session = aiohttp.ClientSession(
                # A fresh connection per call (a Unix socket connect costs microseconds): a server
                # that died before a call refuses it (infra), instead of dropping a stale
                # keep-alive connection, which would look like a death during the call.
                connector=aiohttp.UnixConnector(path=str(self.socket_path), limit=0, force_close=True),
                base_url="http://sandbox",
                headers={"Authorization": f"Bearer {self.token}"},
            )
            gone_check = 0.0
            while True:
                # /health is a cheap local call, polled every 20 ms; whether the server exited
                # can cost an engine round trip (docker: an API call in a worker thread), so it is
                # asked twice a second: 32 sandboxes starting at once would otherwise queue 50
                # engine calls a second each on the few worker threads, ahead of their own starts
                if time.monotonic() >= gone_check:
                    if await self._server_gone():
                        raise SandboxUnavailable(
                            f"{self.backend} sandbox exited during start-up: {self._log_tail()}"
                        )
                    gone_check = time.monotonic() + GONE_CHECK_S
                try:
                    async with self._session.get("/health", timeout=aiohttp.ClientTimeout(total=5)) as resp:
                        if resp.status == 200 and Health.model_validate_json(await resp.read()).ok:
                            break
                except (TimeoutError, aiohttp.ClientError, OSError):
                    pass
                if time.monotonic() > deadline:
                    raise SandboxUnavailable(
                        f"{self.backend} sandbox not ready within {self.limits.start_timeout_s:.0f} s: {self._log_tail()}"
                    )
                await asyncio.sleep(0.02)
        except BaseException as exc:
            await self.close()
            if isinstance(exc, SandboxError):
                raise
            if isinstance(exc, asyncio.TimeoutError):
                raise SandboxUnavailable(f"{self.backend} sandbox start timed out") from None
            if isinstance(exc, Exception):
                raise SandboxUnavailable(f"{self.backend} sandbox failed to start: {exc}") from exc
            raise
        self._alive = True
        return self

    def _log_tail(self) -> str:
        return ""

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._alive = False
        self._drop_channel()
        if self._session is not None:
            await self._session.close()
        await self._terminate()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    # ------------------------------------------------------------- transport
    async def _call(
        self, method: str, route: str, timeout: float, body: BaseModel | bytes | None = None, **params
    ):
        """One request; returns the raw body. Connection loss or a hang → SandboxCrashed."""
        if not self.alive:
            raise SandboxCrashed(f"{self.backend} sandbox is not running")
        data = body.model_dump_json() if isinstance(body, BaseModel) else body
        try:
            async with self._session.request(
                method, route, data=data, params=params or None, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                raw = await resp.read()
                status = resp.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            self._alive = False
            # Dropped mid-call (not a host-side timeout, not a refused connect: that server was
            # gone before the call) and confirmed exited: the call's own code may be the cause.
            during = not isinstance(exc, TimeoutError | aiohttp.ClientConnectorError)
            gone = during and await self._exited_within(EXIT_GRACE)
            what = "exited" if gone else f"stopped answering ({type(exc).__name__})"
            raise SandboxCrashed(
                f"{self.backend} sandbox {what} during {route}: {self._log_tail()}", server_exited=gone
            ) from exc
        if status >= 400:
            try:
                err = ErrorBody.model_validate_json(raw)
                message = f"{err.error}: {err.detail}" if err.detail else err.error
            except ValidationError:
                message = raw[:500].decode(errors="replace")
            if status == 404:
                raise FileNotFoundError(message)
            if status == 400:
                raise ValueError(message)
            raise SandboxError(f"sandbox server error {status} on {route}: {message}")
        return raw

    async def _run_on_channel(self, req: ExecuteRequest, timeout: float) -> ExecResult:
        """``run_code``'s transport: one kept-open connection to the server's channel socket
        (framing: :mod:`agentrl_sandboxes.messages`); returns the ExecResult, parsed into its model
        here, at the host boundary (the one place it is validated).

        A reply that breaks the protocol (a bad frame, an unknown kind, JSON that fails its
        model) is :class:`SandboxCrashed` (infra: the server is not the code's). A connection the server already closed (seen by this loop before the request is sent)
        means the server was gone before the call: :class:`SandboxCrashed` (infra). One that
        drops after the request was sent, with the server confirmed exited, was taken down by
        the call's code: :class:`CodeCrashed` (``sandbox_lost``)."""
        if not self.alive:
            raise SandboxCrashed(f"{self.backend} sandbox is not running")
        async with self._channel_lock:
            sent = False
            try:
                if self._channel is None:
                    path = self.socket_path.with_name(CHANNEL)
                    connect = asyncio.get_running_loop().create_unix_connection(Channel, path)
                    _, self._channel = await asyncio.wait_for(connect, timeout)
                    self._channel.transport.write(frame(self.token.encode()))
                if self._channel.closed:
                    raise ConnectionResetError("the server closed the connection before the call")
                sent = True
                reply = await self._channel.call(req.model_dump_json().encode(), timeout)
                kind, body = reply[:1], reply[1:]
                if kind == RESULT:
                    result = ExecResult.model_validate_json(body)
                elif kind == ERROR:
                    err = ErrorBody.model_validate_json(body)
                else:
                    raise FrameError(f"a reply of unknown kind {reply[:50]!r}")
            except (FrameError, ValidationError) as exc:  # the server broke the protocol
                self._alive = False
                self._drop_channel()
                raise SandboxCrashed(f"{self.backend} sandbox sent a malformed reply: {exc}") from None
            except (TimeoutError, OSError) as exc:
                self._alive = False
                self._drop_channel()
                gone = sent and not isinstance(exc, TimeoutError) and await self._exited_within(EXIT_GRACE)
                if gone:
                    raise CodeCrashed(
                        f"the code took the whole {self.backend} sandbox down during /execute",
                        sandbox_lost=True,
                    ) from exc
                what = "stopped answering" if sent else "was gone before the call"
                raise SandboxCrashed(
                    f"{self.backend} sandbox {what} ({type(exc).__name__}): {self._log_tail()}"
                ) from exc
            except BaseException:  # cancelled mid-call: the reply would land on the next call
                self._drop_channel()
                raise
        if kind == ERROR:
            raise ValueError(f"{err.error}: {err.detail}")
        return result

    def _drop_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    async def _exited_within(self, grace: float) -> bool:
        """True once the backend confirms the server exited (polled up to ``grace`` seconds:
        a dropped connection is seen before the process is reaped)."""
        deadline = time.monotonic() + grace
        while not await self._server_gone():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def _call_code(self, route: str, timeout: float, body: BaseModel) -> bytes:
        """A call that runs the caller's code: a server that took the request, dropped it and is
        confirmed exited was taken down by that code → :class:`CodeCrashed` (``sandbox_lost``)."""
        try:
            return await self._call("POST", route, timeout, body)
        except SandboxCrashed as exc:
            if exc.server_exited:
                raise CodeCrashed(
                    f"the code took the whole {self.backend} sandbox down during {route}", sandbox_lost=True
                ) from exc
            raise

    # ------------------------------------------------------------- API
    async def run_code(
        self, code: str, timeout: float = 30.0, max_output: int = DEFAULT_MAX_OUTPUT
    ) -> ExecResult:
        """Run a cell in the persistent kernel.

        Returns the ExecResult (``outcome`` ``ok`` or ``error`` — an exception in the code is a
        normal result). Raises :class:`SandboxTimeout` (``.result``, ``.state_kept``) past
        ``timeout``; :class:`CodeCrashed` if the code ended its kernel (a fresh one was started)
        or took the whole sandbox down (``sandbox_lost``); :class:`SandboxCrashed` (infra) if the
        sandbox stopped answering or was already dead.
        """
        req = ExecuteRequest(code=code, timeout=timeout, max_output=max_output)
        result = await self._run_on_channel(req, timeout + CALL_SLACK)
        if result.outcome == "timeout":
            how = "interrupted, state kept" if result.state_kept else "kernel restarted, state lost"
            raise SandboxTimeout(f"code ran past {timeout:g} s ({how})", result)
        if result.outcome == "crashed":
            raise CodeCrashed(
                "the kernel died during the cell; a fresh kernel was started",
                result,
                exit_code=result.exit_code,
            )
        return result

    async def exec(self, argv: list[str], timeout: float = 30.0, stdin: str | None = None) -> ProcResult:
        """Run ``argv`` (no shell) in the work dir. A timeout kills its process tree and is
        reported in the result (``timed_out``, ``returncode=-9``), not raised; a program that takes
        the whole sandbox down raises :class:`CodeCrashed` (``sandbox_lost``)."""
        req = ProcRequest(argv=argv, timeout=timeout, stdin=stdin)
        return ProcResult.model_validate_json(await self._call_code("/exec", timeout + CALL_SLACK, req))

    async def put_file(self, path: str, data: bytes) -> FileInfo:
        """Write ``data`` to ``path`` (relative to the work dir; parents are created)."""
        return FileInfo.model_validate_json(await self._call("PUT", "/files", 300.0, bytes(data), path=path))

    async def get_file(self, path: str) -> bytes:
        """Read ``path`` (relative to the work dir). Missing → FileNotFoundError; a path outside → ValueError."""
        return await self._call("GET", "/files", 300.0, path=path)

    async def reset(self, wipe_workdir: bool = True) -> None:
        """Fresh kernel, every leftover process killed, work dir emptied (unless told not to)."""
        await self._call(
            "POST",
            "/reset",
            self.limits.start_timeout_s + CALL_SLACK,
            ResetRequest(wipe_workdir=wipe_workdir),
        )

    async def health(self) -> Health:
        """Server and kernel status; a dead server raises SandboxCrashed."""
        return Health.model_validate_json(await self._call("GET", "/health", 10.0))
