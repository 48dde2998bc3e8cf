"""The listener's lock: the web config in force, kept current, and what it asks of every answer.

The web config and every file it names are watched by `stat` (as key files
are); a change is loaded once it has held still for one check, so a
certificate and its key renewed one after the other are never read
half-renewed. A config that fails to load leaves the last good one in force.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Final

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from collector.config_reader import ConfigError
from collector.keys import Signature, file_signature
from collector.labelled_counter import LabelledCounter
from collector.web_basicauth import FAILURES, BasicAuth, Verdict, new_check_executor
from collector.web_config import WebConfig, load_web_config
from collector.web_tls import SwitchableContext

CHECK_SECONDS: Final = 2.0
# They reveal nothing, and kubelet probes carry no credentials.
PROBE_PATHS: Final = frozenset({"/healthz", "/readyz", "/-/healthy", "/-/ready"})
REALM: Final = 'Basic realm="petra-collector", charset="UTF-8"'
# On every answer; `Server` names the product only (aiohttp's default tells scanners the
# Python and aiohttp versions).
OWN_HEADERS: Final = {"X-Content-Type-Options": "nosniff", "Server": "petra-collector"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FilesSignature = tuple[Signature | None, ...]


class WebGuardMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.auth_failures = LabelledCounter(
            registry,
            "petra_collector_http_auth_failures",
            "Requests refused for want of valid basic auth credentials, by reason: "
            "no_credentials, invalid_credentials, overloaded (too many checks at once).",
            "reason",
            (verdict.value for verdict in FAILURES),
        )
        self.reload_successful = Gauge(
            "petra_collector_web_config_last_reload_successful",
            "1 if the web config (and the files it names) last loaded, 0 if the last "
            "change was rejected and the previous web config is still in force.",
            registry=registry,
        )
        self.reload_success_timestamp = Gauge(
            "petra_collector_web_config_last_reload_success_timestamp_seconds",
            "When the web config in force was loaded (Unix time).",
            registry=registry,
        )


class WebGuard:
    """TLS context, basic auth and headers for the listener, from the current web config."""

    def __init__(
        self,
        config: WebConfig | None,
        registry: CollectorRegistry,
        logger: structlog.typing.FilteringBoundLogger,
        *,
        check_seconds: float = CHECK_SECONDS,
    ) -> None:
        self._log = logger
        self._check_seconds = check_seconds
        self._metrics = WebGuardMetrics(registry)
        self._executor = new_check_executor()
        self._config = config
        self._context = None
        if config is not None and config.ssl_context is not None:
            self._context = SwitchableContext(config.ssl_context)
        self._auth: BasicAuth | None = None
        self._auth = self._new_auth(config)
        self._headers = self._new_headers(config)
        self._seen = self._loaded = _signature(config)
        self._metrics.reload_successful.set(1)
        self._metrics.reload_success_timestamp.set(time.time())

    @property
    def ssl_context(self) -> SwitchableContext | None:
        """What the listener is created with; None: plain HTTP."""
        return self._context

    @property
    def config(self) -> WebConfig | None:
        return self._config

    @property
    def answer_headers(self) -> dict[str, str]:
        """The headers every answer carries: the web config's and ours."""
        return dict(self._headers)

    def _new_auth(self, config: WebConfig | None) -> BasicAuth | None:
        if config is None or not config.users:
            return None
        if self._auth is not None and self._auth.users == dict(config.users):
            return self._auth  # same users: the good pairs it remembers stay good
        return BasicAuth(dict(config.users), self._executor)

    @staticmethod
    def _new_headers(config: WebConfig | None) -> dict[str, str]:
        return {**dict(() if config is None else config.headers), **OWN_HEADERS}

    # -- keeping the config current ---------------------------------------------------

    async def watch(self) -> None:
        """Re-read the web config when it or a file it names changed; runs until cancelled."""
        if self._config is None:
            return
        while True:
            await asyncio.sleep(self._check_seconds)
            await self.check()

    async def check(self) -> None:
        """One look at the files: load a change that has held still since the last look."""
        if self._config is None:
            return
        signature = _signature(self._config)
        if signature != self._seen:
            self._seen = signature
            return
        if signature == self._loaded:
            return
        self._loaded = signature
        try:
            config = await asyncio.to_thread(self._load, self._config.source)
        except ConfigError as error:
            self._metrics.reload_successful.set(0)
            self._log.error(
                "web_config_reload_failed",
                source=self._config.source,
                problems=error.problems,
                action="the previous web config stays in force",
            )
            return
        self._adopt(config)

    def _load(self, source: str) -> tuple[WebConfig, BasicAuth | None]:
        config = load_web_config(source)
        if (config.tls is None) != (self._context is None):
            change = "adds tls_server_config" if self._context is None else "drops it"
            raise ConfigError(
                [
                    (
                        f"{source}: tls_server_config: the file now {change}; whether the port "
                        "speaks TLS changes only with a restart"
                    )
                ]
            )
        # Made here, off the event loop: it hashes the decoy for unknown users.
        return config, self._new_auth(config)

    def _adopt(self, loaded: tuple[WebConfig, BasicAuth | None]) -> None:
        config, auth = loaded
        self._config = config
        if self._context is not None and config.ssl_context is not None:
            self._context.switch(config.ssl_context)
        self._auth = auth
        self._headers = self._new_headers(config)
        self._metrics.reload_successful.set(1)
        self._metrics.reload_success_timestamp.set(time.time())
        self._log.info("web_config_loaded", source=config.source, summary=config.describe())

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- what every request and answer gets ------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        auth = self._auth
        if auth is None or _is_probe(request):
            return await handler(request)
        verdict = await auth.check(request.headers.get("Authorization"))
        if verdict is Verdict.OK:
            return await handler(request)
        self._metrics.auth_failures.count(verdict.value)
        return web.Response(
            status=401, text="401 Unauthorized\n", headers={"WWW-Authenticate": REALM}
        )

    async def on_prepare(self, _request: web.Request, response: web.StreamResponse) -> None:
        """The file's headers and ours on every answer; a header the page set stays its own."""
        for name, value in self._headers.items():
            if name in OWN_HEADERS or name not in response.headers:
                response.headers[name] = value


def _is_probe(request: web.Request) -> bool:
    """Whether the route the router matched is a probe's: decided by the route, not by a
    second reading of the path (`/-%2Fhealthy` decodes to a probe path but matches none)."""
    resource = request.match_info.route.resource
    return resource is not None and resource.canonical in PROBE_PATHS


def _signature(config: WebConfig | None) -> FilesSignature:
    return () if config is None else tuple(file_signature(path) for path in config.files())
