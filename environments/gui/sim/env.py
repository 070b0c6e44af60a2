"""``agentrl/GuiSim-v0``: the pure-Python GUI tier (milliseconds per episode).

Same tasks ids, observation format, action language, reward and oracles as the browser tier
(:mod:`agentrl_envs.gui.base`), over :mod:`agentrl_envs.gui.sim.families`. The instance is
drawn from a numpy generator seeded with the SHA-256 of the task id, so it never depends on
the reset seed. ``fork()`` is a deep copy.
"""

from __future__ import annotations

import copy
import hashlib

import numpy as np
from agentrl_envs.gui.base import GuiEnv
from agentrl_envs.gui.sim.families import FAMILIES
from agentrl_envs.gui.sim.page import SimPage

from agentrl.env import ActionError, StepOutcome, Task


class GuiSimEnv(GuiEnv):
    FAMILIES = tuple(FAMILIES)

    def _reset(self, task: Task) -> str:
        seed = int.from_bytes(hashlib.sha256(task.id.encode()).digest()[:8], "big")
        self.page: SimPage = FAMILIES[self.family](np.random.default_rng(seed))
        self.show(self.page.utterance, self.page.roots, first=True)
        return self.observation()

    def _step(self, action_text: str) -> StepOutcome:
        try:
            action, node = self.parse(action_text)
        except ActionError as exc:
            return self.invalid(exc)
        self.page.apply(action, node)
        self.show(self.page.utterance, self.page.roots)
        return self.outcome(self.page.done, self.page.raw_reward)

    def fork(self) -> GuiSimEnv:
        twin = copy.deepcopy(self)
        twin._loop = None
        return twin

    async def afork(self) -> GuiSimEnv:
        return self.fork()
