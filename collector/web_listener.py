"""The listening sockets, with a cap on open connections and a deadline on request headers.

aiohttp's own sites hand every accepted connection to a request handler and keep it
for as long as the client likes; past the process's open-file limit, `accept` fails
in a loop that asyncio logs at error level, and everything else that opens a file
(the state file, a key file, a poll) fails too. So the daemon accepts connections
itself, as Go exporters do with a read-header timeout and Prometheus with
`--web.max-connections`:

- A connection must deliver a whole request header within `header_timeout` of
  being accepted, TLS handshake included, and the next one within `IDLE_SECONDS`
  of its last answer; otherwise it is closed.
- At most `max_connections` are open. At the cap, a new connection makes room by
  closing the one that has waited longest without a request being answered (an
  idle or slowloris client, never one whose answer is being made); when every
  connection is busy, accepting pauses and new clients wait in the kernel's backlog,
  where they cost the daemon nothing.

Neither closing writes a log line: they are counted in
`petra_collector_http_connections_closed_total`.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge

from collector.config import HostPort
from collector.labelled_counter import LabelledCounter
from collector.web_errors import ErrorAnswers
from collector.web_guard import Handler

# Longer than Prometheus' usual 1-minute scrape interval, so its kept-alive connection is
# reused between scrapes rather than closed under it (aiohttp's long-time default).
IDLE_SECONDS: Final = 75.0
BACKLOG: Final = 128
ACCEPT_RETRY_SECONDS: Final = 0.1
ACCEPT_FAILURE_LOG_SECONDS: Final = 60.0
# Out of files or memory: wait for some to be released instead of spinning.
_RESOURCE_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
CLOSE_REASONS: Final = ("header_timeout", "evicted")
# aiohttp types `access_log` as a Logger, but None is its documented "no access log".
_HANDLER_OPTIONS: Final[dict[str, Any]] = {"access_log": None, "keepalive_timeout": IDLE_SECONDS}


@dataclass(eq=False, slots=True)
class _Connection:
    """One accepted client, from `accept` until its socket is closed."""

    deadline: asyncio.TimerHandle | None = None
    handshake: asyncio.Task[object] | None = None  # while the TLS handshake runs
    transport: asyncio.BaseTransport | None = None
    busy: bool = False
    gone: bool = False


class Listener:
    """Accepts clients for aiohttp's `server` on sockets of its own (see the module doc)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        logger: structlog.typing.FilteringBoundLogger,
        *,
        header_timeout: float,
        ssl_context: ssl.SSLContext | None,
        answer_headers: Callable[[], dict[str, str]],
    ) -> None:
        self._server: web.Server | None = None
        self._log = logger
        self._max = 0
        self._header_timeout = header_timeout
        self._ssl = ssl_context
        self._open: set[_Connection] = set()
        # Open connections with no request being answered, the longest-waiting first.
        self._idle: dict[_Connection, None] = {}
        self._room = asyncio.Event()
        self._sockets: list[socket.socket] = []
        self._accepting: list[asyncio.Task[None]] = []
        self._accept_failure_logged = float("-inf")
        self._closed = LabelledCounter(
            registry,
            "petra_collector_http_connections_closed",
            "Client connections the daemon closed, by reason: header_timeout (no whole "
            "request header in time), evicted (closed at the connection cap to make room).",
            "reason",
            CLOSE_REASONS,
        )
        self.errors = ErrorAnswers(registry, logger, answer_headers)
        Gauge(
            "petra_collector_http_connections",
            "Client connections open now (accepted and not yet closed).",
            registry=registry,
        ).set_function(lambda: len(self._open))
        Gauge(
            "petra_collector_http_connections_limit",
            "The most client connections open at once (server.max_connections, at most "
            "half the open-file limit).",
            registry=registry,
        ).set_function(lambda: self._max)

    @property
    def max_connections(self) -> int:
        return self._max

    def start(
        self, server: web.Server, addresses: Sequence[HostPort], *, max_connections: int
    ) -> int:
        """Serve `server` on every address each of `addresses` resolves to; returns the
        first one's port (the one chosen for 0). Raises OSError, naming the address, when
        one cannot be bound; nothing stays bound then."""
        self._server = server
        self._max = max_connections
        sockets: list[socket.socket] = []
        for address in addresses:
            try:
                sockets.extend(bind(address.host, address.port))
            except OSError as error:
                for sock in sockets:
                    sock.close()
                raise OSError(error.errno, f"{address}: {error.strerror or error}") from None
        self._sockets = sockets
        loop = asyncio.get_running_loop()
        self._accepting = [
            loop.create_task(self._accept(sock), name="web-accept") for sock in self._sockets
        ]
        return int(self._sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop accepting and close every connection still waiting for a request; the
        ones being answered are left to aiohttp's graceful shutdown."""
        for task in self._accepting:
            task.cancel()
        await asyncio.gather(*self._accepting, return_exceptions=True)
        for sock in self._sockets:
            sock.close()
        for connection in list(self._idle):
            self._close(connection)

    # -- accepting ----------------------------------------------------------------------

    async def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if len(self._open) >= self._max and not self._idle:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                client, _address = await loop.sock_accept(sock)
            except OSError as error:
                self._accept_failed(error)
                await asyncio.sleep(ACCEPT_RETRY_SECONDS)
                continue
            if len(self._open) >= self._max:
                if not self._idle:  # every connection turned busy while this one was accepted
                    client.close()
                    continue
                self._closed.count("evicted")
                self._close(next(iter(self._idle)))
            self._admit(client)

    def _accept_failed(self, error: OSError) -> None:
        if error.errno not in _RESOURCE_ERRNOS:
            return  # the client gave up before it was accepted (ECONNABORTED and kin)
        now = time.monotonic()
        if now - self._accept_failure_logged >= ACCEPT_FAILURE_LOG_SECONDS:
            self._accept_failure_logged = now
            self._log.warning(
                "http_accept_failed",
                error=error.strerror or str(error),
                open_connections=len(self._open),
                action=f"retrying every {ACCEPT_RETRY_SECONDS:g} s; logged once a minute",
            )

    def _admit(self, client: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        connection = _Connection()
        connection.deadline = loop.call_later(self._header_timeout, self._expire, connection)
        self._open.add(connection)
        self._idle[connection] = None
        connection.handshake = loop.create_task(self._connect(connection, client))

    async def _connect(self, connection: _Connection, client: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        server = self._server
        assert server is not None  # noqa: S101 - start() set it before accepting
        connected = False
        try:
            await loop.connect_accepted_socket(
                lambda: GatedRequestHandler(server, self, connection),
                client,
                ssl=self._ssl,
                ssl_handshake_timeout=None if self._ssl is None else self._header_timeout,
            )
            connected = True
        except (OSError, asyncio.CancelledError):
            pass  # a failed, timed-out or cut-short handshake: asyncio closed the socket
        finally:
            connection.handshake = None
            if not connected:
                self._gone(connection)

    # -- what the request handler tells ----------------------------------------------------

    def made(self, connection: _Connection, transport: asyncio.BaseTransport) -> bool:
        """A connection's handler has its transport; False: it was closed meanwhile."""
        if connection.gone:
            # A stream's transport (asyncio's or uvloop's) has abort(); BaseTransport does not.
            transport.abort()  # type: ignore[attr-defined]
            return False
        connection.transport = transport
        return True

    def lost(self, connection: _Connection) -> None:
        self._gone(connection)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Marks the connection busy while its request is answered and the answer sent: no
        deadline, not evicted."""
        # The connection rides on its handler: no lookup table per request.
        protocol = request.protocol
        if not isinstance(protocol, GatedRequestHandler):
            return await handler(request)
        connection = protocol.connection
        connection.busy = True
        self._idle.pop(connection, None)
        if connection.deadline is not None:
            connection.deadline.cancel()
        try:
            response = await handler(request)
            if not response.prepared:
                # Sent here rather than after this returns (where aiohttp would send it):
                # the connection stays busy, so never evicted, until its answer is out.
                await response.prepare(request)
                await response.write_eof()
            return response
        finally:
            connection.busy = False
            if not connection.gone:
                self._idle[connection] = None
                loop = asyncio.get_running_loop()
                connection.deadline = loop.call_later(IDLE_SECONDS, self._expire, connection)
                self._room.set()

    # -- closing ------------------------------------------------------------------------

    def _expire(self, connection: _Connection) -> None:
        if not connection.busy and not connection.gone:
            self._closed.count("header_timeout")
            self._close(connection)

    def _close(self, connection: _Connection) -> None:
        """Close at once (no TLS close_notify to wait for), and free its place now."""
        if connection.handshake is not None:
            connection.handshake.cancel()
        elif connection.transport is not None:
            connection.transport.abort()  # type: ignore[attr-defined]  # as in made()
        self._gone(connection)

    def _gone(self, connection: _Connection) -> None:
        if connection.gone:
            return
        connection.gone = True
        if connection.deadline is not None:
            connection.deadline.cancel()
        self._open.discard(connection)
        self._idle.pop(connection, None)
        self._room.set()


class GatedRequestHandler(web.RequestHandler):
    """aiohttp's request handler for one connection, which tells the listener when its
    connection opens and closes, and makes its error answers with `Listener.errors`.

    aiohttp has no public hook for either: its `web.Server()` makes a plain handler, and
    the error answers (a request its parser refused, a handler that raised) are made by
    the handler's `handle_error`, the one method overridden here.
    """

    def __init__(self, server: web.Server, listener: Listener, connection: _Connection) -> None:
        super().__init__(server, loop=asyncio.get_running_loop(), **_HANDLER_OPTIONS)
        self._listener = listener
        self.connection = connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._listener.made(self.connection, transport):
            super().connection_made(transport)

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        self._listener.lost(self.connection)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,  # noqa: ARG002 - aiohttp's; it echoes the request
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # as aiohttp: too late for another answer
            raise ConnectionError("an answer was already being sent")
        return self._listener.errors.answer(status, exc)


def bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets on every address `host` resolves to, as asyncio's create_server
    binds them (IPv6 sockets IPv6-only, addresses reusable at once after a restart); with
    port 0, every address gets the port the first one was given."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen: set[tuple[int, str]] = set()
    try:
        for family, kind, proto, _name, address in infos:
            if (family, str(address[0])) in seen:
                continue
            seen.add((family, str(address[0])))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((address[0], port, *address[2:]))
            port = int(sock.getsockname()[1])
            sock.listen(BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets
