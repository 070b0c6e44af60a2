"""An example agentrl plug-in: reach a target number from 1 with ``add[n]`` (n in 1..3) and ``double[]``.

Everything a plug-in needs is here: a ``TextEnv`` subclass with its options, tasks with fixed
splits, the step logic, a state key for GiGPO, an oracle, and ``register()`` — declared under
``[project.entry-points."agentrl.envs"]`` in this folder's pyproject.toml.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field

import agentrl
from agentrl.env import ActionError, EnvConfig, StepOutcome, Task, TaskSet, TextEnv
from agentrl.env.parsing import parse_command


class CountdownConfig(EnvConfig):
    max_target: int = Field(default=60, ge=2, description="Targets run from 2 to this number.")
    max_turns: int = 12


class CountdownEnv(TextEnv):
    Config = CountdownConfig
    instructions = "Start at 1 and reach the target exactly. Commands: add[1], add[2], add[3], double[]."

    def build_tasks(self) -> TaskSet:
        return TaskSet.from_items((f"target-{t}", {"target": t}) for t in range(2, self.config.max_target + 1))

    def _reset(self, task: Task) -> str:
        self.value, self.target = 1, task.data["target"]
        return f"Value: {self.value}. Target: {self.target}."

    def _step(self, action: str) -> StepOutcome:
        try:
            name, argument = parse_command(action, ["add", "double"])
            if name == "add" and argument not in ("1", "2", "3"):
                raise ActionError("add takes 1, 2 or 3.")
        except ActionError as exc:
            return StepOutcome(f"Error: {exc} Value: {self.value}.", valid_action=False, error=str(exc))
        self.value = self.value * 2 if name == "double" else self.value + int(argument)
        if self.value == self.target:
            return StepOutcome("Target reached!", reward=1.0, terminated=True, success=True)
        if self.value > self.target:
            return StepOutcome(f"Overshot: {self.value} > {self.target}.", terminated=True)
        return StepOutcome(f"Value: {self.value}. Target: {self.target}.")

    def state_key(self) -> str:
        return str(self.value)

    def oracle_action(self) -> str:
        # Breadth-first search over values: the first move of a shortest path to the target.
        first_move = {self.value: None}
        frontier = [self.value]
        while self.target not in first_move:
            nxt = []
            for value in frontier:
                for move, result in (("double[]", value * 2), ("add[1]", value + 1), ("add[2]", value + 2), ("add[3]", value + 3)):
                    if result <= self.target and result not in first_move:
                        first_move[result] = first_move[value] or move
                        nxt.append(result)
            frontier = nxt
        return first_move[self.target]

    def random_action(self, rng: np.random.Generator) -> str:
        return str(rng.choice(["add[1]", "add[2]", "add[3]", "double[]"]))


def register() -> None:
    agentrl.register("countdown/Countdown-v0", CountdownEnv)
