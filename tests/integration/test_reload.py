"""Reload, key rotation and the systemd notify protocol, against the real daemon."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from collector.config import Shard
from collector.petra_simulator import SimulatedOrg, sim_key
from tests.integration.harness import Running, running_daemon, value, write_config
from tests.waiting import eventually

ACME = SimulatedOrg("acme", sim_key("acme"), tenant_count=2)
GLOBEX = SimulatedOrg("globex", sim_key("globex"), tenant_count=3)
HOOLI = SimulatedOrg("hooli", sim_key("hooli"), tenant_count=4)


def rewrite(run: Running, tmp_path: Path, keys: dict[str, str], **polling: float) -> None:
    write_config(tmp_path, run.simulator_url, keys, polling=polling)


async def test_reload_adds_removes_and_keeps_unchanged_orgs(tmp_path: Path) -> None:
    """Added orgs start, removed orgs' series vanish at once, unchanged orgs keep their state."""
    sim_orgs = [ACME, GLOBEX, HOOLI]
    async with running_daemon(tmp_path, [ACME, GLOBEX]) as run:
        await run.wait_metric("petra_up", 1, org="acme")
        await run.wait_metric("petra_up", 1, org="globex")
        acme_before = run.daemon.org_states()[0]
        assert acme_before.name == "acme"
        polls_before = acme_before.requests_by_code["200"]

        run.simulator.add_org(HOOLI)
        rewrite(run, tmp_path, {o.name: o.key for o in sim_orgs if o.name != "globex"})
        status, text = await run.post("/-/reload")
        assert status == 200, text
        samples = await run.metrics()
        assert value(samples, "petra_up", org="globex") is None  # gone at once
        assert not any(("org", "globex") in labels for _name, labels in samples)
        assert value(samples, "petra_collector_orgs") == 2
        acme_after = next(s for s in run.daemon.org_states() if s.name == "acme")
        assert acme_after is acme_before  # same state object: history kept
        assert acme_after.requests_by_code["200"] >= polls_before
        await run.wait_metric("petra_up", 1, org="hooli")
        loaded = run.events("config_loaded", reason="http")
        assert len(loaded) == 1
        assert loaded[0]["orgs"] == 2


async def test_each_load_is_logged_once(tmp_path: Path) -> None:
    """config_loaded (and each config_warning) once at start and once per applied reload."""
    async with running_daemon(tmp_path, [ACME]) as run:
        await run.wait_metric("petra_up", 1, org="acme")
        assert [e["reason"] for e in run.events("config_loaded")] == ["start"]
        # The test pacing is above Petra's published limit: one warning per load.
        warnings = len(run.events("config_warning"))
        assert warnings >= 1
        assert (await run.post("/-/reload"))[0] == 200
        assert [e["reason"] for e in run.events("config_loaded")] == ["start", "http"]
        assert len(run.events("config_warning")) == 2 * warnings
        (tmp_path / "config.yaml").write_text("orgs: []\n")
        assert (await run.post("/-/reload"))[0] == 400  # rejected: not a load
        assert len(run.events("config_loaded")) == 2
        assert len(run.events("config_reload_failed")) == 1


async def test_command_line_overrides_outlive_a_reload(tmp_path: Path) -> None:
    """--shard and --listen still win after a reload of a file that sets neither."""
    async with running_daemon(tmp_path, [ACME, GLOBEX, HOOLI], shard=Shard(0, 2)) as run:
        owned = sorted(state.name for state in run.daemon.org_states())
        assert 0 < len(owned) < 3  # the shard owns some orgs, not all
        assert (await run.post("/-/reload"))[0] == 200
        assert sorted(state.name for state in run.daemon.org_states()) == owned
        assert run.events("config_loaded", reason="http")[0]["shard"] == "0/2"
        assert not run.events("config_needs_restart")  # the --listen port 0 still holds


async def test_a_reload_with_copies_takes_on_the_orgs_it_now_shares(tmp_path: Path) -> None:
    """Shard 0/2 with sharding.copies 2 loaded by a reload owns every org: the ones it gains
    are polled, and none is asked to restart."""
    async with running_daemon(tmp_path, [ACME, GLOBEX, HOOLI], shard=Shard(0, 2)) as run:
        owned = {state.name for state in run.daemon.org_states()}
        assert 0 < len(owned) < 3
        config = tmp_path / "config.yaml"
        config.write_text(config.read_text() + "sharding:\n  copies: 2\n")
        assert (await run.post("/-/reload"))[0] == 200
        assert {state.name for state in run.daemon.org_states()} == {"acme", "globex", "hooli"}
        for name in {"acme", "globex", "hooli"} - owned:
            await run.wait_metric("petra_up", 1, org=name)
        assert not run.events("config_needs_restart")


