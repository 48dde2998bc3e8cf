"""The Dockerfile built and run with podman on a machine that reaches no image registry.

No registry means no `python:3.12-slim`: the base image is made from Debian
packages with mmdebstrap, from the apt sources and the release this machine
already uses (so its Python and glibc are the ones the host's pip picks wheels
for), and imported with `podman import`. pip inside the build may not reach
PyPI either: the dependencies are downloaded here as wheels (`pip download`,
PyPI through the ordinary client) and the build installs from them with
`--no-index`. docs/operations.md ("Build the image without a registry") gives
the same steps by hand.

Everything slow is cached under ~/.cache/petra-collector-image, keyed by its
inputs: the base tarball and image (apt sources, release, packages), the wheels
(requirements, Python version) and podman's own storage (so the layer cache
makes a second build quick). podman's settings come from a containers.conf of
the caller's, passed in CONTAINERS_CONF: nothing on the machine is changed.

`python -m tests.container` makes the base and the wheels ahead of the test:
.ci/run starts it beside the linters. A lock makes the test wait for it
rather than make them a second time.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from collector import __version__

ROOT: Final = Path(__file__).resolve().parents[1]
CACHE: Final = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / (
    "petra-collector-image"
)
BASE_PACKAGES: Final = ("python3", "python3-venv", "ca-certificates")
# Documentation, manual pages and translations: nothing the daemon reads.
DPKG_EXCLUDES: Final = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*")
APT_SOURCES: Final = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
IMAGE: Final = "localhost/petra-collector:test"
# runc, since crun refuses this kind of machine's cgroups; cgroupfs, since there is no
# systemd to ask; no default ulimits, which an unprivileged container host cannot raise.
CONTAINERS_CONF: Final = """\
[containers]
default_ulimits = []

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
"""


class ImageBuildError(Exception):
    """A step of building or running the image failed; the message has its output."""


@dataclass(frozen=True, slots=True)
class Built:
    image: str
    created: str  # the CREATED build argument (RFC 3339, to the second)
    prepare_seconds: float  # making (or finding) the base image and the wheels
    build_seconds: float  # `podman build` alone
    size_bytes: int


@dataclass(frozen=True, slots=True)
class Podman:
    """podman with its settings file and a storage of its own under CACHE."""

    conf: Path

    @classmethod
    def in_directory(cls, directory: Path) -> Podman:
        conf = directory / "containers.conf"
        conf.write_text(CONTAINERS_CONF)
        return cls(conf)

    def command(self, *args: str) -> list[str]:
        podman = shutil.which("podman") or "podman"
        storage = ["--root", str(CACHE / "storage"), "--runroot", str(CACHE / "run")]
        return [podman, *storage, *args]

    def run(self, *args: str, timeout: float = 300) -> str:
        """stdout of `podman ARGS`; ImageBuildError with its output when it fails."""
        return _run(self.command(*args), timeout=timeout, env={"CONTAINERS_CONF": str(self.conf)})

    def logs(self, name: str) -> tuple[str, str]:
        """The container's stdout and stderr so far."""
        result = subprocess.run(  # noqa: S603 - podman with our own arguments, no shell
            self.command("logs", name),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, "CONTAINERS_CONF": str(self.conf)},
        )
        return result.stdout, result.stderr

    def status(self, *args: str, timeout: float = 60) -> int:
        """The exit status of `podman ARGS`, whatever it is."""
        result = subprocess.run(  # noqa: S603 - podman with our own arguments, no shell
            self.command(*args),
            capture_output=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "CONTAINERS_CONF": str(self.conf)},
        )
        return result.returncode


