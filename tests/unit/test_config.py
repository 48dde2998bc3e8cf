"""Config file validation: every bad file names the file, the path inside it and the problem."""

from __future__ import annotations

import os
import pickle
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import pytest

from collector import __version__
from collector.apikey import ApiKey
from collector.config import (
    DEFAULT_BASE_URL,
    DEFAULT_PORT,
    ApiSettings,
    CliOverrides,
    HostPort,
    LoadedConfig,
    LoggingSettings,
    OrgConfig,
    PollingSettings,
    ServerSettings,
    Settings,
    Shard,
    iter_orgs_in_shard,
    listen_text,
    load_config,
    org_owners,
    parse_config,
)
from collector.config_reader import ConfigError
from collector.keys import KeySource
from tests.leaks import assert_no_key_material

# Recognisable keys: any 8-character slice of them showing up somewhere is a leak.
ACME_KEY = "petra_live_Zq8xW2mN4vB7cR1tY6uI0oP3aS5dF9gH"
GLOBEX_KEY = "petra_live_Kj3hG5fD7sA9pO1iU2yT4rE6wQ8zXcV"
INLINE_KEY = "petra_live_Mn0bV1cX2zL3kJ4hG5fD6sA7pO8iU9y"
ALL_KEYS = (ACME_KEY, GLOBEX_KEY, INLINE_KEY)

# The key file directory a test config sees; tests pass it as an environ dict entry.
CREDS = "creds"


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    """A directory holding key files in the shapes the tests need."""
    (tmp_path / "acme.key").write_text(ACME_KEY + "\n", encoding="utf-8")
    (tmp_path / "globex.key").write_text(f"  \n{GLOBEX_KEY}  \r\n\n", encoding="utf-8")
    (tmp_path / "empty.key").write_text(" \n\t\n", encoding="utf-8")
    (tmp_path / "spaced.key").write_text("petra_live two words\n", encoding="utf-8")
    (tmp_path / "huge.key").write_text("x" * 5000, encoding="utf-8")
    (tmp_path / "latin1.key").write_bytes(b"petra_\xe9\xe9\n")
    (tmp_path / "keydir").mkdir()
    creds = tmp_path / CREDS
    creds.mkdir()
    (creds / "acme").write_text(ACME_KEY, encoding="utf-8")
    return tmp_path


def environ_for(config_dir: Path) -> dict[str, str]:
    """The environment a test config is loaded with (never the real one)."""
    return {
        "PETRA_KEY_GLOBEX": GLOBEX_KEY,
        "PETRA_KEY_BLANK": "   ",
        "CREDENTIALS_DIRECTORY": str(config_dir / CREDS),
    }


def write_and_load(
    config_dir: Path, text: str, environ: dict[str, str] | None = None
) -> LoadedConfig:
    """Write `text` to config.yaml in `config_dir` and load it."""
    path = config_dir / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, environ=environ_for(config_dir) if environ is None else environ)


ONE_ORG = "orgs:\n  - {name: acme, api_key_file: acme.key}\n"


class Bad(NamedTuple):
    """A bad config file and the problems it must produce.

    `text` is the file content (bytes are written raw); None means no file at all,
    and DIRECTORY means a directory where the file should be. Each expected entry
    must occur in exactly one problem, after the file name and ": "; `<dir>` stands
    for the config's directory. There must be exactly as many problems as entries.
    """

    text: str | bytes | None
    expected: tuple[str, ...]


DIRECTORY = b"<a directory>"

