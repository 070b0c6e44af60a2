"""An env whose tools come from an MCP server (the ``mcp`` package; stdio or streamable HTTP).

``McpToolEnv(server=..., tasks=PATH)``: ``server`` is either a command line (``"python
my_server.py"``: the env starts it and speaks MCP over its stdin/stdout) or an ``http(s)://``
URL of a streamable-HTTP MCP endpoint (``http://127.0.0.1:8000/mcp``). The tool specs (name,
description, JSON schema) are the server's ``tools/list``; the agent calls them in Hermes format
(``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, checked against those schemas by
:func:`agentrl.env.parsing.parse_tool_calls`) and the calls go to the server's ``tools/call``.
It answers with ``<answer>...</answer>``; reward 1 when the answer equals the task's (case and
surrounding space ignored).

Tasks file (JSON Lines), one task a line::

    {"id": "q1", "prompt": "What is ...?", "answer": "42", "split": "test"}

``split`` is optional (by default a hash of the id picks it, 20% test). A bad line is an error
naming the line and the field.

Failures: a tool that reports an error (``isError``) is an observation, scored; an MCP server
that dies, cannot be started or reached, or does not answer within ``timeout_s`` is a
:class:`McpUnavailable` (an :class:`~agentrl.errors.InfraError`).

The connection lives on the background I/O loop of :mod:`agentrl.env.remote` (so the env works
from the sync API and from any event loop); each env instance has its own MCP session (for
stdio, its own server process), opened when the env is built and closed by ``close()``.
``fork()`` replays the episode on a fresh env and so a fresh session.
"""

from __future__ import annotations

import asyncio
import json
import shlex
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentrl.env.base import EnvConfig, EnvOptionError, StepOutcome, TextEnv
from agentrl.env.parsing import ActionError, extract_answer, has_tool_call, parse_tool_calls
from agentrl.env.remote import on_io, on_io_sync
from agentrl.env.tasks import Task, TaskSet, hash_split
from agentrl.errors import InfraError
from agentrl.types import ToolSpec

INSTRUCTIONS = (
    "Solve the task with the tools provided. Call tools as "
    '<tool_call>{"name": ..., "arguments": {...}}</tool_call> (several per turn allowed). '
    "Give the final answer as <answer>ANSWER</answer>."
)


class McpUnavailable(InfraError):
    """The MCP server could not be started or reached, died, or timed out."""


class McpTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    answer: str
    split: Literal["train", "dev", "test"] | None = None


def load_tasks(path: str | Path) -> TaskSet:
    """Read and validate a tasks JSONL file; a bad line raises an error naming the line and field."""
    tasks = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise EnvOptionError(f"tasks: cannot read {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = McpTask.model_validate_json(line)
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(p) for p in error["loc"]) or "(line)"
            raise EnvOptionError(f"tasks: {path} line {number}: {field}: {error['msg']}") from None
        split = record.split or hash_split(record.id)
        tasks.append(Task(id=record.id, split=split, data={"prompt": record.prompt, "answer": record.answer}))
    try:
        return TaskSet(tasks)
    except ValueError as exc:
        raise EnvOptionError(f"tasks: {path}: {exc}") from None


class McpConfig(EnvConfig):
    server: str = Field(description="A command line (stdio) or an http(s):// streamable-HTTP MCP URL.")
    tasks: str = Field(description="JSONL tasks file: id, prompt, answer[, split].")
    instructions: str = Field(default=INSTRUCTIONS, description="System prompt.")
    timeout_s: float = Field(
        default=60.0, gt=0, description="Longest wait for the server to start or answer."
    )
    max_turns: int = Field(default=10, ge=1)


