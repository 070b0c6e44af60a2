"""One-turn door bandits with a known optimum, for checking that training learns at all.

* ``agentrl/Bandit-v0`` — one room, two doors; door 2 pays. A policy that ignores its input can
  learn it: success 1/doors at random, 1.0 at the optimum.
* ``agentrl/ContextualBandit-v0`` — two rooms; the paying door depends on the room, whose id is
  the only part of the prompt that differs (one token: ``room 1`` vs ``room 2``). Ignoring the
  input caps success at 0.5; the optimum is 1.0.

The paying door of room ``r`` (1-based) is ``doors - (r - 1) % doors``: room 1 → the last door,
room 2 → the one before, … (never the identity, so copying the room number does not pay).
Reward 1 and success for the paying door, 0 for another door; anything that is not ``door[N]``
with ``1 ≤ N ≤ doors`` is an invalid action (reward 0, episode over). Every episode is one turn.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

from agentrl.env import ActionError, EnvConfig, StepOutcome, Task, TaskSet, TextEnv
from agentrl.env.parsing import parse_command


class BanditConfig(EnvConfig):
    rooms: int = Field(default=1, ge=1, le=9, description="Rooms (tasks); >1 makes the bandit contextual.")
    doors: int = Field(default=2, ge=2, le=9)
    max_turns: int = Field(default=1, ge=1, le=1, description="One choice per episode.")


def paying_door(room: int, doors: int) -> int:
    return doors - (room - 1) % doors


class BanditEnv(TextEnv):
    Config = BanditConfig
    instructions = "One door pays. Reply with exactly one door, e.g. door[1]."

    def build_tasks(self) -> TaskSet:
        # Every room in every split: the task is to learn them all (no held-out rooms).
        return TaskSet(
            Task(id=f"{split}-room{r}", split=split, data={"room": r})
            for split in ("train", "dev", "test") for r in range(1, self.config.rooms + 1)
        )

    def _reset(self, task: Task) -> str:
        self.room = int(task.data["room"])
        doors = " or ".join(f"door[{d}]" for d in range(1, self.config.doors + 1))
        return f"You are in room {self.room}. Open {doors}."

    def _step(self, action: str) -> StepOutcome:
        try:
            _, arg = parse_command(action, ["door"])
            if not arg.strip().isdigit() or not 1 <= int(arg) <= self.config.doors:
                raise ActionError(f"No door {arg!r}: choose 1 to {self.config.doors}.")
        except ActionError as exc:
            # The one turn is spent: the episode ends as a scored failure (terminated, not
            # truncated — nothing was cut short, and Gymnasium's check_env rejects a 1-step truncation).
            return StepOutcome(str(exc), valid_action=False, error=str(exc), terminated=True)
        if int(arg) == paying_door(self.room, self.config.doors):
            return StepOutcome("The door pays.", reward=1.0, terminated=True, success=True)
        return StepOutcome("Nothing behind this door.", terminated=True)

    def state_key(self) -> str | None:
        return f"room{self.room}" if self.task is not None else None

    def oracle_action(self) -> str:
        return f"door[{paying_door(self.room, self.config.doors)}]"

    def random_action(self, rng: np.random.Generator) -> str:
        return f"door[{rng.integers(1, self.config.doors + 1)}]"