BAD_FILES = [
    pytest.param(Bad(None, ("file not found",)), id="missing-file"),
    pytest.param(Bad(DIRECTORY, ("is a directory, not a config file",)), id="file-is-directory"),
    pytest.param(Bad(b"orgs: \xff\xfe\n", ("is not UTF-8 text",)), id="not-utf8"),
    pytest.param(
        Bad(
            "orgs:\n  - name: acme\n   api_key_file: acme.key\n",
            ("line 3, column 4: invalid YAML: expected <block end>",),
        ),
        id="invalid-yaml-indent",
    ),
    pytest.param(
        Bad("polling: {}\norgs: [\n", ("line 3, column 1: invalid YAML",)),
        id="invalid-yaml-unclosed",
    ),
    pytest.param(
        Bad("orgs:\n\t- name: acme\n", ("line 2, column 1: invalid YAML: found character",)),
        id="invalid-yaml-tab",
    ),
    pytest.param(Bad("", ("orgs: is missing: list at least one organization",)), id="empty-file"),
    pytest.param(
        Bad("polling: {}\n", ("orgs: is missing: list at least one organization",)),
        id="missing-orgs",
    ),
    pytest.param(
        Bad("orgs:\n", ("orgs: is missing: list at least one organization",)), id="null-orgs"
    ),
    pytest.param(
        Bad("orgs: []\n", ("orgs: is empty: list at least one organization",)), id="empty-orgs"
    ),
    pytest.param(Bad("orgs: acme\n", ("orgs: must be a list, not a string",)), id="orgs-string"),
    pytest.param(
        Bad(
            "- acme\n",
            ("must be a mapping, not a list", "orgs: is missing"),
        ),
        id="top-level-list",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key_file: acme.key}\n"
            "  - {name: acme, api_key_env: PETRA_KEY_GLOBEX}\n",
            ("orgs[1].name: duplicate org name 'acme' (first used at orgs[0])",),
        ),
        id="duplicate-org-name",
    ),
    pytest.param(
        Bad(
            "sharding: {copies: 0}\norgs:\n  - {name: acme, api_key_file: acme.key}\n",
            ("sharding.copies: must be greater than 0, got 0",),
        ),
        id="sharding-copies-zero",
    ),
    pytest.param(
        Bad(
            "sharding: {copies: 1.5}\norgs:\n  - {name: acme, api_key_file: acme.key}\n",
            ("sharding.copies: must be a whole number, got 1.5",),
        ),
        id="sharding-copies-fraction",
    ),
    pytest.param(
        Bad(
            "sharding: {copy: 2}\norgs:\n  - {name: acme, api_key_file: acme.key}\n",
            ("sharding.copy",),
        ),
        id="sharding-unknown-key",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: 'acme corp', api_key_file: acme.key}\n",
            ("orgs[0].name: 'acme corp' may only contain letters, digits, '_', '.' and '-'",),
        ),
        id="org-name-with-space",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: 'acme/eu', api_key_file: acme.key}\n",
            ("orgs[0].name: 'acme/eu' may only contain",),
        ),
        id="org-name-with-slash",
    ),
    pytest.param(
        Bad(
            f"orgs:\n  - {{name: {'a.' * 32_768}, api_key_file: acme.key}}\n",
            ("orgs[0].name: is 65536 characters long; at most 65535",),
        ),
        id="org-name-too-long-for-the-state-file",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: true, api_key_file: acme.key}\n",
            ("orgs[0].name: must be a string, not a boolean",),
        ),
        id="org-name-boolean",
    ),
    pytest.param(
        Bad("orgs:\n  - {api_key_file: acme.key}\n", ("orgs[0].name: is missing",)),
        id="org-name-missing",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - acme\n",
            (
                "orgs[0]: must be a mapping, not a string",
                "orgs[0].name: is missing",
                "orgs[0]: needs one of api_key_file, api_key_env or api_key",
            ),
        ),
        id="org-not-a-mapping",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme}\n",
            ("orgs[0]: needs one of api_key_file, api_key_env or api_key",),
        ),
        id="no-key-source",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key_file: acme.key, api_key_env: PETRA_KEY_GLOBEX}\n",
            ("orgs[0]: has api_key_file and api_key_env: give exactly one key source",),
        ),
        id="two-key-sources",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key_file: acme.key}\n"
            "  - {name: globex, api_key_file: nope.key}\n",
            ("orgs[1].api_key_file: key file <dir>/nope.key not found",),
        ),
        id="key-file-missing",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key_file: empty.key}\n",
            ("orgs[0].api_key_file: key file <dir>/empty.key is empty",),
        ),
        id="key-file-empty",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key_file: keydir}\n",
            ("orgs[0].api_key_file: key file <dir>/keydir is a directory",),
        ),
        id="key-file-is-directory",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key_file: huge.key}\n",
            ("orgs[0].api_key_file: key file <dir>/huge.key is larger than 4096 bytes",),
        ),
        id="key-file-too-large",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key_file: latin1.key}\n",
            ("orgs[0].api_key_file: key file <dir>/latin1.key is not UTF-8 text",),
        ),
        id="key-file-not-utf8",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key_file: spaced.key}\n",
            (
                (
                    "orgs[0].api_key_file: key file <dir>/spaced.key: "
                    "the key contains spaces or non-printable characters"
                ),
            ),
        ),
        id="key-file-with-inner-space",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key_file: ''}\n",
            ("orgs[0].api_key_file: must be a non-empty string, not a string",),
        ),
        id="key-file-empty-string",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key_file: 42}\n",
            ("orgs[0].api_key_file: must be a non-empty string, not a number",),
        ),
        id="key-file-number",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key_file: '${NOT_SET_ANYWHERE}/acme'}\n",
            ("orgs[0].api_key_file: uses ${NOT_SET_ANYWHERE}, which is not set",),
        ),
        id="key-file-path-variable-unset",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key_env: PETRA_KEY_ACME}\n",
            ("orgs[0].api_key_env: environment variable PETRA_KEY_ACME is not set",),
        ),
        id="env-var-unset",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key_env: PETRA_KEY_BLANK}\n",
            ("orgs[0].api_key_env: environment variable PETRA_KEY_BLANK is empty",),
        ),
        id="env-var-blank",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key_env: 'petra-key'}\n",
            (
                (
                    "orgs[0].api_key_env: is not an environment variable name "
                    "(letters, digits and _, not starting with a digit)"
                ),
            ),
        ),
        id="env-var-bad-name",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key: 'two words'}\n",
            ("orgs[0].api_key: the key contains spaces or non-printable characters",),
        ),
        id="inline-key-with-space",
    ),
    *[
        pytest.param(
            Bad(
                f"polling: {{{option}: {value}}}\n{ONE_ORG}",
                (f"polling.{option}: must be greater than 0, got {shown}",),
            ),
            id=f"polling-{option}-{shown}",
        )
        for option in (
            "interval_seconds",
            "concurrency",
            "max_requests_per_second",
            "requests_per_minute_per_key",
            "auth_failure_interval_seconds",
            "max_staleness_seconds",
            "shutdown_grace_seconds",
        )
        for value, shown in (("0", "0"), ("-1", "-1"))
    ],
    pytest.param(
        Bad(
            "polling: {max_staleness_seconds: .nan}\n" + ONE_ORG,
            ("polling.max_staleness_seconds: must be a finite number, got nan",),
        ),
        id="polling-nan",
    ),
    pytest.param(
        Bad(
            "api: {timeout_seconds: 0}\n" + ONE_ORG,
            ("api.timeout_seconds: must be greater than 0, got 0",),
        ),
        id="api-timeout-zero",
    ),
    pytest.param(
        Bad(
            "api: {max_response_bytes: -5}\n" + ONE_ORG,
            ("api.max_response_bytes: must be greater than 0, got -5",),
        ),
        id="api-max-response-bytes-negative",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key_file: acme.key, interval_seconds: 0}\n",
            ("orgs[0].interval_seconds: must be greater than 0, got 0",),
        ),
        id="org-interval-zero",
    ),
    pytest.param(
        Bad(
            "polling: {interval_seconds: true}\n" + ONE_ORG,
            ("polling.interval_seconds: must be a number, not a boolean",),
        ),
        id="polling-interval-boolean",
    ),
    pytest.param(
        Bad(
            "polling: {concurrency: '8'}\n" + ONE_ORG,
            ("polling.concurrency: must be a number, not a string",),
        ),
        id="polling-concurrency-string",
    ),
    pytest.param(
        Bad(
            "polling: {concurrency: 2.5}\n" + ONE_ORG,
            ("polling.concurrency: must be a whole number, got 2.5",),
        ),
        id="polling-concurrency-fraction",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key_file: acme.key, interval_seconds: 5 minutes}\n",
            ("orgs[0].interval_seconds: must be a number, not a string",),
        ),
        id="org-interval-string",
    ),
    pytest.param(
        Bad(
            "api: {timeout_seconds: [10]}\n" + ONE_ORG,
            ("api.timeout_seconds: must be a number, not a list",),
        ),
        id="api-timeout-list",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key_file: acme.key, interval_seconds: 6}\n",
            (
                (
                    "orgs[0].interval_seconds: org(s) acme need 10.00 requests per minute with one "
                    "key, more than polling.requests_per_minute_per_key (5); use an interval of at "
                    "least 12 s or raise the budget"
                ),
            ),
        ),
        id="interval-over-key-budget",
    ),
    pytest.param(
        Bad(
            "polling: {interval_seconds: 10}\n" + ONE_ORG,
            ("orgs[0].interval_seconds: org(s) acme need 6.00 requests per minute",),
        ),
        id="default-interval-over-key-budget",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: globex, api_key_env: PETRA_KEY_GLOBEX}\n"
            "  - {name: acme, api_key_file: acme.key, interval_seconds: 20}\n"
            "  - {name: acme-eu, api_key_file: '${CREDENTIALS_DIRECTORY}/acme', "
            "interval_seconds: 20}\n",
            (
                (
                    "orgs[1].interval_seconds: org(s) acme, acme-eu need 6.00 requests per minute "
                    "with one key, more than polling.requests_per_minute_per_key (5); use an "
                    "interval of at least 24 s or raise the budget"
                ),
            ),
        ),
        id="two-orgs-share-a-key-over-budget",
    ),
    pytest.param(
        Bad(
            "colour: blue\n" + ONE_ORG,
            (
                (
                    "colour: unknown key "
                    "(known here: api, billing, incidents, logging, metrics, orgs, polling, "
                    "server, shard, sharding, state)"
                ),
            ),
        ),
        id="unknown-top-level-key",
    ),
    pytest.param(
        Bad(
            "api: {base_ur: 'https://x'}\n" + ONE_ORG,
            ("api.base_ur: unknown key (known here: base_url,",),
        ),
        id="unknown-api-key",
    ),
    pytest.param(
        Bad(
            "polling: {interval: 60}\n" + ONE_ORG,
            ("polling.interval: unknown key (known here: auth_failure_interval_seconds,",),
        ),
        id="unknown-polling-key",
    ),
    pytest.param(
        Bad("server: {port: 9000}\n" + ONE_ORG, ("server.port: unknown key",)),
        id="unknown-server-key",
    ),
    pytest.param(
        Bad("logging: {colour: true}\n" + ONE_ORG, ("logging.colour: unknown key",)),
        id="unknown-logging-key",
    ),
    pytest.param(
        Bad(
            "orgs:\n  - {name: acme, api_key_file: acme.key, intervall_seconds: 600}\n",
            (
                (
                    "orgs[0].intervall_seconds: unknown key (known here: api_key, api_key_env, "
                    "api_key_file, interval_seconds, name)"
                ),
            ),
        ),
        id="unknown-org-key",
    ),
    pytest.param(
        Bad("api: [https]\n" + ONE_ORG, ("api: must be a mapping, not a list",)),
        id="section-not-a-mapping",
    ),
    pytest.param(
        Bad(
            "api: {base_url: 'http://api.petrasecurity.com'}\n" + ONE_ORG,
            ("api.base_url: must use https:// (plain http is only allowed to a loopback host",),
        ),
        id="http-to-remote-host",
    ),
    pytest.param(
        Bad(
            "api: {base_url: 'http://10.0.0.8:8080'}\n" + ONE_ORG,
            ("api.base_url: must use https://",),
        ),
        id="http-to-private-ip",
    ),
    pytest.param(
        Bad(
            "api: {base_url: 'ftp://api.petrasecurity.com'}\n" + ONE_ORG,
            ("api.base_url: 'ftp://api.petrasecurity.com' is not an http(s) URL",),
        ),
        id="base-url-not-http",
    ),
    pytest.param(
        Bad(
            "api: {base_url: 'https://user:pw@api.petrasecurity.com'}\n" + ONE_ORG,
            ("api.base_url: must not carry a query, fragment or credentials",),
        ),
        id="base-url-with-credentials",
    ),
    pytest.param(
        Bad(
            "server: {listen: 'localhost'}\n" + ONE_ORG,
            ("server.listen: 'localhost' is not HOST:PORT",),
        ),
        id="listen-without-port",
    ),
    pytest.param(
        Bad(
            "server: {listen: '0.0.0.0:70000'}\n" + ONE_ORG,
            ("server.listen: port 70000 is out of range 0-65535",),
        ),
        id="listen-port-out-of-range",
    ),
    pytest.param(
        Bad(
            "shard: 3/3\n" + ONE_ORG,
            ("shard: '3/3': need 0 <= I < N and N >= 1",),
        ),
        id="shard-index-too-big",
    ),
    pytest.param(
        Bad("shard: first\n" + ONE_ORG, ("shard: 'first' is not I/N (for example 0/3)",)),
        id="shard-not-i-of-n",
    ),
    pytest.param(
        Bad("shard: 0/0\n" + ONE_ORG, ("shard: '0/0': need 0 <= I < N and N >= 1",)),
        id="shard-zero-count",
    ),
    pytest.param(
        Bad(
            "logging: {format: xml}\n" + ONE_ORG,
            ("logging.format: must be json or console, not 'xml'",),
        ),
        id="log-format",
    ),
    pytest.param(
        Bad(
            "logging: {level: loud}\n" + ONE_ORG,
            ("logging.level: must be one of debug, info, warning, error, critical, not 'loud'",),
        ),
        id="log-level",
    ),
    pytest.param(
        Bad("state: {path: 5}\n" + ONE_ORG, ("state.path: must be a file path, not a number",)),
        id="state-path-number",
    ),
    pytest.param(
        Bad(
            "state: {path: /var/lib/petra-collector/}\n" + ONE_ORG,
            ("state.path: names a directory; give the file, e.g. state.json",),
        ),
        id="state-path-directory",
    ),
    pytest.param(
        Bad(
            "state: {write_delay_seconds: 0}\n" + ONE_ORG,
            ("state.write_delay_seconds: must be greater than 0, got 0",),
        ),
        id="state-write-delay-zero",
    ),
]


