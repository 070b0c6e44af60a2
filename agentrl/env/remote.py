"""Envs that live in another process: :class:`RemoteEnv` (an ``agentrl env serve`` server) and
:class:`OpenEnvEnv` (an OpenEnv environment server).

Both are full :class:`~agentrl.env.base.TextEnv` s: sync and async, tools and instructions (from
the server's ``/spec``), ``fork()``, ``state_key`` and the usual ``info`` keys. A server that is
gone, refuses the connection, is busy, or does not answer within ``timeout_s`` raises a
:class:`RemoteEnvError` — an :class:`~agentrl.errors.InfraError`, so the rollout engine masks
the episode and retries it; it is never scored.

Every connection lives on one background I/O event loop shared by the process (a daemon
thread), so an env may be used from any event loop — the sync API, then ``asyncio.run`` of the
next episode — and its session stays open; a caller's cancellation reaches the request.

A server is addressed as ``ws://HOST:PORT`` (or ``http://``) or ``unix:///PATH.sock`` (a Unix
socket: the env server in a container without network, ``agentrl env up``). A comma-separated
list (or a Python list) of addresses is a pool: each new env takes the next one, round-robin.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from gymnasium.envs.registration import EnvSpec
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentrl.env.base import EnvConfig, EnvOptionError, StepOutcome, TextEnv
from agentrl.env.protocol import EnvSpecData, ResetData, dumps_frame
from agentrl.env.tasks import SPLITS, Task, TaskSet
from agentrl.errors import InfraError
from agentrl.types import ToolSpec

T = TypeVar("T")


class RemoteEnvError(InfraError):
    """The env server is gone, unreachable, or failed on the host side; ``code`` is the server's
    error code when it answered with one."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


class RemoteEnvBusy(RemoteEnvError):
    """The env server is at its session cap; retry later."""


class RemoteEnvTimeout(RemoteEnvError):
    """The env server did not answer within ``timeout_s``."""


@dataclass(frozen=True)
class Address:
    """Where a server listens: ``base`` is its HTTP root; ``unix`` the socket path for ``unix://``."""

    url: str  # as the user wrote it
    base: str  # http://host:port[/prefix] (http://localhost for a Unix socket)
    unix: str | None = None

    @classmethod
    def parse(cls, url: str) -> Address:
        """``ws://host:port/ws``, ``http://host:port`` (wss/https too) or ``unix:///path.sock``."""
        parts = urlsplit(url.strip())
        if parts.scheme == "unix":
            if parts.netloc or not parts.path:
                raise EnvOptionError(f"url: expected unix:///ABSOLUTE/PATH.sock, got {url!r}")
            return cls(url, "http://localhost", parts.path)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        if scheme not in ("http", "https") or not parts.netloc:
            raise EnvOptionError(
                f"url: expected ws://HOST:PORT, http://HOST:PORT or unix:///PATH.sock, got {url!r}"
            )
        path = parts.path.removesuffix("/ws").rstrip("/")
        return cls(url, urlunsplit((scheme, parts.netloc, path, "", "")))

    @property
    def ws_url(self) -> str:
        return self.base.replace("http", "ws", 1) + "/ws"

    def session(self, headers: dict[str, str]) -> aiohttp.ClientSession:
        """An HTTP client session bound to this address (a Unix-socket connector for ``unix://``)."""
        connector = aiohttp.UnixConnector(path=self.unix) if self.unix else None
        return aiohttp.ClientSession(headers=headers, connector=connector)


_turns: dict[tuple[str, ...], itertools.count] = {}
_turns_lock = threading.Lock()


def pick_address(url: str | list[str]) -> Address:
    """One address of ``url``: itself, or for a pool (a list, or addresses separated by commas)
    the next one in round-robin order, per pool and process."""
    urls = tuple(u.strip() for u in (url.split(",") if isinstance(url, str) else url) if u.strip())
    if not urls:
        raise EnvOptionError("url: no server address given")
    if len(urls) == 1:
        return Address.parse(urls[0])
    with _turns_lock:
        turn = next(_turns.setdefault(urls, itertools.count()))
    return Address.parse(urls[turn % len(urls)])


