"""Task sets with fixed, seed-independent splits.

A task's split is a pure function of its id (a SHA-256 hash), so the train/test boundary never
moves when the seed, the number of tasks or their order changes. Splits named explicitly by a
task (``Task.split``) win over the hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SPLITS = ("train", "dev", "test")


def hash_split(task_id: str, test_fraction: float = 0.2, dev_fraction: float = 0.0) -> str:
    """Assign ``task_id`` to train / dev / test from its hash alone."""
    digest = hashlib.sha256(task_id.encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + dev_fraction:
        return "dev"
    return "train"


class Task(BaseModel):
    """One task: a stable id, its split, and whatever data the env needs to run it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    split: str = "train"
    data: dict[str, Any] = Field(default_factory=dict)


class TaskSet(Sequence[Task]):
    """An ordered, indexable, immutable collection of tasks with id lookup and (cached) split views."""

    def __init__(self, tasks: Iterable[Task]):
        self._tasks = list(tasks)
        self._by_id = {t.id: t for t in self._tasks}
        if len(self._by_id) != len(self._tasks):
            raise ValueError("task ids must be unique")
        self._split_views: dict[str, TaskSet] = {}  # reset() asks for a split every episode

    @classmethod
    def from_items(
        cls,
        items: Iterable[tuple[str, dict[str, Any]]],
        test_fraction: float = 0.2,
        dev_fraction: float = 0.0,
    ) -> TaskSet:
        """Build from ``(task_id, data)`` pairs, splitting by hash."""
        return cls(
            Task(id=task_id, split=hash_split(task_id, test_fraction, dev_fraction), data=data)
            for task_id, data in items
        )

    def __len__(self) -> int:
        return len(self._tasks)

    def __getitem__(self, index):  # type: ignore[override]
        return self._tasks[index]

    def __iter__(self) -> Iterator[Task]:
        return iter(self._tasks)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._by_id

    def get(self, task_id: str) -> Task:
        try:
            return self._by_id[task_id]
        except KeyError:
            examples = ", ".join(list(self._by_id)[:5])
            raise KeyError(f"unknown task_id {task_id!r}; {len(self)} tasks, e.g. {examples}") from None

    def split(self, name: str) -> TaskSet:
        """The tasks of one split (``train``, ``dev`` or ``test``)."""
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")
        if name not in self._split_views:
            self._split_views[name] = TaskSet(t for t in self._tasks if t.split == name)
        return self._split_views[name]

    def split_sizes(self) -> dict[str, int]:
        return {name: sum(t.split == name for t in self._tasks) for name in SPLITS}

    def ids(self) -> list[str]:
        return [t.id for t in self._tasks]
