"""What runs inside an agentrl sandbox: an aiohttp server that owns an IPython kernel and a work dir.

* :mod:`agentrl_sandboxes.messages` — the pydantic messages of the HTTP API (shared with the client
  in :mod:`agentrl.sandbox`);
* :mod:`agentrl_sandboxes.kernel` — the server's side of the kernel: one persistent shell process
  driven over pipes (start, execute with output budget, interrupt, restart);
* :mod:`agentrl_sandboxes.shell` — the kernel process itself: an IPython ``InteractiveShell``;
* :mod:`agentrl_sandboxes.server` — the server (``python -m agentrl_sandboxes.server``);
* ``Dockerfile`` — the sandbox image (built by ``agentrl sandbox build``).

This package must import with only aiohttp, pydantic and IPython (+ matplotlib-inline for plots): it is
what the sandbox image carries, without agentrl itself.
"""
