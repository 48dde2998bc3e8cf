"""Idle and slowloris connections against the real daemon, run as its own process with a
low open-file limit (so a few hundred connections would exhaust it), with and without
TLS: they are closed at the header deadline, and while hundreds are held open the
probes answer, polls and state writes go on, and the log stays quiet."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from bench.hostile import Collector, Holder, limited_collector, probe
from collector.petra_simulator import SimulatedOrg, Simulator, sim_key, start_simulator
from tests.integration.harness import parse_metrics, value
from tests.waiting import eventually

pytestmark = pytest.mark.slow

ORG = SimulatedOrg("acme", sim_key("acme"), "Acme MSP", tenant_count=2)
SOFT, HARD = 128, 256  # the daemon raises the soft one to the hard one
HELD = 300  # more than the daemon's whole file limit
CLOSED_WITHIN_SECONDS = 15.0  # the deadline is 1 s: generous for a busy machine
PROBES = 10


@contextlib.asynccontextmanager
async def daemon(
    tmp_path: Path, *, tls: bool, server: dict[str, float] | None = None
) -> AsyncIterator[tuple[Collector, Simulator]]:
    simulator = Simulator([ORG])
    runner, port = await start_simulator(simulator, "127.0.0.1", 0)
    try:
        async with limited_collector(
            tmp_path,
            f"http://127.0.0.1:{port}",
            [ORG],
            tls=tls,
            nofile=(SOFT, HARD),
            server=server,
        ) as running:
            yield running, simulator
    finally:
        await runner.cleanup()


async def closed_by_daemon(reader: asyncio.StreamReader) -> bool:
    """Whether the daemon closes the connection within CLOSED_WITHIN_SECONDS."""
    try:
        return await asyncio.wait_for(reader.read(), CLOSED_WITHIN_SECONDS) == b""
    except TimeoutError:
        return False
    except OSError:
        return True  # reset: closed too


async def slowloris(port: int, client_ssl: ssl.SSLContext | None) -> tuple[bool, int]:
    """A request header sent one line every 0.2 s: whether the daemon closed the
    connection within CLOSED_WITHIN_SECONDS, and how many lines it took meanwhile."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_ssl)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    lines = 0
    deadline = time.monotonic() + CLOSED_WITHIN_SECONDS
    try:
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                if await asyncio.wait_for(reader.read(1024), 0.2) == b"":
                    return True, lines
            writer.write(f"X-Line-{lines}: {lines}\r\n".encode())
            await writer.drain()
            lines += 1
    except OSError:
        return True, lines
    finally:
        writer.close()
    return False, lines


async def metrics(running: Collector) -> str:
    connector = aiohttp.TCPConnector(ssl=running.client_ssl or False)
    async with (
        aiohttp.ClientSession(connector=connector) as http,
        http.get(running.url + "/metrics") as response,
    ):
        assert response.status == 200
        return await response.text()


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_idle_and_slowloris_connections_are_closed_at_the_header_deadline(
    tmp_path: Path, tls: bool
) -> None:
    async with daemon(tmp_path, tls=tls, server={"header_timeout_seconds": 1}) as (running, _):
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", running.port)
        # With TLS: the plain TCP connection above never starts its handshake; this one
        # completes it and then sends nothing.
        quiet = await asyncio.open_connection("127.0.0.1", running.port, ssl=running.client_ssl)
        closed, lines = await slowloris(running.port, running.client_ssl)
        assert closed, f"a slowloris connection was still open after {lines} lines"
        assert lines >= 3, lines  # it was trickling, not refused at once
        assert await closed_by_daemon(idle_reader), "an idle connection was left open"
        assert await closed_by_daemon(quiet[0]), "a connection silent after accept stayed open"
        idle_writer.close()
        quiet[1].close()
        samples = parse_metrics(await metrics(running))
        closed_count = value(
            samples, "petra_collector_http_connections_closed_total", reason="header_timeout"
        )
        assert closed_count is not None
        assert closed_count >= 3
        assert await probe(running, "/healthz") == 200


async def until(check: Callable[[], bool], what: str) -> None:
    async def checking() -> bool:
        return check()

    await eventually(checking, what)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
async def test_hundreds_of_idle_connections_cost_nothing_visible(tmp_path: Path, tls: bool) -> None:
    server: dict[str, float] = {"header_timeout_seconds": 60}  # only the cap frees places
    async with daemon(tmp_path, tls=tls, server=server) as (running, simulator):
        (started,) = running.events("started")
        assert started["open_files_limit"] == HARD
        assert started["open_files_limit_raised_from"] == SOFT
        assert started["max_connections"] == HARD // 2
        assert started["max_connections_configured"] == 512
        await until(running.state.exists, "a first poll and its state write")
        lines_before = len(running.log_lines())
        polls_before = len(simulator.request_times(ORG.name))
        state_before = running.state.stat().st_mtime_ns
        holder = Holder(running.port, HELD, slowloris=False)
        holder.start()
        try:
            await until(lambda: holder.opened >= HELD, f"{HELD} connections held")
            statuses = [await probe(running, "/healthz") for _ in range(PROBES)]
            await until(
                lambda: (
                    len(simulator.request_times(ORG.name)) >= polls_before + 2
                    and running.state.stat().st_mtime_ns > state_before
                ),
                "two more polls, and their state writes, while the connections are held",
            )
            text = await metrics(running)
        finally:
            await holder.stop()
    assert statuses == [200] * PROBES
    assert holder.opened >= HELD
    assert len(simulator.request_times(ORG.name)) >= polls_before + 2
    assert running.state.stat().st_mtime_ns > state_before
    written = running.log_lines()[lines_before:]
    assert not [line for line in written if '"level":"error"' in line], written[:5]
    assert "Too many open files" not in "\n".join(running.log_lines())
    assert len(written) <= 5, written[:10]
    samples = parse_metrics(text)
    evicted = value(samples, "petra_collector_http_connections_closed_total", reason="evicted")
    assert evicted is not None
    assert evicted >= HELD - HARD // 2
    assert value(samples, "petra_collector_http_connections_limit") == HARD // 2
    open_now = value(samples, "petra_collector_http_connections")
    assert open_now is not None
    assert open_now <= HARD // 2