def _run(command: list[str], *, timeout: float, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(  # noqa: S603 - fixed programs with our own arguments, no shell
        command,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise ImageBuildError(f"{' '.join(command[:4])} ... exited {result.returncode}:\n{tail}")
    return result.stdout


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def debian_release() -> str:
    """The codename of this machine's Debian release (bookworm): the base image's too."""
    for line in Path("/etc/os-release").read_text().splitlines():
        key, _, value = line.partition("=")
        if key == "VERSION_CODENAME" and value.strip('"'):
            return value.strip('"')
    raise ImageBuildError("/etc/os-release names no VERSION_CODENAME: not a Debian release")


def apt_source_files() -> list[Path]:
    """The host's enabled apt sources, which mmdebstrap reads as its mirrors."""
    files: list[Path] = []
    for source in APT_SOURCES:
        if source.is_file() and source.read_text().strip():
            files.append(source)
        elif source.is_dir():
            files += sorted(p for p in source.iterdir() if p.suffix in (".list", ".sources"))
    if not files:
        raise ImageBuildError("no apt sources in /etc/apt: mmdebstrap would have no mirror")
    return files


def base_image(podman: Podman) -> str:
    """A Debian image with Python and venv, made once per set of inputs."""
    release, sources = debian_release(), apt_source_files()
    key = _digest(
        release, *BASE_PACKAGES, *DPKG_EXCLUDES, *(f"{p}\n{p.read_text()}" for p in sources)
    )
    name = f"localhost/petra-collector-base:{key}"
    if podman.status("image", "exists", name) == 0:
        return name
    tarball = CACHE / f"base-{key}.tar"
    if not tarball.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(f".{os.getpid()}.partial.tar")
        excludes = [f"--dpkgopt=path-exclude={pattern}" for pattern in DPKG_EXCLUDES]
        _run(
            [
                shutil.which("mmdebstrap") or "mmdebstrap",
                "--quiet",
                "--variant=essential",
                f"--include={','.join(BASE_PACKAGES)}",
                *excludes,
                release,
                str(partial),
                *map(str, sources),
            ],
            timeout=600,
        )
        partial.rename(tarball)
    podman.run("import", "--quiet", str(tarball), name)
    version = podman.run(
        "run", "--rm", "--network", "none", name, "python3", "-c",
        "import sys; print('%d.%d' % sys.version_info[:2])",
    ).strip()  # fmt: skip
    if tuple(map(int, version.split("."))) < (3, 11):
        raise ImageBuildError(f"{release}'s Python is {version}; petra-collector needs 3.11")
    return name


def requirements() -> list[str]:
    """What the image installs: the dependencies (uvloop and isal among them) and the build
    backend."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [
        *project["project"]["dependencies"],
        *project["build-system"]["requires"],
    ]


def wheels(podman: Podman, base: str) -> Path:
    """Every requirement as a wheel for the base image's Python, downloaded once."""
    version = podman.run(
        "run", "--rm", "--network", "none", base, "python3", "-c",
        "import sys; print('%d.%d' % sys.version_info[:2])",
    ).strip()  # fmt: skip
    wanted = requirements()
    directory = CACHE / f"wheels-{_digest(version, *wanted)}"
    if (directory / ".complete").exists():
        return directory
    shutil.rmtree(directory, ignore_errors=True)
    pip = [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:"]
    _run([*pip, "--python-version", version, "--dest", str(directory), *wanted], timeout=300)
    (directory / ".complete").touch()
    return directory


@contextmanager
def _cache_lock() -> Iterator[None]:
    """One maker of the base and the wheels at a time, across processes."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def prepare(podman: Podman) -> tuple[str, Path]:
    """The base image and the wheel directory, made unless cached."""
    with _cache_lock():
        base = base_image(podman)
        return base, wheels(podman, base)


def build_context(directory: Path, wheel_dir: Path) -> Path:
    """What .dockerignore lets in, plus wheels/: the repository's build context."""
    context = directory / "context"
    context.mkdir()
    for name in ("pyproject.toml", "Dockerfile", ".dockerignore"):
        shutil.copy2(ROOT / name, context / name)
    for path in [*ROOT.glob("README*"), *ROOT.glob("LICENSE*")]:
        shutil.copy2(path, context / path.name)
    shutil.copytree(
        ROOT / "collector", context / "collector", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(wheel_dir, context / "wheels", ignore=shutil.ignore_patterns(".complete"))
    return context


def git_revision() -> str:
    git = shutil.which("git") or "git"
    return _run([git, "-C", str(ROOT), "rev-parse", "HEAD"], timeout=30).strip()


def build_image(podman: Podman, directory: Path) -> Built:
    """The Dockerfile built on the Debian base with no network, tagged IMAGE."""
    started = time.monotonic()
    base, wheel_dir = prepare(podman)
    context = build_context(directory, wheel_dir)
    fetched = time.monotonic()
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    arguments = {
        "BASE_IMAGE": base,
        "PIP_INSTALL_OPTIONS": "--no-index",
        "VERSION": __version__,
        "REVISION": git_revision(),
        "CREATED": created,
    }
    build_args = [item for k, v in arguments.items() for item in ("--build-arg", f"{k}={v}")]
    podman.run(
        "build",
        "--quiet",
        "--pull=never",
        "--network=none",
        # HEALTHCHECK is a Docker-format field: the OCI format would drop it.
        "--format=docker",
        *build_args,
        "--tag",
        IMAGE,
        str(context),
        timeout=600,
    )
    built = time.monotonic()
    # Every build leaves the layers of the one before untagged: drop those older than a
    # day, which keeps the layer cache of today's builds and bounds the storage.
    podman.run("image", "prune", "--force", "--filter", "until=24h")
    size = int(podman.run("image", "inspect", "--format", "{{.Size}}", IMAGE).strip())
    return Built(IMAGE, created, fetched - started, built - fetched, size)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as scratch:
        prepare(Podman.in_directory(Path(scratch)))
