"""The in-sandbox server: an aiohttp app that owns one jupyter kernel and one working directory.

Run it as ``python -m agentrl_sandboxes.server --unix /run/agentrl/sandbox.sock --workdir /work``
(or ``--port 8000``). The routes and their messages are listed in
:mod:`agentrl_sandboxes.messages`. The server is the same inside a Docker container and as a
child process of the local backend; the isolation around it is the backend's business.

House rules:

* every request body is parsed into its pydantic model; a bad one gets HTTP 400 with the
  validation message, never a stack trace;
* file paths are relative to the work dir and may not leave it (``..``, absolute paths and
  symlinks that point outside are refused);
* the server is a child subreaper (:mod:`agentrl_sandboxes.procs`), so ``/reset`` kills every
  process user code left behind, however it detached itself, and forks a fresh kernel from the
  zygote (:mod:`agentrl_sandboxes.zygote`); it also empties the work dir, the ``--scratch``
  folders (``/tmp``) and the kernel's home;
* it stops when stdin reaches EOF if started with ``--exit-with-stdin`` (the local backend
  holds the other end of that pipe: if the host process dies, the sandbox goes with it);
* every request must carry ``Authorization: Bearer <token>``, the per-sandbox secret the host
  wrote to ``--token-file`` (read and deleted at start-up); any other request gets HTTP 401. The
  socket is mode 0600 and the server not dumpable (``PR_SET_DUMPABLE`` 0: code in the sandbox
  cannot read the token from the server's memory through ``/proc``), so neither another sandbox
  nor another host user can drive it.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import hmac
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from agentrl_sandboxes import procs
from agentrl_sandboxes.kernel import KernelSession
from agentrl_sandboxes.messages import (
    CHANNEL,
    ERROR,
    RESULT,
    ErrorBody,
    ExecuteRequest,
    FileInfo,
    FrameError,
    Health,
    ProcRequest,
    ProcResult,
    ResetRequest,
    frame,
    read_frame,
)
from aiohttp import web
from pydantic import BaseModel, ValidationError

MAX_UPLOAD = 512 * 1024 * 1024
PR_SET_DUMPABLE = 4


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(body=model.model_dump_json(), status=status, content_type="application/json")


def _error(status: int, error: str, detail: str = "") -> web.Response:
    return _json(ErrorBody(error=error, detail=detail), status)


class SandboxServer:
    def __init__(self, workdir: Path, statedir: Path, token: str, scratch: list[Path] = ()):
        self.token = token.encode()
        self.authorization = f"Bearer {token}"
        self.workdir = workdir.resolve()
        self.statedir = statedir
        self.scratch = [Path(p) for p in scratch]
        self.home = home = statedir / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {
            "HOME": str(home),
            "MPLCONFIGDIR": str(home / ".mpl"),
            "IPYTHONDIR": str(home / ".ipython"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "PYTHONDONTWRITEBYTECODE": "1",
            # one BLAS thread: a sandbox is one CPU's worth of work, and each BLAS thread
            # reserves address space that counts against RLIMIT_AS
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
        }
        self.kernel = KernelSession(workdir, env=env)
        self.exec_pids: set[int] = set()
        self.started = time.time()

    # ------------------------------------------------------------------ helpers
    async def parse(self, request: web.Request, model: type[BaseModel]):
        try:
            return model.model_validate_json(await request.read() or b"{}")
        except ValidationError as exc:
            raise web.HTTPBadRequest(
                text=ErrorBody(error="invalid request", detail=str(exc)).model_dump_json(),
                content_type="application/json",
            ) from None

    def resolve(self, rel: str | None) -> Path:
        if not rel:
            raise web.HTTPBadRequest(
                text=ErrorBody(error="missing ?path=").model_dump_json(), content_type="application/json"
            )
        path = (self.workdir / rel).resolve()
        if path != self.workdir and not path.is_relative_to(self.workdir):
            raise web.HTTPBadRequest(
                text=ErrorBody(error="path outside the work dir", detail=rel).model_dump_json(),
                content_type="application/json",
            )
        return path

    async def health_model(self) -> Health:
        alive = await self.kernel.alive()
        return Health(
            ok=alive,
            kernel_alive=alive,
            pid=os.getpid(),
            executions=self.kernel.executions,
            kernel_restarts=self.kernel.restarts,
            workdir=str(self.workdir),
        )

    # ------------------------------------------------------------------ routes
    async def health(self, request: web.Request) -> web.Response:
        return _json(await self.health_model())

    async def execute(self, request: web.Request) -> web.Response:
        req = await self.parse(request, ExecuteRequest)
        return _json(await self.kernel.execute(req.code, req.timeout, req.max_output))

    async def channel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The run_code hot path (framing in :mod:`agentrl_sandboxes.messages`): token, then cells."""
        try:
            if not hmac.compare_digest(await read_frame(reader), self.token):
                return
            while True:
                raw = await read_frame(reader)
                try:
                    req = ExecuteRequest.model_validate_json(raw)
                except ValidationError as exc:
                    error = ErrorBody(error="invalid request", detail=str(exc))
                    writer.write(frame(ERROR + error.model_dump_json().encode()))
                    continue
                result = await self.kernel.execute(req.code, req.timeout, req.max_output)
                writer.write(frame(RESULT + result.model_dump_json().encode()))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, FrameError):
            pass  # the client went away or broke the framing
        finally:
            writer.close()

    async def exec(self, request: web.Request) -> web.Response:
        req = await self.parse(request, ProcRequest)
        start = time.perf_counter()
        try:
            proc = await asyncio.create_subprocess_exec(
                *req.argv,
                cwd=self.workdir,
                env={**os.environ, **self.kernel.env},
                stdin=asyncio.subprocess.PIPE if req.stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:  # not found, not executable: an answer, not a crash
            return _json(ProcResult(returncode=127, stderr=f"{type(exc).__name__}: {exc}\n"))
        self.exec_pids.add(proc.pid)
        timed_out = False
        try:
            stdout, stderr = await asyncio.wait_for(
                proc.communicate(req.stdin.encode() if req.stdin is not None else None), req.timeout
            )
        except TimeoutError:
            timed_out = True
            procs.kill_tree(proc.pid)
            stdout, stderr = await proc.communicate()
        finally:
            self.exec_pids.discard(proc.pid)
        budget, truncated = req.max_output, False
        texts = []
        for raw in (stdout, stderr):
            text = raw.decode(errors="replace")
            if len(text) > budget:
                text, truncated = text[:budget], True
            budget -= len(text)
            texts.append(text)
        return _json(
            ProcResult(
                returncode=proc.returncode,
                stdout=texts[0],
                stderr=texts[1],
                duration=time.perf_counter() - start,
                truncated=truncated,
                timed_out=timed_out,
            )
        )

    async def put_file(self, request: web.Request) -> web.Response:
        path = self.resolve(request.query.get("path"))
        path.parent.mkdir(parents=True, exist_ok=True)
        size = 0
        with open(path, "wb") as f:
            async for chunk in request.content.iter_chunked(1 << 20):
                size += len(chunk)
                f.write(chunk)
        return _json(FileInfo(path=str(path.relative_to(self.workdir)), size=size))

    async def get_file(self, request: web.Request) -> web.Response:
        path = self.resolve(request.query.get("path"))
        if not path.is_file():
            return _error(404, "no such file", request.query["path"])
        return web.FileResponse(path)

    async def reset(self, request: web.Request) -> web.Response:
        req = await self.parse(request, ResetRequest)
        async with self.kernel.lock:
            await self.kernel.stop()
            procs.kill_descendants(os.getpid(), keep=self._spared())
            if req.wipe_workdir:
                wipe(self.workdir)
            for folder in self.scratch:  # /tmp: everything but the server's own state
                wipe(folder, keep=self.statedir)
            wipe(self.home)
            await self.kernel.start()
        return _json(await self.health_model())

    def _spared(self) -> set[int]:
        """Processes a cleanup must not touch: the kernel, its zygote and running /exec children."""
        keep = set(self.exec_pids)
        for pid in (self.kernel.pid, self.kernel.zygote.pid):
            if pid is not None:
                keep.add(pid)
        return keep

    async def reaper(self) -> None:
        """Collect zombies of adopted orphans (we are their subreaper) once a second."""
        while True:
            await asyncio.sleep(1.0)
            procs.reap_orphans(os.getpid(), keep=self._spared())

    @web.middleware
    async def authenticate(self, request: web.Request, handler) -> web.StreamResponse:
        if not hmac.compare_digest(request.headers.get("Authorization", ""), self.authorization):
            return _error(401, "unauthorized", "missing or wrong sandbox token")
        return await handler(request)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_UPLOAD, middlewares=[self.authenticate])
        app.add_routes(
            [
                web.get("/health", self.health),
                web.post("/execute", self.execute),
                web.post("/exec", self.exec),
                web.put("/files", self.put_file),
                web.get("/files", self.get_file),
                web.post("/reset", self.reset),
            ]
        )
        return app


