"""Serve any registered env over HTTP + WebSocket: ``agentrl env serve ID``.

One process holds many sessions; each WebSocket connection to ``/ws`` opens a session (its own
env instance) or re-attaches to one with ``/ws?session_id=ID`` (a client that changed event
loop, or the twin a ``fork`` made). Frames are typed (:mod:`agentrl.env.protocol`); a malformed
frame gets an ``error`` frame with a code and the session goes on.

Routes: ``GET /health`` (no token needed), ``GET /spec`` (instructions, tools), ``GET /schema``
(OpenEnv's schema endpoint), ``WS /ws``.

Limits: ``max_sessions`` (a session over the cap gets ``CAPACITY_REACHED`` — "busy" — and the
socket closes), ``idle_timeout_s`` (a session untouched that long is closed, attached or not),
``max_message_bytes`` per frame, ``rate_limit`` frames per second per session (a token bucket
holding one second's worth), and an optional bearer ``token`` (``Authorization: Bearer …``).
The server binds 127.0.0.1 unless told otherwise, or listens on a Unix socket (``unix=PATH``;
the env server in a container without network is reached that way).

Envs with sync hooks run their calls in worker threads so one slow step does not stall the
other sessions; envs with async hooks run on the server's event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import logging
import os
import stat
import threading
import time
import uuid
from typing import Any, Self

from aiohttp import WSMsgType, web
from pydantic import ValidationError

import agentrl
from agentrl.env.base import EnvOptionError, TextEnv
from agentrl.env.protocol import (
    ACTION_SCHEMA,
    INCOMING,
    OBSERVATION_SCHEMA,
    STATE_SCHEMA,
    CloseMessage,
    EnvSpecData,
    ForkMessage,
    ResetMessage,
    SpecMessage,
    StateMessage,
    StepMessage,
    dumps_frame,
    error_frame,
    observation_frame,
)
from agentrl.errors import InfraError

log = logging.getLogger(__name__)

_KNOWN_TYPES = {"reset", "step", "state", "close", "spec", "fork"}


@dataclasses.dataclass
class Session:
    id: str
    env: TextEnv
    last_active: float
    ws: web.WebSocketResponse | None = None
    episode_id: str | None = None
    episodes: int = 0
    # one request at a time, even across connections (a re-attach while a request still runs)
    lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)


class TokenBucket:
    """``rate`` tokens a second, holding at most one second's worth."""

    def __init__(self, rate: float):
        self.rate = rate
        self.tokens = rate
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class _Busy(Exception):
    pass


