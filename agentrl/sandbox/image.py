"""Build the sandbox image without needing an image registry.

``build_image()`` (CLI: ``agentrl sandbox build``):

1. **Base** (the ``BASE_IMAGE`` build argument). ``auto`` takes, in order: a local
   ``python:3.11-slim``; a local ``agentrl-base:bookworm``; ``python:3.11-slim`` pulled from a
   registry; else it *makes* ``agentrl-base:bookworm`` from Debian packages —
   ``debootstrap --variant=minbase --include=python3,python3-venv bookworm`` piped into
   ``docker import`` (about 70 s once, needs root and the ``debootstrap`` package).
2. **Wheels**: ``pip download`` on the host, for the base's Python version and a manylinux
   platform, into ``~/.cache/agentrl/wheels/<key>/`` (reused while the requirement list is the
   same), then installed in the image with ``pip install --no-index``. Nothing is fetched inside
   the build, so it works where the container cannot reach PyPI.
3. **Build** with the Dockerfile in ``sandboxes/``. The image carries the label
   ``agentrl.build=<hash of Dockerfile, server sources, requirements, base image id>``; when an
   image with the same tag and hash exists, the build is skipped entirely (``force`` rebuilds).

**Variants** (:data:`VARIANTS`, ``--variant``) are the same build on a different Debian base:
``python`` (default, ``agentrl-sandbox:latest``) and ``browser`` (``agentrl-sandbox-browser:latest``,
whose base ``agentrl-base-browser:bookworm`` is debootstrapped with Debian's ``chromium``,
``chromium-driver``, ``socat``, ``fonts-liberation`` and ``dbus-x11`` included — used by the GUI browser tier's
docker backend). A variant without a registry base always builds on its Debian base.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import agentrl_sandboxes

from agentrl.sandbox.errors import SandboxUnavailable

DEFAULT_IMAGE = "agentrl-sandbox:latest"
REGISTRY_BASE = "python:3.11-slim"
DEBIAN_BASE = "agentrl-base:bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
BUILD_LABEL = "agentrl.build"
SERVER_REQUIREMENTS = [
    # the server and the kernel (our own IPython shell: sandboxes/shell.py)
    "aiohttp>=3.9",
    "pydantic>=2.6",
    "ipython>=8",
    "matplotlib-inline",
    # what a code interpreter is expected to have
    "numpy",
    "pandas",
    "matplotlib",
    "sympy",
]


@dataclass(frozen=True)
class Variant:
    """One flavour of the sandbox image: the same Dockerfile and wheels on its own base."""

    name: str
    tag: str  # the image it builds by default
    debian_base: str  # the base made with debootstrap when no other is at hand
    debian_packages: tuple[str, ...]  # what debootstrap --include puts in that base
    registry_base: str | None = None  # a registry image usable instead (it must hold the packages)


VARIANTS = {
    "python": Variant("python", DEFAULT_IMAGE, DEBIAN_BASE, ("python3", "python3-venv"), REGISTRY_BASE),
    "browser": Variant(
        "browser",
        "agentrl-sandbox-browser:latest",
        "agentrl-base-browser:bookworm",
        # dbus-x11: debootstrap does not resolve virtual packages, and Chromium's GTK pulls in
        # dconf-service, which needs some dbus-session-bus.
        ("python3", "python3-venv", "chromium", "chromium-driver", "socat", "fonts-liberation", "dbus-x11"),
    ),
}
SERVER_DIR = Path(agentrl_sandboxes.__file__).parent
WHEEL_CACHE = Path(os.environ.get("AGENTRL_CACHE", Path.home() / ".cache" / "agentrl")) / "wheels"

Log = Callable[[str], None]


def docker_client():
    """A connected docker SDK client, or SandboxUnavailable that says what is missing."""
    try:
        import docker
    except ImportError as exc:
        raise SandboxUnavailable("the docker backend needs the `docker` package: pip install docker") from exc
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as exc:
        raise SandboxUnavailable(
            f"no Docker engine answers ({exc.__class__.__name__}: {exc}). Start one (e.g. `sudo dockerd &`, "
            "or scripts/docker_setup.sh as root), or use the local backend."
        ) from exc
    return client


def _has_image(client, name: str):
    import docker

    try:
        return client.images.get(name)
    except docker.errors.ImageNotFound:
        return None


def resolve_base(client, base: str, log: Log, variant: Variant = VARIANTS["python"]) -> str:
    """The base image to build on; pulls or makes it if needed (see module docstring)."""
    import docker

    if base != "auto":
        if _has_image(client, base):
            return base
        log(f"pulling {base}")
        try:
            client.images.pull(base)
        except docker.errors.APIError as exc:
            raise SandboxUnavailable(f"base image {base} is not local and cannot be pulled: {exc}") from exc
        return base
    for candidate in (variant.registry_base, variant.debian_base):
        if candidate and _has_image(client, candidate):
            return candidate
    if variant.registry_base:
        try:
            client.images.pull(variant.registry_base)
            return variant.registry_base
        except docker.errors.APIError:
            log(f"no registry reachable for {variant.registry_base}")
    log(f"making {variant.debian_base} with debootstrap")
    make_debian_base(client, variant.debian_base, log, packages=variant.debian_packages)
    return variant.debian_base


def make_debian_base(
    client,
    tag: str = DEBIAN_BASE,
    log: Log = print,
    suite: str = "bookworm",
    packages: tuple[str, ...] = VARIANTS["python"].debian_packages,
) -> None:
    """debootstrap a minimal Debian with ``packages`` (and their dependencies); ``docker import`` it as ``tag``."""
    if shutil.which("debootstrap") is None:
        raise SandboxUnavailable(
            "making a base image needs debootstrap (apt-get install debootstrap) and root"
        )
    repo, _, version = tag.partition(":")
    with tempfile.TemporaryDirectory(prefix="agentrl-rootfs-") as tmp:
        rootfs, tarball = Path(tmp) / "rootfs", Path(tmp) / "rootfs.tar"
        cmd = [
            "debootstrap",
            "--variant=minbase",
            "--include=" + ",".join(packages),
            suite,
            str(rootfs),
            DEBIAN_MIRROR,
        ]
        log(" ".join(cmd))
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SandboxUnavailable(f"debootstrap failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tarball), "."], check=True)
        log(f"docker import -> {tag}")
        client.api.import_image_from_file(str(tarball), repository=repo, tag=version or "latest")


def base_python(client, base: str) -> str:
    """``major.minor`` of python3 in the base image."""
    out = client.containers.run(
        base,
        ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        remove=True,
        network_mode="none",
    )
    return out.decode().strip()


def platform_args(arch: str, glibc_minor: int = 36) -> list[str]:
    """pip ``--platform`` flags for every manylinux tag a glibc 2.<minor> system (bookworm: 2.36) runs.

    pip does not expand ``manylinux_2_36`` to the older tags itself, so list them all.
    """
    tags = [f"manylinux_2_{m}_{arch}" for m in range(glibc_minor, 16, -1)]
    tags += [f"manylinux2014_{arch}", f"manylinux2010_{arch}", f"manylinux1_{arch}", "any"]
    return [arg for tag in tags for arg in ("--platform", tag)]


def download_wheels(requirements: list[str], python: str, log: Log) -> Path:
    """Wheels for ``requirements`` for CPython ``python`` on manylinux, cached by their key."""
    arch = platform.machine()
    key = hashlib.sha256(json.dumps([sorted(requirements), python, arch]).encode()).hexdigest()[:16]
    folder = WHEEL_CACHE / key
    if (folder / "requirements.txt").exists():
        log(f"wheels: reusing {folder}")
        return folder
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="wheels-", dir=WHEEL_CACHE))
    cmd = [
        sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(tmp),
        "--only-binary=:all:", "--implementation", "cp", "--python-version", python,
        *platform_args(arch), *requirements,
    ]  # fmt: skip
    log(f"wheels: pip download for CPython {python} ({len(requirements)} requirements)")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SandboxUnavailable(f"pip download failed:\n{proc.stderr[-3000:]}")
    (tmp / "requirements.txt").write_text("\n".join(requirements) + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return folder


def build_hash(requirements: list[str], base_id: str) -> str:
    h = hashlib.sha256()
    for path in sorted(SERVER_DIR.glob("*.py")) + [SERVER_DIR / "Dockerfile"]:
        h.update(path.name.encode() + path.read_bytes())
    h.update(json.dumps([requirements, base_id]).encode())
    return h.hexdigest()[:20]


def build_image(
    tag: str | None = None,
    base: str = "auto",
    packages: tuple[str, ...] | list[str] = (),
    force: bool = False,
    log: Log = print,
    variant: str = "python",
) -> str:
    """Build (or reuse) the image of ``variant`` (tag: the variant's); extra pip ``packages`` go in it."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown image variant {variant!r}; known: {', '.join(VARIANTS)}")
    spec = VARIANTS[variant]
    tag = tag or spec.tag
    client = docker_client()
    base = resolve_base(client, base, log, spec)
    requirements = SERVER_REQUIREMENTS + list(packages)
    digest = build_hash(requirements, client.images.get(base).id)
    copy_server = functools.partial(
        shutil.copytree,
        SERVER_DIR,
        ignore=shutil.ignore_patterns("__pycache__", "Dockerfile", "*.md"),
    )
    built = build_if_changed(
        client, tag, digest, force=force, requirements=requirements, base=base,
        dockerfile=SERVER_DIR / "Dockerfile", fill=lambda ctx: copy_server(ctx / "agentrl_sandboxes"),
        buildargs={"BASE_IMAGE": base}, log=log,
    )
    if built:
        log(f"built {tag} (build {digest})")
    return tag


def build_if_changed(
    client, tag: str, digest: str, *, force: bool, requirements: list[str], base: str, dockerfile: Path,
    fill, buildargs: dict[str, str], labels: dict[str, str] | None = None, log: Log = print,
) -> bool:
    """Build ``tag`` unless an image of it carries build ``digest`` already (``force``: build anyway).

    The context is ``dockerfile``, the wheels of ``requirements`` for ``base``'s Python (no registry
    at run time) and whatever ``fill(context_dir)`` adds. Returns whether it built."""
    existing = _has_image(client, tag)
    if existing is not None and existing.labels.get(BUILD_LABEL) == digest and not force:
        log(f"{tag} is up to date (build {digest}); nothing to do")
        return False
    wheels = download_wheels(requirements, base_python(client, base), log)
    with tempfile.TemporaryDirectory(prefix="agentrl-build-") as tmp:
        ctx = Path(tmp)
        shutil.copy(dockerfile, ctx / "Dockerfile")
        shutil.copytree(wheels, ctx / "wheels")
        fill(ctx)
        log(f"docker build {tag} FROM {base}")
        docker_build(client, ctx, tag, buildargs, {BUILD_LABEL: digest, **(labels or {})}, log)
    return True


def docker_build(
    client, ctx: Path, tag: str, buildargs: dict[str, str], labels: dict[str, str], log: Log
) -> None:
    """``docker build`` of the context folder ``ctx`` (its Dockerfile) as ``tag``, logging each step."""
    try:
        for chunk in client.api.build(
            path=str(ctx), tag=tag, buildargs=buildargs, labels=labels, rm=True, forcerm=True, decode=True
        ):
            if "error" in chunk:
                raise SandboxUnavailable(f"docker build failed: {chunk['error']}")
            line = chunk.get("stream", "").rstrip()
            if line.startswith("Step "):
                log(line)
    except SandboxUnavailable:
        raise
    except Exception as exc:
        raise SandboxUnavailable(f"docker build failed: {exc}") from exc
