"""Programs the tests start (the collector, Prometheus, Alertmanager) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


async def start_process(command: list[str], log: Path) -> asyncio.subprocess.Process:
    """`command` with its stdout and stderr in `log`, no stdin."""
    with log.open("wb") as output:
        return await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=output, stderr=output
        )


async def stop_process(process: asyncio.subprocess.Process) -> int:
    """SIGTERM, then SIGKILL after 10 s; returns the exit status."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), timeout=10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode


def log_tails(logs: list[Path], lines: int = 20) -> str:
    """The last `lines` lines of each log that exists, headed by its name."""
    return "\n".join(
        f"--- {log.name} (last lines)\n" + "\n".join(log.read_text().splitlines()[-lines:])
        for log in logs
        if log.exists()
    )
