"""The listener's TLS: a server context per web config, and one the listener keeps while
the certificate behind it is renewed.

Go's `crypto/tls` has five client-certificate policies; OpenSSL, as Python's
`ssl` module drives it, has three verify modes and no way to accept a
certificate it cannot verify. Two of Go's policies do exactly that
(`RequestClientCert`, `RequireAnyClientCert`: ask for a certificate, check
nothing about it), so for them OpenSSL's verify callback is set, through
ctypes, to one that accepts every certificate.
"""

from __future__ import annotations

import _ssl
import ctypes
import ssl
import sys
from typing import Final, Literal, Self

ClientAuth = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
CLIENT_AUTH_TYPES: Final[tuple[ClientAuth, ...]] = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
# policy -> (verify mode, whether the certificate is verified against the CAs)
_POLICIES: Final[dict[ClientAuth, tuple[ssl.VerifyMode, bool]]] = {
    "NoClientCert": (ssl.CERT_NONE, False),
    "RequestClientCert": (ssl.CERT_OPTIONAL, False),
    "RequireAnyClientCert": (ssl.CERT_REQUIRED, False),
    "VerifyClientCertIfGiven": (ssl.CERT_OPTIONAL, True),
    "RequireAndVerifyClientCert": (ssl.CERT_REQUIRED, True),
}
TLS_VERSIONS: Final = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# OpenSSL's SSL_VERIFY_* bits for each verify mode, to check the context we reach is ours.
_OPENSSL_MODES: Final = {ssl.CERT_NONE: 0, ssl.CERT_OPTIONAL: 1, ssl.CERT_REQUIRED: 3}


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
    mode, verified = _POLICIES[client_auth_type]
    if verified:
        _load_client_cas(context, client_ca_file)
    context.verify_mode = mode
    if mode != ssl.CERT_NONE and not verified:
        accept_any_client_certificate(context)
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


_VerifyCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


def _accept(_preverify_ok: int, _store: int | None) -> int:
    return 1


# Module-level, so the C callback outlives every context it is set on.
_accept_every_certificate = _VerifyCallback(_accept)


def accept_any_client_certificate(context: ssl.SSLContext) -> None:
    """Make `context` take any client certificate, verified or not (Go's Request- and
    RequireAnyClientCert); its verify mode still decides whether one is required."""
    if sys.implementation.name != "cpython":
        raise TlsSetupError("this client_auth_type needs CPython")
    library = ctypes.CDLL(_ssl.__file__)  # its symbols include the libssl it is linked to
    get_mode = library.SSL_CTX_get_verify_mode
    get_mode.argtypes, get_mode.restype = [ctypes.c_void_p], ctypes.c_int
    set_verify = library.SSL_CTX_set_verify
    set_verify.argtypes, set_verify.restype = [ctypes.c_void_p, ctypes.c_int, _VerifyCallback], None
    # A PySSLContext is the object header followed by its SSL_CTX pointer.
    handle = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    expected = _OPENSSL_MODES[context.verify_mode]
    if not handle or get_mode(handle) != expected:
        raise TlsSetupError("this client_auth_type is not supported by this Python's ssl module")
    set_verify(handle, expected, _accept_every_certificate)


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