def _raise_error_frame(data: dict[str, Any]) -> None:
    code, message = data.get("code"), str(data.get("message", data))
    if code == "OPTION_ERROR":
        raise EnvOptionError(message)
    if code == "USAGE_ERROR":
        raise RuntimeError(message)
    if code == "CAPACITY_REACHED":
        raise RemoteEnvBusy(message, code)
    if code == "EXECUTION_ERROR":  # the served env raised: a bug there, not to be masked
        raise RuntimeError(f"the served env failed: {message}")
    raise RemoteEnvError(f"env server error {code}: {message}", code)


_io_loop: asyncio.AbstractEventLoop | None = None
_io_lock = threading.Lock()


def _io() -> asyncio.AbstractEventLoop:
    """The process's background I/O loop (started on first use) that owns every connection."""
    global _io_loop
    with _io_lock:
        if _io_loop is None:
            _io_loop = asyncio.new_event_loop()
            threading.Thread(target=_io_loop.run_forever, daemon=True, name="agentrl-remote-io").start()
    return _io_loop


async def on_io(coro: Coroutine[Any, Any, T]) -> T:
    """Await ``coro`` run on the I/O loop, from any event loop."""
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, _io()))


def on_io_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the I/O loop and wait for it (the sync API)."""
    return asyncio.run_coroutine_threadsafe(coro, _io()).result()


class _Link:
    """One WebSocket to a server, used only on the I/O loop, with typed failures."""

    def __init__(self, address: Address, token: str | None, timeout_s: float, connect_timeout_s: float):
        self.address = address
        self.where = address.url
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout_s, self.connect_timeout_s = timeout_s, connect_timeout_s
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        # one request at a time: a request cancelled by its caller finishes dropping the
        # connection before the next one looks at it
        self.lock = asyncio.Lock()

    def connected(self) -> bool:
        return self._ws is not None and not self._ws.closed

    async def connect(self, query: dict[str, str]) -> None:
        await self.drop()
        self._http = self.address.session(self.headers)
        try:
            self._ws = await asyncio.wait_for(
                self._http.ws_connect(self.address.ws_url, params=query, max_msg_size=0),
                self.connect_timeout_s,
            )
        except aiohttp.WSServerHandshakeError as exc:
            await self.drop()
            if exc.status == 401:
                raise EnvOptionError(
                    f"token: the env server at {self.where} refused the bearer token"
                ) from None
            raise RemoteEnvError(f"the env server at {self.where} refused the connection: {exc}") from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            await self.drop()
            raise RemoteEnvError(
                f"cannot reach the env server at {self.where}: {exc or type(exc).__name__}"
            ) from exc

    async def request(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send one frame, return the reply frame; an ``error`` reply raises (see the module doc)."""
        if not self.connected():
            raise RemoteEnvError(f"the connection to the env server at {self.where} is closed")
        assert self._ws is not None
        try:
            await self._ws.send_str(dumps_frame(frame))
            message = await asyncio.wait_for(self._ws.receive(), self.timeout_s)
        except asyncio.CancelledError:
            # the reply may still come: a later request must not read it, so this connection goes
            # (the next request re-attaches to the session on a fresh one)
            ws, http, self._ws, self._http = self._ws, self._http, None, None
            asyncio.ensure_future(_close_quietly(ws, http))
            raise
        except TimeoutError:
            await self.drop()
            raise RemoteEnvTimeout(
                f"the env server at {self.where} did not answer in {self.timeout_s:g} s"
            ) from None
        except (aiohttp.ClientError, ConnectionError) as exc:
            await self.drop()
            raise RemoteEnvError(f"lost the env server at {self.where}: {exc}") from exc
        if message.type != aiohttp.WSMsgType.TEXT:
            await self.drop()
            raise RemoteEnvError(f"the env server at {self.where} closed the connection")
        reply = json.loads(message.data)
        if reply.get("type") == "error":
            if reply.get("data", {}).get("code") in ("CAPACITY_REACHED", "EXPIRED", "SESSION_ERROR"):
                await self.drop()
            _raise_error_frame(reply.get("data", {}))
        return reply

    async def close(self) -> None:
        """Say ``close`` (the server releases the session), then drop the connection."""
        if self.connected():
            try:
                await self._ws.send_str(json.dumps({"type": "close"}))  # type: ignore[union-attr]
            except (aiohttp.ClientError, ConnectionError):
                pass  # the server is gone already: nothing left to release
        await self.drop()

    async def drop(self) -> None:
        ws, http, self._ws, self._http = self._ws, self._http, None, None
        await _close_quietly(ws, http)


