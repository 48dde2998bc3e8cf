"""Throwaway certificates, bcrypt hashes and web config files for the TLS and auth tests."""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import trustme
import yaml

SERVER_NAME = "127.0.0.1"


def basic_auth(user: str, password: str) -> dict[str, str]:
    """The request header basic auth sends."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def bcrypt_hash(password: str, cost: int = 4) -> str:
    """A hash as htpasswd -B writes it ($2y$); cost 4 keeps the tests fast."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost)).decode()
    return "$2y$" + hashed.removeprefix("$2b$")


@dataclass
class TlsFiles:
    """A CA that signs the server's certificate (cert_file, key_file) and client certificates
    (client_ca_file); `renew()` writes a new server certificate over the old files."""

    directory: Path
    ca: trustme.CA = field(default_factory=trustme.CA)
    client_ca: trustme.CA = field(default_factory=trustme.CA)
    serial: int = 0
    served: bytes = b""  # the DER of the certificate in cert_file now

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.client_ca.cert_pem.write_to_path(str(self.client_ca_file))
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.renew()

    @property
    def cert_file(self) -> Path:
        return self.directory / "tls.crt"

    @property
    def key_file(self) -> Path:
        return self.directory / "tls.key"

    @property
    def ca_file(self) -> Path:
        """The CA of the server's certificate, for clients (Prometheus' tls_config.ca_file)."""
        return self.directory / "server-ca.crt"

    @property
    def client_ca_file(self) -> Path:
        return self.directory / "ca.crt"

    def renew(self) -> bytes:
        """A new server certificate in place (key first, then a new file renamed over the
        certificate, as cert-manager's volume swap would land them); returns its DER."""
        leaf = self.ca.issue_cert(SERVER_NAME, organization_unit_name=f"issue {self.serial}")
        self.serial += 1
        leaf.private_key_pem.write_to_path(str(self.key_file))
        staged = self.directory / "tls.crt.new"
        staged.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        staged.replace(self.cert_file)
        self.served = der(leaf)
        return self.served

    def tls_section(self, client_auth_type: str = "NoClientCert", **extra: str) -> dict[str, str]:
        section = {
            "cert_file": self.cert_file.name,  # relative: resolved against the web config
            "key_file": self.key_file.name,
            "client_auth_type": client_auth_type,
            **extra,
        }
        if client_auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert"):
            section["client_ca_file"] = self.client_ca_file.name
        return section

    def client_context(self, certificate_from: trustme.CA | None = None) -> ssl.SSLContext:
        """A client trusting the server's CA; with a client certificate `certificate_from`."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        if certificate_from is not None:
            certificate_from.issue_cert("prometheus@monitoring").configure_cert(context)
        return context


def der(leaf: trustme.LeafCert) -> bytes:
    return ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())


def write_web_config(
    path: Path,
    *,
    tls: dict[str, str] | None = None,
    users: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Path:
    document: dict[str, Any] = {}
    if tls is not None:
        document["tls_server_config"] = tls
    if users is not None:
        document["basic_auth_users"] = users
    if headers is not None:
        document["http_server_config"] = {"headers": headers}
    path.write_text(yaml.safe_dump(document))
    return path
