"""The wire protocol between :mod:`agentrl.env.server` and :mod:`agentrl.env.remote`.

It is OpenEnv's WebSocket protocol (``/ws``: JSON frames ``{"type": ..., "data": ...}``) with
two extra message types, so an OpenEnv client can drive an agentrl env and our client can drive
an OpenEnv server (the mapping is in ``agentrl/env/SERVICES.md``):

client → server   ``reset`` ``step`` ``state`` ``close`` (OpenEnv) and ``spec`` ``fork`` (agentrl)
server → client   ``observation`` ``state`` ``error`` (OpenEnv) and ``spec`` ``forked`` (agentrl)

An agentrl action is text: a step's ``data`` is ``{"text": ACTION}``. A served observation is
``{"observation": {"text", "info", "terminated", "truncated"}, "reward", "done"}``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from agentrl.types import ToolSpec


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResetData(BaseModel):
    """``seed`` and agentrl's reset options; OpenEnv clients may also send ``episode_id``."""

    model_config = ConfigDict(extra="forbid")
    seed: int | None = Field(default=None, ge=0)
    episode_id: str | None = Field(default=None, max_length=255)
    task_id: str | None = None
    split: str | None = None

    def options(self) -> dict[str, Any]:
        return {key: value for key in ("task_id", "split") if (value := getattr(self, key)) is not None}


class StepData(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


class ResetMessage(_Frame):
    type: Literal["reset"] = "reset"
    data: ResetData = Field(default_factory=ResetData)


class StepMessage(_Frame):
    type: Literal["step"] = "step"
    data: StepData


class StateMessage(_Frame):
    type: Literal["state"] = "state"


class CloseMessage(_Frame):
    type: Literal["close"] = "close"


class SpecMessage(_Frame):
    type: Literal["spec"] = "spec"


class ForkMessage(_Frame):
    type: Literal["fork"] = "fork"


Incoming = Annotated[
    ResetMessage | StepMessage | StateMessage | CloseMessage | SpecMessage | ForkMessage,
    Field(discriminator="type"),
]
INCOMING = TypeAdapter(Incoming)


class EnvSpecData(BaseModel):
    """What a client needs before the first reset: the env's prompt and tools, and its session."""

    env_id: str
    session_id: str | None = None
    instructions: str
    tools: list[ToolSpec]
    supports_fork: bool = True


# Error codes: OpenEnv's (first line) and agentrl's. The client maps each to an exception.
ErrorCode = Literal[
    "INVALID_JSON",
    "UNKNOWN_TYPE",
    "VALIDATION_ERROR",
    "EXECUTION_ERROR",
    "CAPACITY_REACHED",
    "SESSION_ERROR",
    "TOO_LARGE",
    "RATE_LIMITED",
    "OPTION_ERROR",
    "USAGE_ERROR",
    "INFRA_ERROR",
    "EXPIRED",
]


def dumps_frame(frame: dict[str, Any]) -> str:
    """A frame as JSON text; text that is not valid Unicode (a lone surrogate) travels as a
    ``\\u`` escape, so the far side sees the same string (and an env refuses it as it would in-process)."""
    raw = json.dumps(frame, ensure_ascii=False)
    try:
        raw.encode()
    except UnicodeEncodeError:
        return json.dumps(frame)
    return raw


def error_frame(code: ErrorCode, message: str) -> dict[str, Any]:
    return {"type": "error", "data": {"code": code, "message": message}}


def observation_frame(
    text: str, reward: float, terminated: bool, truncated: bool, info: dict
) -> dict[str, Any]:
    return {
        "type": "observation",
        "data": {
            "observation": {"text": text, "info": info, "terminated": terminated, "truncated": truncated},
            "reward": reward,
            "done": terminated or truncated,
        },
    }


# JSON schemas served at GET /schema (OpenEnv's schema endpoint), for OpenEnv tooling.
ACTION_SCHEMA = StepData.model_json_schema()
OBSERVATION_SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string"},
        "info": {"type": "object"},
        "terminated": {"type": "boolean"},
        "truncated": {"type": "boolean"},
    },
}
STATE_SCHEMA = {
    "type": "object",
    "properties": {
        "episode_id": {"type": ["string", "null"]},
        "step_count": {"type": "integer"},
        "task_id": {"type": ["string", "null"]},
        "state_key": {"type": ["string", "null"]},
        "done": {"type": "boolean"},
    },
}
