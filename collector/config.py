"""The config file's schema: YAML -> frozen, validated `Settings`.

The dataclasses below are every option and its default; the `_parse_*`
functions read each section with config_reader.py, which collects every
problem at once, each named by file and path
(`config.yaml: orgs[3].api_key_file: file not found`).
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final, Literal
from urllib.parse import urlsplit

from collector import __version__
from collector.apikey import ApiKey, InvalidKeyError
from collector.config_reader import (
    Problems,
    Section,
    looks_like_key,
    parse_yaml,
    read_text,
    shown,
    type_name,
)
from collector.keys import KeyLoadError, KeySource, permission_warning
from collector.sharding import owners_of, owns

DEFAULT_BASE_URL: Final = "https://api.petrasecurity.com"
DEFAULT_PORT: Final = 9865
PETRA_PUBLISHED_REQUESTS_PER_MINUTE: Final = 10
PETRA_BILLING_REQUESTS_PER_MINUTE: Final = 1  # /v1/billable-users, per the newer reference
ORG_NAME: Final = re.compile(r"[A-Za-z0-9_.-]+")
ORG_NAME_MAX_LENGTH: Final = 0xFFFF  # the state journal keeps a name's length in 16 bits
LOG_LEVELS: Final = ("debug", "info", "warning", "error", "critical")
DEFAULT_TELEMETRY_PATH: Final = "/metrics"
# The daemon's other routes (web_app.py), which the metrics path must not shadow.
RESERVED_PATHS: Final = ("/", "/healthz", "/readyz", "/-/healthy", "/-/ready", "/-/reload")
RESERVED_PREFIXES: Final = ("/api/", "/page/", "/static/")

LogFormat = Literal["json", "console"]


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True, slots=True)
class ShardingSettings:
    """How many of the N shards own each org (with `shard`); more than N means all of them."""

    copies: int = 1


@dataclass(frozen=True, slots=True)
class ApiSettings:
    base_url: str = DEFAULT_BASE_URL
    timeout_seconds: float = 10.0
    user_agent: str = f"petra-collector/{__version__}"
    max_response_bytes: int = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PollingSettings:
    interval_seconds: float = 300.0
    concurrency: int = 32
    max_requests_per_second: float = 20.0
    requests_per_minute_per_key: float = 5.0
    auth_failure_interval_seconds: float = 900.0
    max_staleness_seconds: float = 3600.0
    shutdown_grace_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class IncidentsSettings:
    """Polling `/v1/incidents` (off unless asked for)."""

    enabled: bool = False
    interval_seconds: float = 300.0
    lookback_days: float = 30.0


@dataclass(frozen=True, slots=True)
class BillingSettings:
    """Asking `/v1/billable-users` for each tenant (off unless asked for)."""

    enabled: bool = False
    interval_seconds: float = 86400.0  # each tenant's figures are refreshed this often
    # Petra allows one a minute on this route; other programs may share the key.
    requests_per_minute_per_key: float = 0.5


@dataclass(frozen=True, slots=True)
class ServerSettings:
    # Every address serves the same routes; the first is the one logs and the page name.
    listen: tuple[HostPort, ...] = (HostPort("127.0.0.1", DEFAULT_PORT),)
    web_config_file: str | None = None  # absolute: a relative one is resolved at parse time
    telemetry_path: str = DEFAULT_TELEMETRY_PATH
    max_connections: int = 512  # Prometheus' --web.max-connections default
    header_timeout_seconds: float = 10.0


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    tenant_name_labels: bool = True


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    format: LogFormat = "json"
    level: str = "info"


@dataclass(frozen=True, slots=True)
class StateSettings:
    path: str | None = None  # None: nothing is kept across restarts
    write_delay_seconds: float = 5.0


@dataclass(frozen=True, slots=True)
class OrgConfig:
    name: str
    key_source: KeySource
    interval_seconds: float
    key: ApiKey = field(repr=False, compare=True)

    @property
    def key_fingerprint(self) -> str:
        return self.key.fingerprint


@dataclass(frozen=True, slots=True)
class Settings:
    orgs: tuple[OrgConfig, ...]
    api: ApiSettings = ApiSettings()
    polling: PollingSettings = PollingSettings()
    incidents: IncidentsSettings = IncidentsSettings()
    billing: BillingSettings = BillingSettings()
    server: ServerSettings = ServerSettings()
    logging: LoggingSettings = LoggingSettings()
    state: StateSettings = StateSettings()
    metrics: MetricsSettings = MetricsSettings()
    shard: Shard | None = None
    sharding: ShardingSettings = ShardingSettings()
    source: str = "<built-in>"


@dataclass(frozen=True, slots=True)
class CliOverrides:
    """Command-line options that win over the config file; None where not given.

    Applied at start and again to every reloaded file, so a reload never undoes them.
    """

    listen: tuple[HostPort, ...] | None = None
    telemetry_path: str | None = None
    shard: Shard | None = None
    log_format: LogFormat | None = None
    log_level: str | None = None
    web_config_file: str | None = None  # absolute (the command line resolves it)

    def apply(self, settings: Settings) -> Settings:
        server, logging, shard = settings.server, settings.logging, settings.shard
        if self.listen is not None:
            server = replace(server, listen=self.listen)
        if self.telemetry_path is not None:
            server = replace(server, telemetry_path=self.telemetry_path)
        if self.web_config_file is not None:
            server = replace(server, web_config_file=self.web_config_file)
        if self.shard is not None:
            shard = self.shard
        if self.log_format is not None:
            logging = replace(logging, format=self.log_format)
        if self.log_level is not None:
            logging = replace(logging, level=self.log_level)
        return replace(settings, server=server, logging=logging, shard=shard)


NO_OVERRIDES: Final = CliOverrides()


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    settings: Settings
    warnings: tuple[str, ...]


def listen_text(addresses: tuple[HostPort, ...], first_port: int | None = None) -> str:
    """`a:1, b:2` for logs; `first_port` is the first address's port as bound (for :0)."""
    shown = [
        HostPort(address.host, first_port) if index == 0 and first_port is not None else address
        for index, address in enumerate(addresses)
    ]
    return ", ".join(str(address) for address in shown)


