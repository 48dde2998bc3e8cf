"""The daemon's HTTP side: one aiohttp app on the daemon's own event loop."""

from __future__ import annotations

import asyncio
import gzip
import time
from typing import Any, Final, Protocol

import orjson
from aiohttp import web

from collector import __version__
from collector.exposition import (
    Exposition,
    FastFormat,
    Piece,
    negotiate,
    piece_bytes,
    piece_size,
)
from collector.gzipstream import LEVEL as GZIP_LEVEL
from collector.page import refresh_seconds, render_status_page
from collector.state import OrgState
from collector.status import org_detail, status_document

# Between two slices of a long render (exposition.STEP_SECONDS, 20 ms): a quarter of the
# loop's time is left to polling while a large first scrape renders everything.
SCRAPE_PAUSE_SECONDS: Final = 0.005


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
EXPOSITION_LOCK: Final = web.AppKey("exposition_lock", asyncio.Lock)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_INDENT_2),
        status=status,
        content_type="application/json",
    )


async def _fast_pieces(
    app: web.Application, exposition: Exposition, fmt: FastFormat, *, gzipped: bool
) -> list[Piece]:
    """The cached exposition, letting the event loop run (polls go on) every few ms.

    One scrape at a time: the cache it updates is not made for two at once. The
    pieces it returns never change, so they are sent after the lock is let go.
    """
    async with app[EXPOSITION_LOCK]:
        steps = exposition.steps(fmt, gzipped=gzipped)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                pieces: list[Piece] = done.value
                return pieces
            # Not sleep(0): a poll needs several loop turns, and this leaves them room.
            await asyncio.sleep(SCRAPE_PAUSE_SECONDS)


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
    pieces = await _fast_pieces(request.app, exposition, negotiated.fast, gzipped=gzipped)
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
    app[EXPOSITION_LOCK] = asyncio.Lock()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/status", status_json)
    app.router.add_get("/api/v1/orgs/{name}", org_json)
    app.router.add_get("/", index)
    app.router.add_post("/-/reload", reload)
    return app