async def _close_quietly(
    ws: aiohttp.ClientWebSocketResponse | None, http: aiohttp.ClientSession | None
) -> None:
    if ws is not None:
        await ws.close()
    if http is not None:
        await http.close()


async def fetch_spec(address: Address, token: str | None, timeout_s: float) -> EnvSpecData:
    """The server's ``GET /spec`` (instructions and tools; no session is opened)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        async with (
            address.session(headers) as http,
            http.get(address.base + "/spec", timeout=aiohttp.ClientTimeout(total=timeout_s)) as response,
        ):
            if response.status == 401:
                raise EnvOptionError(f"token: the env server at {address.url} refused the bearer token")
            if response.status != 200:
                raise RemoteEnvError(
                    f"the env server at {address.url} answered /spec with HTTP {response.status}"
                )
            return EnvSpecData.model_validate_json(await response.read())
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise RemoteEnvError(
            f"cannot reach the env server at {address.url}: {exc or type(exc).__name__}"
        ) from exc


class RemoteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | list[str] = Field(
        description="The server: ws://HOST:PORT (or http://HOST:PORT) or unix:///PATH.sock; a list "
        "(or a comma-separated string) is a pool, each new env takes the next address."
    )
    env_id: str | None = Field(
        default=None, description="Expected env id; a server serving another env is an error."
    )
    token: str | None = Field(default=None, description="Bearer token, if the server requires one.")
    timeout_s: float = Field(default=120.0, gt=0, description="Longest wait for one answer.")
    connect_timeout_s: float = Field(default=10.0, gt=0)
    session_id: str | None = Field(
        default=None, description="Attach to this server-side session (set by fork)."
    )


class RemoteEnv(TextEnv):
    """A client of an ``agentrl env serve`` server; the env itself runs there.

    Constructing one does no I/O (it is safe inside a running event loop, and the server need
    not be up yet): the first ``reset``/``areset`` opens the session and takes the env's
    instructions and tools from the server. Reading ``tools`` or ``instructions`` before that
    fetches ``GET /spec`` synchronously.
    """

    __abstract_env__ = True  # no hooks: reset/step/fork are answered by the server
    Config = RemoteConfig  # type: ignore[assignment]

    def __init__(self, url: str | list[str], env_id: str | None = None, **options: Any):
        super().__init__(url=url, env_id=env_id, **options)
        config: RemoteConfig = self.config  # type: ignore[assignment]
        self.address = pick_address(config.url)
        self._env_spec: EnvSpecData | None = None
        self.spec = self._gym_spec(env_id) if env_id is not None else None
        self._link = _Link(self.address, config.token, config.timeout_s, config.connect_timeout_s)
        self._session_id = config.session_id
        self._started = False
        self._state_key: str | None = None
        self._task_id: str | None = None

    def build_tasks(self) -> TaskSet:
        raise NotImplementedError(
            "a RemoteEnv's tasks live on the server; pick one with options={'task_id': ...}"
        )

    def task_ids(self, split: str | None = None) -> None:
        return None  # the server's, not listable here

    @property
    def instructions(self) -> str:  # type: ignore[override]
        return self._server_spec().instructions

    @property
    def tools(self) -> list[ToolSpec]:  # type: ignore[override]
        return self._server_spec().tools

    def _server_spec(self) -> EnvSpecData:
        if self._env_spec is None:
            config: RemoteConfig = self.config  # type: ignore[assignment]
            self._take_spec(on_io_sync(fetch_spec(self.address, config.token, config.connect_timeout_s)))
        assert self._env_spec is not None
        return self._env_spec

    def _take_spec(self, spec: EnvSpecData) -> None:
        """Keep the server's spec, once it is checked to be of the env asked for."""
        expected = self.config.env_id  # type: ignore[attr-defined]
        if expected is not None and spec.env_id != expected:
            raise EnvOptionError(
                f"env_id: the server at {self.address.url} serves {spec.env_id!r}, not {expected!r}"
            )
        self._env_spec = spec
        self.spec = self._gym_spec(spec.env_id)

    def _gym_spec(self, env_id: str) -> EnvSpec:
        kwargs = {**self.config.model_dump(), "url": self.address.url}
        return EnvSpec(id=env_id, entry_point="agentrl.env.remote:RemoteEnv", kwargs=kwargs)

    def state_key(self) -> str | None:
        return self._state_key

    @property
    def session_id(self) -> str | None:
        return self._session_id

    # ----------------------------------------------------------------- the contract
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict]:
        observation, _, _, _, info = self._take(on_io_sync(self._request(self._reset_frame(seed, options))))
        return observation, info

    async def areset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict]:
        observation, _, _, _, info = self._take(await on_io(self._request(self._reset_frame(seed, options))))
        return observation, info

    def step(self, action: str) -> tuple[str, float, bool, bool, dict]:
        return self._take(on_io_sync(self._request(self._step_frame(action))))

    async def astep(self, action: str) -> tuple[str, float, bool, bool, dict]:
        return self._take(await on_io(self._request(self._step_frame(action))))

    def fork(self) -> RemoteEnv:
        return self._twin(on_io_sync(self._request(self._fork_frame())))

    async def afork(self) -> RemoteEnv:
        return self._twin(await on_io(self._request(self._fork_frame())))

    async def state(self) -> dict[str, Any]:
        """The server's view of the session: ``episode_id``, ``step_count``, ``task_id``, ``state_key``, ``done``."""
        return (await on_io(self._request({"type": "state"})))["data"]

    async def aclose(self) -> None:
        await on_io(self._release())

    def close(self) -> None:
        on_io_sync(self._release())
        super().close()

    # ----------------------------------------------------------------- internals
    @staticmethod
    def _reset_frame(seed: int | None, options: dict[str, Any] | None) -> dict[str, Any]:
        try:
            data = ResetData(seed=seed, **(options or {}))
        except ValidationError as exc:
            error = exc.errors()[0]
            raise EnvOptionError(f"reset: {'.'.join(map(str, error['loc']))}: {error['msg']}") from None
        return {"type": "reset", "data": data.model_dump(exclude_none=True)}

    def _step_frame(self, action: str) -> dict[str, Any]:
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("the episode is over; call reset() to start a new one")
        if not isinstance(action, str):
            raise TypeError(f"actions are text; got {type(action).__name__}")
        return {"type": "step", "data": {"text": action}}

    def _fork_frame(self) -> dict[str, Any]:
        if not self._started:
            raise RuntimeError("call reset() before using the episode")
        return {"type": "fork"}

    def _twin(self, reply: dict[str, Any]) -> RemoteEnv:
        # the twin's session is on this env's server, whatever pool the url named
        config = {**self.config.model_dump(), "url": self.address.url}
        twin = RemoteEnv(**{**config, "session_id": reply["data"]["session_id"]})
        twin._env_spec, twin.spec = self._env_spec, self.spec
        twin._started, twin._done, twin._turn = True, self._done, self._turn
        twin._state_key, twin._task_id, twin._last_observation = (
            self._state_key,
            self._task_id,
            self._last_observation,
        )
        return twin

    async def _release(self) -> None:
        """On the I/O loop: close the server-side session, re-attaching first when this env holds
        one without a connection (a fork's twin never used, a connection dropped by a cancel)."""
        async with self._link.lock:
            if self._session_id is not None and not self._link.connected():
                try:
                    await self._link.connect({"session_id": self._session_id})
                except RemoteEnvError:
                    pass  # the server is gone: nothing left to release
            await self._link.close()
            self._session_id = None  # a later reset opens a new session

    async def _request(self, frame: dict[str, Any]) -> dict[str, Any]:
        """On the I/O loop: (re)connect to this env's session if needed, then one request."""
        async with self._link.lock:
            if not self._link.connected():
                await self._link.connect({"session_id": self._session_id} if self._session_id else {})
                if self._session_id is None:
                    spec = EnvSpecData.model_validate((await self._link.request({"type": "spec"}))["data"])
                    try:
                        self._take_spec(spec)
                    except EnvOptionError:
                        await self._link.close()  # not the env asked for: release the session
                        raise
                    self._session_id = spec.session_id
            return await self._link.request(frame)

    def _take(self, reply: dict[str, Any]) -> tuple[str, float, bool, bool, dict]:
        data = reply["data"]
        observation = data["observation"]
        info = observation["info"]
        self._state_key, self._task_id = info.get("state_key"), info.get("task_id")
        self._turn = int(info.get("turn", 0))
        self._done = bool(data["done"])
        self._last_observation = observation["text"]
        self._started = True
        return (
            observation["text"],
            float(data["reward"]),
            observation["terminated"],
            observation["truncated"],
            info,
        )


