"""The typed records that cross every boundary in agentrl.

Data flows one way: an env emits observations, a policy samples actions, the rollout engine
records each step as a :class:`StepRecord`, whole episodes as a :class:`Trajectory` (a chain) or
a :class:`RolloutTree` (shared prefixes), and estimators read those records as columns.

Every model is a pydantic model, so bad data fails loudly where it enters, and every model
round-trips through JSON Lines with :func:`write_jsonl` / :func:`read_jsonl`. The records are the
exact log of what happened; :class:`StepColumns` is their scalar step fields as numpy columns
and their token rows as flat arrays (:class:`TokenLayout`), taken once per finished record
(``record.take_columns()``, then ``record.columns``), which is what a batch of a million steps
is built from (:meth:`agentrl.algos.StepBatch.from_trees`, :class:`agentrl.rollout.RolloutBatch`).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import uuid
from collections.abc import Iterable, Iterator, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticSerializationError

Role = Literal["system", "user", "assistant", "tool"]
TrajectoryStatus = Literal["ok", "truncated", "infra_error"]
TruncationReason = Literal["max_turns", "invalid_actions", "context_overflow", "length", "timeout"]


def new_id() -> str:
    """A short random id for trajectories, trees and groups."""
    return uuid.uuid4().hex[:16]


class Record(BaseModel):
    """Base for all records: extra fields are an error, so typos fail at the edge."""

    model_config = ConfigDict(extra="forbid")


class ToolCall(Record):
    """One call of a declared tool, as parsed from the model's action text."""

    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None