@pytest.mark.parametrize("bad", BAD_FILES)
def test_bad_config_files_give_exact_problems(config_dir: Path, bad: Bad) -> None:
    """Each bad file gives exactly the listed problems, each naming the file and the path."""
    path = config_dir / "config.yaml"
    if bad.text is DIRECTORY:
        path.mkdir()
    elif isinstance(bad.text, bytes):
        path.write_bytes(bad.text)
    elif isinstance(bad.text, str):
        path.write_text(bad.text, encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_config(path, environ=environ_for(config_dir))

    problems = caught.value.problems
    assert str(caught.value) == "\n".join(problems)
    assert all(problem.startswith(f"{path}: ") for problem in problems), problems
    assert len(problems) == len(bad.expected), problems
    for expected in bad.expected:
        wanted = f"{path}: " + expected.replace("<dir>", str(config_dir))
        matching = [problem for problem in problems if problem.startswith(wanted)]
        assert len(matching) == 1, f"{wanted!r} not in {problems}"
    assert_no_key_material(ALL_KEYS, str(caught.value))


def test_every_problem_in_a_file_is_reported(config_dir: Path) -> None:
    """A file with many problems reports all of them in one pass, not just the first."""
    text = (
        "colour: blue\n"
        "api: {base_url: 'http://example.com', timeout_seconds: -1}\n"
        "polling: {concurrency: 0, requests_per_minute_per_key: yes}\n"
        "server: {listen: nowhere}\n"
        "logging: {format: xml, level: loud}\n"
        "shard: 5/2\n"
        "orgs:\n"
        "  - {name: acme, api_key_file: acme.key}\n"
        "  - {name: acme, api_key_file: acme.key}\n"
        "  - {name: 'bad name', api_key_env: PETRA_KEY_GLOBEX}\n"
        "  - {name: initech}\n"
        "  - {name: hooli, api_key_file: missing.key, typo: 1}\n"
        "  - {name: umbrella, api_key_env: PETRA_KEY_UMBRELLA}\n"
    )
    with pytest.raises(ConfigError) as caught:
        write_and_load(config_dir, text)

    paths = [problem.split(": ")[1] for problem in caught.value.problems]
    assert sorted(paths) == sorted(
        [
            "colour",
            "api.base_url",
            "api.timeout_seconds",
            "polling.concurrency",
            "polling.requests_per_minute_per_key",
            "server.listen",
            "logging.format",
            "logging.level",
            "shard",
            "orgs[1].name",
            "orgs[2].name",
            "orgs[3]",
            "orgs[4].api_key_file",
            "orgs[4].typo",
            "orgs[5].api_key_env",
        ]
    )


def test_minimal_file_gets_the_documented_defaults(config_dir: Path) -> None:
    """A file with one org gets every default the contract documents, and no warnings."""
    loaded = write_and_load(config_dir, ONE_ORG)

    assert loaded.warnings == ()
    settings = loaded.settings
    assert settings == Settings(
        orgs=(
            OrgConfig(
                name="acme",
                key_source=KeySource("file", str(config_dir / "acme.key")),
                interval_seconds=300.0,
                key=ApiKey(ACME_KEY),
            ),
        ),
        api=ApiSettings(
            base_url="https://api.petrasecurity.com",
            timeout_seconds=10.0,
            user_agent=f"petra-collector/{__version__}",
            max_response_bytes=8 * 1024 * 1024,
        ),
        polling=PollingSettings(
            interval_seconds=300.0,
            concurrency=32,
            max_requests_per_second=20.0,
            requests_per_minute_per_key=5.0,
            auth_failure_interval_seconds=900.0,
            max_staleness_seconds=3600.0,
            shutdown_grace_seconds=5.0,
        ),
        server=ServerSettings(listen=(HostPort("127.0.0.1", DEFAULT_PORT),)),
        logging=LoggingSettings(format="json", level="info"),
        shard=None,
        source=str(config_dir / "config.yaml"),
    )
    assert settings.api.base_url == DEFAULT_BASE_URL


def test_every_option_set_is_parsed(config_dir: Path) -> None:
    """A file that sets every option yields exactly those values, per-org interval included."""
    text = """
api:
  base_url: http://127.0.0.1:8080/   # loopback may be plain http; trailing slash dropped
  timeout_seconds: 2.5
  user_agent: acme-monitoring/1.0
  max_response_bytes: 65536
polling:
  interval_seconds: 600
  concurrency: 4
  max_requests_per_second: 2.5
  requests_per_minute_per_key: 8
  auth_failure_interval_seconds: 1800
  max_staleness_seconds: 7200
  shutdown_grace_seconds: 1
server:
  listen: "[::1]:9999"
logging:
  format: console
  level: DEBUG
shard: 1/3
orgs:
  - name: acme
    api_key_file: acme.key
  - name: globex.eu_2
    api_key_env: PETRA_KEY_GLOBEX
    interval_seconds: 120
  - name: "7"
    api_key_file: ${CREDENTIALS_DIRECTORY}/acme
    interval_seconds: 45.5
"""
    loaded = write_and_load(config_dir, text)
    settings = loaded.settings

    assert loaded.warnings == ()
    assert settings.api == ApiSettings(
        base_url="http://127.0.0.1:8080",
        timeout_seconds=2.5,
        user_agent="acme-monitoring/1.0",
        max_response_bytes=65536,
    )
    assert settings.polling == PollingSettings(
        interval_seconds=600.0,
        concurrency=4,
        max_requests_per_second=2.5,
        requests_per_minute_per_key=8.0,
        auth_failure_interval_seconds=1800.0,
        max_staleness_seconds=7200.0,
        shutdown_grace_seconds=1.0,
    )
    assert isinstance(settings.polling.concurrency, int)
    assert isinstance(settings.api.max_response_bytes, int)
    assert settings.server.listen == (HostPort("::1", 9999),)
    assert listen_text(settings.server.listen) == "[::1]:9999"
    assert settings.logging == LoggingSettings(format="console", level="debug")
    assert settings.shard == Shard(1, 3)
    assert [(o.name, o.interval_seconds) for o in settings.orgs] == [
        ("acme", 600.0),
        ("globex.eu_2", 120.0),
        ("7", 45.5),
    ]
    assert [o.key_source for o in settings.orgs] == [
        KeySource("file", str(config_dir / "acme.key")),
        KeySource("env", "PETRA_KEY_GLOBEX"),
        KeySource("file", str(config_dir / CREDS / "acme")),
    ]
    assert [o.key.reveal() for o in settings.orgs] == [ACME_KEY, GLOBEX_KEY, ACME_KEY]
    assert [o.key_source.describe() for o in settings.orgs] == [
        f"file {config_dir / 'acme.key'}",
        "env $PETRA_KEY_GLOBEX",
        f"file {config_dir / CREDS / 'acme'}",
    ]


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("0.0.0.0:9865", HostPort("0.0.0.0", 9865)),  # noqa: S104 - parsing, not binding
        (":9100", HostPort("0.0.0.0", 9100)),  # noqa: S104 - ":PORT" means all interfaces
        ("localhost:80", HostPort("localhost", 80)),
        ("[::]:9865", HostPort("::", 9865)),
    ],
    ids=["ipv4-any", "port-only", "hostname", "ipv6-any"],
)
def test_listen_forms(config_dir: Path, listen: str, expected: HostPort) -> None:
    """Each documented listen form parses into the right host and port."""
    loaded = write_and_load(config_dir, f"server: {{listen: '{listen}'}}\n{ONE_ORG}")
    assert loaded.settings.server.listen == (expected,)