class _McpSession:
    """One MCP client session, owned by a task on the I/O loop (MCP's transports are context
    managers that must open and close in the same task)."""

    def __init__(self, server: str, timeout_s: float):
        self.server, self.timeout_s = server, timeout_s
        self.session: Any = None
        self._stop = asyncio.Event()
        self._owner: asyncio.Task | None = None

    async def open(self) -> list[ToolSpec]:
        ready: asyncio.Future = asyncio.get_running_loop().create_future()
        self._owner = asyncio.create_task(self._own(ready))
        try:
            return await asyncio.wait_for(asyncio.shield(ready), self.timeout_s)
        except TimeoutError:
            await self.close()
            raise McpUnavailable(
                f"MCP server {self.server!r} did not start within {self.timeout_s:g} s"
            ) from None

    async def _own(self, ready: asyncio.Future) -> None:
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client
        from mcp.client.streamable_http import streamable_http_client

        try:
            async with AsyncExitStack() as stack:
                if self.server.startswith(("http://", "https://")):
                    read, write, _ = await stack.enter_async_context(streamable_http_client(self.server))
                else:
                    command, *args = shlex.split(self.server)
                    params = StdioServerParameters(command=command, args=args)
                    read, write = await stack.enter_async_context(stdio_client(params))
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                listed = await session.list_tools()
                tools = [
                    ToolSpec(name=t.name, description=t.description or "", parameters=t.inputSchema)
                    for t in listed.tools
                ]
                self.session = session
                ready.set_result(tools)
                await self._stop.wait()
        except Exception as exc:  # noqa: BLE001 - whatever broke the transport: the server is unavailable
            if not ready.done():
                ready.set_exception(
                    McpUnavailable(f"cannot start or reach MCP server {self.server!r}: {exc}")
                )
        finally:
            self.session = None

    async def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        from mcp.shared.exceptions import McpError

        if self.session is None:
            raise McpUnavailable(f"the MCP server {self.server!r} is gone")
        try:
            result = await self.session.call_tool(
                name, arguments, read_timeout_seconds=timedelta(seconds=self.timeout_s)
            )
        except McpError as exc:
            raise McpUnavailable(f"MCP server {self.server!r} failed on {name}: {exc}") from exc
        except Exception as exc:
            raise McpUnavailable(f"lost the MCP server {self.server!r}: {type(exc).__name__}: {exc}") from exc
        text = "\n".join(c.text for c in result.content if getattr(c, "type", None) == "text")
        if result.isError:
            return {"error": text}
        if result.structuredContent is not None:
            return result.structuredContent
        return {"result": text}

    async def close(self) -> None:
        self._stop.set()
        if self._owner is not None:
            await asyncio.wait([self._owner], timeout=10)


class McpToolEnv(TextEnv):
    """Tasks from a JSONL file, tools from an MCP server (see the module docstring)."""

    Config = McpConfig

    def __init__(self, **options: Any):
        super().__init__(**options)
        config: McpConfig = self.config  # type: ignore[assignment]
        self._tasks = load_tasks(config.tasks)  # a bad file fails before a server is started
        self.instructions = config.instructions
        self._mcp = _McpSession(config.server, config.timeout_s)
        self.tools: list[ToolSpec] = on_io_sync(self._mcp.open())

    def build_tasks(self) -> TaskSet:
        return self._tasks

    def _reset(self, task: Task) -> str:
        return task.data["prompt"]

    async def _astep(self, action: str) -> StepOutcome:
        if has_tool_call(action):
            try:
                calls = parse_tool_calls(action, self.tools)
            except ActionError as exc:
                return StepOutcome(f"Error: {exc}", valid_action=False, error=str(exc))
            responses = [await on_io(self._mcp.call(call.name, call.arguments)) for call in calls]
            body = "\n".join(
                f"<tool_response>{json.dumps(r, ensure_ascii=False)}</tool_response>" for r in responses
            )
            return StepOutcome(body, tool_calls=len(calls))
        answer = extract_answer(action)
        if answer is None:
            message = "Call a tool with <tool_call>...</tool_call> or answer with <answer>ANSWER</answer>."
            return StepOutcome(f"Error: {message}", valid_action=False, error=message)
        correct = answer.strip().casefold() == self.task.data["answer"].strip().casefold()
        return StepOutcome(
            "Correct." if correct else "Wrong answer.",
            reward=float(correct),
            terminated=True,
            success=correct,
        )

    async def aclose(self) -> None:
        await on_io(self._mcp.close())

    def close(self) -> None:
        on_io_sync(self._mcp.close())
        super().close()