class EnvServer:
    """Sessions of one registered env (``env_id`` built with ``options``) behind one aiohttp app."""

    def __init__(
        self,
        env_id: str,
        options: dict[str, Any] | None = None,
        *,
        max_sessions: int = 1024,
        idle_timeout_s: float = 600.0,
        token: str | None = None,
        max_message_bytes: int = 8 << 20,
        rate_limit: float = 1000.0,
    ):
        self.env_id = env_id
        self.options = dict(options or {})
        self.max_sessions = max_sessions
        self.idle_timeout_s = idle_timeout_s
        self.token = token
        self.max_message_bytes = max_message_bytes
        self.rate_limit = rate_limit
        probe = agentrl.make(env_id, **self.options)  # bad ids and options fail here, before serving
        self.instructions = probe.system_prompt()
        self.tools = list(probe.tools)
        self.sync_hooks = type(probe)._step is not TextEnv._step
        probe.close()
        self.sessions: dict[str, Session] = {}
        self._reserved = 0  # sessions being built (a fork replaying its actions)
        self._reaper: asyncio.Task | None = None

    # ----------------------------------------------------------------- app
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth], client_max_size=self.max_message_bytes)
        app.router.add_get("/health", self._health)
        app.router.add_get("/spec", self._spec)
        app.router.add_get("/schema", self._schema)
        app.router.add_get("/ws", self._websocket)
        app.on_startup.append(self._start_reaper)
        app.on_shutdown.append(self._shutdown)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler):
        if self.token is not None and request.path != "/health":
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                raise web.HTTPUnauthorized(text="missing or wrong bearer token")
        return await handler(request)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "healthy",
                "env_id": self.env_id,
                "sessions": len(self.sessions),
                "max_sessions": self.max_sessions,
            }
        )

    async def _spec(self, request: web.Request) -> web.Response:
        return web.json_response(self._spec_data(None))

    async def _schema(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"action": ACTION_SCHEMA, "observation": OBSERVATION_SCHEMA, "state": STATE_SCHEMA}
        )

    def _spec_data(self, session_id: str | None) -> dict[str, Any]:
        spec = EnvSpecData(
            env_id=self.env_id, session_id=session_id, instructions=self.instructions, tools=self.tools
        )
        return spec.model_dump(mode="json")

    # ----------------------------------------------------------------- sessions
    def _reserve(self) -> None:
        if len(self.sessions) + self._reserved >= self.max_sessions:
            raise _Busy(f"server busy: {self.max_sessions} sessions open (the cap); retry later")
        self._reserved += 1

    def _add(self, env: TextEnv) -> Session:
        self._reserved -= 1
        session = Session(id=uuid.uuid4().hex, env=env, last_active=time.monotonic())
        self.sessions[session.id] = session
        return session

    async def _close_session(self, session: Session) -> None:
        self.sessions.pop(session.id, None)
        try:
            if self.sync_hooks:
                await asyncio.to_thread(session.env.close)
            else:
                await session.env.aclose()
        except Exception as exc:  # noqa: BLE001 - a failing close must not take the server down
            log.warning("closing session %s failed: %s", session.id, exc)

    async def _start_reaper(self, app: web.Application) -> None:
        self._reaper = asyncio.create_task(self._reap_idle())

    async def _reap_idle(self) -> None:
        period = max(0.05, min(self.idle_timeout_s / 4, 30.0))
        while True:
            await asyncio.sleep(period)
            cutoff = time.monotonic() - self.idle_timeout_s
            for session in [s for s in self.sessions.values() if s.last_active < cutoff]:
                if session.ws is not None and not session.ws.closed:
                    try:
                        await session.ws.send_json(
                            error_frame("EXPIRED", f"session idle for {self.idle_timeout_s:g} s; closed")
                        )
                        await session.ws.close()
                    except ConnectionError:
                        pass  # the client is gone too
                await self._close_session(session)

    async def _shutdown(self, app: web.Application) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for session in list(self.sessions.values()):
            if session.ws is not None:
                await session.ws.close()
            await self._close_session(session)

    # ----------------------------------------------------------------- websocket
    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        # The transport ceiling sits above the typed limit so an oversized frame gets an error frame.
        ws = web.WebSocketResponse(max_msg_size=self.max_message_bytes + (1 << 20), heartbeat=30.0)
        await ws.prepare(request)
        try:
            session = self._attach(request.query.get("session_id"), ws)
        except _Busy as exc:
            await ws.send_json(error_frame("CAPACITY_REACHED", str(exc)))
            await ws.close()
            return ws
        except KeyError as exc:
            await ws.send_json(error_frame("SESSION_ERROR", str(exc.args[0])))
            await ws.close()
            return ws
        except Exception as exc:  # the env could not be built: this client is told, the server goes on
            log.exception("building a session of %s failed", self.env_id)
            await ws.send_json(
                error_frame("EXECUTION_ERROR", f"building the env failed: {type(exc).__name__}: {exc}")
            )
            await ws.close()
            return ws
        bucket = TokenBucket(self.rate_limit)
        closed_by_client = False
        try:
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    await ws.send_json(error_frame("VALIDATION_ERROR", "send JSON in text frames"))
                    continue
                reply = await self._answer(session, frame.data, bucket)
                if reply is None:
                    closed_by_client = True
                    break
                try:
                    await ws.send_str(dumps_frame(reply))
                except ConnectionError:
                    break  # the client went away mid-request; the session stays, detached
        finally:
            if closed_by_client:
                await self._close_session(session)
            elif session.ws is ws:
                session.ws = None  # detached: kept until it idles out or a client re-attaches
        return ws

    def _attach(self, session_id: str | None, ws: web.WebSocketResponse) -> Session:
        if session_id is None:
            self._reserve()
            try:
                env = agentrl.make(self.env_id, **self.options)
            except BaseException:
                self._reserved -= 1
                raise
            session = self._add(env)
        else:
            session = self.sessions.get(session_id)
            if session is None:
                raise KeyError(f"unknown or expired session {session_id!r}")
            if session.ws is not None and not session.ws.closed:
                asyncio.ensure_future(session.ws.close())  # the newer connection takes over
        session.ws = ws
        session.last_active = time.monotonic()
        return session

    async def _answer(self, session: Session, raw: str, bucket: TokenBucket) -> dict[str, Any] | None:
        """The reply frame to one client frame (None: the client closed the session)."""
        if not bucket.take():
            return error_frame("RATE_LIMITED", f"more than {self.rate_limit:g} frames a second; slow down")
        if len(raw) > self.max_message_bytes:
            return error_frame(
                "TOO_LARGE", f"frame of {len(raw)} bytes; the limit is {self.max_message_bytes}"
            )
        try:
            payload = json.loads(raw)
        except (json.JSONDecodeError, RecursionError) as exc:
            return error_frame("INVALID_JSON", f"invalid JSON: {exc}")
        try:
            message = INCOMING.validate_python(payload)
        except ValidationError as exc:
            kind = payload.get("type") if isinstance(payload, dict) else None
            if kind not in _KNOWN_TYPES:
                return error_frame(
                    "UNKNOWN_TYPE", f"unknown message type {kind!r}; known: {', '.join(sorted(_KNOWN_TYPES))}"
                )
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors()
            )
            return error_frame("VALIDATION_ERROR", f"invalid {kind} message: {problems}")
        session.last_active = time.monotonic()
        try:
            async with session.lock:
                return await self._run(session, message)
        except EnvOptionError as exc:
            return error_frame("OPTION_ERROR", str(exc))
        except InfraError as exc:
            return error_frame("INFRA_ERROR", f"{type(exc).__name__}: {exc}")
        except _Busy as exc:
            return error_frame("CAPACITY_REACHED", str(exc))
        except Exception as exc:
            log.exception("session %s: %s failed", session.id, message.type)
            return error_frame("EXECUTION_ERROR", f"{type(exc).__name__}: {exc}")
        finally:
            session.last_active = time.monotonic()

    async def _run(self, session: Session, message: Any) -> dict[str, Any] | None:
        env = session.env
        if isinstance(message, CloseMessage):
            return None
        if isinstance(message, SpecMessage):
            return {"type": "spec", "data": self._spec_data(session.id)}
        if isinstance(message, StateMessage):
            return {"type": "state", "data": self._state(session)}
        if isinstance(message, ResetMessage):
            seed, options = message.data.seed, message.data.options()
            if self.sync_hooks:
                observation, info = await asyncio.to_thread(env.reset, seed=seed, options=options)
            else:
                observation, info = await env.areset(seed=seed, options=options)
            session.episodes += 1
            session.episode_id = message.data.episode_id or f"{session.id}-{session.episodes}"
            return observation_frame(observation, 0.0, False, False, info)
        if env.task is None or (isinstance(message, StepMessage) and env.done):
            what = "reset before step or fork" if env.task is None else "the episode is over; reset first"
            return error_frame("USAGE_ERROR", what)
        if isinstance(message, StepMessage):
            if self.sync_hooks:
                result = await asyncio.to_thread(env.step, message.data.text)
            else:
                result = await env.astep(message.data.text)
            observation, reward, terminated, truncated, info = result
            return observation_frame(observation, reward, terminated, truncated, info)
        assert isinstance(message, ForkMessage)
        self._reserve()
        try:
            twin = await (asyncio.to_thread(env.fork) if self.sync_hooks else env.afork())
        except BaseException:
            self._reserved -= 1
            raise
        forked = self._add(twin)
        forked.episode_id, forked.episodes = session.episode_id, session.episodes
        return {"type": "forked", "data": {"session_id": forked.id}}

    @staticmethod
    def _state(session: Session) -> dict[str, Any]:
        env = session.env
        started = env.task is not None
        return {
            "episode_id": session.episode_id,
            "step_count": env.turn,
            "task_id": env.task.id if started else None,
            "state_key": env.state_key() if started else None,
            "done": env.done,
        }


