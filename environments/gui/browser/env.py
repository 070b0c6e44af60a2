"""``agentrl/MiniWoB-v0``: real MiniWoB++ task pages in headless Chromium.

The env leases a browser from a :class:`BrowserPool` on its first reset and keeps it until
``close()``; every episode loads its task page fresh (so element ids are the same for the same
task every time), seeds it with the task id and starts it. Each step is one browser round trip
on the browser's thread (perform the action, read the tree, the utterance and the episode
status), so the event loop is never blocked.

Infrastructure failures — Chromium crashed, a command hung past ``command_timeout_s``, a page
that would not start — raise :class:`BrowserError` subclasses (never an observation: they are
not the agent's doing). The dead browser goes back to the pool, which replaces it; ``reset``
retries once on a fresh browser before giving up.

``fork()`` is the base class's replay: a twin env (same pool) replays the episode's actions on
its own browser — pages are deterministic given the seed and we lift the wall-clock limit.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from agentrl_envs.gui.base import GuiConfig, GuiEnv
from agentrl_envs.gui.browser import page
from agentrl_envs.gui.browser.chromium import Browser, BrowserConfig, BrowserError
from agentrl_envs.gui.browser.families import PAGES
from agentrl_envs.gui.browser.pool import BrowserPool, default_pool
from agentrl_envs.gui.tree import LAYOUT_FAMILIES
from pydantic import Field

from agentrl.env import ActionError, StepOutcome, Task


class MiniWoBConfig(GuiConfig):
    pool_size: int = Field(default=4, ge=1, description="Browsers of the shared default pool.")
    command_timeout_s: float = Field(default=15.0, gt=0, description="A browser command slower than this is hung.")
    screenshot: bool = Field(default=False, description="Also capture a PNG of the page each step.")
    backend: Literal["local", "docker"] = Field(
        default="local", description="Where browsers run: local processes, or Docker browser sandboxes."
    )


class MiniWoBEnv(GuiEnv):
    """Browser tier (see the module docstring). ``pool`` overrides the shared default pool."""

    Config: ClassVar[type[MiniWoBConfig]] = MiniWoBConfig
    FAMILIES = tuple(PAGES)

    def __init__(self, pool: BrowserPool | None = None, render_mode: str | None = None, **options: Any):
        super().__init__(render_mode=render_mode, **options)
        c = self.config
        self.pool = pool or default_pool(
            c.pool_size, BrowserConfig(command_timeout_s=c.command_timeout_s, backend=c.backend)
        )
        self.browser: Browser | None = None
        self.screenshot: bytes | None = None  # PNG of the latest observation when screenshot=True

    # ----------------------------------------------------------------- episode
    async def _areset(self, task: Task) -> str:
        mode = "test" if task.split == "test" else "train"
        for attempt in (0, 1):
            browser = await self._lease()
            try:
                state, self.screenshot = await browser.arun(
                    self._start, browser.page_root, PAGES[self.family], task.id, mode
                )
                break
            except BrowserError:
                self._release()
                if attempt == 1:
                    raise
        self.show(state.utterance, state.roots, first=True)
        return self.observation()

    async def _astep(self, action_text: str) -> StepOutcome:
        try:
            action, node = self.parse(action_text)
        except ActionError as exc:
            return self.invalid(exc)
        browser = await self._lease()
        try:
            note, state, self.screenshot = await browser.arun(self._act, action, node)
        except BrowserError:
            self._release()
            raise
        self.show(state.utterance, state.roots)
        outcome = self.outcome(state.done, state.raw_reward, note)
        if self.screenshot is not None:
            outcome.info["screenshot"] = self.screenshot
        return outcome

    def _start(self, driver: Any, root: str, page_name: str, seed: str, mode: str):
        state = page.start_episode(driver, page_name, seed, mode, root, self.family in LAYOUT_FAMILIES)
        return state, page.screenshot(driver) if self.config.screenshot else None

    def _act(self, driver: Any, action, node):
        note = page.perform(driver, action, node)
        state = page.read_state(driver, self.family in LAYOUT_FAMILIES)
        return note, state, page.screenshot(driver) if self.config.screenshot else None

    # ----------------------------------------------------------------- browser lease
    async def _lease(self) -> Browser:
        if self.browser is None:
            self.browser = await self.pool.aacquire()
        return self.browser

    def _release(self) -> None:
        if self.browser is not None:
            self.pool.release(self.browser)
            self.browser = None

    async def aclose(self) -> None:
        self._release()

    def close(self) -> None:
        self._release()
        super().close()
