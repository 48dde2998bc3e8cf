"""A real Prometheus for the end-to-end tests, on a free 127.0.0.1 port."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from tests.processes import LOOPBACK, free_port, log_tails, start_process, stop_process
from tests.tools import require_tool
from tests.waiting import eventually


@contextlib.asynccontextmanager
async def running_prometheus(
    config: Path, directory: Path, *flags: str, within: float = 60.0
) -> AsyncIterator[str]:
    """`prometheus` with `config` (and `flags`), its storage and prometheus.log in
    `directory`; yields its base URL once it answers /-/ready, and stops it on the way out."""
    binary = require_tool("prometheus", "prometheus")
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    log = directory / "prometheus.log"
    process = await start_process(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'prometheus-data'}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--log.level=warn",
            *flags,
        ],
        log,
    )
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:

            async def ready() -> bool:
                assert process.returncode is None, f"prometheus exited\n{log_tails([log])}"
                async with http.get(f"{url}/-/ready") as response:
                    return response.status == 200

            await eventually(
                ready,
                "prometheus' /-/ready",
                within=within,
                every=0.1,
                ignore=(aiohttp.ClientError, TimeoutError),
                details=lambda: log_tails([log]),
            )
        yield url
    finally:
        await stop_process(process)
