"""The web shop as a web page a person can open and shop in (aiohttp).

Each browser session is one :class:`WebShopEnv` episode: links and the search form turn into the
env's own actions (``click[...]``, ``search[...]``), so the HTML and the agent's text observation
come from the same page model and the same state machine. Routes::

    GET /                      new session (optional ?goal=<task id>, else a random test goal)
    GET /s/{sid}               the current page
    GET /s/{sid}/search?q=...  search[q], then redirect to the page
    GET /s/{sid}/click?v=...   click[v], then redirect to the page
    GET /s/{sid}/text          the text observation of the current page (what an agent sees)

Run: ``python -m agentrl_envs.webshop.server --port 3000`` and open http://127.0.0.1:3000/.
"""

from __future__ import annotations

import argparse
import html
import secrets
from collections import OrderedDict
from typing import Any

from agentrl_envs.webshop.env import WebShopEnv
from aiohttp import web

from agentrl.env import EnvOptionError

MAX_SESSIONS = 1000


class WebShopSite:
    """Sessions (at most ``max_sessions``, least recently used closed first) and the aiohttp app."""

    def __init__(self, split: str = "test", max_sessions: int = MAX_SESSIONS, **env_options: Any):
        self.split = split
        self.max_sessions = max_sessions
        self.env_options = {"max_turns": 10_000, "max_invalid_actions": None, **env_options}
        self.sessions: OrderedDict[str, WebShopEnv] = OrderedDict()
        self.errors: dict[str, str] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes(
            [
                web.get("/", self.new_session),
                web.get("/s/{sid}", self.show),
                web.get("/s/{sid}/search", self.search),
                web.get("/s/{sid}/click", self.click),
                web.get("/s/{sid}/text", self.text),
            ]
        )
        app.on_cleanup.append(self._close_all)
        return app

    async def new_session(self, request: web.Request) -> web.Response:
        env = WebShopEnv(**self.env_options)
        goal = request.query.get("goal")
        try:
            await env.areset(options={"task_id": goal} if goal else {"split": self.split})
        except EnvOptionError as exc:
            env.close()
            raise web.HTTPNotFound(text=str(exc)) from None
        sid = secrets.token_urlsafe(8)
        self.sessions[sid] = env
        while len(self.sessions) > self.max_sessions:
            old_sid, old_env = self.sessions.popitem(last=False)
            self.errors.pop(old_sid, None)
            old_env.close()
        raise web.HTTPFound(f"/s/{sid}")

    def _env(self, request: web.Request) -> tuple[str, WebShopEnv]:
        sid = request.match_info["sid"]
        env = self.sessions.get(sid)
        if env is None:
            raise web.HTTPNotFound(text="Unknown or expired session; open / to start a new one.")
        self.sessions.move_to_end(sid)
        return sid, env

    async def _act(self, request: web.Request, action: str) -> web.Response:
        sid, env = self._env(request)
        if env.done:
            self.errors[sid] = "This episode is over: start a new session."
        else:
            _, _, _, _, info = await env.astep(action)
            if info["error"]:
                self.errors[sid] = info["error"]
        raise web.HTTPFound(f"/s/{sid}")

    async def search(self, request: web.Request) -> web.Response:
        return await self._act(request, f"search[{request.query.get('q', '')}]")

    async def click(self, request: web.Request) -> web.Response:
        return await self._act(request, f"click[{request.query.get('v', '')}]")

    async def show(self, request: web.Request) -> web.Response:
        sid, env = self._env(request)
        page = env.render_html(base=f"/s/{sid}")
        banner = ""
        if error := self.errors.pop(sid, None):
            banner = f'<div id="error" style="color:#b00020">{html.escape(error)}</div>'
        footer = '<p style="margin-top:2rem"><a id="new-session" href="/">New session</a></p>'
        page = page.replace("<body>", f"<body>{banner}", 1).replace("</body>", f"{footer}</body>", 1)
        return web.Response(text=page, content_type="text/html")

    async def text(self, request: web.Request) -> web.Response:
        _, env = self._env(request)
        return web.Response(text=env.render())

    async def _close_all(self, app: web.Application) -> None:
        while self.sessions:
            self.sessions.popitem()[1].close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the agentrl web shop.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--split", default="test", choices=["train", "dev", "test"])
    args = parser.parse_args(argv)
    web.run_app(WebShopSite(split=args.split).app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