def parse_listen(text: str) -> HostPort:
    """`HOST:PORT`, `[IPv6]:PORT` or `:PORT` (all interfaces). Raises ValueError."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"{text!r} is not HOST:PORT")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return HostPort(host or "0.0.0.0", port)  # noqa: S104 - ":PORT" asks for all interfaces


def parse_telemetry_path(text: str) -> str:
    """An absolute URL path that none of the daemon's other routes uses. Raises ValueError."""
    if not text.startswith("/") or text.startswith("//"):
        raise ValueError(f"{text!r} is not a path starting with one '/' (for example /metrics)")
    if any(char.isspace() or char in "?#%{}" for char in text):
        raise ValueError(f"{text!r} may not contain blanks, '?', '#', '%', '{{' or '}}'")
    if text in RESERVED_PATHS or text.startswith(RESERVED_PREFIXES):
        raise ValueError(f"{text!r} is taken by another of the collector's pages")
    return text


def parse_shard(text: str) -> Shard:
    """`I/N` with 0 <= I < N. Raises ValueError."""
    index_text, sep, count_text = text.partition("/")
    if not sep or not index_text.strip().isdigit() or not count_text.strip().isdigit():
        raise ValueError(f"{text!r} is not I/N (for example 0/3)")
    index, count = int(index_text), int(count_text)
    if count < 1 or index >= count:
        raise ValueError(f"{text!r}: need 0 <= I < N and N >= 1")
    return Shard(index, count)


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """Read and validate a config file. Raises ConfigError listing every problem."""
    text = read_text(path)
    base_dir = Path(path).resolve().parent
    return parse_config(text, source=str(path), base_dir=base_dir, environ=environ)


