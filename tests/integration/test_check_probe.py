"""`check --probe` against the simulator: each kind of answer is told apart and timed."""

from __future__ import annotations

from pathlib import Path

from collector.check import describe_config, probe, render_check
from collector.config import load_config
from collector.simulator import (
    RateLimitFault,
    SimulatedOrg,
    Simulator,
    StatusFault,
    sim_key,
    start_simulator,
)
from tests.integration.harness import write_config

NAMES = ("fine", "forbidden", "limited", "down")
REVOKED_KEY = "petra_revoked_probe_0123456789abcdef"


async def test_probe_tells_every_answer_apart(tmp_path: Path) -> None:
    """OK with tenants, key rejected, forbidden, rate-limited with the wait, unreachable."""
    orgs = [SimulatedOrg(name, sim_key(name), tenant_count=2) for name in NAMES]
    simulator = Simulator(orgs)
    simulator.set_fault("forbidden", StatusFault(403, "Forbidden"))
    simulator.set_fault("limited", RateLimitFault(42))
    simulator.set_fault("down", StatusFault(503, "maintenance"))
    runner, port = await start_simulator(simulator, "127.0.0.1", 0)
    try:
        keys = {org.name: org.key for org in orgs} | {"revoked": REVOKED_KEY}
        config = write_config(tmp_path, f"http://127.0.0.1:{port}", keys)
        settings = load_config(config).settings
        results = {r.org: r for r in await probe(settings)}
    finally:
        await runner.cleanup()
    outcomes = {name: (r.ok, r.outcome) for name, r in results.items()}
    assert outcomes == {
        "fine": (True, "ok"),
        "forbidden": (False, "forbidden"),
        "limited": (False, "rate_limited"),
        "down": (False, "error"),
        "revoked": (False, "auth_failed"),
    }
    assert results["fine"].tenants == 2
    assert results["limited"].retry_after == 42
    assert all(0 <= r.seconds < 5 for r in results.values())
    text = render_check(
        str(config), None, describe_config(settings), list(results.values()), style="table"
    )
    for answer in (
        "OK, 2 tenants",
        "FORBIDDEN",
        "RATE LIMITED, retry in 42 s",
        "ERROR",
        "KEY REJECTED",
    ):
        assert answer in text
    assert text.endswith(
        "4 of 5 probe(s) failed: forbidden (FORBIDDEN), limited (RATE LIMITED), "
        "down (ERROR), revoked (KEY REJECTED)\n"
    )
