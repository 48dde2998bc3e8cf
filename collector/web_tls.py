"""The listener's TLS: a server context per web config, and one the listener keeps while
the certificate behind it is renewed.

Of Go's five client-certificate policies, the three that check a certificate
they take are offered; each is one of the `ssl` module's verify modes. The two
that take any certificate unchecked (`RequestClientCert`, `RequireAnyClientCert`)
are refused by web_config.py: exporter-toolkit calls them insecure, and Go gives
them a meaning only with `client_allowed_sans`, which is not supported here.
"""

from __future__ import annotations

import ssl
from typing import Final, Literal, Self

ClientAuth = Literal["NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"]
# policy -> verify mode; a certificate asked for is checked against the client CAs
_POLICIES: Final[dict[ClientAuth, ssl.VerifyMode]] = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
CLIENT_AUTH_TYPES: Final[tuple[ClientAuth, ...]] = tuple(_POLICIES)
TLS_VERSIONS: Final = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


class TlsSetupError(Exception):
    """A TLS setting that cannot be put into a context (message names the setting)."""


def server_context(
    *,
    cert_file: str,
    key_file: str,
    client_auth_type: ClientAuth,
    client_ca_file: str | None,
    min_version: str,
    max_version: str | None,
) -> ssl.SSLContext:
    """A server context, as exporter-toolkit would configure Go for the same settings."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[min_version]
    if max_version is not None:
        context.maximum_version = TLS_VERSIONS[max_version]
    try:
        context.load_cert_chain(cert_file, key_file)
    except ssl.SSLError as error:
        raise TlsSetupError(
            f"cert_file {cert_file} and key_file {key_file} are not a certificate and its "
            f"private key in PEM ({error.reason or error})"
        ) from None
    except OSError as error:
        raise TlsSetupError(
            f"cert_file {cert_file} or key_file {key_file} cannot be read: "
            f"{error.strerror or error}"
        ) from None
    mode = _POLICIES[client_auth_type]
    if mode != ssl.CERT_NONE:
        _load_client_cas(context, client_ca_file)
    context.verify_mode = mode
    return context


def _load_client_cas(context: ssl.SSLContext, client_ca_file: str | None) -> None:
    if client_ca_file is None:
        # Go verifies against the system's roots when no CA pool is given.
        context.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        return
    try:
        context.load_verify_locations(cafile=client_ca_file)
    except ssl.SSLError as error:
        raise TlsSetupError(
            f"client_ca_file {client_ca_file} holds no PEM certificate ({error.reason or error})"
        ) from None
    except OSError as error:
        raise TlsSetupError(
            f"client_ca_file {client_ca_file} cannot be read: {error.strerror or error}"
        ) from None


class SwitchableContext(ssl.SSLContext):
    """The listener's context: each new connection is wrapped by the current server context.

    asyncio and uvloop call `wrap_bio` once per accepted connection, so after
    `switch()` every new handshake gets the new certificate and policy, while
    connections already open keep theirs.
    """

    _current: ssl.SSLContext

    def __new__(cls, current: ssl.SSLContext) -> Self:
        switchable = super().__new__(cls, ssl.PROTOCOL_TLS_SERVER)
        switchable._current = current
        return switchable

    def __init__(self, current: ssl.SSLContext) -> None:
        self._current = current

    def switch(self, context: ssl.SSLContext) -> None:
        self._current = context

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return self._current.wrap_bio(incoming, outgoing, server_side, server_hostname, session)
