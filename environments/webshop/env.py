"""``agentrl/WebShop-v0``: WebShop's shopping task over a synthetic catalog.

An episode is one goal (instruction). The agent searches, browses results, opens products, picks
options and buys; buying ends the episode with WebShop's reward R in [0, 1] (see
:mod:`agentrl_envs.webshop.reward`) — the only non-zero reward. ``success`` is R == 1.

Actions: ``search[keywords]`` and ``click[label]`` (see :mod:`agentrl_envs.webshop.pages` for
where each is legal). A malformed or illegal action changes nothing: the observation repeats
the page after the reason, and ``valid_action`` is False (WebShop itself silently ignores it).

``info`` adds to the base contract:

* ``tool_calls`` — 1 for a valid ``search`` (it queries the search engine), 0 for clicks, which
  only navigate pages already fetched; tool-cost shapers therefore count searches.
* ``state_key`` — :meth:`PageState.key`: page, query, page number, asin, chosen options, sub-page.
* ``available_actions`` — the legal actions on the new page (verl-agent's "admissible actions").
* on the final step: ``score`` (raw R), ``reward_breakdown`` (every term), ``purchased`` (asin).

The catalog, goals and search index are shared by every instance in the process
(:func:`~agentrl_envs.webshop.shop.shared_shop`); ``fork()`` copies only the small page state.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
from agentrl_envs.webshop.goals import load_goal_file
from agentrl_envs.webshop.pages import BUY, NEXT, Page, PageState, apply_action, build_page
from agentrl_envs.webshop.reward import RewardBreakdown, compute_reward
from agentrl_envs.webshop.shop import Shop, shared_shop
from pydantic import Field

from agentrl.env import ActionError, EnvConfig, StepOutcome, Task, TaskSet, TextEnv
from agentrl.env.parsing import parse_command

INSTRUCTIONS = (
    "You are shopping on WebShop for the item the instruction describes. Each turn, reply with "
    "exactly one action: search[keywords] on the search page, or click[label] where label is one of "
    "the page's buttons, product ids or option values. Choose the options the instruction asks for, "
    "then click[buy now]. The observation lists the page's text separated by [SEP] and the "
    "available actions."
)
RANDOM_WORDS = (
    "organic",
    "black",
    "wireless",
    "gluten free",
    "chair",
    "shoes",
    "coffee",
    "large",
    "pack",
    "waterproof",
    "table",
    "cookies",
    "shampoo",
    "speaker",
    "dress",
    "tea",
)


def _copy_generator(rng: np.random.Generator | None) -> np.random.Generator | None:
    """An independent generator in the same state (4x cheaper than ``copy.deepcopy``)."""
    if rng is None:
        return None
    bit_generator = type(rng.bit_generator)(0)
    bit_generator.state = rng.bit_generator.state
    return np.random.Generator(bit_generator)


class WebShopConfig(EnvConfig):
    max_turns: int = Field(default=15, ge=1, description="verl-agent's WebShop step limit.")
    num_products: int = Field(
        default=1000, ge=40, description="Catalog size (5 categories x 8 product types)."
    )
    catalog_seed: int = Field(default=0, description="Seed of the synthetic catalog and its goals.")
    tasks: str | None = Field(
        default=None, description="JSONL file of your own goals over the catalog (see goals.GoalLine)."
    )
    shared_index: bool = Field(
        default=True,
        description="Share one catalog and index per process (False: build a private copy per instance, "
        "the way WebShop's wrappers do; only useful as a benchmark baseline).",
    )


class WebShopEnv(TextEnv):
    Config = WebShopConfig
    instructions = INSTRUCTIONS

    def __init__(self, render_mode: str | None = None, **options):
        super().__init__(render_mode=render_mode, **options)
        self._shop: Shop | None = None
        self._file_goals = load_goal_file(self.config.tasks, self.shop.by_asin) if self.config.tasks else None
        self.state = PageState()
        self.page: Page | None = None
        self.result: RewardBreakdown | None = None

    # ----------------------------------------------------------------- shared resources
    @property
    def shop(self) -> Shop:
        if self._shop is None:
            c = self.config
            self._shop = (
                shared_shop(c.num_products, c.catalog_seed)
                if c.shared_index
                else Shop(c.num_products, c.catalog_seed)
            )
        return self._shop

    def close(self) -> None:
        """Drop this instance's hold on the catalog and index (freed when no instance holds them)."""
        self._shop = None
        self._tasks = None
        self.page = None
        super().close()

    def build_tasks(self) -> TaskSet:
        return self._file_goals[1] if self._file_goals else self.shop.tasks

    @property
    def goal(self):
        goals = self._file_goals[0] if self._file_goals else self.shop.goals
        return goals[self._require_task().id]

    # ----------------------------------------------------------------- episode
    def _reset(self, task: Task) -> str:
        self.state = PageState()
        self.result = None
        return self._show(self.state)

    def _step(self, action: str) -> StepOutcome:
        try:
            command, argument = parse_command(action, ["search", "click"])
            draw = int(self.np_random.integers(1, 2**31)) if command == "search" else 0
            state = apply_action(self.shop, self.state, self.page, command, argument, draw)
        except ActionError as exc:
            message = f"Invalid action: {exc}"
            return StepOutcome(
                f"{message}\n{self.page.to_text()}",
                valid_action=False,
                error=str(exc),
                info={"available_actions": self.page.available_actions()},
            )
        info = {}
        if state.page == "done":
            self.result = compute_reward(self.goal, self.shop.by_asin[state.asin], state.chosen)
            info = {
                "score": self.result.reward,
                "reward_breakdown": dataclasses.asdict(self.result),
                "purchased": state.asin,
            }
        observation = self._show(state)
        info["available_actions"] = self.page.available_actions() if state.page != "done" else []
        return StepOutcome(
            observation,
            reward=self.result.reward if self.result else 0.0,
            terminated=state.page == "done",
            tool_calls=int(command == "search"),
            success=bool(self.result and self.result.success),
            info=info,
        )

    def _show(self, state: PageState) -> str:
        self.state = state
        self.page = build_page(
            self.shop, self.goal.instruction_text, state, self.result.reward if self.result else None
        )
        return self.page.to_text()

    def state_key(self) -> str | None:
        return self.state.key() if self.task is not None else None

    def render_html(self, base: str = "") -> str:
        """The current page as HTML (what the web server serves)."""
        return self.page.to_html(base)

    # ----------------------------------------------------------------- tree rollouts
    def fork(self) -> WebShopEnv:
        """A twin at the same state: the page state is immutable, so only small lists are copied."""
        twin = copy.copy(self)
        twin._actions = list(self._actions)
        twin._np_random = _copy_generator(self._np_random)
        twin._loop = None
        return twin

    async def afork(self) -> WebShopEnv:
        return self.fork()

    # ----------------------------------------------------------------- scripted agents
    def oracle_action(self) -> str:
        """Search the goal's query, page to the goal product, open it, pick each goal option, buy.

        Every product is in the top 50 for its own query (a catalog test checks it), on pages 1-5.
        """
        goal, state = self.goal, self.state
        if state.page == "index":
            return f"search[{goal.query}]"
        if state.page == "results":
            clickables = self.page.clickables
            if goal.asin.lower() in clickables:
                return f"click[{goal.asin.lower()}]"
            return f"click[{NEXT}]" if NEXT in clickables else "click[back to search]"
        if state.page == "sub" or state.asin != goal.asin:
            return "click[< prev]"
        chosen = state.chosen
        for name, value in goal.goal_options.items():
            if chosen.get(name) != value:
                return f"click[{value}]"
        return f"click[{BUY}]"

    def random_action(self, rng: np.random.Generator) -> str:
        """A uniformly random legal action (searches use 1-3 random shopping words)."""
        actions = self.page.available_actions()
        action = actions[int(rng.integers(len(actions)))]
        if action.startswith("search["):
            words = rng.choice(RANDOM_WORDS, size=int(rng.integers(1, 4)), replace=False)
            action = f"search[{' '.join(words)}]"
        return action