@pytest.mark.parametrize(
    "base_url",
    ["http://localhost:8080", "http://127.0.0.1", "http://127.8.9.10:1", "http://[::1]:8080"],
)
def test_plain_http_is_allowed_to_loopback(config_dir: Path, base_url: str) -> None:
    """Plain http is accepted for loopback hosts (the simulator, tests)."""
    loaded = write_and_load(config_dir, f"api: {{base_url: '{base_url}'}}\n{ONE_ORG}")
    assert loaded.settings.api.base_url == base_url


def test_interval_exactly_at_the_key_budget_is_accepted(config_dir: Path) -> None:
    """Two orgs sharing a key at exactly the budget (2 x 60/24 = 5 per minute) pass."""
    text = (
        "orgs:\n  - {name: acme, api_key_file: acme.key, interval_seconds: 24}\n"
        "  - {name: acme-eu, api_key_file: '${CREDENTIALS_DIRECTORY}/acme', "
        "interval_seconds: 24}\n"
    )
    loaded = write_and_load(config_dir, text)
    assert [org.name for org in loaded.settings.orgs] == ["acme", "acme-eu"]


def test_raised_key_budget_allows_shorter_intervals_with_a_warning(config_dir: Path) -> None:
    """requests_per_minute_per_key above Petra's 10 is allowed but warned about, by path."""
    text = (
        "polling: {requests_per_minute_per_key: 12}\n"
        "orgs:\n  - {name: acme, api_key_file: acme.key, interval_seconds: 5}\n"
    )
    loaded = write_and_load(config_dir, text)

    assert loaded.settings.orgs[0].interval_seconds == 5.0
    assert len(loaded.warnings) == 1
    assert loaded.warnings[0].startswith(
        f"{config_dir / 'config.yaml'}: polling.requests_per_minute_per_key: 12 is above "
        "Petra's published limit of 10 per minute"
    )


