"""`deadair setup`: everything a run needs, on a fresh machine or a laptop; idempotent and cached.

1. A Docker engine: the one that answers; else, as root on Debian, Debian's docker.io
   started as a plain background dockerd (there is no systemd on CI machines); else a
   sentence saying what to do.
2. Docker Compose: v2 (`docker compose`) where present, else v1 (`docker-compose`),
   installed from Debian's packages where possible.
3. A Debian base image: $DEADAIR_BASE_IMAGE, or the ordinary `debian:bookworm-slim` where
   a registry answers, or one built from Debian's packages with mmdebstrap and imported.
   It is passed to every Dockerfile as the build argument BASE.
4. Toxiproxy v2.12.0 built from its Go module (static, version stamped) into a
   `FROM scratch` image; the official image where Go is missing but a registry answers.
5. The stack's images (each compose service with a `build:` section).
A second run with nothing changed finds all of it and takes seconds.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import APIError, BuildError, DockerException, ImageNotFound

from chaos.errors import EnvironmentNotReady
from chaos.stack import engine
from chaos.stack.compose import compose_command
from chaos.stack.composefile import ComposeFileError, read_compose_file
from chaos.stack.definition import repo_root

TOXIPROXY_VERSION = "2.12.0"
TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2"
TOXIPROXY_IMAGE = f"deadair/toxiproxy:{TOXIPROXY_VERSION}"
TOXIPROXY_OFFICIAL = f"ghcr.io/shopify/toxiproxy:{TOXIPROXY_VERSION}"
LOCAL_BASE = "deadair/base:bookworm"
PUBLIC_BASE = "debian:bookworm-slim"
DEBIAN_MIRROR = os.environ.get("DEADAIR_DEBIAN_MIRROR", "http://deb.debian.org/debian")
BUILD_TIMEOUT = 1200.0

Progress = Callable[[str], None]


@dataclass
class SetupResult:
    steps: list[tuple[str, float, str]]
    base_image: str

    def render(self) -> str:
        total = sum(s for _, s, _ in self.steps)
        lines = [f"  {name:<12} {secs:6.1f}s  {detail}" for name, secs, detail in self.steps]
        return "\n".join(lines + [f"  {'total':<12} {total:6.1f}s"])


def _run(cmd: list[str], timeout: float, env: dict[str, str] | None = None, what: str = "") -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    except FileNotFoundError as exc:
        raise EnvironmentNotReady(f"{what or cmd[0]}: {cmd[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise EnvironmentNotReady(f"{what or ' '.join(cmd)} took longer than {timeout:.0f}s") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-12:])
        raise EnvironmentNotReady(f"{what or ' '.join(cmd)} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def _can_apt() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None and Path("/etc/debian_version").exists()


_apt_updated = False


def apt_install(packages: list[str]) -> None:
    global _apt_updated
    if not _apt_updated:
        _run(["apt-get", "update", "-qq"], 300, what="apt-get update")
        _apt_updated = True
    _run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
        900,
        env={"DEBIAN_FRONTEND": "noninteractive"},
        what=f"apt-get install {' '.join(packages)}",
    )


# -- 1. engine -------------------------------------------------------------------------------------


def ensure_engine(say: Progress) -> tuple[docker.DockerClient, str]:
    client = engine.try_connect()
    if client is not None:
        return client, f"engine {client.version().get('Version')} answers at {engine.engine_address()}"
    if not _can_apt():
        raise EnvironmentNotReady(
            f"no Docker engine answers at {engine.engine_address()}; start Docker (Docker Desktop, "
            "`sudo systemctl start docker`, or `dockerd &`) and run `deadair setup` again"
        )
    installed = ""
    if shutil.which("dockerd") is None:
        say("  installing Debian's docker.io")
        apt_install(["docker.io", "cgroupfs-mount", "iptables"])
        installed = "installed docker.io; "
    cg = Path("/sys/fs/cgroup")
    if shutil.which("cgroupfs-mount") and not (cg / "cgroup.controllers").exists() and not (cg / "cpu").exists():
        _run(["cgroupfs-mount"], 30, what="cgroupfs-mount")
    log = Path(os.environ.get("DEADAIR_DOCKERD_LOG", "/var/log/deadair-dockerd.log"))
    # --userland-proxy=false: published loopback ports go through the kernel (DNAT), not through a
    # docker-proxy process per port, which copies every byte and died under a few thousand listeners.
    with log.open("ab") as fh:
        subprocess.Popen(
            ["dockerd", "--userland-proxy=false"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        client = engine.try_connect(timeout=2)
        if client is not None:
            return client, f"{installed}started dockerd {client.version().get('Version')} (log {log})"
        time.sleep(0.2)
    raise EnvironmentNotReady(f"dockerd did not answer within 60 s; see {log}")


# -- 2. compose -----------------------------------------------------------------------------------


def ensure_compose(say: Progress) -> str:
    try:
        return " ".join(compose_command())
    except EnvironmentNotReady:
        if not _can_apt():
            raise
    say("  installing Debian's docker-compose")
    apt_install(["docker-compose"])
    return " ".join(compose_command()) + " (installed)"


# -- 3. base image --------------------------------------------------------------------------------


def _has_image(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
        return True
    except ImageNotFound:
        return False


def _try_pull(client: docker.DockerClient, name: str) -> bool:
    repo, _, tag = name.rpartition(":")
    try:
        client.images.pull(repo, tag=tag)
        return True
    except (APIError, DockerException):
        return False


def ensure_base_image(client: docker.DockerClient, say: Progress) -> tuple[str, str]:
    wanted = os.environ.get("DEADAIR_BASE_IMAGE")
    if wanted:
        if _has_image(client, wanted) or _try_pull(client, wanted):
            return wanted, f"{wanted} (from DEADAIR_BASE_IMAGE)"
        raise EnvironmentNotReady(f"DEADAIR_BASE_IMAGE={wanted} is neither local nor pullable")
    for name in (LOCAL_BASE, PUBLIC_BASE):
        if _has_image(client, name):
            return name, f"{name} (cached)"
    if _try_pull(client, PUBLIC_BASE):
        return PUBLIC_BASE, f"{PUBLIC_BASE} (pulled)"
    say("  no registry answers: building a Debian base image from Debian's packages")
    return LOCAL_BASE, build_debian_base(client, say)


def build_debian_base(client: docker.DockerClient, say: Progress) -> str:
    if shutil.which("mmdebstrap") is None:
        if not _can_apt():
            raise EnvironmentNotReady(
                "no container registry answers and mmdebstrap is missing: install mmdebstrap, "
                "or set DEADAIR_BASE_IMAGE to a local Debian bookworm image"
            )
        apt_install(["mmdebstrap"])
    with tempfile.TemporaryDirectory(prefix="deadair-base-") as tmp:
        tar = Path(tmp) / "rootfs.tar"
        security = DEBIAN_MIRROR.rstrip("/") + "-security"
        _run(
            [
                "mmdebstrap",
                "--variant=minbase",
                "--quiet",
                '--customize-hook=rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin; '
                ': > "$1"/etc/resolv.conf; echo deadair > "$1"/etc/hostname',
                "bookworm",
                str(tar),
                f"deb {DEBIAN_MIRROR} bookworm main",
                f"deb {DEBIAN_MIRROR} bookworm-updates main",
                f"deb {security} bookworm-security main",
            ],
            900,
            what="mmdebstrap",
        )
        repo, _, tag = LOCAL_BASE.partition(":")
        big = docker.from_env(timeout=BUILD_TIMEOUT)
        big.api.import_image_from_file(str(tar), repository=repo, tag=tag)
    return f"{LOCAL_BASE} built with mmdebstrap from {DEBIAN_MIRROR}"


# -- 4. toxiproxy -----------------------------------------------------------------------------------


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "deadair"


def build_toxiproxy_binaries(say: Progress) -> Path:
    """Static, version-stamped toxiproxy-server and -cli, built once into the cache."""
    out = cache_dir() / f"toxiproxy-{TOXIPROXY_VERSION}-{platform.machine()}"
    server, cli = out / "toxiproxy", out / "toxiproxy-cli"
    if server.exists() and cli.exists():
        return out
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise EnvironmentNotReady("Go is not installed")
    say(f"  building Toxiproxy {TOXIPROXY_VERSION} from {TOXIPROXY_MODULE}")
    gobin = out / "gobin"
    ldflags = f"-s -w -X {TOXIPROXY_MODULE}.Version={TOXIPROXY_VERSION}"
    _run(
        [
            go,
            "install",
            "-trimpath",
            "-ldflags",
            ldflags,
            f"{TOXIPROXY_MODULE}/cmd/server@v{TOXIPROXY_VERSION}",
            f"{TOXIPROXY_MODULE}/cmd/cli@v{TOXIPROXY_VERSION}",
        ],
        900,
        env={"GOBIN": str(gobin), "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod"},
        what="go install toxiproxy",
    )
    (gobin / "server").rename(server)
    (gobin / "cli").rename(cli)
    gobin.rmdir()
    return out


def ensure_toxiproxy_image(client: docker.DockerClient, say: Progress) -> str:
    if _has_image(client, TOXIPROXY_IMAGE):
        return f"{TOXIPROXY_IMAGE} (cached)"
    try:
        binaries = build_toxiproxy_binaries(say)
    except EnvironmentNotReady as exc:
        if _try_pull(client, TOXIPROXY_OFFICIAL):
            client.images.get(TOXIPROXY_OFFICIAL).tag(TOXIPROXY_IMAGE)
            return f"{TOXIPROXY_IMAGE} from the official {TOXIPROXY_OFFICIAL} ({exc})"
        raise EnvironmentNotReady(
            f"cannot get Toxiproxy: {exc} and {TOXIPROXY_OFFICIAL} cannot be pulled; "
            "install Go >= 1.23 and run `deadair setup` again"
        ) from exc
    dockerfile = repo_root() / "compose" / "toxiproxy" / "Dockerfile"
    with tempfile.TemporaryDirectory(prefix="deadair-toxiproxy-") as ctx:
        for f in (binaries / "toxiproxy", binaries / "toxiproxy-cli", dockerfile):
            shutil.copy2(f, ctx)
        _build(ctx, "Dockerfile", TOXIPROXY_IMAGE, {})
    return f"{TOXIPROXY_IMAGE} built from the Go module (static, FROM scratch)"


# -- 5. stack images ---------------------------------------------------------------------------------


def _build(context: str, dockerfile: str, tag: str, buildargs: dict[str, str]) -> None:
    big = docker.from_env(timeout=BUILD_TIMEOUT)
    try:
        big.images.build(path=context, dockerfile=dockerfile, tag=tag, buildargs=buildargs, rm=True, forcerm=True)
    except BuildError as exc:
        log = "".join(str(chunk.get("stream", "")) for chunk in exc.build_log if isinstance(chunk, dict))
        tail = "\n".join(log.strip().splitlines()[-15:])
        raise EnvironmentNotReady(f"building {tag} failed: {exc.msg}\n{tail}") from exc
    except (APIError, DockerException) as exc:
        raise EnvironmentNotReady(f"building {tag} failed: {exc}") from exc


def stack_builds(compose_dir: Path) -> list[tuple[str, str, str]]:
    """(context, dockerfile, image) for every distinct built image of every stack under compose_dir."""
    seen: dict[str, tuple[str, str, str]] = {}
    for compose_file in sorted(compose_dir.glob("*/docker-compose.yml")):
        try:
            doc = read_compose_file(compose_file).doc
        except ComposeFileError as exc:
            raise EnvironmentNotReady(str(exc)) from None
        services = doc.get("services")
        for name, svc in (services if isinstance(services, dict) else {}).items():
            build = svc.get("build") if isinstance(svc, dict) else None
            if not build or not svc.get("image"):
                continue
            if isinstance(build, str):
                build = {"context": build}
            context = build.get("context", ".") if isinstance(build, dict) else None
            dockerfile = build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else None
            image = svc["image"]
            if not (isinstance(context, str) and isinstance(dockerfile, str) and isinstance(image, str)):
                raise EnvironmentNotReady(
                    f"{compose_file}: service {name}: expected build as a context path or "
                    "{context: PATH, dockerfile: FILE}, and image as a name"
                )
            seen.setdefault(image, (str((compose_file.parent / context).resolve()), dockerfile, image))
    return list(seen.values())


def setup(say: Progress, root: Path | None = None) -> SetupResult:
    """Make this machine ready to run experiments; every step is skipped when already done."""
    steps: list[tuple[str, float, str]] = []

    def step(name: str, fn):
        t = time.monotonic()
        value, detail = fn()
        steps.append((name, time.monotonic() - t, detail))
        say(f"  {name:<12} {time.monotonic() - t:6.1f}s  {detail}")
        return value

    client = step("engine", lambda: ensure_engine(say))
    step("compose", lambda: (None, ensure_compose(say)))
    base = step("base image", lambda: ensure_base_image(client, say))
    step("toxiproxy", lambda: (None, ensure_toxiproxy_image(client, say)))
    compose_dir = (root or repo_root()) / "compose"

    def images():
        built = []
        for context, dockerfile, image in stack_builds(compose_dir):
            _build(context, dockerfile, image, {"BASE": base})
            built.append(image)
        return None, f"{', '.join(built) or 'nothing to build'} (BASE={base})"

    step("images", images)
    step("libopus", lambda: (None, ensure_libopus(say)))
    step("fixtures", lambda: (None, copy_fixtures(client, (root or repo_root()) / "fixtures" / "generated")))
    return SetupResult(steps, base)


def ensure_libopus(say: Progress) -> str:
    """Golden ears decode Opus with the system's libopus (through ctypes)."""
    import ctypes.util

    if ctypes.util.find_library("opus"):
        return "libopus found"
    if _can_apt():
        say("  installing Debian's libopus0 (golden ears decode with it)")
        apt_install(["libopus0"])
        return "libopus0 installed"
    return "libopus missing: golden ears will not run (macOS: brew install opus; Debian: apt-get install libopus0)"


def copy_fixtures(
    client: docker.DockerClient,
    dest: Path,
    image: str = "deadair/audio-room:latest",
    source: str = "/usr/share/deadair/audio",
) -> str:
    """Copy the audio generated at build time out of the image, for people to listen to."""
    import io
    import tarfile

    try:
        container = client.containers.create(image, command=["true"])
    except (APIError, DockerException) as exc:
        return f"not copied ({exc})"
    try:
        stream, _ = container.get_archive(source)
        data = io.BytesIO(b"".join(stream))
    finally:
        container.remove(force=True)
    dest.mkdir(parents=True, exist_ok=True)
    names = []
    with tarfile.open(fileobj=data) as tar:
        for member in tar.getmembers():
            if member.isfile():
                member.name = Path(member.name).name
                tar.extract(member, dest, filter="data")
                names.append(member.name)
    return f"{', '.join(sorted(names))} -> {dest}"
