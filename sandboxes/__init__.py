"""What runs inside an agentrl sandbox: an aiohttp server that owns a jupyter kernel and a work dir.

* :mod:`agentrl_sandboxes.messages` — the pydantic messages of the HTTP API (shared with the client
  in :mod:`agentrl.sandbox`);
* :mod:`agentrl_sandboxes.kernel` — one persistent ipykernel over Unix sockets;
* :mod:`agentrl_sandboxes.server` — the server (``python -m agentrl_sandboxes.server``);
* ``Dockerfile`` — the sandbox image (built by ``agentrl sandbox build``).

This package must import with only aiohttp, pydantic, jupyter_client and ipykernel installed: it is
what the sandbox image carries, without agentrl itself.
"""
