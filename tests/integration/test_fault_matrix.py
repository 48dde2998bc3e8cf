"""Every failure the network and the API can produce, against the real daemon.

One daemon polls one healthy org and one org per fault, all at once: each
faulty org must end in the right metric state with one clear log event per
failed poll, the healthy org must keep being polled, `/metrics` must keep
answering, and no key may leak anywhere, including through reloads and
`check --probe`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from collector.petra_simulator import (
    BadBodyFault,
    DuplicateTenantsFault,
    Fault,
    HangFault,
    OversizeFault,
    RateLimitFault,
    RedirectFault,
    ResetFault,
    SimulatedOrg,
    Simulator,
    StatusFault,
    TrickleFault,
    sim_key,
)
from tests.integration.harness import Running, Samples, running_daemon, value
from tests.leaks import assert_no_key_material
from tests.processes import free_port

# Recognisable keys: if any 8-character slice of one shows up, it leaked.
LEAKY = "petra_LEAKCANARY_"


@dataclass(frozen=True)
class Case:
    org: str
    fault: Fault
    event: str  # the log event each failed poll produces
    code: str  # petra_api_requests_total's code label
    up: float = 0
    auth_failure: float = 0
    state: str = "error"


REDIRECT_PLACEHOLDER = "http://127.0.0.2:1/elsewhere"
CASES = [
    Case(
        "s401",
        StatusFault(401, "API key deleted"),
        "auth_failed",
        "401",
        auth_failure=1,
        state="auth_failed",
    ),
    Case("s403", StatusFault(403, "not allowed"), "poll_failed", "403", state="forbidden"),
    Case("s404", StatusFault(404, "no such route"), "poll_failed", "404"),
    Case("s500", StatusFault(500), "poll_failed", "500"),
    Case("s502", StatusFault(502, "bad gateway"), "poll_failed", "502"),
    Case("s503", StatusFault(503, "maintenance"), "poll_failed", "503"),
    Case(
        "r429public", RateLimitFault(30, "public-api"), "rate_limited", "429", state="rate_limited"
    ),
    Case("r429seconds", RateLimitFault(30, "seconds"), "rate_limited", "429", state="rate_limited"),
    Case("r429date", RateLimitFault(30, "http-date"), "rate_limited", "429", state="rate_limited"),
    Case("r429none", RateLimitFault(None), "rate_limited", "429", state="rate_limited"),
    Case("reset", ResetFault(), "poll_failed", "error"),
    Case("hang", HangFault(), "poll_failed", "error"),
    Case("trickle", TrickleFault(seconds=4.0, chunk_bytes=8), "poll_failed", "error"),
    Case("oversize", OversizeFault(size_bytes=300_000), "poll_failed", "200"),
    Case("badjson", BadBodyFault("invalid-json"), "poll_failed", "200"),
    Case("jsonlist", BadBodyFault("list"), "poll_failed", "200"),
    Case("nulls", BadBodyFault("nulls"), "poll_failed", "200"),
    Case("notenants", BadBodyFault("no-tenants"), "poll_failed", "200"),
    Case("redirect", RedirectFault(REDIRECT_PLACEHOLDER), "poll_failed", "302"),
    # Tolerated answers: quoted numbers are still numbers; a repeated tenant is dropped.
    Case("strings", BadBodyFault("strings"), "", "200", up=1, state="ok"),
    Case("dupes", DuplicateTenantsFault(), "usage_anomalies", "200", up=1, state="ok"),
]
FAST_FAILURES = {
    "api": {"timeout_seconds": 1, "max_response_bytes": 200_000},
    "polling": {"interval_seconds": 2, "auth_failure_interval_seconds": 2},
}


def key_for(name: str) -> str:
    # Not the org name itself: the name is a label everywhere, the key must be nowhere.
    return LEAKY + sim_key(name)[-24:]


async def start_redirect_target() -> tuple[web.AppRunner, list[str], str]:
    """A server on another loopback address that records any Authorization it receives."""
    seen: list[str] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", "<none>"))
        return web.json_response({"tenants": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.2", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, seen, f"http://127.0.0.2:{port}/v1/usage"


async def test_every_fault_ends_in_the_right_state_and_nothing_leaks(tmp_path: Path) -> None:
    """The fault matrix, a reload, a rotation and check --probe, with no key material anywhere."""
    redirect_runner, redirected, target = await start_redirect_target()
    healthy = SimulatedOrg("healthy", key_for("healthy"), tenant_count=3)
    orgs = [healthy] + [SimulatedOrg(c.org, key_for(c.org), tenant_count=3) for c in CASES]
    sim = Simulator(orgs)
    for case in CASES:
        fault = RedirectFault(target) if isinstance(case.fault, RedirectFault) else case.fault
        sim.set_fault(case.org, fault)
    keys = [org.key for org in orgs]
    try:
        async with running_daemon(
            tmp_path,
            orgs,
            simulator=sim,
            polling=FAST_FAILURES["polling"],
            api=FAST_FAILURES["api"],
        ) as run:
            samples = await _wait_all_polled(run)
            for case in CASES:
                _check_case(run, samples, case)
            healthy_before = run.simulator.request_count("healthy")
            await run.wait_for(
                lambda: _polled_more(run, "healthy", healthy_before), what="healthy re-polled"
            )
            assert redirected == [], "the key followed a redirect to another host"
            dupes = run.events("usage_anomalies", org="dupes")[0]
            assert "repeats petraTenantId" in dupes["notes"][0]

            # The same run through a reload and a key rotation, for the leak check.
            keys.append(await _reload_with_new_key(run, tmp_path))
            probe = await asyncio.to_thread(_check_probe, run.config_path)
            status_pages = [
                (await run.get(path))[1]
                for path in (
                    "/",
                    "/api/v1/status",
                    "/api/v1/orgs/s401",
                    "/api/v1/orgs/healthy",
                    "/metrics",
                )
            ]
            assert_no_key_material(
                keys,
                run.log_stream.getvalue(),
                *run.pages,
                *status_pages,
                probe.stdout,
                probe.stderr,
            )
            assert json.loads(probe.stdout)["probes"]
    finally:
        await redirect_runner.cleanup()


async def _wait_all_polled(run: Running) -> Samples:
    """Until every org has at least one request counted, then one more scrape."""
    names = ["healthy"] + [c.org for c in CASES]

    async def all_polled() -> bool:
        samples = await run.metrics()
        return all(value(samples, "petra_last_poll_timestamp_seconds", org=n) for n in names)

    await run.wait_for(all_polled, what="a first poll of every org")
    return await run.metrics()


def _check_case(run: Running, samples: Samples, case: Case) -> None:
    where = f"case {case.org}"
    assert value(samples, "petra_up", org=case.org) == case.up, where
    assert value(samples, "petra_auth_failure", org=case.org) == case.auth_failure, where
    requests = value(
        samples, "petra_api_requests_total", org=case.org, code=case.code, route="usage"
    )
    assert requests is not None, f"{where}: no request counted with code {case.code}"
    assert requests >= 1, where
    status = run.daemon.org_states()
    state = next(s for s in status if s.name == case.org)
    assert state.health.value == case.state, where
    if case.event:
        events = run.events(case.event, org=case.org)
        assert events, f"{where}: no {case.event} event"
        assert events[0]["key_fingerprint"].startswith("sha256:"), where
        if case.event == "poll_failed":
            # One line per failed poll, never a burst of them.
            assert len(events) <= state.consecutive_failures, where
            assert events[0]["error"], where
        if case.event == "rate_limited":
            assert len(run.events("rate_limited", org=case.org)) == state.rate_limited_total
    if case.up == 1:
        assert value(samples, "petra_org_tenants", org=case.org) is not None, where
    if case.code == "429":
        assert value(samples, "petra_rate_limited_total", org=case.org) == 1, where


async def _polled_more(run: Running, name: str, before: int) -> bool:
    return run.simulator.request_count(name) > before


async def _reload_with_new_key(run: Running, tmp_path: Path) -> str:
    """Rotate s401's key in the simulator and the key file, and reload; returns the new key."""
    new_key = LEAKY + sim_key("rotated")[-24:]
    run.simulator.set_fault("s401", None)
    run.simulator.replace_key("s401", new_key)
    (tmp_path / "keys" / "s401").write_text(new_key)
    status, text = await run.post("/-/reload")
    assert status == 200, text
    await run.wait_metric("petra_auth_failure", 0, org="s401")
    assert run.events("auth_recovered", org="s401")
    return new_key


def _check_probe(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own interpreter and module, no shell
        [
            sys.executable,
            "-m",
            "collector",
            "check",
            "--config",
            str(config),
            "--probe",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_connection_refused_is_transient_and_the_daemon_keeps_serving(
    tmp_path: Path,
) -> None:
    """With nothing listening at base_url, polls fail with code=error and /metrics still works."""
    key = key_for("lonely")
    closed_port = free_port()
    async with running_daemon(
        tmp_path, [], extra_keys={"lonely": key}, base_url=f"http://127.0.0.1:{closed_port}"
    ) as run:
        samples = await run.wait_metric(
            "petra_api_requests_total", 1, org="lonely", code="error", route="usage"
        )
        assert value(samples, "petra_up", org="lonely") == 0
        failed = run.events("poll_failed", org="lonely")
        assert failed
        assert "cannot connect" in failed[0]["error"]
        assert (await run.get("/healthz"))[0] == 200
        assert_no_key_material([key], run.log_stream.getvalue(), *run.pages)
