"""agentrl's bundled environments (import name ``agentrl_envs``).

Each subpackage registers itself through the ``agentrl.envs`` entry-point group declared in
agentrl's pyproject.toml — the same mechanism a third-party package uses.
"""
