"""The daemon's HTTP side: one aiohttp app on the daemon's own event loop."""

from __future__ import annotations

import gzip
import time
from typing import Any, Final, Protocol

import orjson
from aiohttp import web

from collector import __version__
from collector.exposition import (
    Exposition,
    negotiate,
    piece_bytes,
    piece_size,
)
from collector.gzipstream import LEVEL as GZIP_LEVEL
from collector.page import refresh_seconds, render_status_page
from collector.state import OrgState
from collector.status import org_detail, status_document


class Daemon(Protocol):
    """What the web side needs from the running daemon."""

    @property
    def exposition(self) -> Exposition: ...

    @property
    def ready(self) -> bool: ...

    @property
    def max_staleness(self) -> float: ...

    @property
    def shard(self) -> str | None: ...

    def org_states(self) -> list[OrgState]: ...

    async def reload(self, reason: str) -> list[str]:
        """Reload the config; returns the problems (empty when it was applied)."""
        ...


DAEMON: Final = web.AppKey("daemon", Daemon)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_INDENT_2),
        status=status,
        content_type="application/json",
    )


async def metrics(request: web.Request) -> web.StreamResponse:
    """`/metrics`: the fast cached body when it is the negotiated one, else the stock one.

    The fast body is sent piece by piece (a block of tenant lines decompressed only
    as it is written), so no second copy of a large body is ever held.
    """
    exposition = request.app[DAEMON].exposition
    negotiated = negotiate(request.headers.get("Accept", ""))
    headers = {"Content-Type": negotiated.content_type}
    gzipped = "gzip" in request.headers.get("Accept-Encoding", "")
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    if negotiated.fast is None:
        body = negotiated.encoder(exposition.registry)
        if gzipped:
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
        return web.Response(body=body, headers=headers)
    pieces = await exposition.pieces(negotiated.fast, gzipped=gzipped)
    response = web.StreamResponse(headers=headers)
    response.content_length = sum(piece_size(piece) for piece in pieces)
    await response.prepare(request)
    if request.method != "HEAD":  # a HEAD answer has the headers (and length) only
        for piece in pieces:
            await response.write(piece_bytes(piece))
    await response.write_eof()
    return response


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    if request.app[DAEMON].ready:
        return web.Response(text="ready\n")
    return web.Response(text="not ready: config not loaded or scheduler not running\n", status=503)


def _document(daemon: Daemon) -> dict[str, Any]:
    return status_document(
        daemon.org_states(),
        time.time(),
        daemon.max_staleness,
        shard=daemon.shard,
        version=__version__,
    )


async def status_json(request: web.Request) -> web.Response:
    return _json(_document(request.app[DAEMON]))


async def org_json(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON]
    name = request.match_info["name"]
    for state in daemon.org_states():
        if state.name == name:
            return _json(org_detail(state, time.time(), daemon.max_staleness))
    return _json({"error": f"no org named {name!r} in this instance"}, status=404)


async def index(request: web.Request) -> web.Response:
    refresh = refresh_seconds(request.query.get("refresh"))
    page = render_status_page(_document(request.app[DAEMON]), refresh=refresh)
    return web.Response(text=page, content_type="text/html", charset="utf-8")


async def reload(request: web.Request) -> web.Response:
    problems = await request.app[DAEMON].reload("http")
    if problems:
        return _json({"status": "rejected", "problems": problems}, status=400)
    return _json({"status": "reloaded"})


def make_web_app(daemon: Daemon) -> web.Application:
    app = web.Application()
    app[DAEMON] = daemon
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/status", status_json)
    app.router.add_get("/api/v1/orgs/{name}", org_json)
    app.router.add_get("/", index)
    app.router.add_post("/-/reload", reload)
    return app