def check_bind(host: str, token: str | None) -> str | None:
    """A warning for a bind beyond loopback without a token (None when the bind is private)."""
    if host in ("127.0.0.1", "localhost", "::1") or token:
        return None
    return f"serving on {host} without --token: anyone who can reach this port can open sessions"


# sun_path holds 108 bytes on Linux, the last one a NUL
MAX_UNIX_PATH = 107


def check_unix_path(path: str | os.PathLike, folder: str | os.PathLike | None = None) -> str | None:
    """Why a Unix socket cannot be made at ``path`` (None when it can); ``folder``: the writable
    folder it will be made under (default: its own, which must exist)."""
    folder = os.path.dirname(os.path.abspath(path)) if folder is None else folder
    if (size := len(os.fsencode(path))) > MAX_UNIX_PATH:
        return f"socket path {path} is {size} bytes; the limit is {MAX_UNIX_PATH}"
    if not os.path.isdir(folder):
        return f"socket folder {folder} does not exist"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"socket folder {folder} is not writable"
    if os.path.lexists(path) and not _is_socket(path):
        return f"{path} exists and is not a socket"
    return None


def _is_socket(path: str) -> bool:
    return stat.S_ISSOCK(os.lstat(path).st_mode)


class ServerThread:
    """Run an :class:`EnvServer` on its own event loop in a daemon thread (tests, benchmarks,
    notebooks), on ``host:port`` or the Unix socket ``unix``. ``url`` is its ``ws://`` (or
    ``unix://``) address once started; ``stop()`` shuts it down."""

    def __init__(self, server: EnvServer, host: str = "127.0.0.1", port: int = 0, unix: str | None = None):
        self.server, self.host, self.port, self.unix = server, host, port, unix
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._main, daemon=True, name="agentrl-env-server")

    def start(self) -> ServerThread:
        self._thread.start()
        self._started.wait(30)
        return self

    @property
    def url(self) -> str:
        return f"unix://{self.unix}" if self.unix else f"ws://{self.host}:{self.port}"

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._runner = web.AppRunner(self.server.app(), access_log=None)
        self.loop.run_until_complete(self._runner.setup())
        if self.unix:
            site: web.BaseSite = web.UnixSite(self._runner, self.unix)
        else:
            site = web.TCPSite(self._runner, self.host, self.port)
        self.loop.run_until_complete(site.start())
        if not self.unix:
            self.port = self._runner.addresses[0][1]
        self._started.set()
        self.loop.run_forever()

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
