"""The web configuration file, in the format of Prometheus' exporter-toolkit.

    tls_server_config:   cert_file, key_file, client_auth_type, client_ca_file,
                         min_version, max_version
    http_server_config:  headers (a few security headers), http2
    basic_auth_users:    user: bcrypt hash

As in exporter-toolkit, relative paths are relative to the web config file.
Every problem names the file and the path inside it; unknown keys are errors.
`load_web_config` also reads every file named, so a config it returns is one
the listener can use: the TLS context is built, the hashes are bcrypt hashes.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

from collector.config_reader import (
    ConfigError,
    Problems,
    Section,
    parse_yaml,
    read_text,
    shown,
    type_name,
)
from collector.web_basicauth import bcrypt_cost
from collector.web_tls import (
    CLIENT_AUTH_TYPES,
    TLS_VERSIONS,
    ClientAuth,
    TlsSetupError,
    server_context,
)

# exporter-toolkit's allow-list: header -> the values it may take (None: any).
ALLOWED_HEADERS: Final[dict[str, tuple[str, ...] | None]] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": ("nosniff",),
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
Choice = TypeVar("Choice", bound=str)

# Keys of exporter-toolkit's format this exporter does not implement: named as such.
UNSUPPORTED_TLS_KEYS: Final = (
    "cipher_suites",
    "curve_preferences",
    "prefer_server_cipher_suites",
    "client_allowed_sans",
)
# Go's policies that take a client certificate without checking it: refused, not offered.
UNCHECKED_CLIENT_AUTH_TYPES: Final = ("RequestClientCert", "RequireAnyClientCert")


@dataclass(frozen=True, slots=True)
class TlsSettings:
    cert_file: str
    key_file: str
    client_auth_type: ClientAuth = "NoClientCert"
    client_ca_file: str | None = None
    min_version: str = "TLS12"
    max_version: str | None = None

    def files(self) -> tuple[str, ...]:
        named = (self.cert_file, self.key_file, self.client_ca_file)
        return tuple(path for path in named if path is not None)


@dataclass(frozen=True, slots=True)
class WebConfig:
    """A checked web config; `ssl_context` is built from `tls` (None without TLS)."""

    source: str
    tls: TlsSettings | None = None
    # (user, bcrypt hash); out of the repr: a hash is for an offline guesser to try.
    users: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    headers: tuple[tuple[str, str], ...] = ()
    ssl_context: ssl.SSLContext | None = None

    def files(self) -> tuple[str, ...]:
        """The file itself and every file it names: what is watched for changes."""
        return (self.source, *(() if self.tls is None else self.tls.files()))

    def describe(self) -> str:
        tls = "no TLS" if self.tls is None else f"TLS ({self.tls.client_auth_type})"
        users = f"{len(self.users)} basic auth user(s)" if self.users else "no basic auth"
        return f"{self.source}: {tls}, {users}"


def load_web_config(path: str | Path) -> WebConfig:
    """Read, check and build a web config. Raises ConfigError listing every problem."""
    source = str(path)
    raw = parse_yaml(read_text(path), source)
    problems = Problems(source)
    top = Section(problems, "", raw)
    base_dir = Path(path).resolve().parent
    tls = _parse_tls(top.section("tls_server_config"), base_dir)
    headers = _parse_http(top.section("http_server_config"))
    users = _parse_users(problems, top.value("basic_auth_users"))
    top.finish()
    problems.raise_errors()
    context = None
    if tls is not None:
        try:
            context = _server_context(tls)
        except TlsSetupError as error:
            raise ConfigError([f"{source}: tls_server_config: {error}"]) from None
    return WebConfig(source, tls, users, headers, context)


def _server_context(tls: TlsSettings) -> ssl.SSLContext:
    return server_context(
        cert_file=tls.cert_file,
        key_file=tls.key_file,
        client_auth_type=tls.client_auth_type,
        client_ca_file=tls.client_ca_file,
        min_version=tls.min_version,
        max_version=tls.max_version,
    )


def _file(section: Section, key: str, base_dir: Path) -> str | None:
    value = section.string(key, "")
    if not value:
        return None
    path = Path(value)
    full = str(path if path.is_absolute() else base_dir / path)
    if not Path(full).is_file():
        reason = "is a directory" if Path(full).is_dir() else "not found"
        section.problems.error(section.child(key), f"{full}: {reason}")
        return None
    return full


def _choice(section: Section, key: str, choices: tuple[Choice, ...], default: Choice) -> Choice:
    value = section.string(key, default)
    for choice in choices:
        if choice == value:
            return choice
    section.problems.error(
        section.child(key), f"must be one of {', '.join(choices)}, not {value!r}"
    )
    return default


def _client_auth(section: Section) -> ClientAuth | None:
    """The client certificate policy; None (a problem reported) for one of Go's that
    check no certificate."""
    value = section.value("client_auth_type")
    if value not in UNCHECKED_CLIENT_AUTH_TYPES:
        return _choice(section, "client_auth_type", CLIENT_AUTH_TYPES, "NoClientCert")
    section.problems.error(
        section.child("client_auth_type"),
        f"{value} is refused: it takes a client certificate without checking it "
        "(exporter-toolkit calls it insecure; Go gives it a meaning only with "
        f"client_allowed_sans, which is not supported); use one of {', '.join(CLIENT_AUTH_TYPES)}",
    )
    return None


def _parse_tls(section: Section, base_dir: Path) -> TlsSettings | None:
    if not section.raw:
        section.finish()
        return None
    for key in UNSUPPORTED_TLS_KEYS:
        if key in section.raw:
            section.seen.add(key)
            section.problems.error(
                section.child(key), "is not supported by petra-collector (OpenSSL's defaults)"
            )
    for key in ("cert_file", "key_file"):
        if not section.has(key):
            section.problems.error(section.child(key), "is missing (needed for TLS)")
    cert_file = _file(section, "cert_file", base_dir)
    key_file = _file(section, "key_file", base_dir)
    client_auth = _client_auth(section)
    client_ca_file = _file(section, "client_ca_file", base_dir)
    versions = tuple(TLS_VERSIONS)
    min_version = _choice(section, "min_version", versions, "TLS12")
    max_version = _choice(section, "max_version", versions, min_version)
    if section.has("max_version") and versions.index(max_version) < versions.index(min_version):
        section.problems.error(
            section.child("max_version"), f"{max_version} is below min_version {min_version}"
        )
    if section.has("client_ca_file") and client_auth == "NoClientCert":
        # exporter-toolkit refuses this too: a CA file that is never used is a mistake.
        section.problems.error(
            section.child("client_ca_file"),
            "is set but client_auth_type is NoClientCert; set client_auth_type "
            "(e.g. RequireAndVerifyClientCert)",
        )
    section.finish()
    if cert_file is None or key_file is None or client_auth is None:
        return None
    return TlsSettings(
        cert_file=cert_file,
        key_file=key_file,
        client_auth_type=client_auth,
        client_ca_file=client_ca_file,
        min_version=min_version,
        max_version=max_version if section.has("max_version") else None,
    )


def _string_map(problems: Problems, path: str, raw: object) -> list[tuple[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        problems.error(path, f"must be a mapping, not {type_name(raw)}")
        return []
    pairs: list[tuple[str, str]] = []
    for key, value in raw.items():
        if not isinstance(key, str) or not isinstance(value, str) or not value.strip():
            problems.error(f"{path}.{key}", f"must be a non-empty string, not {type_name(value)}")
            continue
        pairs.append((key, value.strip()))
    return pairs


def _parse_http(section: Section) -> tuple[tuple[str, str], ...]:
    raw_headers = section.value("headers")
    headers: list[tuple[str, str]] = []
    for name, value in _string_map(section.problems, section.child("headers"), raw_headers):
        allowed = ALLOWED_HEADERS.get(name, ())
        path = f"{section.child('headers')}.{shown(name)}"
        if allowed == ():
            section.problems.error(
                path, f"cannot be configured (allowed: {', '.join(ALLOWED_HEADERS)})"
            )
        elif allowed is not None and value.lower() not in allowed:
            section.problems.error(path, f"must be one of {', '.join(allowed)}, not {value!r}")
        else:
            headers.append((name, value))

    # Accepted for files written for Go exporters; this listener speaks HTTP/1.1 either way.
    section.boolean("http2", default=True)
    section.finish()
    return tuple(headers)


def _parse_users(problems: Problems, raw: object) -> tuple[tuple[str, str], ...]:
    users: list[tuple[str, str]] = []
    for user, hashed in _string_map(problems, "basic_auth_users", raw):
        path = f"basic_auth_users.{shown(user)}"
        if ":" in user:
            problems.error(path, "a user name cannot contain ':'")
        elif bcrypt_cost(hashed) is None:
            # The value is not echoed: a plain password pasted here is what it often is.
            problems.error(
                path,
                "is not a bcrypt hash ($2y$10$ and 53 more characters); make one with "
                "`htpasswd -nBC 10 USER`",
            )
        else:
            users.append((user, hashed))
    return tuple(users)
