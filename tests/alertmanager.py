"""A real Alertmanager for tests, and test copies of deploy/alertmanager/alertmanager.yml.

Alertmanager runs on 127.0.0.1 only: `--cluster.listen-address=` turns the
gossip listener (0.0.0.0:9094 by default) off, the web listener gets a free
loopback port, and its storage lives in the test's tmp directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import aiohttp
import pytest
import yaml

from tests.processes import LOOPBACK, free_port, start_process, stop_process
from tests.tools import require_tool
from tests.waiting import eventually

ROOT: Final = Path(__file__).resolve().parents[1]
SHIPPED_CONFIG: Final = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
# Where the shipped receivers point until an operator replaces them.
SHIPPED_WEBHOOK_BASE: Final = "http://127.0.0.1:9095/replace-me/"
RECEIVERS: Final = ("petra-pager", "petra-chat", "petra-heartbeat")


def shipped_config() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(SHIPPED_CONFIG.read_text())
    return config


def alertmanager_binary() -> str:
    """Upstream calls it `alertmanager`; Debian's package installs `prometheus-alertmanager`."""
    return shutil.which("alertmanager") or require_tool(
        "prometheus-alertmanager", "prometheus-alertmanager"
    )


def webhook_urls(config: dict[str, Any]) -> dict[str, str]:
    """Receiver name -> its one webhook URL."""
    urls: dict[str, str] = {}
    for receiver in config["receivers"]:
        (webhook,) = receiver["webhook_configs"]
        urls[receiver["name"]] = webhook["url"]
    return urls


def fast_copy(
    receiver_base: str, *, group_wait: str, group_interval: str, repeat_interval: str
) -> dict[str, Any]:
    """The shipped config with its webhooks pointed at `receiver_base` and faster timings.

    Routes, matchers, grouping and inhibit rules stay exactly as shipped; only
    the receivers' URLs and the route timings (every route that sets them)
    change, so a test of the copy tests the shipped routing.
    """
    config = copy.deepcopy(shipped_config())
    for receiver in config["receivers"]:
        for webhook in receiver["webhook_configs"]:
            assert webhook["url"].startswith(SHIPPED_WEBHOOK_BASE), webhook["url"]
            webhook["url"] = receiver_base.rstrip("/") + "/" + receiver["name"]
    timings = {
        "group_wait": group_wait,
        "group_interval": group_interval,
        "repeat_interval": repeat_interval,
    }
    routes = [config["route"], *config["route"]["routes"]]
    for route in routes:
        for name, value in timings.items():
            if name in route:
                route[name] = value
    return config


@contextlib.asynccontextmanager
async def running_alertmanager(config: dict[str, Any], directory: Path) -> AsyncIterator[str]:
    """Alertmanager with `config` on a free loopback port; yields its base URL once ready."""
    binary = alertmanager_binary()
    config_path, log = _prepare(config, directory)
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    process = await start_process(
        [
            binary,
            f"--config.file={config_path}",
            f"--storage.path={directory / 'data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        log,
    )
    try:
        await _wait_ready(url, process, log)
        yield url
    finally:
        await stop_process(process)


def _prepare(config: dict[str, Any], directory: Path) -> tuple[Path, Path]:
    """Writes the config file; returns its path and the log file's."""
    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "alertmanager.yml"
    config_path.write_text(yaml.safe_dump(config))
    return config_path, directory / "alertmanager.log"


def _read(log: Path) -> str:
    return log.read_text() if log.exists() else ""


async def _wait_ready(url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:

        async def ready() -> bool:
            if process.returncode is not None:
                pytest.fail(f"alertmanager exited with {process.returncode}:\n{_read(log)}")
            async with http.get(f"{url}/-/ready") as response:
                return response.status == 200

        await eventually(
            ready,
            "alertmanager's /-/ready",
            within=60,
            every=0.1,
            ignore=(aiohttp.ClientError, TimeoutError),
            details=lambda: _read(log),
        )
