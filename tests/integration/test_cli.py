"""The installed command as a user runs it: exit codes, signals, output.

The daemon, its stop on SIGTERM, the demo, `check --probe` and `--version` run as
`python -m collector`; usage and config errors and `--help` call the same `main` in this
process (`in_process`), without a new interpreter (and coverage start-up) for each.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from collector.cli import main
from collector.demo import DEMO_INCIDENTS_INTERVAL_SECONDS, DEMO_INTERVAL_SECONDS, REJECTED_ORG
from collector.petra_simulator import SimulatedOrg, Simulator, sim_key, start_simulator
from collector.scheduler import initial_offset
from tests.integration.harness import write_config
from tests.leaks import assert_no_key_material
from tests.processes import free_port
from tests.simulated import running_simulator
from tests.waiting import eventually
from tests.webtls import TlsFiles, bcrypt_hash, write_web_config

ACME = SimulatedOrg("acme", sim_key("acme"), tenant_count=2)
REVOKED_KEY = "petra_revoked_cli_0123456789abcdef"
COMMAND = [sys.executable, "-m", "collector"]


async def spawn_daemon(config: Path, port: int) -> asyncio.subprocess.Process:
    """`petra-collector run` as a child process on 127.0.0.1:port, output piped."""
    return await asyncio.create_subprocess_exec(
        *COMMAND,
        "run",
        "--config",
        str(config),
        "--listen",
        f"127.0.0.1:{port}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def in_process(capsys: pytest.CaptureFixture[str]) -> Run:
    """`main(args)` in this process, seen as `run_command` sees the command: the exit
    status (argparse's own exits included), stdout and stderr."""

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exited:  # argparse: usage errors, --help
            code = exited.code if isinstance(exited.code, int) else 1
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out, err)

    return run


