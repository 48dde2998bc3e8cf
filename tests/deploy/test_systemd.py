"""The systemd unit and example config in deploy/systemd/: systemd accepts the
unit, its sandbox is tight, and the config loads with the credentials the
unit hands over."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from collector.config import load_config
from collector.web_config import load_web_config
from tests.tools import require_tool
from tests.webtls import TlsFiles

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "petra-collector.service"
EXAMPLE_CONFIG = ROOT / "deploy" / "systemd" / "config.yaml"
EXAMPLE_WEB_CONFIG = ROOT / "deploy" / "systemd" / "web.yml"
INSTALLED_CONFIG = "/etc/petra-collector/config.yaml"


def directives(text: str) -> dict[str, list[str]]:
    """Unit file `Key=value` lines, by key, in order (keys may repeat)."""
    result: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        result.setdefault(key.strip(), []).append(value.strip())
    return result


def installed_executable() -> str:
    """The petra-collector script of this interpreter's environment (CI's .venv), else PATH's."""
    beside = Path(sys.executable).parent / "petra-collector"
    path = str(beside) if beside.exists() else shutil.which("petra-collector")
    if path is None:
        pytest.fail("petra-collector is not installed: pip install -e . first")
    return path


def unit_with_real_executable(tmp_path: Path) -> Path:
    """A copy of the unit whose ExecStart= names the installed petra-collector.

    `systemd-analyze verify` checks that ExecStart's program exists, and
    /opt/petra-collector does not exist on a test machine.
    """
    text = UNIT.read_text()
    rewritten, count = re.subn(
        r"^ExecStart=\S+", f"ExecStart={installed_executable()}", text, flags=re.MULTILINE
    )
    assert count == 1
    path = tmp_path / UNIT.name
    path.write_text(rewritten)
    return path


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed systemd-analyze command lines on a test copy
        command, capture_output=True, text=True, timeout=120, check=False
    )


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` passes with no warning about the unit (unknown keys warn only)."""
    analyze = require_tool("systemd-analyze", "systemd")
    unit = unit_with_real_executable(tmp_path)
    result = run([analyze, "verify", str(unit)])
    complaints = [
        line for line in (result.stdout + result.stderr).splitlines() if unit.name in line
    ]
    assert result.returncode == 0, result.stdout + result.stderr
    assert complaints == []


def test_systemd_analyze_security_rates_the_sandbox_ok(tmp_path: Path) -> None:
    """`systemd-analyze security` puts the unit's exposure at 2.0 or below ("OK")."""
    analyze = require_tool("systemd-analyze", "systemd")
    unit = unit_with_real_executable(tmp_path)
    # --threshold is in tenths: 20 means an exposure level of 2.0.
    result = run([analyze, "security", "--offline=true", "--threshold=20", str(unit)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_unit_has_notify_watchdog_reload_and_sandbox() -> None:
    """The unit uses sd_notify with a watchdog, reloads with SIGHUP and sets the sandbox."""
    unit = directives(UNIT.read_text())
    single = {key: values[-1] for key, values in unit.items()}
    assert single["Type"] == "notify"
    assert single["NotifyAccess"] == "main"
    assert single["WatchdogSec"]
    assert re.fullmatch(r"/\S*kill -HUP \$MAINPID", single["ExecReload"])
    assert single["ExecStart"].split()[1:4] == ["run", "--config", INSTALLED_CONFIG]
    assert single["ExecStart"].split()[4:6] == ["--web.config.file", "%d/web.yml"]
    assert single["RestartPreventExitStatus"] == "2"
    for key in (
        "DynamicUser",
        "ProtectHome",
        "NoNewPrivileges",
        "PrivateTmp",
        "PrivateDevices",
        "MemoryDenyWriteExecute",
        "LockPersonality",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "RestrictNamespaces",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "ProtectClock",
        "ProtectHostname",
    ):
        assert single.get(key) == "yes", key
    assert single["ProtectSystem"] == "strict"
    assert single["RestrictAddressFamilies"].split() == ["AF_INET", "AF_INET6", "AF_UNIX"]
    assert unit["CapabilityBoundingSet"] == [""]
    assert "@system-service" in unit["SystemCallFilter"]
    assert unit["LoadCredential"], "keys must reach the service as credentials"


def test_example_config_loads_with_the_units_credentials(tmp_path: Path) -> None:
    """deploy/systemd/config.yaml loads, its key files being the credentials the unit loads."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    loaded: dict[str, str] = {}  # credential id -> source path
    for entry in directives(UNIT.read_text())["LoadCredential"]:
        credential_id, _, source = entry.partition(":")
        loaded[credential_id] = source
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    for org in config["orgs"]:
        match = re.fullmatch(r"\$\{CREDENTIALS_DIRECTORY\}/(\S+)", org["api_key_file"])
        assert match, f"{org['name']}: api_key_file is not under ${{CREDENTIALS_DIRECTORY}}"
        name = match.group(1)
        # Either LoadCredential=ID:FILE (credential ID) or LoadCredential=ID:DIRECTORY,
        # which systemd (>= 251) turns into one credential ID_<file> per file.
        assert name in loaded or any(
            name.startswith(f"{credential_id}_") and source.endswith("/keys")
            for credential_id, source in loaded.items()
        ), f"{org['name']}: no LoadCredential= provides {name}"
        (credentials / name).write_text(f"petra_example_{org['name']}\n")
    result = load_config(EXAMPLE_CONFIG, environ={"CREDENTIALS_DIRECTORY": str(credentials)})
    assert [org.name for org in result.settings.orgs] == [org["name"] for org in config["orgs"]]
    assert result.warnings == ()


def test_the_state_file_lives_in_the_units_state_directory() -> None:
    """StateDirectory= makes /var/lib/<name>, writable under ProtectSystem=strict and kept
    across restarts; the shipped config keeps its state file there."""
    unit = directives(UNIT.read_text())
    (name,) = unit["StateDirectory"]
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    assert Path(config["state"]["path"]).parent == Path("/var/lib") / name
    assert unit["StateDirectoryMode"] == ["0700"]


def test_example_web_config_loads_with_the_units_credentials(tmp_path: Path) -> None:
    """deploy/systemd/web.yml loads from the credentials directory, next to the certificate
    and key the unit loads as credentials."""
    loaded = {
        entry.partition(":")[0]: entry.partition(":")[2]
        for entry in directives(UNIT.read_text())["LoadCredential"]
    }
    assert loaded["web.yml"] == "/etc/petra-collector/web.yml"
    credentials = tmp_path / "credentials"
    files = TlsFiles(credentials)
    web = yaml.safe_load(EXAMPLE_WEB_CONFIG.read_text())
    for key, credential in (("cert_file", "tls.crt"), ("key_file", "tls.key")):
        assert web["tls_server_config"][key] == credential
        assert credential in loaded, f"no LoadCredential= provides {credential}"
    assert files.cert_file.name == "tls.crt"
    (credentials / "web.yml").write_text(EXAMPLE_WEB_CONFIG.read_text())
    config = load_web_config(credentials / "web.yml")
    assert config.ssl_context is not None
    assert [user for user, _hash in config.users] == ["prometheus"]
