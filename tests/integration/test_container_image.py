"""The container image, built from the Dockerfile and run with podman against the simulator.

The image is built on a Debian base made here (tests/container.py: no registry
is needed), then started with the host's network so that it reaches the
simulator on 127.0.0.1, as `docker run` would on a host. The test waits for
the image's own HEALTHCHECK, scrapes /metrics, and stops the container the way
every orchestrator does (SIGTERM): the daemon exits 0 and leaves its state file.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Final

import aiohttp
import pytest

from collector import __version__
from collector.petra_simulator import SimulatedOrg, Simulator, sim_key, start_simulator
from collector.state_store import read_saved_state
from tests.container import IMAGE, Podman, build_image, git_revision
from tests.integration.harness import FAST_POLLING
from tests.leaks import assert_no_key_material, state_file_texts
from tests.tools import REQUIRE_TOOLS_ENV, require_tool

pytestmark = pytest.mark.slow

ACME: Final = SimulatedOrg("acme", sim_key("acme"), tenant_count=3)
# The image's HEALTHCHECK asks 127.0.0.1:9865, its documented port; with the host's
# network the container's port is the host's.
PORT: Final = 9865
RUNTIME_UID: Final = 65532


def _require_podman() -> None:
    for name, package in (("podman", "podman"), ("runc", "runc"), ("mmdebstrap", "mmdebstrap")):
        require_tool(name, package)
    if os.geteuid() != 0:
        message = "podman here runs as root (a rootless one needs subuid maps set up)"
        if os.environ.get(REQUIRE_TOOLS_ENV) == "1":
            pytest.fail(message)
        pytest.skip(message)


def _port_is_free() -> bool:
    """No one listens on it (connections of an earlier run left in TIME_WAIT do not count:
    the daemon binds with SO_REUSEADDR too)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", PORT))
        except OSError:
            return False
        return True


def _write_config(directory: Path, base_url: str) -> None:
    """config/config.yaml, keys/acme (readable by the image's group only) and state/."""
    config, keys, state = directory / "config", directory / "keys", directory / "state"
    for path in (config, keys, state):
        path.mkdir()
    config.chmod(0o755)
    (keys / "acme").write_text(ACME.key + "\n")
    os.chown(keys / "acme", 0, RUNTIME_UID)
    (keys / "acme").chmod(0o440)
    os.chown(keys, 0, RUNTIME_UID)
    keys.chmod(0o750)
    os.chown(state, RUNTIME_UID, RUNTIME_UID)
    state.chmod(0o700)
    polling = "".join(f"  {name}: {value}\n" for name, value in FAST_POLLING.items())
    (config / "config.yaml").write_text(
        f"api:\n  base_url: {base_url}\npolling:\n{polling}"
        "state:\n  path: /var/lib/petra-collector/state.json\n  write_delay_seconds: 0.2\n"
        "orgs:\n  - name: acme\n    api_key_file: /run/secrets/petra/acme\n"
    )
    (config / "config.yaml").chmod(0o644)


async def _wait_healthy(podman: Podman, name: str) -> None:
    """Until the image's own HEALTHCHECK passes (podman runs it when asked: no systemd here)."""
    deadline = time.monotonic() + 60
    while await asyncio.to_thread(podman.status, "healthcheck", "run", name) != 0:
        running = await asyncio.to_thread(
            podman.run, "inspect", "--format", "{{.State.Running}}", name
        )
        if running.strip() != "true":
            out, err = await asyncio.to_thread(podman.logs, name)
            pytest.fail(f"the container stopped before it was healthy:\n{out[-2000:]}{err[-2000:]}")
        assert time.monotonic() < deadline, "the container never became healthy"
        await asyncio.sleep(0.5)


async def _scrape_until_acme_is_up(http: aiohttp.ClientSession) -> str:
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.get(f"http://127.0.0.1:{PORT}/metrics") as response:
                body = await response.text()
                if response.status == 200 and 'petra_up{org="acme"} 1.0' in body:
                    return body
        assert time.monotonic() < deadline, "acme never reported up by the container"
        await asyncio.sleep(0.3)


async def test_image_builds_runs_reports_healthy_and_stops_cleanly(tmp_path: Path) -> None:
    """Built with no registry; healthy; /metrics has acme's series; SIGTERM: exit 0, state
    file written; the OCI labels carry the version, the commit and the build time."""
    _require_podman()
    if not _port_is_free():
        pytest.fail(f"127.0.0.1:{PORT} is in use: the image's health check asks that port")
    podman = Podman.in_directory(tmp_path)
    built = await asyncio.to_thread(build_image, podman, tmp_path)
    labels = json.loads(
        await asyncio.to_thread(
            podman.run, "image", "inspect", "--format", "{{json .Labels}}", IMAGE
        )
    )
    assert labels["org.opencontainers.image.version"] == __version__
    assert labels["org.opencontainers.image.revision"] == git_revision()
    # This build's time, not a cached older one's: a new time is a new label every build.
    assert labels["org.opencontainers.image.created"] == built.created
    assert datetime.fromisoformat(built.created).utcoffset() is not None

    sim = Simulator([ACME])
    runner, sim_port = await start_simulator(sim, "127.0.0.1", 0)
    _write_config(tmp_path, f"http://127.0.0.1:{sim_port}")
    name = f"petra-collector-test-{uuid.uuid4().hex[:8]}"
    try:
        await asyncio.to_thread(
            podman.run,
            "run", "--detach", "--name", name, "--network=host", "--read-only",
            "--volume", f"{tmp_path / 'config'}:/etc/petra-collector:ro",
            "--volume", f"{tmp_path / 'keys'}:/run/secrets/petra:ro",
            "--volume", f"{tmp_path / 'state'}:/var/lib/petra-collector",
            IMAGE,
            "run", "--config", "/etc/petra-collector/config.yaml",
            "--web.listen-address", f"127.0.0.1:{PORT}",
        )  # fmt: skip
        await _wait_healthy(podman, name)
        async with aiohttp.ClientSession() as http:
            body = await _scrape_until_acme_is_up(http)
        assert 'petra_org_tenants{org="acme"} 3.0' in body
        assert sim.request_count("acme") >= 1

        await asyncio.to_thread(podman.run, "stop", "--time", "20", name, timeout=60)
        exit_code = await asyncio.to_thread(
            podman.run, "inspect", "--format", "{{.State.ExitCode}}", name
        )
        logs, errors = await asyncio.to_thread(podman.logs, name)
        assert exit_code.strip() == "0", logs[-2000:] + errors[-2000:]
        events = [json.loads(line)["event"] for line in logs.splitlines() if line.startswith("{")]
        assert events[-1] == "stopped"
        # The key files' directory is watched by inotify in the container too.
        assert "key_watch_degraded" not in events
        assert "key_watch_unavailable" not in events
        state_path = tmp_path / "state" / "state.json"
        saved = read_saved_state(state_path)
        assert saved is not None
        assert saved.clean_stop
        assert "acme" in saved.orgs
        assert_no_key_material([ACME.key], logs, errors, body, *state_file_texts(state_path))
    finally:
        await asyncio.to_thread(podman.status, "rm", "--force", name)
        await runner.cleanup()
    print(  # noqa: T201 - the figures the docs quote, in the test's output with -s
        f"image {built.size_bytes / 1e6:.0f} MB; base and wheels {built.prepare_seconds:.1f} s, "
        f"build {built.build_seconds:.1f} s"
    )