def wipe(folder: Path, keep: Path | None = None) -> None:
    """Remove everything inside ``folder`` but ``keep`` (not the folder: it may be a mount point)."""
    for entry in folder.iterdir():
        if keep is not None and (entry == keep or keep.is_relative_to(entry)):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def read_token(path: Path) -> str:
    """The per-sandbox secret: read once, then the file is gone (code in the sandbox never sees it)."""
    token = path.read_text().strip()
    path.unlink()
    if len(token) < 16:
        raise SystemExit(f"the token in {path} is too short")
    return token


async def serve(args: argparse.Namespace) -> None:
    procs.become_subreaper()
    ctypes.CDLL(None).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    server = SandboxServer(workdir, Path(args.statedir), read_token(Path(args.token_file)), args.scratch)
    await server.kernel.start()
    runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
    await runner.setup()
    if args.unix:
        Path(args.unix).unlink(missing_ok=True)
        site = web.UnixSite(runner, args.unix)
    else:
        site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    if args.unix:
        os.chmod(args.unix, 0o600)  # the host connects as this uid or as root
        channel_path = Path(args.unix).with_name(CHANNEL)
        channel_path.unlink(missing_ok=True)
        channel = await asyncio.start_unix_server(server.channel, channel_path, limit=MAX_UPLOAD)
        os.chmod(channel_path, 0o600)
    print(f"agentrl-sandbox ready pid={os.getpid()}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if args.exit_with_stdin:
        loop.add_reader(sys.stdin.fileno(), lambda: sys.stdin.buffer.read1(1 << 16) or stop.set())
    reaper = asyncio.create_task(server.reaper())
    await stop.wait()
    reaper.cancel()
    if args.unix:
        channel.close()
    await server.kernel.close()
    procs.kill_descendants(os.getpid())
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="agentrl_sandboxes.server", description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--unix", help="listen on this Unix socket path")
    where.add_argument("--port", type=int, help="listen on this TCP port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--statedir", required=True, help="private folder: kernel sockets, HOME, logs")
    parser.add_argument("--scratch", action="append", default=[],
                        help="a folder emptied on every reset (the sandbox's private /tmp), statedir kept")  # fmt: skip
    parser.add_argument("--token-file", required=True, help="file holding the per-sandbox secret (deleted)")
    parser.add_argument("--exit-with-stdin", action="store_true", help="stop when stdin reaches EOF")
    asyncio.run(serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
