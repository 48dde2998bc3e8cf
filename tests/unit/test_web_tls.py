"""The client-certificate policies offered (Go's three that check a certificate), by real
handshakes over 127.0.0.1, on both loops."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import trustme

from collector.web_tls import CLIENT_AUTH_TYPES, SwitchableContext, TlsSetupError, server_context
from tests.webtls import TlsFiles

# policy -> does the handshake succeed with (no certificate, one from the client CA, a stranger's)
EXPECTED = {
    "NoClientCert": (True, True, True),
    "VerifyClientCertIfGiven": (True, True, False),
    "RequireAndVerifyClientCert": (False, True, False),
}


def context_for(files: TlsFiles, policy: str) -> ssl.SSLContext:
    section = files.tls_section(policy)
    ca = section.get("client_ca_file")
    return server_context(
        cert_file=str(files.cert_file),
        key_file=str(files.key_file),
        client_auth_type=next(c for c in CLIENT_AUTH_TYPES if c == policy),
        client_ca_file=None if ca is None else str(files.directory / ca),
        min_version="TLS12",
        max_version=None,
    )


async def answered(port: int, client: ssl.SSLContext) -> bytes | None:
    """The server's greeting, or None when the handshake (or the first read) was refused."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
    except (ssl.SSLError, ConnectionError):
        return None
    try:
        peer = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        greeting = await reader.read()
    except (ssl.SSLError, ConnectionError):
        return None
    finally:
        writer.close()
    return peer if greeting == b"hello" else None


async def serve(context: ssl.SSLContext) -> tuple[asyncio.Server, int]:
    async def greet(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0, ssl=context)
    return server, server.sockets[0].getsockname()[1]


def run_on(loop_name: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    if loop_name == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        uvloop.run(main())
    else:
        asyncio.run(main())


def test_every_offered_policy_is_proven() -> None:
    assert set(EXPECTED) == set(CLIENT_AUTH_TYPES)


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
@pytest.mark.parametrize("policy", list(EXPECTED))
def test_client_auth_type_has_gos_meaning(tmp_path: Path, policy: str, loop_name: str) -> None:
    files = TlsFiles(tmp_path)
    stranger = trustme.CA()

    async def main() -> None:
        server, port = await serve(SwitchableContext(context_for(files, policy)))
        try:
            outcomes = tuple(
                [
                    await answered(port, files.client_context(issuer)) is not None
                    for issuer in (None, files.client_ca, stranger)
                ]
            )
        finally:
            server.close()
        assert outcomes == EXPECTED[policy]

    run_on(loop_name, main)


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_switch_gives_new_handshakes_the_new_certificate(tmp_path: Path, loop_name: str) -> None:
    files = TlsFiles(tmp_path)

    async def main() -> None:
        first = files.served
        switchable = SwitchableContext(context_for(files, "NoClientCert"))
        server, port = await serve(switchable)
        try:
            assert await answered(port, files.client_context()) == first
            renewed = files.renew()
            assert await answered(port, files.client_context()) == first  # not switched yet
            switchable.switch(context_for(files, "NoClientCert"))
            assert await answered(port, files.client_context()) == renewed
        finally:
            server.close()

    run_on(loop_name, main)


@pytest.mark.parametrize(
    ("min_version", "max_version", "refused_client"),
    [
        ("TLS13", None, ("maximum_version", ssl.TLSVersion.TLSv1_2)),
        ("TLS12", "TLS12", ("minimum_version", ssl.TLSVersion.TLSv1_3)),
    ],
    ids=["min", "max"],
)
def test_version_bounds_are_enforced(
    tmp_path: Path,
    min_version: str,
    max_version: str | None,
    refused_client: tuple[str, ssl.TLSVersion],
) -> None:
    """A client limited to a version outside the bounds is refused; a client offering every
    version is answered."""
    files = TlsFiles(tmp_path)
    context = server_context(
        cert_file=str(files.cert_file),
        key_file=str(files.key_file),
        client_auth_type="NoClientCert",
        client_ca_file=None,
        min_version=min_version,
        max_version=max_version,
    )

    async def main() -> None:
        server, port = await serve(context)
        outside = files.client_context()
        setattr(outside, *refused_client)
        try:
            assert await answered(port, outside) is None
            assert await answered(port, files.client_context()) is not None
        finally:
            server.close()

    asyncio.run(main())


def test_verify_without_a_client_ca_file_uses_the_systems_cas(tmp_path: Path) -> None:
    """As in Go: no client_ca_file means the system's roots, which never signed a test CA."""
    files = TlsFiles(tmp_path)
    context = server_context(
        cert_file=str(files.cert_file),
        key_file=str(files.key_file),
        client_auth_type="RequireAndVerifyClientCert",
        client_ca_file=None,
        min_version="TLS12",
        max_version=None,
    )

    async def main() -> None:
        server, port = await serve(context)
        try:
            assert await answered(port, files.client_context(files.client_ca)) is None
        finally:
            server.close()

    asyncio.run(main())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"client_ca_file": "tls.key"}, "holds no PEM certificate"),
        ({"cert_file": "."}, "cannot be read"),
    ],
)
def test_unusable_tls_files_are_named(tmp_path: Path, change: dict[str, str], message: str) -> None:
    files = TlsFiles(tmp_path)
    paths = {
        "cert_file": str(files.cert_file),
        "key_file": str(files.key_file),
        "client_ca_file": str(files.client_ca_file),
    } | {key: str(tmp_path / name) for key, name in change.items()}
    with pytest.raises(TlsSetupError, match=message) as raised:
        server_context(
            cert_file=paths["cert_file"],
            key_file=paths["key_file"],
            client_auth_type="VerifyClientCertIfGiven",
            client_ca_file=paths["client_ca_file"],
            min_version="TLS12",
            max_version=None,
        )
    assert str(tmp_path) in str(raised.value)
