"""GUI environments: MiniWoB++ in a real Chromium, and a fast pure-Python widget tier.

* ``agentrl/MiniWoB-v0`` — real MiniWoB++ task pages (from the ``miniwob`` wheel) in headless
  Chromium through selenium; ``agentrl/MiniWoB-<family>-v0`` for one family.
* ``agentrl/GuiSim-v0`` — MiniWoB-style families re-implemented over a simulated widget tree,
  deterministic from the task id, milliseconds per episode; ``agentrl/GuiSim-<family>-v0``.

Both tiers share task ids, the observation format, the action language and the oracles.
"""

from agentrl_envs.gui.actions import Action, parse_action
from agentrl_envs.gui.tree import Node, render_tree, state_key


def register() -> None:
    """Entry point of the ``agentrl.envs`` group."""
    from agentrl_envs.gui.browser.families import PAGES
    from agentrl_envs.gui.sim.families import FAMILIES

    import agentrl

    # Entry points as strings: the browser tier's selenium is imported only when it is made.
    agentrl.register("agentrl/MiniWoB-v0", "agentrl_envs.gui.browser.env:MiniWoBEnv")
    for family in PAGES:
        agentrl.register(f"agentrl/MiniWoB-{family}-v0", "agentrl_envs.gui.browser.env:MiniWoBEnv", families=[family])
    agentrl.register("agentrl/GuiSim-v0", "agentrl_envs.gui.sim.env:GuiSimEnv")
    for family in FAMILIES:
        agentrl.register(f"agentrl/GuiSim-{family}-v0", "agentrl_envs.gui.sim.env:GuiSimEnv", families=[family])


__all__ = ["Action", "Node", "parse_action", "register", "render_tree", "state_key"]