class OpenEnvConfig(EnvConfig):
    url: str = Field(description="The OpenEnv server, http://HOST:PORT or ws://HOST:PORT.")
    action_field: str | None = Field(
        default=None,
        description="Put the action text in this field of the action (e.g. 'message'); "
        "None: the action text is the action's JSON object.",
    )
    observation_field: str | None = Field(
        default=None, description="Show this field of the observation; None: the observation as JSON."
    )
    instructions: str = Field(
        default="", description="System prompt for the agent (OpenEnv servers have none)."
    )
    token: str | None = None
    timeout_s: float = Field(default=120.0, gt=0)
    connect_timeout_s: float = Field(default=10.0, gt=0)


class OpenEnvEnv(TextEnv):
    """A text env over an OpenEnv environment server (its ``/ws`` reset/step/state protocol).

    An episode is one OpenEnv session. The action text becomes the OpenEnv action (see
    ``action_field``); an action the server's schema refuses is an invalid action (scored, the
    episode goes on). ``success`` is an episode that ended with a positive reward. OpenEnv has
    no tasks: each split holds one task, and ``reset(seed=...)`` is passed on. ``fork()``
    replays the episode on a new session (exact for deterministic servers).
    """

    Config = OpenEnvConfig

    def __init__(self, **options: Any):
        super().__init__(**options)
        config: OpenEnvConfig = self.config  # type: ignore[assignment]
        self.instructions = config.instructions
        self._link = _Link(
            Address.parse(config.url), config.token, config.timeout_s, config.connect_timeout_s
        )

    def build_tasks(self) -> TaskSet:
        return TaskSet(Task(id=f"openenv-{split}", split=split) for split in SPLITS)

    async def _areset(self, task: Task) -> str:
        reply = await on_io(self._open_session(self._episode_seed))
        return self._render(reply["data"])

    async def _astep(self, action: str) -> StepOutcome:
        config: OpenEnvConfig = self.config  # type: ignore[assignment]
        if config.action_field is not None:
            payload: Any = {config.action_field: action}
        else:
            try:
                payload = json.loads(action)
            except json.JSONDecodeError as exc:
                return StepOutcome(
                    f"Error: the action is not JSON ({exc.msg}).", valid_action=False, error=exc.msg
                )
            if not isinstance(payload, dict):
                message = "the action must be a JSON object"
                return StepOutcome(f"Error: {message}.", valid_action=False, error=message)
        try:
            reply = await on_io(self._request({"type": "step", "data": payload}))
        except RemoteEnvError as exc:
            if exc.code != "VALIDATION_ERROR":
                raise
            return StepOutcome(
                f"Error: the action does not fit the env's action schema: {exc}",
                valid_action=False,
                error=str(exc),
            )
        data = reply["data"]
        reward, done = float(data.get("reward") or 0.0), bool(data.get("done"))
        return StepOutcome(
            self._render(data),
            reward=reward,
            terminated=done,
            success=done and reward > 0,
            info={"openenv_metadata": data.get("metadata") or {}},
        )

    def _render(self, data: dict[str, Any]) -> str:
        field = self.config.observation_field  # type: ignore[attr-defined]
        observation = dict(data.get("observation") or {})
        observation.pop("metadata", None)
        if field is not None:
            return str(observation.get(field, ""))
        return json.dumps(observation, ensure_ascii=False, sort_keys=True)

    async def state(self) -> dict[str, Any]:
        """OpenEnv's ``state`` of the current session (``episode_id``, ``step_count``, ...)."""
        return (await on_io(self._request({"type": "state"})))["data"]

    async def _open_session(self, seed: int | None) -> dict[str, Any]:
        """On the I/O loop: a new OpenEnv session (a new connection) and its first observation."""
        async with self._link.lock:
            await self._link.close()
            await self._link.connect({})
            return await self._link.request({"type": "reset", "data": {"seed": seed}})

    async def _request(self, frame: dict[str, Any]) -> dict[str, Any]:
        async with self._link.lock:
            return await self._link.request(frame)

    async def aclose(self) -> None:
        await on_io(self._link.close())

    def close(self) -> None:
        on_io_sync(self._link.close())
        super().close()
