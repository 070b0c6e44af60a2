"""A text grid maze: walk from ``@`` to ``G`` with ``move[up|down|left|right]``.

Each task is one maze, generated from its task id alone (so splits and layouts never depend on
a seed) and always solvable. Positions recur across the trajectories of a task — the anchor
states GiGPO groups steps by: ``state_key`` is the agent's cell.

Reward: 1 when the agent reaches the goal (the episode terminates with ``success``), else 0.
Hitting a wall is a valid move that wastes a turn; anything that is not a move command is an
invalid action.
"""

from __future__ import annotations

import hashlib
from collections import deque

import numpy as np
from pydantic import Field

from agentrl.env import ActionError, EnvConfig, StepOutcome, Task, TaskSet, TextEnv
from agentrl.env.parsing import parse_command

MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


class MazeConfig(EnvConfig):
    size: int = Field(default=5, ge=3, le=15, description="Side of the square maze, walls excluded.")
    wall_density: float = Field(default=0.25, ge=0.0, le=0.6, description="Fraction of inner cells that are walls.")
    num_tasks: int = Field(default=400, ge=1, description="Number of distinct mazes.")
    test_fraction: float = Field(default=0.2, ge=0.0, le=1.0)
    max_turns: int = Field(default=20, ge=1)


def generate_maze(task_id: str, size: int, wall_density: float) -> tuple[list[str], tuple[int, int], tuple[int, int]]:
    """A solvable maze as rows of ``#``/``.``, plus start and goal cells; fixed by ``task_id``."""
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(task_id.encode()).digest()[:8], "big"))
    while True:
        walls = rng.random((size, size)) < wall_density
        free = np.argwhere(~walls)
        if len(free) < 2:
            continue
        start_i, goal_i = rng.choice(len(free), size=2, replace=False)
        start, goal = tuple(int(v) for v in free[start_i]), tuple(int(v) for v in free[goal_i])
        rows = ["".join("#" if w else "." for w in row) for row in walls]
        if shortest_path(rows, start, goal) is not None and _distance(start, goal) >= 2:
            return rows, start, goal


def _distance(a: tuple[int, int], b: tuple[int, int]) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def shortest_path(rows: list[str], start: tuple[int, int], goal: tuple[int, int]) -> list[str] | None:
    """Moves of a shortest path (breadth-first search), or None if the goal is unreachable."""
    size = len(rows)
    previous: dict[tuple[int, int], tuple[tuple[int, int], str] | None] = {start: None}
    queue = deque([start])
    while queue:
        cell = queue.popleft()
        if cell == goal:
            moves = []
            while previous[cell] is not None:
                cell, move = previous[cell]
                moves.append(move)
            return moves[::-1]
        for move, (dr, dc) in MOVES.items():
            nxt = (cell[0] + dr, cell[1] + dc)
            if 0 <= nxt[0] < size and 0 <= nxt[1] < size and rows[nxt[0]][nxt[1]] == "." and nxt not in previous:
                previous[nxt] = (cell, move)
                queue.append(nxt)
    return None


class MazeEnv(TextEnv):
    Config = MazeConfig
    instructions = (
        "You are in a grid maze. '@' is you, 'G' is the goal, '#' is a wall, '.' is open floor. "
        "Each turn reply with exactly one move: move[up], move[down], move[left] or move[right]."
    )

    def build_tasks(self) -> TaskSet:
        c = self.config
        ids = (f"maze{c.size}-{i:04d}" for i in range(c.num_tasks))
        return TaskSet.from_items(((task_id, {}) for task_id in ids), test_fraction=c.test_fraction)

    def _reset(self, task: Task) -> str:
        self.rows, self.position, self.goal = generate_maze(task.id, self.config.size, self.config.wall_density)
        return self._render("Find the goal.")

    def _step(self, action: str) -> StepOutcome:
        try:
            _, direction = parse_command(action, ["move"])
            direction = direction.lower()
            if direction not in MOVES:
                raise ActionError(f"Unknown direction {direction!r}: use up, down, left or right.")
        except ActionError as exc:
            return StepOutcome(self._render(str(exc)), valid_action=False, error=str(exc))
        dr, dc = MOVES[direction]
        r, c = self.position[0] + dr, self.position[1] + dc
        size = self.config.size
        if not (0 <= r < size and 0 <= c < size) or self.rows[r][c] == "#":
            return StepOutcome(self._render(f"You bumped into a wall moving {direction}."))
        self.position = (r, c)
        if self.position == self.goal:
            return StepOutcome("You reached the goal!", reward=1.0, terminated=True, success=True)
        return StepOutcome(self._render(f"You moved {direction}."))

    def state_key(self) -> str | None:
        return f"{self.position[0]},{self.position[1]}" if self.task is not None else None

    def oracle_action(self) -> str:
        return f"move[{shortest_path(self.rows, self.position, self.goal)[0]}]"

    def random_action(self, rng: np.random.Generator) -> str:
        if rng.random() < 0.1:
            return str(rng.choice(["go north", "move[jump]", "", "move up"]))
        return f"move[{rng.choice(list(MOVES))}]"

    def _render(self, message: str) -> str:
        grid = [list(row) for row in self.rows]
        grid[self.goal[0]][self.goal[1]] = "G"
        grid[self.position[0]][self.position[1]] = "@"
        return message + "\n" + "\n".join("".join(row) for row in grid)
