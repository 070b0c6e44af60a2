"""What both GUI tiers share: task sets, action checking, observations, oracle, random agent.

Tasks are ``"<family>/<index>"`` (e.g. ``click-button/0007``): the instance is fixed by the
task id alone (the browser tier seeds MiniWoB's ``Math.seedrandom`` with it, the Python tier a
numpy generator with its hash), and the split is a hash of the id, so neither moves with the
reset seed. Both tiers use the same ids and the same family names.

Reward is MiniWoB's *raw* reward, given once when the page ends the episode: 1 for a solved
task, −1 (or a task's partial credit in [−1, 1]) otherwise, 0 on every other step;
``success`` is ``raw reward == 1``. An action that does not parse, names an id that is not on
the page, or does not suit its element (``type`` into a button, ``select`` an option a list
does not have) is invalid: the page is unchanged and the observation says what was wrong.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import numpy as np
from agentrl_envs.gui import tree
from agentrl_envs.gui.actions import (
    COORDINATE_ACTIONS,
    INSTRUCTIONS,
    KEYS,
    TOOLS,
    Action,
    action_from_tool_call,
    click,
    click_at,
    drag,
    parse_action,
    press,
    select,
    type_text,
)
from agentrl_envs.gui.oracles import ORACLES
from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from agentrl.env import ActionError, EnvConfig, EnvOptionError, StepOutcome, Task, TaskSet, TextEnv
from agentrl.env.parsing import has_tool_call, parse_tool_calls
from agentrl.env.taskfile import field_error, read_jsonl
from agentrl.env.tasks import hash_split

SUCCESS_REWARD = 1.0
ACTION_ROLES = {"type": ("textbox",), "select": ("combobox",)}
PAGE_SIZE = (160, 210)  # MiniWoB's task area (#wrap), in CSS pixels from the page's top-left


class GuiConfig(EnvConfig):
    families: list[str] | None = Field(default=None, description="Task families to use (None: all of the tier).")
    instances_per_family: int = Field(default=200, ge=1, description="Task instances (seeds) per family.")
    test_fraction: float = Field(default=0.2, ge=0.0, le=1.0)
    max_turns: int = Field(default=12, ge=1)
    tasks: str | None = Field(
        default=None, description="JSONL file of tasks (see TaskLine); replaces families x instances_per_family."
    )


Seed = Annotated[StrictInt, Field(ge=0)]


class TaskLine(BaseModel):
    """One line of a ``tasks=PATH`` file: a family and the seed(s) of its instances.

    ``{"family": "use-slider", "seed": 7}`` is the task ``use-slider/0007`` (the same instance
    as the built-in id); ``"seeds": [0, 5, 9]`` gives several; ``"split"`` pins the split
    (otherwise the id's hash decides, as for the built-in tasks).
    """

    model_config = ConfigDict(extra="forbid")

    family: str
    seed: Seed | None = None
    seeds: list[Seed] | None = Field(default=None, min_length=1)
    split: Literal["train", "dev", "test"] | None = None

    @model_validator(mode="after")
    def _one_seed_field(self) -> TaskLine:
        if (self.seed is None) == (self.seeds is None):
            raise ValueError('give exactly one of "seed" (a number) or "seeds" (a list of numbers)')
        return self

    def task_ids(self) -> list[str]:
        seeds = [self.seed] if self.seed is not None else self.seeds
        return [f"{self.family}/{seed:04d}" for seed in seeds]

    def seed_field(self) -> str:
        return "seed" if self.seed is not None else "seeds"


def load_task_file(path: str, families: tuple[str, ...], test_fraction: float) -> list[Task]:
    """The tasks of a JSONL task file; a bad line raises :class:`EnvOptionError` naming the line
    and the field."""
    tasks = []
    lines = read_jsonl(path, TaskLine, key=TaskLine.task_ids, field=TaskLine.seed_field)
    for _, where, line, task_ids in lines:
        if line.family not in families:
            raise field_error(where, "family", f"unknown family {line.family!r}; available: {', '.join(families)}")
        for task_id in task_ids:
            split = line.split or hash_split(task_id, test_fraction)
            tasks.append(Task(id=task_id, split=split, data={"family": line.family}))
    return tasks


class GuiEnv(TextEnv):
    """Base of both tiers; subclasses set ``FAMILIES`` and run the page."""

    __abstract_env__ = True
    Config: ClassVar[type[GuiConfig]] = GuiConfig
    FAMILIES: ClassVar[tuple[str, ...]] = ()
    instructions = INSTRUCTIONS
    tools = TOOLS

    def __init__(self, render_mode: str | None = None, **options):
        super().__init__(render_mode=render_mode, **options)
        unknown = sorted(set(self.config.families or ()) - set(self.FAMILIES))
        if unknown:
            raise EnvOptionError(
                f"{type(self).__name__}: unknown families {unknown}; available: {', '.join(self.FAMILIES)}"
            )
        families = tuple(self.config.families or self.FAMILIES)
        self._file_tasks = (
            None if self.config.tasks is None else load_task_file(self.config.tasks, families, self.config.test_fraction)
        )
        self.utterance = ""
        self.roots: list[tree.Node] = []
        self._seen: list[str] = []  # the rendered page after the reset and after each action

    def build_tasks(self) -> TaskSet:
        if self._file_tasks is not None:
            return TaskSet(self._file_tasks)
        c = self.config
        families = c.families or self.FAMILIES
        items = (
            (f"{family}/{i:04d}", {"family": family})
            for family in families
            for i in range(c.instances_per_family)
        )
        return TaskSet.from_items(items, test_fraction=c.test_fraction)

    @property
    def family(self) -> str:
        return self._require_task().data["family"]

    # ----------------------------------------------------------------- actions
    def parse(self, text: str) -> tuple[Action, tree.Node | None]:
        """The action in ``text`` and the node it names, or :class:`ActionError`."""
        if has_tool_call(text):
            calls = parse_tool_calls(text, self.tools)
            if len(calls) != 1:
                raise ActionError(f"Take exactly one action per turn; got {len(calls)} tool calls.")
            action = action_from_tool_call(calls[0].name, calls[0].arguments)
        else:
            action = parse_action(text)
        if action.name in COORDINATE_ACTIONS:
            self._check_points(action)
            return action, None
        if action.target is None:
            return action, None
        node = next((n for root in self.roots for n in root.walk() if n.id == action.target), None)
        if node is None:
            raise ActionError(f"There is no element [{action.target}] on the page; use an id from the listing.")
        roles = ACTION_ROLES.get(action.name)
        if roles and node.role not in roles:
            raise ActionError(f"{action.name}() needs a {' or '.join(roles)}; [{node.id}] is a {node.role}.")
        if action.name == "select" and action.text not in (node.options or []):
            raise ActionError(f"[{node.id}] has no option {action.text!r}; options: {node.options}.")
        return action, node

    def _check_points(self, action: Action) -> None:
        if self.family not in tree.LAYOUT_FAMILIES:
            raise ActionError(f"{action.name}() needs a page that shows element boxes; this one does not, "
                              "so use click(id) and the other id actions.")
        width, height = PAGE_SIZE
        points = action.coords or ()
        for x, y in zip(points[::2], points[1::2], strict=True):
            if x >= width or y >= height:
                raise ActionError(f"{action.name}: ({x}, {y}) is outside the page, which spans x 0-{width - 1} "
                                  f"and y 0-{height - 1}.")

    def invalid(self, exc: ActionError) -> StepOutcome:
        self.show(self.utterance, self.roots)
        return StepOutcome(self.observation(f"Invalid action: {exc}"), valid_action=False, error=str(exc))

    def outcome(self, done: bool, raw_reward: float, note: str = "") -> StepOutcome:
        """The step result after a valid action (one UI action = one tool call)."""
        if done:
            success = raw_reward >= SUCCESS_REWARD
            message = f"The episode is over: reward {raw_reward:g} ({'solved' if success else 'not solved'})."
            return StepOutcome(self.observation(message), reward=raw_reward, terminated=True,
                               tool_calls=1, success=success)
        return StepOutcome(self.observation(note), tool_calls=1)

    # ----------------------------------------------------------------- what the agent sees
    def show(self, utterance: str, roots: list[tree.Node], first: bool = False) -> None:
        """Set the page the agent sees now (``first``: the start of an episode)."""
        self.utterance, self.roots = utterance, roots
        self._seen = [*([] if first else self._seen), tree.render_tree(roots)]

    def observation(self, message: str = "") -> str:
        return tree.render_observation(self.utterance, self.roots, message)

    def state_key(self) -> str | None:
        return tree.state_key(self.utterance, self.roots) if self.task is not None else None

    def oracle_action(self) -> str:
        if self.family not in ORACLES:
            raise NotImplementedError(f"no oracle for family {self.family!r}")
        return ORACLES[self.family](self.utterance, self.roots, self._actions, self._seen)

    def random_action(self, rng: np.random.Generator) -> str:
        """A uniformly random element with an action that suits it (10% malformed or key presses);
        on pages with layout, half the time a click or drag at uniformly random points instead."""
        u = rng.random()
        if self.family in tree.LAYOUT_FAMILIES and rng.random() < 0.5:
            x1, x2 = (int(v) for v in rng.integers(PAGE_SIZE[0], size=2))
            y1, y2 = (int(v) for v in rng.integers(PAGE_SIZE[1], size=2))
            return click_at(x1, y1) if rng.random() < 0.5 else drag(x1, y1, x2, y2)
        if u < 0.05:
            return str(rng.choice(["click()", "tap(3)", "click(9999)", "Submit!"]))
        if u < 0.1:
            return press(str(rng.choice(KEYS)))
        flat = [n for root in self.roots for n in root.walk()]
        if not flat:
            return 'scroll("down")'
        node = flat[int(rng.integers(len(flat)))]
        if node.role == "textbox":
            return type_text(node.id, str(rng.choice(["a", "submit", "hello", "1"])))
        if node.role == "combobox" and node.options:
            return select(node.id, node.options[int(rng.integers(len(node.options)))])
        return click(node.id)