def test_budget_of_ten_is_not_warned_about(config_dir: Path) -> None:
    """Exactly Petra's published 10 per minute gives no warning."""
    loaded = write_and_load(config_dir, "polling: {requests_per_minute_per_key: 10}\n" + ONE_ORG)
    assert loaded.warnings == ()


def test_inline_key_is_accepted_with_a_warning(config_dir: Path) -> None:
    """An inline api_key works, warns by path, and the warning does not show the key."""
    text = f"orgs:\n  - {{name: acme, api_key: '{INLINE_KEY}'}}\n"
    loaded = write_and_load(config_dir, text)

    org = loaded.settings.orgs[0]
    assert org.key.reveal() == INLINE_KEY
    assert org.key_source.kind == "inline"
    assert org.key_source.describe() == "inline in the config file"
    assert loaded.warnings == (
        f"{config_dir / 'config.yaml'}: orgs[0].api_key: an inline key is stored in the "  # noqa: ISC004 - one warning
        "config file; prefer api_key_file or api_key_env",
    )
    assert_no_key_material(ALL_KEYS, "\n".join(loaded.warnings))


def test_relative_key_paths_resolve_against_the_config_directory(
    config_dir: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relative api_key_file is found next to the config file, wherever the process runs."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.chdir(elsewhere)
    (config_dir / "sub").mkdir()
    (config_dir / "sub" / "k").write_text(GLOBEX_KEY, encoding="utf-8")

    loaded = write_and_load(config_dir, "orgs:\n  - {name: acme, api_key_file: sub/k}\n")

    assert loaded.settings.orgs[0].key_source == KeySource("file", str(config_dir / "sub" / "k"))
    assert loaded.settings.orgs[0].key.reveal() == GLOBEX_KEY


def test_parse_config_resolves_against_base_dir(config_dir: Path) -> None:
    """parse_config resolves relative key paths against the base_dir it is given."""
    loaded = parse_config(ONE_ORG, source="inline.yaml", base_dir=config_dir, environ={})
    assert loaded.settings.orgs[0].key_source.location == str(config_dir / "acme.key")
    assert loaded.settings.source == "inline.yaml"


def test_state_path_resolves_against_the_config_directory(config_dir: Path) -> None:
    """A relative state.path is kept beside the config file; an absolute one as given."""
    relative = write_and_load(config_dir, "state: {path: state/state.json}\n" + ONE_ORG)
    assert relative.settings.state.path == str(config_dir / "state" / "state.json")
    absolute = write_and_load(config_dir, "state: {path: /var/lib/p/state.json}\n" + ONE_ORG)
    assert absolute.settings.state.path == "/var/lib/p/state.json"
    assert write_and_load(config_dir, ONE_ORG).settings.state.path is None


def test_credentials_directory_is_expanded(config_dir: Path) -> None:
    """`${CREDENTIALS_DIRECTORY}/x` (systemd credentials) expands from the given environ."""
    text = (
        "orgs:\n  - {name: a, api_key_file: '${CREDENTIALS_DIRECTORY}/acme'}\n"
        "  - {name: b, api_key_file: $CREDENTIALS_DIRECTORY/acme, interval_seconds: 600}\n"
    )
    loaded = write_and_load(config_dir, text)
    expected = str(config_dir / CREDS / "acme")
    assert [org.key_source.location for org in loaded.settings.orgs] == [expected, expected]


def test_key_file_whitespace_and_newlines_are_stripped(config_dir: Path) -> None:
    """Leading/trailing blanks, CRLF and blank lines around a key file's key are dropped."""
    loaded = write_and_load(config_dir, "orgs:\n  - {name: g, api_key_file: globex.key}\n")
    assert loaded.settings.orgs[0].key.reveal() == GLOBEX_KEY


def test_env_key_is_stripped(config_dir: Path) -> None:
    """A key from an environment variable loses surrounding whitespace."""
    environ = {"K": f"  {GLOBEX_KEY}\n"}
    loaded = write_and_load(config_dir, "orgs:\n  - {name: g, api_key_env: K}\n", environ)
    assert loaded.settings.orgs[0].key.reveal() == GLOBEX_KEY


def test_real_environment_is_not_consulted(
    config_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With an explicit environ, a variable set only in os.environ does not count."""
    monkeypatch.setenv("PETRA_ONLY_IN_PROCESS", GLOBEX_KEY)
    with pytest.raises(ConfigError, match="PETRA_ONLY_IN_PROCESS is not set"):
        write_and_load(config_dir, "orgs:\n  - {name: g, api_key_env: PETRA_ONLY_IN_PROCESS}\n")


def test_iter_orgs_in_shard_splits_the_org_list(config_dir: Path) -> None:
    """Across all shards of a config every org is polled by exactly one instance."""
    lines = "".join(
        f"  - {{name: org{i}, api_key_env: PETRA_KEY_GLOBEX, interval_seconds: 3600}}\n"
        for i in range(30)
    )
    settings = write_and_load(config_dir, "orgs:\n" + lines).settings

    per_shard = [
        [org.name for org in iter_orgs_in_shard(settings.orgs, Shard(i, 3))] for i in range(3)
    ]
    everyone = sorted(name for names in per_shard for name in names)
    assert everyone == sorted(org.name for org in settings.orgs)
    assert all(per_shard)
    assert [org.name for org in iter_orgs_in_shard(settings.orgs, None)] == [
        org.name for org in settings.orgs
    ]


def test_sharding_copies_put_each_org_in_that_many_shards(config_dir: Path) -> None:
    """sharding.copies: 2 over 3 shards: every org is polled by two instances, named by
    org_owners in the order the hash ranks them."""
    lines = "".join(
        f"  - {{name: org{i}, api_key_env: PETRA_KEY_GLOBEX, interval_seconds: 3600}}\n"
        for i in range(30)
    )
    settings = write_and_load(config_dir, "sharding:\n  copies: 2\norgs:\n" + lines).settings
    assert settings.sharding.copies == 2
    per_shard = [
        {org.name for org in iter_orgs_in_shard(settings.orgs, Shard(i, 3), copies=2)}
        for i in range(3)
    ]
    for org in settings.orgs:
        holders = [i for i in range(3) if org.name in per_shard[i]]
        assert holders == sorted(org_owners(replace(settings, shard=Shard(0, 3)), org.name))
        assert len(holders) == 2
    assert org_owners(settings, "org0") == ()  # not sharded: no owners to name
    assert write_and_load(config_dir, "orgs:\n" + lines).settings.sharding.copies == 1


def test_command_line_overrides_win() -> None:
    """CliOverrides.apply replaces only what is given, and changes nothing else."""
    base = Settings(orgs=(), server=ServerSettings((HostPort("127.0.0.2", 9),)), shard=Shard(1, 3))
    changed = CliOverrides(
        listen=(HostPort("127.0.0.1", 1),),
        shard=Shard(0, 2),
        log_format="console",
        log_level="error",
    ).apply(base)
    assert changed.server.listen == (HostPort("127.0.0.1", 1),)
    assert changed.shard == Shard(0, 2)
    assert changed.logging == LoggingSettings(format="console", level="error")
    assert replace(changed, server=base.server, shard=base.shard, logging=base.logging) == base
    assert CliOverrides().apply(base) == base
    only_level = CliOverrides(log_level="debug").apply(base)
    assert only_level == replace(base, logging=LoggingSettings(level="debug"))


# -- The key never shows -----------------------------------------------------------------------

LEAKY_FILES = [
    pytest.param(
        f"colour: 1\norgs:\n  - {{name: acme, api_key: '{INLINE_KEY}', interval_seconds: 1}}\n",
        id="inline-key-beside-errors",
    ),
    pytest.param(
        f"orgs:\n  - {{name: acme, api_key: '{INLINE_KEY}'}}\n"
        f"  - {{name: acme, api_key: '{INLINE_KEY}'}}\n",
        id="inline-key-duplicate-org",
    ),
    pytest.param(
        f"orgs:\n  - {{name: acme, api_key: '{INLINE_KEY} x'}}\n", id="inline-key-with-space"
    ),
    pytest.param(
        f'orgs:\n  - {{name: acme, api_key: "{INLINE_KEY}\\u0001"}}\n',
        id="inline-key-control-char",
    ),
    pytest.param(
        f"orgs:\n  - name: acme\n    api_key: {INLINE_KEY}\n   oops: [\n", id="inline-key-bad-yaml"
    ),
    pytest.param(
        f"orgs:\n  - {{name: acme, api_key: '{INLINE_KEY}', api_key_file: acme.key}}\n",
        id="inline-key-and-file",
    ),
    pytest.param(
        "orgs:\n  - {name: acme, api_key_file: acme.key, interval_seconds: 1}\n"
        "  - {name: globex, api_key_env: PETRA_KEY_GLOBEX, interval_seconds: 1}\n",
        id="file-and-env-keys-over-budget",
    ),
]


@pytest.mark.parametrize("text", LEAKY_FILES)
def test_key_never_appears_in_config_errors(config_dir: Path, text: str) -> None:
    """Whatever goes wrong around a key, no 8-character slice of it is in any problem."""
    with pytest.raises(ConfigError) as caught:
        write_and_load(config_dir, text)
    assert_no_key_material(ALL_KEYS, str(caught.value))
    assert_no_key_material(ALL_KEYS, repr(caught.value))
    assert_no_key_material(ALL_KEYS, "\n".join(caught.value.problems))


def test_key_never_appears_in_reprs(config_dir: Path) -> None:
    """repr of Settings, OrgConfig, KeySource, LoadedConfig and str/repr of ApiKey hide keys."""
    text = (
        "orgs:\n  - {name: acme, api_key_file: acme.key}\n"
        "  - {name: globex, api_key_env: PETRA_KEY_GLOBEX}\n"
        f"  - {{name: initech, api_key: '{INLINE_KEY}'}}\n"
    )
    loaded = write_and_load(config_dir, text)

    shown = [repr(loaded), repr(loaded.settings), str(loaded.settings), *loaded.warnings]
    for org in loaded.settings.orgs:
        shown += [repr(org), str(org), repr(org.key_source), str(org.key), repr(org.key)]
        shown.append(f"{org.key} {org.key!r} {org.key!s} {org.key_fingerprint}")
    for text_shown in shown:
        assert_no_key_material(ALL_KEYS, text_shown)
    # The fingerprints are there instead, and they tell the keys apart.
    fingerprints = {org.key_fingerprint for org in loaded.settings.orgs}
    assert len(fingerprints) == 3
    assert all(fp.startswith("sha256:") for fp in fingerprints)
    assert str(loaded.settings.orgs[0].key) == f"ApiKey({loaded.settings.orgs[0].key_fingerprint})"


def test_api_key_hides_itself_in_every_rendering() -> None:
    """str, repr, format, %-format and f-strings of an ApiKey show the fingerprint only."""
    key = ApiKey(ACME_KEY)
    renderings = [str(key), repr(key), format(key), "%s %r" % (key, key), f"{key} {key!r}"]  # noqa: UP031 - %-formatting is one of the renderings under test
    for shown in renderings:
        assert_no_key_material(ALL_KEYS, shown)
        assert key.fingerprint in shown
    assert key.reveal() == ACME_KEY


def test_api_key_cannot_be_pickled() -> None:
    """Pickling an ApiKey (e.g. into a cache or a process pool) is refused."""
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(ApiKey(ACME_KEY))


@pytest.mark.parametrize(
    ("field", "text"),
    [
        ("api_key_env", "petra_live0123456789abcdefXYZ"),
        ("api_key_file", "petra_live0123456789abcdefXYZ"),
    ],
)
def test_a_key_typed_into_the_wrong_field_is_not_echoed(field: str, text: str) -> None:
    """A key pasted where a variable name or path belongs is refused without repeating it."""
    with pytest.raises(ConfigError) as caught:
        parse_config(f"orgs:\n  - name: acme\n    {field}: {text}\n", source="c.yaml", environ={})
    message = "\n".join(caught.value.problems)
    assert f"orgs[0].{field}: this looks like an API key itself" in message
    assert "petra_li" not in message
    assert "0123456789" not in message


def test_a_key_written_twice_in_a_mapping_is_an_error() -> None:
    """PyYAML would keep the last of two `name:` lines; the config refuses the file instead."""
    text = "orgs:\n  - name: acme\n    name: globex\n    api_key_env: X\n"
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="c.yaml", environ={"X": "petra_k"})
    assert caught.value.problems == [
        "c.yaml: line 3, column 5: invalid YAML: key 'name' appears twice in one mapping"
    ]


def test_a_key_file_others_can_read_is_warned_about_with_the_fix(config_dir: Path) -> None:
    """Like ssh: world-readable (also behind a Secret volume's symlink) draws a warning
    naming the file and the fix; private, or readable by the collector's own group, does not."""
    key = config_dir / "acme.key"
    linked = config_dir / "..data"
    linked.mkdir()
    secret = linked / "acme"
    secret.write_text(ACME_KEY + "\n", encoding="utf-8")
    (config_dir / "kube.key").symlink_to(secret)
    cases = [
        (key, 0o644, True),
        (key, 0o604, True),
        (key, 0o600, False),
        (key, 0o640, False),  # its group is this process's own
        (secret, 0o644, True),
        (secret, 0o400, False),
    ]
    for target, mode, warned in cases:
        target.chmod(mode)
        name = "kube.key" if target == secret else "acme.key"
        loaded = write_and_load(config_dir, f"orgs:\n  - {{name: acme, api_key_file: {name}}}\n")
        shown = [w for w in loaded.warnings if "readable by" in w]
        assert bool(shown) == warned, (target, oct(mode), loaded.warnings)
        if warned:
            (warning,) = shown
            path = config_dir / name
            assert warning.startswith(f"{config_dir / 'config.yaml'}: orgs[0].api_key_file: ")
            assert f"chmod 600 {path}" in warning
            assert "defaultMode: 0400" in warning
            assert ACME_KEY not in warning


def test_a_key_file_readable_by_a_foreign_group_is_warned_about(config_dir: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a file another group needs root")
    key = config_dir / "acme.key"
    key.chmod(0o640)
    os.chown(key, -1, os.getegid() + 4242)
    (warning,) = write_and_load(config_dir, ONE_ORG).warnings
    assert f"readable by group {os.getegid() + 4242}" in warning


@pytest.mark.parametrize(
    "key",
    ["petra_var_0123456789abcdef0123", "petra_0123456789abcdef0123", "petra_var_ABCDEFGH12345678"],
)
def test_both_key_shapes_are_never_echoed_from_a_wrong_field(config_dir: Path, key: str) -> None:
    """A Multi-MSP key (petra_var_...) is recognised like a plain one: never echoed."""
    with pytest.raises(ConfigError) as raised:
        write_and_load(config_dir, f"orgs:\n  - name: {key}\n    api_key_env: {key}\n")
    text = "\n".join(raised.value.problems)
    assert "looks like an API key" in text
    assert key not in text
