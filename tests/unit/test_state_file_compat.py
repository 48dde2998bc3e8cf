"""A state file written before routes were described once still loads, whole.

`data/state-before-routes.json` was written by the version before the route
abstraction (commit 450a8c0): an org with a usage report, a 429 wait and an
incidents side, and an org whose key was rejected on the incidents route.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog

from collector.routes import INCIDENTS, IncidentsSide
from collector.state import OrgState
from collector.state_file import decode_state, encode_document, encode_org
from collector.state_records import Health
from collector.state_store import StateWriter, load_state, read_saved_state
from tests.outcomes import incidents_of

OLD_FILE = Path(__file__).parent / "data" / "state-before-routes.json"
T0 = 1_764_000_000.0  # when the old file was written
M0 = 1010.0  # the old writer's monotonic clock then


def restored(name: str, fingerprint: str) -> OrgState:
    saved = decode_state(OLD_FILE.read_bytes())
    state = OrgState(name, fingerprint, "file /run/secrets/x", 300.0)
    state.start_route(INCIDENTS, IncidentsSide())
    state.restore(saved.orgs[name], wall_now=T0, monotonic_now=M0, counters=saved.clean_stop)
    return state


def test_an_old_file_restores_every_route_and_the_keys_health() -> None:
    """Usage, incidents and the key's health come back as the old version kept them."""
    acme = restored("acme", "sha256:b4550c178423")
    assert acme.health is Health.RATE_LIMITED
    assert acme.report is not None
    assert [t.tenant_id for t in acme.report.tenants] == ["ZZk90t"]
    assert acme.requests_by_code == {"200": 1, "429": 1}
    assert acme.rate_limited_until == T0 + 20
    side = incidents_of(acme)
    assert side.health is Health.OK
    assert side.seen == {"inc-1": T0 - 3600}
    assert side.next_poll_at == T0 + 100
    initech = restored("initech", "sha256:52616013b874")
    assert initech.auth_failing
    assert initech.auth_rejected_routes == {"incidents"}
    assert incidents_of(initech).health is Health.AUTH_FAILED


def test_an_old_file_is_written_again_byte_for_byte() -> None:
    """What the old version wrote, the new one writes the same: the format did not move."""
    states = [restored("acme", "sha256:b4550c178423"), restored("initech", "sha256:52616013b874")]
    parts = [encode_org(state, wall_now=T0, monotonic_now=M0) for state in states]
    again = b"".join(encode_document(parts, written_at=T0, clean_stop=True))
    assert again == OLD_FILE.read_bytes()


def test_an_old_file_loads_through_the_store_and_becomes_a_journal(tmp_path: Path) -> None:
    """At `state.path`, the old file is read whole (kept beside as `.json-v1`), and the
    journal written in its place reads back the same orgs."""
    path = tmp_path / "state.json"
    path.write_bytes(OLD_FILE.read_bytes())
    loaded = load_state(path, T0)
    assert loaded.legacy
    assert loaded.state == decode_state(OLD_FILE.read_bytes())
    assert loaded.legacy_kept_as is not None
    assert loaded.legacy_kept_as.read_bytes() == OLD_FILE.read_bytes()
    states = [restored("acme", "sha256:b4550c178423")]
    writer = StateWriter(
        path,
        lambda: states,
        write_delay=5.0,
        monotonic=lambda: M0,
        wall=lambda: T0,
        logger=structlog.get_logger(),
    )
    assert asyncio.run(writer.write(clean_stop=False))
    journal = read_saved_state(path)
    assert journal is not None
    assert journal.orgs["acme"] == decode_state(OLD_FILE.read_bytes()).orgs["acme"]