def run_command(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and module, no shell
        [*COMMAND, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_bad_config_exits_2_with_one_line_per_problem(tmp_path: Path, in_process: Run) -> None:
    """A broken config names file and path for each problem, exits 2, shows no traceback."""
    config = tmp_path / "bad.yaml"
    config.write_text(
        "polling:\n  interval_seconds: -5\norgs:\n  - name: acme\n    api_key_file: nope\n"
        "  - name: acme\n    api_key_env: UNSET_PETRA_VAR_FOR_TEST\n"
    )
    for command in ("run", "check"):
        result = in_process(command, "--config", str(config))
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert f"{config}: polling.interval_seconds: must be greater than 0" in result.stderr
        assert f"{config}: orgs[0].api_key_file: key file" in result.stderr
        assert f"{config}: orgs[1].api_key_env: environment variable" in result.stderr


def test_missing_config_and_bad_arguments_exit_2(tmp_path: Path, in_process: Run) -> None:
    """No file, or an unknown option, is a usage error with a helpful message; the command
    itself exits 2 too."""
    result = in_process("run", "--config", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2
    assert "file not found" in result.stderr
    result = in_process("run", "--config", "x.yaml", "--shrd", "0/2")
    assert result.returncode == 2
    assert "did you mean --shard" in result.stderr
    result = run_command("chek")  # codespell:ignore chek - the typo is the test
    assert result.returncode == 2
    assert "did you mean check" in result.stderr


def test_version_and_help(in_process: Run) -> None:
    """--version prints the version; every command's --help carries an example."""
    result = run_command("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("petra-collector ")
    for command in ("run", "check", "simulate", "demo"):
        result = in_process(command, "--help")
        assert result.returncode == 0
        assert "Examples:" in result.stdout


async def test_check_prints_fingerprints_and_probe_reports_each_org(tmp_path: Path) -> None:
    """check lists orgs with fingerprints, never keys; --probe exits 1 when a key fails."""
    async with running_simulator(Simulator([ACME])) as simulator_url:
        config = write_config(tmp_path, simulator_url, {"acme": ACME.key, "umbrella": REVOKED_KEY})
        plain = await asyncio.to_thread(run_command, "check", "--config", str(config))
        assert plain.returncode == 0, plain.stderr
        assert "acme" in plain.stdout
        assert "sha256:" in plain.stdout
        probed = await asyncio.to_thread(
            run_command, "check", "--config", str(config), "--probe", "--output", "json"
        )
        assert probed.returncode == 1, probed.stderr
        results = {p["org"]: p for p in json.loads(probed.stdout)["probes"]}
        assert results["acme"]["outcome"] == "ok"
        assert results["acme"]["tenants"] == 2
        assert results["umbrella"]["outcome"] == "auth_failed"  # the state the page shows
        assert_no_key_material(
            [ACME.key, REVOKED_KEY], plain.stdout, plain.stderr, probed.stdout, probed.stderr
        )


async def test_run_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """The daemon serves /metrics, then exits 0 within a few seconds of SIGTERM."""
    runner, port = await start_simulator(Simulator([ACME]), "127.0.0.1", 0)
    listen = free_port()
    config = write_config(tmp_path, f"http://127.0.0.1:{port}", {"acme": ACME.key})
    process = await spawn_daemon(config, listen)
    try:
        async with aiohttp.ClientSession() as http:

            async def acme_up() -> str | None:
                assert process.returncode is None, "the daemon exited"
                async with http.get(f"http://127.0.0.1:{listen}/metrics") as response:
                    body = await response.text()
                return body if 'petra_up{org="acme"} 1.0' in body else None

            body = await eventually(
                acme_up, "acme up in /metrics", every=0.1, ignore=(aiohttp.ClientConnectionError,)
            )
        process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
        assert process.returncode == 0, stderr.decode()
        assert time.monotonic() - started < 5
        events = [json.loads(line)["event"] for line in stdout.decode().splitlines()]
        assert events.index("config_loaded") < events.index("started")
        assert events.count("config_loaded") == 1  # logged by the daemon alone, not also by `run`
        assert events[-1] == "stopped"
        assert_no_key_material([ACME.key], stdout.decode(), stderr.decode(), body)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await runner.cleanup()


async def test_web_flags_as_exporters_spell_them(tmp_path: Path) -> None:
    """--web.listen-address twice (once by its alias --listen) and --web.telemetry-path: the
    metrics are on every address at that path, and /metrics is gone."""
    runner, port = await start_simulator(Simulator([ACME]), "127.0.0.1", 0)
    first, second = free_port(), free_port()
    config = write_config(tmp_path, f"http://127.0.0.1:{port}", {"acme": ACME.key})
    process = await asyncio.create_subprocess_exec(
        *COMMAND,
        "run",
        "--config",
        str(config),
        "--web.listen-address",
        f"127.0.0.1:{first}",
        "--listen",
        f"127.0.0.1:{second}",
        "--web.telemetry-path",
        "/internal/metrics",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http:
            for listen in (first, second):
                url = f"http://127.0.0.1:{listen}/internal/metrics"
                deadline = time.monotonic() + 15
                body = ""
                while 'petra_up{org="acme"} 1.0' not in body:
                    assert time.monotonic() < deadline, f"no acme on {url}"
                    await asyncio.sleep(0.2)
                    with contextlib.suppress(aiohttp.ClientConnectionError):
                        async with http.get(url) as response:
                            body = await response.text()
            async with http.get(f"http://127.0.0.1:{first}/metrics") as response:
                assert response.status == 404
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
        assert process.returncode == 0, stderr.decode()
        started = next(
            line
            for line in map(json.loads, stdout.decode().splitlines())
            if line["event"] == "started"
        )
        assert started["listen"] == f"127.0.0.1:{first}, 127.0.0.1:{second}"
        assert started["telemetry_path"] == "/internal/metrics"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await runner.cleanup()


def test_a_telemetry_path_another_page_uses_is_refused(tmp_path: Path) -> None:
    """--web.telemetry-path must be a path no other route takes: exit 2 saying why."""
    config = write_config(tmp_path, "http://127.0.0.1:9", {"acme": ACME.key})
    for path, why in (("/healthz", "is taken by another"), ("metrics", "starting with one '/'")):
        result = run_command("run", "--config", str(config), "--web.telemetry-path", path)
        assert result.returncode == 2
        assert why in result.stderr


def test_demo_runs_with_no_arguments_but_ports() -> None:
    """demo starts both sides, prints the URLs, a rejected key and incidents show in the log."""
    # The demo's rejected org is first polled at its stable offset into the interval, and
    # initech's incidents at theirs.
    first_poll = max(
        initial_offset(REJECTED_ORG, DEMO_INTERVAL_SECONDS),
        initial_offset("initech/incidents", DEMO_INCIDENTS_INTERVAL_SECONDS),
    )
    result = run_command(
        "demo",
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--simulator-listen",
        f"127.0.0.1:{free_port()}",
        "--duration",
        str(first_poll + 2),
        timeout=40,
    )
    assert result.returncode == 0, result.stderr
    assert "/metrics" in result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert any(e["event"] == "auth_failed" and e["org"] == "umbrella" for e in events)
    assert any(e["event"] == "incident_detected" and e["org"] == "initech" for e in events)


def test_broken_web_config_exits_2_naming_file_and_path(tmp_path: Path, in_process: Run) -> None:
    """run and check refuse a web config with problems (flag or server.web_config_file),
    a client_auth_type that checks no certificate among them."""
    files = TlsFiles(tmp_path / "tls")
    web = write_web_config(
        tmp_path / "tls" / "web.yml",
        tls=files.tls_section("RequestClientCert") | {"key_file": "missing.key"},
        users={"prometheus": "hunter2"},
    )
    config = write_config(tmp_path, "http://127.0.0.1:9", {"acme": ACME.key})
    in_file = tmp_path / "in-file.yaml"
    in_file.write_text(config.read_text() + "server:\n  web_config_file: tls/web.yml\n")
    for command, config_args in (
        ("run", ["--config", str(config), "--web.config.file", str(web)]),
        ("check", ["--config", str(config), "--web.config.file", str(web)]),
        ("run", ["--config", str(in_file)]),  # relative to the config file
        ("check", ["--config", str(in_file)]),
    ):
        result = in_process(command, *config_args)
        assert result.returncode == 2, (command, result.stderr)
        assert "Traceback" not in result.stderr
        missing = tmp_path / "tls" / "missing.key"
        assert f"{web}: tls_server_config.key_file: {missing}: not found" in result.stderr
        assert f"{web}: basic_auth_users.prometheus: is not a bcrypt hash" in result.stderr
        assert (
            f"{web}: tls_server_config.client_auth_type: RequestClientCert is refused: "
            in result.stderr
        )
        assert "use one of NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert" in (
            result.stderr
        )
        assert "hunter2" not in result.stderr
        assert "web config rejected: 3 problem(s)" in result.stderr


def test_check_describes_a_good_web_config(tmp_path: Path, in_process: Run) -> None:
    files = TlsFiles(tmp_path / "tls")
    web = write_web_config(
        tmp_path / "tls" / "web.yml",
        tls=files.tls_section("RequireAndVerifyClientCert"),
        users={"prometheus": bcrypt_hash("pw")},
    )
    config = write_config(tmp_path, "http://127.0.0.1:9", {"acme": ACME.key})
    result = in_process("check", "--config", str(config), "--web.config.file", str(web))
    assert result.returncode == 0, result.stderr
    assert (
        f"web config {web}: TLS (RequireAndVerifyClientCert), 1 basic auth user(s)" in result.stderr
    )
