"""The daemon's HTTP side: one aiohttp app on the daemon's own event loop."""

from __future__ import annotations

import gzip
import time
from collections.abc import Mapping
from typing import Final, Protocol, TypeVar

import orjson
from aiohttp import web

from collector import __version__
from collector.exposition import (
    Exposition,
    negotiate,
    piece_size,
    send_pieces,
)
from collector.gzipstream import LEVEL as GZIP_LEVEL
from collector.state import OrgState
from collector.web_encoding import accepts_gzip
from collector.web_guard import OWN_HEADERS, WebGuard
from collector.web_page import (
    Asset,
    load_assets,
    refresh_seconds,
    render_detail_fragment,
    render_rows_fragment,
    render_status_page,
)
from collector.web_status import OrgDetail, StatusDocument, org_detail, status_document

# The status page and its assets load nothing from anywhere else and run no inline
# code, so even HTML that slipped past the escaping could not run or call out.
PAGE_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}


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

    @property
    def telemetry_path(self) -> str:
        """Where /metrics is served (`--web.telemetry-path`); fixed until a restart."""
        ...

    def org_states(self) -> list[OrgState]: ...

    async def reload(self, reason: str) -> list[str]:
        """Reload the config; returns the problems (empty when it was applied)."""
        ...


DAEMON: Final = web.AppKey("daemon", Daemon)
ASSETS: Final = web.AppKey("assets", Mapping[str, Asset])
AnyResponse = TypeVar("AnyResponse", bound=web.StreamResponse)


def protect_page(response: AnyResponse) -> AnyResponse:
    """Adds the page's security headers (CSP, no framing, no sniffing) to `response`."""
    response.headers.update(PAGE_SECURITY_HEADERS)
    return response


def _html(text: str) -> web.Response:
    response = web.Response(text=text, content_type="text/html", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    return protect_page(response)


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_INDENT_2),
        status=status,
        content_type="application/json",
    )


async def metrics(request: web.Request) -> web.StreamResponse:
    """`/metrics`: the fast cached body when it is the negotiated one, else the stock one.

    The fast body is sent a few pieces at a time (`send_pieces`: a block of lines is
    decompressed only as it is written, the event loop turning in between), so no
    second copy of a large body is ever held and probes are answered meanwhile.
    """
    exposition = request.app[DAEMON].exposition
    negotiated = negotiate(request.headers.get("Accept", ""))
    headers = {"Content-Type": negotiated.content_type}
    gzipped = accepts_gzip(request.headers.get("Accept-Encoding"))
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
        await send_pieces(pieces, response.write)
    await response.write_eof()
    return response


async def healthz(_request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.Response:
    if request.app[DAEMON].ready:
        return web.Response(text="ready\n")
    return web.Response(text="not ready: config not loaded or scheduler not running\n", status=503)


def _document(daemon: Daemon) -> StatusDocument:
    return status_document(
        daemon.org_states(),
        time.time(),
        daemon.max_staleness,
        shard=daemon.shard,
        version=__version__,
    )


async def status_json(request: web.Request) -> web.Response:
    return _json(_document(request.app[DAEMON]))


def _org_detail(daemon: Daemon, name: str) -> OrgDetail | None:
    for state in daemon.org_states():
        if state.name == name:
            return org_detail(state, time.time(), daemon.max_staleness)
    return None


def _no_such_org(name: str) -> str:
    return f"no org named {name!r} in this instance"


async def org_json(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    detail = _org_detail(request.app[DAEMON], name)
    if detail is None:
        return _json({"error": _no_such_org(name)}, status=404)
    return _json(detail)


async def index(request: web.Request) -> web.Response:
    refresh = refresh_seconds(request.query.get("refresh"))
    query = request.query.get("q", "")
    daemon = request.app[DAEMON]
    page = render_status_page(
        _document(daemon), refresh=refresh, query=query, metrics_path=daemon.telemetry_path
    )
    return _html(page)


async def page_rows(request: web.Request) -> web.Response:
    """The page's rows and summary, for its refresh: rendered by the code that renders `/`."""
    return _html(render_rows_fragment(_document(request.app[DAEMON])))


async def page_org(request: web.Request) -> web.Response:
    """An org's tenants as the row the page puts under the org's row."""
    name = request.match_info["name"]
    detail = _org_detail(request.app[DAEMON], name)
    if detail is None:
        return protect_page(web.Response(text=_no_such_org(name) + "\n", status=404))
    return _html(render_detail_fragment(detail))


async def static_file(request: web.Request) -> web.Response:
    """The page's CSS, script and icon, from memory; revalidated by ETag on each load."""
    asset = request.app[ASSETS].get(request.match_info["name"])
    if asset is None:
        raise web.HTTPNotFound
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
    if asset.etag in request.headers.get("If-None-Match", ""):
        return protect_page(web.Response(status=304, headers=headers))
    response = web.Response(body=asset.body, headers=headers)
    response.headers["Content-Type"] = asset.content_type
    return protect_page(response)


async def reload(request: web.Request) -> web.Response:
    problems = await request.app[DAEMON].reload("http")
    if problems:
        return _json({"status": "rejected", "problems": problems}, status=400)
    return _json({"status": "reloaded"})


async def _own_headers(_request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(OWN_HEADERS)


def make_web_app(daemon: Daemon, guard: WebGuard | None = None) -> web.Application:
    """The routes; with `guard`, basic auth and the web config's headers on every answer."""
    app = web.Application(middlewares=[] if guard is None else [guard.middleware])
    app.on_response_prepare.append(_own_headers if guard is None else guard.on_prepare)
    app[DAEMON] = daemon
    app[ASSETS] = load_assets()
    app.router.add_get(daemon.telemetry_path, metrics)
    for path in ("/healthz", "/-/healthy"):
        app.router.add_get(path, healthz)
    for path in ("/readyz", "/-/ready"):
        app.router.add_get(path, readyz)
    app.router.add_get("/api/v1/status", status_json)
    app.router.add_get("/api/v1/orgs/{name}", org_json)
    app.router.add_get("/", index)
    app.router.add_get("/page/rows", page_rows)
    app.router.add_get("/page/orgs/{name}", page_org)
    app.router.add_get("/static/{name}", static_file)
    app.router.add_post("/-/reload", reload)
    return app
