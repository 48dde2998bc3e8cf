"""Runs the real daemon in-process against the simulator, both on 127.0.0.1."""

from __future__ import annotations

import asyncio
import io
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from collector.app import Daemon
from collector.config import CliOverrides, HostPort, Shard, load_config
from collector.logs import configure_logging
from collector.petra_simulator import SimulatedOrg, Simulator, start_simulator
from collector.web_config import load_web_config
from tests.leaks import state_file_texts
from tests.waiting import HANG_SECONDS, eventually

# Fast pacing for tests: Petra's real limits would make every test take minutes.
FAST_POLLING: dict[str, float] = {
    "interval_seconds": 1,
    "requests_per_minute_per_key": 600,
    "max_requests_per_second": 200,
    "auth_failure_interval_seconds": 1,
    "shutdown_grace_seconds": 2,
}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def write_config(
    directory: Path,
    base_url: str,
    keys: Mapping[str, str],
    *,
    polling: Mapping[str, float] | None = None,
    api: Mapping[str, object] | None = None,
    extra: str = "",
) -> Path:
    """A config file with one key file per org; returns its path."""
    key_dir = directory / "keys"
    key_dir.mkdir(parents=True, exist_ok=True)
    settings = {**FAST_POLLING, **(polling or {})}
    lines = ["api:", f"  base_url: {json.dumps(base_url)}"]
    lines += [f"  {k}: {json.dumps(v)}" for k, v in (api or {}).items()]
    lines += ["polling:"] + [f"  {k}: {v}" for k, v in settings.items()]
    lines += ["orgs:"]
    for name, key in keys.items():
        (key_dir / name).write_text(key + "\n")
        lines += [f"  - name: {name}", f"    api_key_file: keys/{name}"]
    path = directory / "config.yaml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def parse_metrics(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@dataclass
class Running:
    """A started daemon and simulator, with helpers to read what they expose."""

    daemon: Daemon
    simulator: Simulator
    simulator_url: str
    config_path: Path
    log_stream: io.StringIO
    http: aiohttp.ClientSession
    task: asyncio.Task[None]
    pages: list[str] = field(default_factory=list)
    responses: list[aiohttp.ClientResponse] = field(default_factory=list)  # for their headers
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.daemon.bound_port}"

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str]:
        async with self.http.get(self.url + path, **kwargs) as response:
            text = await response.text()
            self.pages.append(text)
            return response.status, text

    async def post(self, path: str, **kwargs: Any) -> tuple[int, str]:
        async with self.http.post(self.url + path, **kwargs) as response:
            text = await response.text()
            self.pages.append(text)
            return response.status, text

    async def metrics(self) -> Samples:
        status, text = await self.get("/metrics")
        assert status == 200
        return parse_metrics(text)

    def logs(self) -> list[dict[str, Any]]:
        lines = self.log_stream.getvalue().splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def events(self, event: str, **fields: object) -> list[dict[str, Any]]:
        return [
            line
            for line in self.logs()
            if line["event"] == event and all(line.get(k) == v for k, v in fields.items())
        ]

    async def everything_shown(
        self, orgs: Iterable[str], state_file: Path, section: str
    ) -> list[str]:
        """What a reader of the daemon can see: /metrics, the page and its fragments, the
        JSON of the whole and of each of `orgs`, the log so far, and the state file once
        it holds a `section` (its writer runs a moment after the changes)."""
        paths = ["/metrics", "/", "/page/rows", "/api/v1/status"]
        for name in orgs:
            paths += [f"/api/v1/orgs/{name}", f"/page/orgs/{name}"]
        for path in paths:
            status, _text = await self.get(path)
            # An error page shows nothing, so a leak test over it would pass on a leak.
            assert status == 200, f"{path} answered {status}"
        shown = [*self.pages, self.log_stream.getvalue()]

        async def state_with_section() -> list[str] | None:
            texts = await asyncio.to_thread(_state_texts, state_file)
            return texts if any(f'"{section}"' in text for text in texts) else None

        shown += await eventually(state_with_section, f"a state file with {section}")
        return shown

    async def wait_for(
        self, check: Callable[[], Awaitable[bool]], within: float = HANG_SECONDS, what: str = ""
    ) -> None:
        """Until `check()` is true; `within` bounds a hang (tests/waiting.py)."""
        await eventually(check, what, within=within)

    async def wait_metric(
        self, name: str, expected: float | None, within: float = HANG_SECONDS, **labels: str
    ) -> Samples:
        """Wait until a sample has `expected` (None: until it is absent); returns the scrape."""
        latest: Samples = {}

        async def check() -> bool:
            nonlocal latest
            latest = await self.metrics()
            return value(latest, name, **labels) == expected

        await self.wait_for(check, within, f"{name}{labels} == {expected}")
        return latest


def _state_texts(path: Path) -> list[str]:
    """The state file as it is on disk and as a reader rebuilds it; none while it does not
    exist yet."""
    return list(state_file_texts(path)) if path.exists() else []


@asynccontextmanager
async def running_daemon(
    tmp_path: Path,
    orgs: Iterable[SimulatedOrg],
    *,
    extra_keys: Mapping[str, str] | None = None,
    polling: Mapping[str, float] | None = None,
    api: Mapping[str, object] | None = None,
    simulator: Simulator | None = None,
    environ: Mapping[str, str] | None = None,
    base_url: str | None = None,
    shard: Shard | None = None,
    extra_config: str = "",
    web_config: Path | None = None,
    client_ssl: ssl.SSLContext | None = None,
    http_headers: dict[str, str] | None = None,
    web_config_check_seconds: float = 0.2,
) -> AsyncIterator[Running]:
    """Simulator with `orgs`, and a daemon configured with their keys plus `extra_keys`;
    `extra_config` is appended to the config file (more top-level sections).

    With `web_config`, the daemon is locked by that file; `client_ssl` and
    `http_headers` (credentials) are what the test's HTTP session then speaks to it with.
    """
    org_list = list(orgs)
    sim = simulator or Simulator(org_list)
    sim_runner, sim_port = await start_simulator(sim, "127.0.0.1", 0)
    simulator_url = f"http://127.0.0.1:{sim_port}"
    keys = {org.name: org.key for org in org_list} | dict(extra_keys or {})
    config_path = write_config(
        tmp_path, base_url or simulator_url, keys, polling=polling, api=api, extra=extra_config
    )
    stream = io.StringIO()
    configure_logging("json", "debug", stream=stream)
    daemon = Daemon(
        load_config(config_path),
        overrides=CliOverrides(listen=(HostPort("127.0.0.1", 0),), shard=shard),
        config_path=str(config_path),
        environ=environ or {},
        install_signal_handlers=False,
        web_config=None if web_config is None else load_web_config(web_config),
        web_config_check_seconds=web_config_check_seconds,
    )
    task = asyncio.create_task(daemon.run())
    serving = asyncio.ensure_future(daemon.serving.wait())
    await asyncio.wait({serving, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    serving.cancel()
    if task.done():
        task.result()
    connector = aiohttp.TCPConnector(ssl=client_ssl) if client_ssl is not None else None
    async with aiohttp.ClientSession(connector=connector, headers=http_headers) as http:
        running = Running(daemon, sim, simulator_url, config_path, stream, http, task)
        if client_ssl is not None:
            running.scheme = "https"
        try:
            yield running
        finally:
            daemon.stop()
            await asyncio.wait_for(task, timeout=10)
            await sim_runner.cleanup()