def parse_config(
    text: str,
    *,
    source: str = "<config>",
    base_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> LoadedConfig:
    """Validate YAML text. Relative key file paths resolve against `base_dir`."""
    env = os.environ if environ is None else environ
    raw = parse_yaml(text, source)
    problems = Problems(source)
    top = Section(problems, "", raw)
    api = _parse_api(top.section("api"))
    polling = _parse_polling(top.section("polling"))
    incidents = _parse_incidents(top.section("incidents"), polling)
    billing = _parse_billing(top.section("billing"))
    server = _parse_server(top.section("server"), base_dir or Path.cwd())
    logging = _parse_logging(top.section("logging"))
    state = _parse_state(top.section("state"), base_dir or Path.cwd())
    metrics = _parse_metrics(top.section("metrics"))

    def convert_shard(path: str, value: object) -> Shard | None:
        try:
            return parse_shard(str(value))
        except ValueError as error:
            problems.error(path, str(error))
            return None

    shard = top.get("shard", None, convert_shard)
    sharding = _parse_sharding(top.section("sharding"))
    orgs = _parse_orgs(problems, top.value("orgs"), polling, base_dir or Path.cwd(), env)
    if incidents.enabled:
        _check_incidents_budgets(problems, orgs, polling, incidents)
    top.finish()
    problems.raise_errors()
    settings = Settings(
        orgs=tuple(orgs),
        api=api,
        polling=polling,
        incidents=incidents,
        billing=billing,
        server=server,
        logging=logging,
        state=state,
        metrics=metrics,
        shard=shard,
        sharding=sharding,
        source=source,
    )
    return LoadedConfig(settings, tuple(problems.warnings))


def _parse_api(section: Section) -> ApiSettings:
    defaults = ApiSettings()
    base_url = section.string("base_url", defaults.base_url).rstrip("/")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        section.problems.error(section.child("base_url"), f"{base_url!r} is not an http(s) URL")
    elif parts.scheme == "http" and not is_loopback_host(parts.hostname):
        section.problems.error(
            section.child("base_url"),
            "must use https:// (plain http is only allowed to a loopback host, "
            "so a key never crosses a network in clear text)",
        )
    elif parts.query or parts.fragment or parts.username or parts.password:
        section.problems.error(
            section.child("base_url"), "must not carry a query, fragment or credentials"
        )
    result = ApiSettings(
        base_url=base_url,
        timeout_seconds=section.number("timeout_seconds", defaults.timeout_seconds),
        user_agent=section.string("user_agent", defaults.user_agent),
        max_response_bytes=int(
            section.number("max_response_bytes", defaults.max_response_bytes, integer=True)
        ),
    )
    section.finish()
    return result


def _parse_polling(section: Section) -> PollingSettings:
    d = PollingSettings()
    result = PollingSettings(
        interval_seconds=section.number("interval_seconds", d.interval_seconds),
        concurrency=int(section.number("concurrency", d.concurrency, integer=True)),
        max_requests_per_second=section.number(
            "max_requests_per_second", d.max_requests_per_second
        ),
        requests_per_minute_per_key=section.number(
            "requests_per_minute_per_key", d.requests_per_minute_per_key
        ),
        auth_failure_interval_seconds=section.number(
            "auth_failure_interval_seconds", d.auth_failure_interval_seconds
        ),
        max_staleness_seconds=section.number("max_staleness_seconds", d.max_staleness_seconds),
        shutdown_grace_seconds=section.number("shutdown_grace_seconds", d.shutdown_grace_seconds),
    )
    if result.requests_per_minute_per_key > PETRA_PUBLISHED_REQUESTS_PER_MINUTE:
        section.problems.warn(
            section.child("requests_per_minute_per_key"),
            f"{result.requests_per_minute_per_key:g} is above Petra's published limit of "
            f"{PETRA_PUBLISHED_REQUESTS_PER_MINUTE} per minute; expect 429 answers unless "
            "your account has a higher limit",
        )
    section.finish()
    return result


def _parse_incidents(section: Section, polling: PollingSettings) -> IncidentsSettings:
    d = IncidentsSettings()
    result = IncidentsSettings(
        enabled=section.boolean("enabled", default=d.enabled),
        interval_seconds=section.number("interval_seconds", d.interval_seconds),
        lookback_days=section.number("lookback_days", d.lookback_days),
    )
    if result.enabled and result.interval_seconds * 2 > polling.max_staleness_seconds:
        section.problems.warn(
            section.child("interval_seconds"),
            f"{result.interval_seconds:g} s is more than half of polling.max_staleness_seconds "
            f"({polling.max_staleness_seconds:g} s): one late poll drops the incident series; "
            "raise max_staleness_seconds",
        )
    section.finish()
    return result


def _parse_billing(section: Section) -> BillingSettings:
    d = BillingSettings()
    result = BillingSettings(
        enabled=section.boolean("enabled", default=d.enabled),
        interval_seconds=section.number("interval_seconds", d.interval_seconds),
        requests_per_minute_per_key=section.number(
            "requests_per_minute_per_key", d.requests_per_minute_per_key
        ),
    )
    if result.requests_per_minute_per_key > PETRA_BILLING_REQUESTS_PER_MINUTE:
        section.problems.warn(
            section.child("requests_per_minute_per_key"),
            f"{result.requests_per_minute_per_key:g} is above Petra's published limit of "
            f"{PETRA_BILLING_REQUESTS_PER_MINUTE} per minute on /v1/billable-users; expect "
            "429 answers unless your account has a higher limit",
        )
    section.finish()
    return result


def _parse_server(section: Section, base_dir: Path) -> ServerSettings:
    def convert(path: str, value: object) -> HostPort | None:
        try:
            return parse_listen(str(value))
        except ValueError as error:
            section.problems.error(path, str(error))
            return None

    def convert_all(path: str, value: object) -> tuple[HostPort, ...] | None:
        if not isinstance(value, list):
            one = convert(path, value)
            return None if one is None else (one,)
        if not value:
            section.problems.error(path, "is empty: give at least one HOST:PORT")
            return None
        found = [convert(f"{path}[{index}]", item) for index, item in enumerate(value)]
        return tuple(address for address in found if address is not None) or None

    def convert_path(path: str, value: object) -> str | None:
        try:
            return parse_telemetry_path(str(value))
        except ValueError as error:
            section.problems.error(path, str(error))
            return None

    defaults = ServerSettings()
    listen = section.get("listen", defaults.listen, convert_all)
    web_config_file = section.string("web_config_file", "") or None
    if web_config_file is not None and not Path(web_config_file).is_absolute():
        web_config_file = str(base_dir / web_config_file)
    telemetry_path = section.get("telemetry_path", defaults.telemetry_path, convert_path)
    max_connections = int(section.number("max_connections", defaults.max_connections, integer=True))
    header_timeout = section.number("header_timeout_seconds", defaults.header_timeout_seconds)
    section.finish()
    return ServerSettings(
        listen=listen,
        web_config_file=web_config_file,
        telemetry_path=telemetry_path,
        max_connections=max_connections,
        header_timeout_seconds=header_timeout,
    )


def _parse_sharding(section: Section) -> ShardingSettings:
    # A whole number greater than 0: `number` says so when it is not.
    copies = int(section.number("copies", ShardingSettings().copies, integer=True))
    section.finish()
    return ShardingSettings(copies=copies)


def _parse_metrics(section: Section) -> MetricsSettings:
    result = MetricsSettings(tenant_name_labels=section.boolean("tenant_name_labels", default=True))
    section.finish()
    return result


def _parse_logging(section: Section) -> LoggingSettings:
    fmt = section.string("format", "json")
    if fmt not in ("json", "console"):
        section.problems.error(section.child("format"), f"must be json or console, not {fmt!r}")
        fmt = "json"
    level = section.string("level", "info").lower()
    if level not in LOG_LEVELS:
        section.problems.error(
            section.child("level"), f"must be one of {', '.join(LOG_LEVELS)}, not {level!r}"
        )
        level = "info"
    section.finish()
    return LoggingSettings(format="json" if fmt == "json" else "console", level=level)


def _parse_state(section: Section, base_dir: Path) -> StateSettings:
    defaults = StateSettings()
    path = section.get("path", None, _convert_state_path(section.problems))
    if path is not None and not Path(path).is_absolute():
        path = str(base_dir / path)
    result = StateSettings(
        path=path,
        write_delay_seconds=section.number("write_delay_seconds", defaults.write_delay_seconds),
    )
    section.finish()
    return result


def _convert_state_path(problems: Problems) -> Callable[[str, object], str | None]:
    def convert(path: str, value: object) -> str | None:
        if not isinstance(value, str) or not value.strip():
            problems.error(path, f"must be a file path, not {type_name(value)}")
            return None
        text = value.strip()
        if "\0" in text:
            problems.error(path, "contains a NUL byte")
            return None
        if text.endswith("/") or Path(text).name in ("", ".", ".."):
            problems.error(path, "names a directory; give the file, e.g. state.json")
            return None
        return text

    return convert


def _parse_orgs(
    problems: Problems,
    raw: object,
    polling: PollingSettings,
    base_dir: Path,
    env: Mapping[str, str],
) -> list[OrgConfig]:
    if raw is None:
        problems.error("orgs", "is missing: list at least one organization")
        return []
    if not isinstance(raw, list):
        problems.error("orgs", f"must be a list, not {type_name(raw)}")
        return []
    if not raw:
        problems.error("orgs", "is empty: list at least one organization")
        return []
    orgs: list[OrgConfig] = []
    first_seen: dict[str, int] = {}
    for index, item in enumerate(raw):
        section = Section(problems, f"orgs[{index}]", item)
        org = _parse_org(section, polling, base_dir, env)
        section.finish()
        if org is None:
            continue
        if org.name in first_seen:
            problems.error(
                section.child("name"),
                f"duplicate org name {org.name!r} (first used at orgs[{first_seen[org.name]}])",
            )
            continue
        first_seen[org.name] = index
        orgs.append(org)
    _check_key_budgets(problems, orgs, polling, first_seen)
    for org in orgs:
        if org.interval_seconds * 2 > polling.max_staleness_seconds:
            problems.warn(
                f"orgs[{first_seen[org.name]}].interval_seconds",
                f"{org.interval_seconds:g} s is more than half of "
                f"polling.max_staleness_seconds ({polling.max_staleness_seconds:g} s): one late "
                "poll drops the org's usage series; raise max_staleness_seconds",
            )
    return orgs


def _parse_org(
    section: Section, polling: PollingSettings, base_dir: Path, env: Mapping[str, str]
) -> OrgConfig | None:
    problems = section.problems
    name = section.get("name", "", _convert_name(problems))
    if not name and not section.has("name"):
        problems.error(section.child("name"), "is missing")
    interval = section.number("interval_seconds", polling.interval_seconds)
    sources = [k for k in ("api_key_file", "api_key_env", "api_key") if k in section.raw]
    section.seen.update(("api_key_file", "api_key_env", "api_key"))
    if not sources:
        problems.error(section.path, "needs one of api_key_file, api_key_env or api_key")
        return None
    if len(sources) > 1:
        problems.error(section.path, f"has {' and '.join(sources)}: give exactly one key source")
        return None
    source_key = sources[0]
    path = section.child(source_key)
    value = section.raw[source_key]
    if not isinstance(value, str) or not value.strip():
        problems.error(path, f"must be a non-empty string, not {type_name(value)}")
        return None
    key_source = _key_source(
        problems, path=path, kind=source_key, value=value.strip(), base_dir=base_dir, env=env
    )
    if key_source is None:
        return None
    try:
        key = key_source.load(env)
    except KeyLoadError as error:
        problems.error(path, str(error))
        return None
    if key_source.kind == "file":
        loose = permission_warning(key_source.location)
        if loose is not None:
            problems.warn(path, loose)
    if not name:
        return None
    return OrgConfig(name=name, key_source=key_source, interval_seconds=interval, key=key)


def _convert_name(problems: Problems) -> Callable[[str, object], str | None]:
    def convert(path: str, value: object) -> str | None:
        if not isinstance(value, str | int) or isinstance(value, bool):
            problems.error(path, f"must be a string, not {type_name(value)}")
            return None
        text = str(value)
        if looks_like_key(text):
            # The name is a label on every series and log line: a key must not become one.
            problems.error(path, "looks like an API key, not a name; name the org instead")
            return None
        if not ORG_NAME.fullmatch(text):
            problems.error(
                path, f"{shown(text)!r} may only contain letters, digits, '_', '.' and '-'"
            )
            return None
        if len(text) > ORG_NAME_MAX_LENGTH:  # ASCII only: a character is a byte
            problems.error(
                path,
                f"is {len(text)} characters long; at most {ORG_NAME_MAX_LENGTH}"
                " (the state file's limit)",
            )
            return None
        return text

    return convert


def _key_source(
    problems: Problems,
    *,
    path: str,
    kind: str,
    value: str,
    base_dir: Path,
    env: Mapping[str, str],
) -> KeySource | None:
    if kind == "api_key":
        problems.warn(
            path,
            "an inline key is stored in the config file; prefer api_key_file or api_key_env",
        )
        try:
            return KeySource("inline", inline=ApiKey(value))
        except InvalidKeyError as error:
            problems.error(path, str(error))
            return None
    if kind != "api_key" and looks_like_key(value):
        problems.error(
            path,
            "this looks like an API key itself; put the key in a file (api_key_file) or an "
            "environment variable (api_key_env) and name that here",
        )
        return None
    if kind == "api_key_env":
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            # Not echoed: a wrongly pasted key is exactly what lands here.
            problems.error(
                path,
                "is not an environment variable name (letters, digits and _, "
                "not starting with a digit)",
            )
            return None
        return KeySource("env", value)
    try:
        expanded = _expand_env(value, env)
    except KeyError as missing:
        problems.error(path, f"uses ${{{missing.args[0]}}}, which is not set")
        return None
    file_path = Path(expanded)
    if not file_path.is_absolute():
        file_path = base_dir / file_path
    return KeySource("file", str(file_path))


def _expand_env(value: str, env: Mapping[str, str]) -> str:
    """`${NAME}` / `$NAME` expansion that fails on unset variables instead of leaving them."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in env:
            raise KeyError(name)
        return env[name]

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", substitute, value)


def _check_key_budgets(
    problems: Problems,
    orgs: list[OrgConfig],
    polling: PollingSettings,
    positions: dict[str, int],
) -> None:
    """Each key's polls per minute, summed over the orgs sharing it, must fit its budget."""
    by_key: dict[ApiKey, list[OrgConfig]] = {}
    for org in orgs:
        by_key.setdefault(org.key, []).append(org)
    budget = polling.requests_per_minute_per_key
    for sharing in by_key.values():
        needed = sum(60.0 / org.interval_seconds for org in sharing)
        if needed <= budget + 1e-9:
            continue
        names = ", ".join(org.name for org in sharing)
        first = positions[sharing[0].name]
        shortest = 60.0 * len(sharing) / budget
        problems.error(
            f"orgs[{first}].interval_seconds",
            f"org(s) {names} need {needed:.2f} requests per minute with one key, more than "
            f"polling.requests_per_minute_per_key ({budget:g}); use an interval of at least "
            f"{shortest:g} s or raise the budget",
        )


def _check_incidents_budgets(
    problems: Problems,
    orgs: list[OrgConfig],
    polling: PollingSettings,
    incidents: IncidentsSettings,
) -> None:
    """`/v1/incidents` has its own budget per key, of the same size as `/v1/usage`'s."""
    sharing: dict[ApiKey, int] = {}
    for org in orgs:
        sharing[org.key] = sharing.get(org.key, 0) + 1
    budget = polling.requests_per_minute_per_key
    most = max(sharing.values(), default=0)
    needed = most * 60.0 / incidents.interval_seconds
    if needed > budget + 1e-9:
        problems.error(
            "incidents.interval_seconds",
            f"{incidents.interval_seconds:g} s needs {needed:.2f} requests per minute per key "
            f"({most} org(s) share a key), more than polling.requests_per_minute_per_key "
            f"({budget:g}, the budget of each route); use an interval of at least "
            f"{60.0 * most / budget:g} s or raise the budget",
        )


def iter_orgs_in_shard(
    orgs: tuple[OrgConfig, ...], shard: Shard | None, copies: int = 1
) -> Iterator[OrgConfig]:
    """The orgs this instance owns. Sharding lives here so `check` and `run` agree."""
    for org in orgs:
        if shard is None or owns(shard.index, shard.count, org.name, copies):
            yield org


def org_owners(settings: Settings, name: str) -> tuple[int, ...]:
    """The shards that poll org `name` (best first); empty when this instance is not sharded."""
    if settings.shard is None:
        return ()
    return owners_of(name, settings.shard.count, settings.sharding.copies)