async def test_a_bad_reload_changes_nothing_and_says_why(tmp_path: Path) -> None:
    """An invalid file is rejected whole: 400 with reasons, metric 0, log line, old config runs."""
    async with running_daemon(tmp_path, [ACME, GLOBEX]) as run:
        await run.wait_metric("petra_up", 1, org="acme")
        (tmp_path / "config.yaml").write_text(
            "orgs:\n  - name: acme\n    api_key_file: keys/missing\n  - name: bad name\n"
            "    api_key_env: NOPE\n"
        )
        status, text = await run.post("/-/reload")
        assert status == 400
        assert "orgs[0].api_key_file: key file" in text
        assert "orgs[1].name" in text
        samples = await run.metrics()
        assert value(samples, "petra_collector_config_last_reload_successful") == 0
        assert value(samples, "petra_up", org="globex") == 1  # still polled
        failed = run.events("config_reload_failed")
        assert len(failed) == 1
        assert len(failed[0]["problems"]) == 3  # every problem, not just the first

        rewrite(run, tmp_path, {ACME.name: ACME.key, GLOBEX.name: GLOBEX.key})
        assert (await run.post("/-/reload"))[0] == 200
        samples = await run.metrics()
        assert value(samples, "petra_collector_config_last_reload_successful") == 1


async def test_a_rotated_key_file_is_rechecked_at_once(tmp_path: Path) -> None:
    """Swapping a Kubernetes-style symlinked key clears petra_auth_failure within seconds."""
    revoked = "petra_revoked_rotation_test_000000"
    # The slow re-check pace is 15 minutes: only the file watch can explain a quick recovery.
    polling = {"auth_failure_interval_seconds": 900}
    async with running_daemon(
        tmp_path, [ACME], extra_keys={"umbrella": revoked}, polling=polling
    ) as run:
        umbrella = SimulatedOrg("umbrella", sim_key("umbrella"), tenant_count=1)
        run.simulator.add_org(umbrella)
        await run.wait_metric("petra_auth_failure", 1, org="umbrella")
        key_file = tmp_path / "keys" / "umbrella"
        _kubernetes_secret_swap(key_file, umbrella.key)
        await run.wait_metric("petra_auth_failure", 0, org="umbrella")
        samples = await run.metrics()
        assert value(samples, "petra_up", org="umbrella") == 1
        reloaded = run.events("key_reloaded", org="umbrella")
        assert len(reloaded) == 1
        assert reloaded[0]["key_fingerprint"] != reloaded[0]["previous_key_fingerprint"]
        assert len(run.events("auth_recovered", org="umbrella")) == 1


def _kubernetes_secret_swap(key_file: Path, new_key: str) -> None:
    """Replace a key the way kubelet updates a Secret volume: a new dir and an atomic rename."""
    directory = key_file.parent
    first = directory / "..2026_01"
    first.mkdir()
    (first / "umbrella").write_text(key_file.read_text())
    (directory / "..data").symlink_to(first.name)
    key_file.unlink()
    key_file.symlink_to(Path("..data") / "umbrella")
    second = directory / "..2026_02"
    second.mkdir()
    (second / "umbrella").write_text(new_key + "\n")
    (directory / "..data_tmp").symlink_to(second.name)
    (directory / "..data_tmp").replace(directory / "..data")


async def test_systemd_notifications_and_serialised_reloads(tmp_path: Path) -> None:
    """READY, WATCHDOG, RELOADING/READY pairs (never interleaved) and STOPPING reach the socket."""
    address = str(tmp_path / "notify.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.setblocking(False)
    messages: list[str] = []
    loop = asyncio.get_running_loop()
    loop.add_reader(receiver.fileno(), lambda: messages.extend(_drain(receiver)))
    environ = {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "200000"}

    async def seen(line: str, times: int = 1) -> bool:
        return [m.splitlines()[0] for m in messages].count(line) >= times

    try:
        async with running_daemon(tmp_path, [ACME], environ=environ) as run:
            await eventually(lambda: seen("WATCHDOG=1", 3), "three watchdog pings")
            results = await asyncio.gather(run.post("/-/reload"), run.post("/-/reload"))
            assert [status for status, _text in results] == [200, 200]
        await eventually(lambda: seen("STOPPING=1"), "STOPPING=1")
    finally:
        loop.remove_reader(receiver.fileno())
        receiver.close()
    first_lines = [m.splitlines()[0] for m in messages]
    assert first_lines[0] == "READY=1"
    assert first_lines.count("WATCHDOG=1") >= 3
    lifecycle = [line for line in first_lines if line != "WATCHDOG=1"]
    assert lifecycle == [
        "READY=1",
        "RELOADING=1",
        "READY=1",
        "RELOADING=1",
        "READY=1",
        "STOPPING=1",
    ]
    assert any(m.startswith("RELOADING=1\nMONOTONIC_USEC=") for m in messages)


def _drain(receiver: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(receiver.recv(4096).decode())
        except BlockingIOError:
            return messages


def test_a_receiver_that_does_not_read_never_blocks_the_daemon(tmp_path: Path) -> None:
    """With systemd's queue full, notify() gives up at once instead of blocking the loop."""
    from collector.sdnotify import SystemdNotifier  # noqa: PLC0415 - unit under test

    address = str(tmp_path / "full.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(address)
        notifier = SystemdNotifier({"NOTIFY_SOCKET": address})
        sent = [notifier.watchdog() for _ in range(500)]
    assert sent[0]
    assert not all(sent)