class Message(Record):
    """One chat message (OpenAI / Hugging Face chat-template shape)."""

    role: Role
    content: str
    tool_calls: list[ToolCall] | None = None
    name: str | None = None

    def to_chat(self) -> dict[str, Any]:
        """The plain dict that chat templates and OpenAI-compatible servers take."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [
                {"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        if self.name is not None:
            out["name"] = self.name
        return out


class ToolSpec(Record):
    """A tool the agent may call: its name, what it does, and a JSON schema for its arguments."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    description: str
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}, "required": []}
    )

    def to_openai(self) -> dict[str, Any]:
        """The `tools=[...]` entry format used by OpenAI-compatible APIs and chat templates."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class StepRecord(Record):
    """One agent turn: what the agent saw, what it sampled, and what the env answered.

    ``prompt_token_ids`` is exactly what the policy was conditioned on for this turn and
    ``completion_token_ids`` / ``logprobs`` exactly what it sampled: no retokenization. Token
    fields are empty for scripted agents. ``reward`` is the env's reward for this step;
    ``state_key`` is the env's canonical state *before* the action (GiGPO's anchor state).
    ``policy_version`` is the oldest version of the weights that sampled the turn; a turn cut by
    a weight update mid-decode has ``token_versions``, the version of each completion token
    (None: every token is ``policy_version``'s). :meth:`completion_versions` reads both ways.
    """

    index: int = Field(ge=0)
    observation: str
    action: str
    prompt_token_ids: list[int] = Field(default_factory=list)
    completion_token_ids: list[int] = Field(default_factory=list)
    logprobs: list[float] = Field(default_factory=list)
    finish_reason: str | None = None
    segment: int = 0
    reward: float = 0.0
    tool_calls: int = Field(default=0, ge=0)
    state_key: str | None = None
    valid_action: bool = True
    policy_version: int | None = None
    token_versions: list[int] | None = None
    info: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _logprobs_match_tokens(self) -> StepRecord:
        if self.logprobs and len(self.logprobs) != len(self.completion_token_ids):
            raise ValueError(
                f"logprobs has {len(self.logprobs)} entries but completion_token_ids has "
                f"{len(self.completion_token_ids)}"
            )
        if self.token_versions is not None:
            n, versions = len(self.completion_token_ids), self.token_versions
            if len(versions) != n or self.policy_version != min(versions, default=None):
                raise ValueError(
                    f"token_versions needs one version per completion token ({len(versions)} for {n}) "
                    f"and policy_version ({self.policy_version}) their oldest"
                )
        return self

    def completion_versions(self) -> list[int]:
        """The version that sampled each completion token ([] without a policy version)."""
        if self.token_versions is not None:
            return self.token_versions
        if self.policy_version is None:
            return []
        return [self.policy_version] * len(self.completion_token_ids)


STEP_COLUMNS = np.dtype(
    [
        ("parent", np.int64),  # position of the parent step in the record, -1 at a root
        ("node", np.int64),  # node id (a chain: the step's position)
        ("depth", np.int64),  # steps from the root, 0 at a root
        ("reward", np.float64),  # the env's step reward
        ("action_valid", bool),
        ("tool_calls", np.int64),
        ("n_tokens", np.int64),  # completion (policy) tokens
        ("state", np.int64),  # index into the record's state keys (first seen first), -1 for none
    ]
)
STATUSES: tuple[str, ...] = get_args(TrajectoryStatus)
EPISODE_COLUMNS = np.dtype(
    [
        ("row", np.int64),  # position of the step the episode ends on
        ("reward", np.float64),  # final_reward
        ("success", bool),
        ("status", np.int8),  # index into STATUSES
    ]
)


@dataclasses.dataclass(frozen=True, eq=False, slots=True)
class TokenLayout:
    """A record's token rows, flat: what :class:`agentrl.rollout.RolloutBatch` trains on.

    A step whose prompt extends its parent's row exactly (``prompt = row ‖ …``) continues that
    row; otherwise (a second child of a tree node, a new segment after a template rewrote
    history) it starts a new row whose context is its prompt. Steps without completion tokens
    add nothing. Rows only ever involve the record's own steps, so the layout is taken with the
    record's columns and a batch shifts and joins the records' layouts.
    """

    ids: np.ndarray  # int64: every row's token ids, rows in order
    old_logp: np.ndarray  # float64, beside ids: behaviour log-prob of policy tokens, 0 in context
    row_lengths: np.ndarray  # int64, one per row
    version: np.ndarray  # int64, per row: oldest policy version of its steps (see ``versioned``)
    versioned: np.ndarray  # bool, per row: some step of the row has a policy version
    token_row: np.ndarray  # int64, per policy token (steps in order): the record's row …
    token_pos: np.ndarray  # int64: … and the position in it
    token_version: np.ndarray  # int64, per policy token: the version that sampled it (-1: none)
    error: str | None = None  # why the record cannot be trained on token rows (raised at batch time)

    @classmethod
    def of(cls, steps: Sequence[StepRecord], parents: Sequence[int]) -> TokenLayout:
        """The rows of ``steps`` (record order; ``parents``: each step's parent position, -1)."""
        ids: list[list[int]] = []
        logp: list[list[float]] = []
        version: list[int | None] = []
        tip: list[int] = []  # token row → the step it ends with
        row_of_step = [-1] * len(steps)
        token_row: list[int] = []
        token_pos: list[int] = []
        token_version: list[int] = []
        for r, (step, p) in enumerate(zip(steps, parents)):
            completion = step.completion_token_ids
            n = len(completion)
            if n == 0:
                continue
            if len(step.logprobs) != n:
                return cls.empty(f"step {step.index}: completion has no behaviour logprobs")
            prompt = step.prompt_token_ids
            if not prompt:
                return cls.empty(f"step {step.index}: empty prompt_token_ids")
            ri = row_of_step[p] if p >= 0 else -1
            if ri < 0 or tip[ri] != p or prompt[: len(ids[ri])] != ids[ri]:
                ri = len(ids)
                ids.append([])
                logp.append([])
                version.append(step.policy_version)
                tip.append(-1)
            row = ids[ri]
            extra = len(prompt) - len(row)
            row += prompt[len(row) :]
            row += completion
            logp[ri] += [0.0] * extra
            logp[ri] += step.logprobs
            token_row += [ri] * n
            token_pos += range(len(prompt), len(prompt) + n)
            token_version += step.completion_versions() or [-1] * n
            if step.policy_version is not None:
                older = version[ri]
                version[ri] = step.policy_version if older is None else min(older, step.policy_version)
            tip[ri] = r
            row_of_step[r] = ri
        lengths = [len(row) for row in ids]
        total = sum(lengths)
        return cls(
            ids=np.fromiter(itertools.chain.from_iterable(ids), np.int64, total),
            old_logp=np.fromiter(itertools.chain.from_iterable(logp), np.float64, total),
            row_lengths=np.array(lengths, np.int64),
            version=np.array([-1 if v is None else v for v in version], np.int64),
            versioned=np.array([v is not None for v in version], bool),
            token_row=np.array(token_row, np.int64),
            token_pos=np.array(token_pos, np.int64),
            token_version=np.array(token_version, np.int64),
        )

    @classmethod
    def empty(cls, error: str | None = None) -> TokenLayout:
        """No rows, and why (None: no rows, no error)."""
        ints = np.zeros(0, np.int64)
        return cls(ints, np.zeros(0), ints, ints, np.zeros(0, bool), ints, ints, ints, error)


@dataclasses.dataclass(frozen=True, eq=False, slots=True)
class StepColumns:
    """A finished record as columns: ``rows`` holds one :data:`STEP_COLUMNS` entry per step
    (chain) or node (tree) in the record's order, ``episodes`` one :data:`EPISODE_COLUMNS` entry
    per episode (a chain: one; a tree: one per leaf) in row order (stable), ``tokens`` the
    record's :class:`TokenLayout`.

    Taken once per record (``record.take_columns()``, kept as ``record.columns``): the rollout
    takes them when the episode or tree is finished, so building a batch joins two arrays per
    record instead of reading every pydantic step again; a record read back from JSON Lines
    takes them on first use, from the same fields. The steps and outcome of a record are not
    edited after that (``take_columns()`` retakes them); its ids and ``info`` are read when
    the batch is built.
    """

    rows: np.ndarray  # structured, dtype STEP_COLUMNS
    episodes: np.ndarray  # structured, dtype EPISODE_COLUMNS
    # The record's state keys, first seen first, packed as one string and each key's length: a
    # batch then reads one object per record, not one string per key scattered over the heap.
    state_text: str
    state_lengths: np.ndarray  # int64
    tokens: TokenLayout  # the record's token rows

    @classmethod
    def of(
        cls,
        steps: Sequence[StepRecord],
        structure: Iterable[tuple[int, int, int]],
        episodes: Iterable[Trajectory | TreeLeaf],
        episode_rows: Iterable[int],
    ) -> StepColumns:
        """Columns of ``steps`` with their (parent position, node id, depth) given, and of
        ``episodes`` ending on ``episode_rows``."""
        keys: dict[str, int] = {}
        rows = np.array(
            [
                (
                    *where,
                    s.reward,
                    s.valid_action,
                    s.tool_calls,
                    len(s.completion_token_ids),
                    -1 if s.state_key is None else keys.setdefault(s.state_key, len(keys)),
                )
                for s, where in zip(steps, structure)
            ],
            dtype=STEP_COLUMNS,
        )
        ends = np.array(
            [
                (r, e.final_reward, e.success, STATUSES.index(e.status))
                for e, r in zip(episodes, episode_rows)
            ],
            dtype=EPISODE_COLUMNS,
        )
        return cls(
            rows=rows,
            episodes=ends[np.argsort(ends["row"], kind="stable")],
            state_text="".join(keys),
            state_lengths=np.fromiter(map(len, keys), np.int64, len(keys)),
            tokens=TokenLayout.of(steps, rows["parent"].tolist()),
        )


class Trajectory(Record):
    """One episode as a chain of steps.

    ``status`` says whether the episode can be learned from: ``ok`` (ended by the env),
    ``truncated`` (cut off; ``truncation`` says why) or ``infra_error`` (a sandbox, browser or
    backend failed: kept out of every learning signal, never scored as reward 0).
    """

    kind: Literal["trajectory"] = "trajectory"
    id: str = Field(default_factory=new_id)
    env_id: str = ""
    task_id: str
    group_id: str = ""
    seed: int | None = None
    steps: list[StepRecord] = Field(default_factory=list)
    final_reward: float = 0.0
    success: bool = False
    status: TrajectoryStatus = "ok"
    truncation: TruncationReason | None = None
    error: str | None = None
    policy_version: int | None = None
    info: dict[str, Any] = Field(default_factory=dict)

    @property
    def num_turns(self) -> int:
        return len(self.steps)

    @property
    def total_tool_calls(self) -> int:
        return sum(s.tool_calls for s in self.steps)

    @property
    def learnable(self) -> bool:
        """False for infra failures: they must not enter any group statistic."""
        return self.status != "infra_error"

    def take_columns(self) -> StepColumns:
        """Take the steps as :class:`StepColumns` now (a chain; one episode, ending at the last
        step) and keep them as ``columns``."""
        n = len(self.steps)
        self.__dict__["columns"] = columns = StepColumns.of(
            self.steps, zip(range(-1, n - 1), range(n), range(n)), [self] if n else [], [n - 1]
        )
        return columns

    columns = cached_property(take_columns)  # taken on first use when not taken yet


class TreeNode(Record):
    """One step in a rollout tree; the root's ``parent_id`` is None."""

    node_id: int = Field(ge=0)
    parent_id: int | None = None
    step: StepRecord


class TreeLeaf(Record):
    """Where one root-to-leaf path ends, and how that episode went."""

    node_id: int
    final_reward: float = 0.0
    success: bool = False
    status: TrajectoryStatus = "ok"
    truncation: TruncationReason | None = None


class RolloutTree(Record):
    """Trajectories that share prefixes (Tree-GRPO): every node is a step, stored once.

    ``nodes`` are in topological order (a parent before its children). A chain is a tree with
    one path: :meth:`from_trajectory` and :meth:`paths` convert both ways.
    """

    kind: Literal["tree"] = "tree"
    id: str = Field(default_factory=new_id)
    env_id: str = ""
    task_id: str
    group_id: str = ""
    seed: int | None = None
    nodes: list[TreeNode] = Field(default_factory=list)
    leaves: list[TreeLeaf] = Field(default_factory=list)
    info: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_structure(self) -> RolloutTree:
        seen: set[int] = set()
        for node in self.nodes:
            if node.node_id in seen:
                raise ValueError(f"duplicate node_id {node.node_id}")
            if node.parent_id is not None and node.parent_id not in seen:
                raise ValueError(f"node {node.node_id} comes before its parent {node.parent_id}")
            seen.add(node.node_id)
        for leaf in self.leaves:
            if leaf.node_id not in seen:
                raise ValueError(f"leaf points at unknown node {leaf.node_id}")
        return self

    @property
    def steps(self) -> list[StepRecord]:
        """The nodes' steps, in node order."""
        return [n.step for n in self.nodes]

    def take_columns(self) -> StepColumns:
        """Take the nodes as :class:`StepColumns` now (each leaf is an episode) and keep them as
        ``columns``."""
        row_of = {n.node_id: i for i, n in enumerate(self.nodes)}
        parent = [-1 if n.parent_id is None else row_of[n.parent_id] for n in self.nodes]
        depth = [0] * len(parent)
        for i, p in enumerate(parent):  # parents come first: their depth is known
            if p >= 0:
                depth[i] = depth[p] + 1
        self.__dict__["columns"] = columns = StepColumns.of(
            self.steps,
            zip(parent, (n.node_id for n in self.nodes), depth),
            self.leaves,
            (row_of[lf.node_id] for lf in self.leaves),
        )
        return columns

    columns = cached_property(take_columns)  # taken on first use when not taken yet

    def path_to(self, node_id: int) -> list[TreeNode]:
        """The nodes from the root down to ``node_id``."""
        by_id = {n.node_id: n for n in self.nodes}
        path = []
        current: int | None = node_id
        while current is not None:
            node = by_id[current]
            path.append(node)
            current = node.parent_id
        return path[::-1]

    def paths(self) -> list[Trajectory]:
        """Every root-to-leaf path as its own trajectory (prefix steps are copied)."""
        return [
            Trajectory(
                id=f"{self.id}:{leaf.node_id}",
                env_id=self.env_id,
                task_id=self.task_id,
                group_id=self.group_id,
                seed=self.seed,
                steps=[n.step for n in self.path_to(leaf.node_id)],
                final_reward=leaf.final_reward,
                success=leaf.success,
                status=leaf.status,
                truncation=leaf.truncation,
                info={"tree_id": self.id, "leaf_node": leaf.node_id},
            )
            for leaf in self.leaves
        ]

    @classmethod
    def from_trajectory(cls, traj: Trajectory) -> RolloutTree:
        """A chain as a one-path tree."""
        nodes = [
            TreeNode(node_id=i, parent_id=i - 1 if i > 0 else None, step=s) for i, s in enumerate(traj.steps)
        ]
        leaves = []
        if nodes:
            leaves.append(
                TreeLeaf(
                    node_id=len(nodes) - 1,
                    final_reward=traj.final_reward,
                    success=traj.success,
                    status=traj.status,
                    truncation=traj.truncation,
                )
            )
        return cls(
            id=traj.id,
            env_id=traj.env_id,
            task_id=traj.task_id,
            group_id=traj.group_id,
            seed=traj.seed,
            nodes=nodes,
            leaves=leaves,
        )


RecordT = TypeVar("RecordT", bound=BaseModel)


def write_jsonl(path: str | Path, records: Iterable[BaseModel], append: bool = False) -> int:
    """Write one JSON object per line; returns how many were written."""
    count = 0
    with open(path, "a" if append else "w", encoding="utf-8") as f:
        for record in records:
            f.write(_dump_line(record))
            f.write("\n")
            count += 1
    return count


def _dump_line(record: BaseModel) -> str:
    """One JSON line. Text that is not valid Unicode (a lone surrogate a chat API sent as
    ``"\\ud800"``) cannot be UTF-8 encoded; it is written as a JSON ``\\uXXXX`` escape instead,
    so the record is kept exactly rather than lost or altered."""
    try:
        return record.model_dump_json()
    except PydanticSerializationError:
        return json.dumps(record.model_dump(mode="json"), ensure_ascii=True)


def _load_line(model: type[RecordT], line: str) -> RecordT:
    try:
        return model.model_validate_json(line)
    except ValueError as exc:
        try:  # the slow path for lines written by _dump_line's fallback (lone surrogate escapes)
            data = json.loads(line)
        except ValueError:
            raise exc from None
        return model.model_validate(data)


def iter_jsonl(path: str | Path, model: type[RecordT]) -> Iterator[RecordT]:
    """Read records back, validating each line; a bad line names its line number."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield _load_line(model, line)
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: not a valid {model.__name__}: {exc}") from exc


def read_jsonl(path: str | Path, model: type[RecordT]) -> list[RecordT]:
    return list(iter_jsonl(path, model))
