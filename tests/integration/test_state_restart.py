"""State across restarts, with the real daemon and the simulator on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from collector.apikey import ApiKey
from collector.petra_simulator import HangFault, SimulatedOrg, Simulator, sim_key
from collector.petra_usage import TenantUsage
from collector.state_journal import HEADER, TEMP_SUFFIX
from collector.state_store import read_saved_state
from tests.integration.harness import Running, running_daemon, value
from tests.leaks import assert_no_key_material, state_file_texts
from tests.outcomes import saved_report

pytestmark = pytest.mark.slow

INTERVAL = 1.5


def org(name: str, tenants: int = 3) -> SimulatedOrg:
    return SimulatedOrg(name, sim_key(name), tenant_count=tenants, requests_per_minute=100_000)


def state_config(path: Path, delay: float = 0.05) -> str:
    return f"state:\n  path: {json.dumps(str(path))}\n  write_delay_seconds: {delay}\n"


POLLING = {"interval_seconds": INTERVAL, "shutdown_grace_seconds": 0.2}


def petra_lines(text: str) -> list[str]:
    """The Petra series of a scrape (the collector's own process series change by nature)."""
    return [
        line
        for line in text.splitlines()
        if line.startswith("petra_") and not line.startswith("petra_collector_")
    ]


async def scrape(running: Running) -> str:
    status, text = await running.get("/metrics")
    assert status == 200
    return text


async def all_polled(running: Running, names: list[str]) -> None:
    async def check() -> bool:
        samples = await running.metrics()
        return all(value(samples, "petra_up", org=name) is not None for name in names)

    await running.wait_for(check, what="every org's first poll")


async def test_a_restart_serves_the_same_series_at_once(tmp_path: Path) -> None:
    """The first scrape after a restart is the last one before it, byte for byte:
    usage, petra_up, petra_auth_failure, timestamps and counters (a clean stop)."""
    orgs = [org("acme", tenants=5), org("globex"), org("initech")]
    sim = Simulator(orgs)
    sim.delete_key("initech")  # rejected: petra_auth_failure 1 must survive too
    state_path = tmp_path / "state.json"
    config = state_config(state_path)
    async with running_daemon(
        tmp_path, orgs, simulator=sim, polling=POLLING, extra_config=config
    ) as first:
        await all_polled(first, ["acme", "globex", "initech"])
        # From here no poll finishes: each hangs until the stop cancels it, so nothing
        # changes between this scrape and the stop.
        sim.set_fault(None, HangFault())
        # A request that arrived before the fault has finished once the org's next one
        # (hung) has come: one request at a time per key. initech's key is rejected, so it
        # asks again only in an hour.
        asked = {name: sim.request_count(name) for name in ("acme", "globex")}

        async def each_hangs() -> bool:
            return all(sim.request_count(name) > count for name, count in asked.items())

        await first.wait_for(each_hangs, what="acme's and globex's next request, hung")
        before = await scrape(first)
        assert first.events("state_unreadable") == []
    async with running_daemon(
        tmp_path, orgs, simulator=sim, polling=POLLING, extra_config=config
    ) as second:
        after = await scrape(second)
        (restored,) = second.events("state_restored")
        status, body = await second.get("/api/v1/status")
        saved_texts = await asyncio.to_thread(state_file_texts, state_path)
        saved = await asyncio.to_thread(read_saved_state, state_path)
    assert petra_lines(after) == petra_lines(before)
    assert_no_key_material([o.key for o in orgs], *saved_texts)
    # Marked unclean at once: a crash of this run must not bring back the old counters.
    assert saved is not None
    assert not saved.clean_stop
    assert any(line.startswith("petra_tenant_licensed_users{") for line in petra_lines(after))
    assert 'petra_auth_failure{org="initech"} 1.0' in petra_lines(after)
    assert restored["orgs"] == 3
    assert restored["orgs_fresh"] == 0
    assert restored["clean_stop"] is True
    assert restored["level"] == "info"
    assert status == 200
    assert {row["org"]: row["restored"] for row in json.loads(body)["orgs"]} == {
        "acme": True,
        "globex": True,
        "initech": True,
    }


@contextmanager
def unwritable(directory: Path, state_path: Path, how: str) -> Iterator[None]:
    """The state file cannot be written while inside. Root ignores mode bits, so either
    the directory is made immutable (chattr +i, ext4 and friends), or a directory
    stands where the temp file must be created."""
    if how == "immutable":
        chattr = shutil.which("chattr")
        if chattr is None:
            pytest.skip("chattr is not installed")
        made = subprocess.run([chattr, "+i", str(directory)], capture_output=True, check=False)  # noqa: S603 - a fixed tool on a test directory
        if made.returncode != 0:
            pytest.skip(f"chattr +i is not supported here: {made.stderr.decode().strip()}")
        try:
            yield
        finally:
            subprocess.run([chattr, "-i", str(directory)], check=True)  # noqa: S603 - as above
    else:
        blocker = state_path.with_name(state_path.name + TEMP_SUFFIX)
        blocker.mkdir()
        try:
            yield
        finally:
            blocker.rmdir()


@pytest.mark.parametrize("how", ["immutable", "temp-path-taken"])
async def test_an_unwritable_state_directory_never_stops_polling(tmp_path: Path, how: str) -> None:
    """state_write_failed, retried with backoff; polling goes on; the file comes once it can."""
    directory = tmp_path / "state"
    directory.mkdir()
    state_path = directory / "state.json"
    orgs = [org("acme")]
    async with running_daemon(
        tmp_path, orgs, polling=POLLING, extra_config=state_config(state_path)
    ) as running:
        with unwritable(directory, state_path, how):

            async def failed_twice() -> bool:
                return len(running.events("state_write_failed")) >= 2

            await running.wait_for(failed_twice, what="two failed writes")
            await running.wait_metric("petra_up", 1.0, org="acme")
            polls = running.simulator.request_count("acme")
            await running.wait_for(
                lambda: _more(running.simulator, "acme", polls), what="polling goes on"
            )
        failed = running.events("state_write_failed")
        assert failed[0]["level"] == "error"
        assert failed[0]["path"] == str(state_path)

        async def recovered() -> bool:
            return bool(running.events("state_write_recovered"))

        await running.wait_for(recovered, what="a write once the directory is writable")
    saved = read_saved_state(state_path)
    assert saved is not None
    assert saved_report(saved.orgs["acme"]) is not None


async def test_a_missing_state_directory_is_logged_and_polling_goes_on(tmp_path: Path) -> None:
    """No lock file can be made either: said once (state_lock_failed), then the writes fail
    and are retried as for any unwritable directory."""
    state_path = tmp_path / "missing" / "state.json"
    async with running_daemon(
        tmp_path, [org("acme")], polling=POLLING, extra_config=state_config(state_path)
    ) as running:
        await running.wait_metric("petra_up", 1.0, org="acme")

        async def failed() -> bool:
            return bool(running.events("state_write_failed"))

        await running.wait_for(failed, 10, "a failed write")
        (lock,) = running.events("state_lock_failed")
    assert lock["level"] == "warning"
    assert lock["path"] == f"{state_path}.lock"
    assert lock["error"] == "No such file or directory"


# One tenant as the JSON state file kept it: an array in `tenant_fields` order.
TENANT_V1 = ["T-MIGRATED", None, "Kept Tenant", "EDR", "Billable", False, 41.0, 40.0, 1.0]
TENANT_V1 += [None, None]


def json_state_file(name: str, fingerprint: str, now: float) -> bytes:
    """A state file as the releases before the journal wrote it (JSON, version 1): one
    org polled a minute ago, due again in an hour, with one tenant."""
    record = {
        "key_fingerprint": fingerprint,
        "health": "ok",
        "poll": {
            "last_poll_at": now - 60,
            "last_success_at": now - 60,
            "next_poll_at": now + 3600,
            "poll_duration": 0.01,
            "consecutive_failures": 0,
        },
        "counters": {
            "requests_by_code": {"200": 7},
            "auth_failures_total": 0,
            "rate_limited_total": 0,
        },
        "report": {
            "as_of": "2026-12-01",
            "report_generated_at": now - 60,
            "organization_name": "Acme MSP",
            "total_tenants": 1.0,
            "tenants": [TENANT_V1],
            "notes": [],
        },
    }
    return json.dumps(
        {
            "format": "petra-collector-state",
            "version": 1,
            "written_at": now - 30,
            "clean_stop": True,
            "tenant_fields": list(TenantUsage._fields),
            "orgs": {name: record},
        }
    ).encode()


async def test_a_json_state_file_of_an_earlier_release_is_served_and_migrated(
    tmp_path: Path,
) -> None:
    """The series of the old file are served at once, the org keeps its schedule (no
    poll), `state_migrated` is logged, and the first write replaces the file with a
    journal, the old one kept beside it."""
    acme = org("acme")
    state_path = tmp_path / "state.json"
    old = json_state_file("acme", ApiKey(acme.key).fingerprint, time.time())
    state_path.write_bytes(old)
    sim = Simulator([acme])
    async with running_daemon(
        tmp_path, [acme], simulator=sim, polling=POLLING, extra_config=state_config(state_path)
    ) as running:
        samples = await running.metrics()
        assert (
            value(samples, "petra_tenant_billable_users", org="acme", tenant_id="T-MIGRATED")
            == 40.0
        )
        (migrated,) = running.events("state_migrated")
        (restored,) = running.events("state_restored")

        async def rewritten() -> bool:
            return state_path.read_bytes().startswith(HEADER)

        await running.wait_for(rewritten, 5, "the journal in the old file's place")
        assert sim.request_count("acme") == 0  # due in an hour, as the old file said
    assert migrated["old_file_kept_as"] == f"{state_path}.json-v1"
    assert (restored["orgs"], restored["clean_stop"]) == (1, True)
    assert await asyncio.to_thread(Path(f"{state_path}.json-v1").read_bytes) == old
    saved = read_saved_state(state_path)
    assert saved is not None
    assert saved.orgs["acme"].usage.requests_by_code == {"200": 7}
    assert saved_report(saved.orgs["acme"]) is not None


async def _more(sim: Simulator, name: str, before: int) -> bool:
    return sim.request_count(name) > before


async def test_a_corrupt_state_file_is_set_aside_and_the_daemon_starts_fresh(
    tmp_path: Path,
) -> None:
    state_path = tmp_path / "state.json"
    state_path.write_bytes(b'{"format": "petra-collector-state", "version": 1, "orgs": {')
    orgs = [org("acme")]
    async with running_daemon(
        tmp_path, orgs, polling=POLLING, extra_config=state_config(state_path)
    ) as running:
        (unreadable,) = running.events("state_unreadable")
        samples = await running.metrics()
        assert value(samples, "petra_up", org="acme") is None  # pending, not failing
        await running.wait_metric("petra_up", 1.0, org="acme")

        async def written() -> bool:
            return read_saved_state(state_path) is not None

        await running.wait_for(written, what="a new state file")
    assert unreadable["level"] == "warning"
    assert unreadable["path"] == str(state_path)
    assert "is not valid JSON" in unreadable["problem"]
    aside = Path(unreadable["set_aside_as"])
    assert aside.parent == tmp_path
    assert aside.name.startswith("state.json.corrupt-")
    kept = await asyncio.to_thread(aside.read_bytes)
    assert kept.startswith(b'{"format": "petra-collector-state"')
    assert running.events("state_restored") == []


async def test_a_changed_key_starts_fresh_and_a_rejected_key_stays_rejected(
    tmp_path: Path,
) -> None:
    """acme's key is replaced while down: fresh (pending). globex's key stays rejected:
    petra_auth_failure 1 at once, and no second auth_failed for the same rejection."""
    orgs = [org("acme"), org("globex"), org("initech")]
    sim = Simulator(orgs)
    sim.delete_key("globex")
    config = state_config(tmp_path / "state.json")
    polling = {**POLLING, "auth_failure_interval_seconds": 1}
    async with running_daemon(
        tmp_path, orgs, simulator=sim, polling=polling, extra_config=config
    ) as first:
        await all_polled(first, ["acme", "globex", "initech"])
        assert len(first.events("auth_failed", org="globex")) == 1
    new_key = sim_key("acme-rotated")
    sim.replace_key("acme", new_key)
    async with running_daemon(
        tmp_path,
        orgs,
        simulator=sim,
        polling=polling,
        extra_config=config,
        extra_keys={"acme": new_key},
    ) as second:
        at_start = await second.metrics()
        (restored,) = second.events("state_restored")
        rechecks = sim.request_count("globex")

        async def rechecked() -> bool:
            return sim.request_count("globex") >= rechecks + 2

        await second.wait_for(rechecked, what="two re-checks of the rejected key")
        await second.wait_metric("petra_up", 1.0, org="acme")
        assert second.events("auth_failed") == []
        assert value(await second.metrics(), "petra_auth_failure", org="globex") == 1.0
    assert value(at_start, "petra_auth_failure", org="globex") == 1.0
    assert value(at_start, "petra_up", org="initech") == 1.0
    assert value(at_start, "petra_up", org="acme") is None  # a new key: pending, not failing
    assert value(at_start, "petra_tenant_licensed_users", org="acme", tenant_id="x") is None
    assert (restored["orgs"], restored["orgs_fresh"]) == (2, 1)
