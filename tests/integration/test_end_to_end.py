"""The real daemon against the simulator over loopback: what `/metrics` and the logs say."""

from __future__ import annotations

import json
from pathlib import Path

from collector.petra_simulator import (
    SimulatedOrg,
    StatusFault,
    sim_key,
)
from collector.petra_usage import parse_usage
from tests.integration.harness import Running, running_daemon, value
from tests.leaks import assert_no_key_material

ACME = SimulatedOrg("acme", sim_key("acme"), "Acme MSP", tenant_count=3)
GLOBEX = SimulatedOrg("globex", sim_key("globex"), "Globex IT", tenant_count=5)
REVOKED_KEY = "petra_revoked_0123456789abcdefXYZ"


async def test_usage_gauges_match_what_the_simulator_served(tmp_path: Path) -> None:
    """Every tenant gauge equals the simulator's last answer for that org."""
    async with running_daemon(tmp_path, [ACME, GLOBEX]) as run:
        await run.wait_metric("petra_up", 1, org="acme")
        samples = await run.wait_metric("petra_up", 1, org="globex")
        for org in (ACME, GLOBEX):
            body = run.simulator.last_body(org.name)
            assert body is not None
            report = parse_usage(body)
            assert value(samples, "petra_org_tenants", org=org.name) == body["totalTenants"]
            assert (
                value(
                    samples, "petra_org_info", org=org.name, organization_name=org.organization_name
                )
                == 1
            )
            assert len(report.tenants) == org.tenant_count
            for tenant in report.tenants:
                ids = {"org": org.name, "tenant_id": tenant.tenant_id}
                assert value(samples, "petra_tenant_licensed_users", **ids) == tenant.licensed_users
                assert value(samples, "petra_tenant_billable_users", **ids) == tenant.billable_users
                assert value(samples, "petra_tenant_prorating_ratio", **ids) == (
                    tenant.prorating_ratio
                )
                assert value(samples, "petra_tenant_paused", **ids) == float(bool(tenant.is_paused))
                assert (
                    value(samples, "petra_tenant_onboarding_timestamp_seconds", **ids)
                    == tenant.onboarding_timestamp
                )
            assert value(samples, "petra_auth_failure", org=org.name) == 0
            assert (
                value(samples, "petra_api_requests_total", org=org.name, code="200", route="usage")
                or 0
            ) >= 1
            assert value(samples, "petra_collector_orgs") == 2
            assert value(samples, "petra_collector_config_last_reload_successful") == 1


async def test_rejected_key_sets_auth_failure_and_logs_once(tmp_path: Path) -> None:
    """A 401 gives petra_auth_failure 1, petra_up 0 and exactly one auth_failed line."""
    async with running_daemon(tmp_path, [ACME], extra_keys={"umbrella": REVOKED_KEY}) as run:
        await run.wait_metric("petra_auth_failure", 1, org="umbrella")
        # Let it re-check a few more times: the loud line must still be single.
        await run.wait_for(
            lambda: _at_least(run, "petra_auth_failures_total", 3, org="umbrella"),
            what="three 401s",
        )
        samples = await run.metrics()
        assert value(samples, "petra_up", org="umbrella") == 0
        assert value(samples, "petra_up", org="acme") == 1
        failed = run.events("auth_failed", org="umbrella")
        assert len(failed) == 1
        assert failed[0]["level"] == "error"
        assert failed[0]["key_fingerprint"].startswith("sha256:")
        assert failed[0]["status"] == 401
        assert failed[0]["message"] == "Invalid API key"
        assert not run.events("auth_failed", org="acme")
        assert_no_key_material([REVOKED_KEY, ACME.key], run.log_stream.getvalue(), *run.pages)


async def _at_least(run: Running, name: str, minimum: float, **labels: str) -> bool:
    return (value(await run.metrics(), name, **labels) or 0) >= minimum


async def test_a_429_is_honoured_before_the_key_is_used_again(tmp_path: Path) -> None:
    """After 429 with Retry-After-public-api, nothing is sent with that key while other keys
    are polled again (that the wait ends on time is proven on virtual time:
    test_a_429_pauses_every_org_on_that_key_until_the_wait_is_over)."""
    stingy = SimulatedOrg("initech", sim_key("initech"), tenant_count=2, requests_per_minute=1)
    async with running_daemon(tmp_path, [stingy, ACME]) as run:
        await run.wait_metric("petra_rate_limited_total", 1, org="initech")
        requests_at_429 = run.simulator.request_count("initech")
        limited = run.events("rate_limited", org="initech")
        assert len(limited) == 1
        assert 50 <= limited[0]["retry_after_seconds"] <= 60
        acme_before = run.simulator.request_count("acme")
        await run.wait_for(
            lambda: _count_at_least(run, "acme", acme_before + 2), what="two more acme polls"
        )
        assert run.simulator.request_count("initech") == requests_at_429
        samples = await run.metrics()
        assert value(samples, "petra_up", org="initech") == 0
        assert (
            value(samples, "petra_api_requests_total", org="initech", code="429", route="usage")
            == 1
        )


async def test_a_vanished_tenant_leaves_metrics_at_the_next_poll(tmp_path: Path) -> None:
    """When the answer stops listing a tenant, its series disappear, and a changed
    tenant's series change, also after answers that were the same body again."""
    async with running_daemon(tmp_path, [GLOBEX]) as run:
        await run.wait_metric("petra_up", 1, org="globex")
        body = run.simulator.last_body("globex")
        assert body is not None
        tenants = body["tenants"]
        assert isinstance(tenants, list)
        gone = tenants[-1]["petraTenantId"]
        samples = await run.metrics()
        assert any(
            name == "petra_tenant_licensed_users" and ("tenant_id", gone) in labels
            for name, labels in samples
        )
        polled = run.simulator.request_count("globex")
        await run.wait_for(
            lambda: _count_at_least(run, "globex", polled + 2), what="two unchanged answers"
        )
        assert run.simulator.last_body("globex") == body
        kept = {**tenants[0], "totalLicensedUsers": 4321}
        run.simulator.set_tenants("globex", [kept, *tenants[1:-1]])
        await run.wait_for(lambda: _tenant_gone(run, gone), what=f"tenant {gone} to vanish")
        samples = await run.metrics()
        assert (
            value(
                samples,
                "petra_tenant_licensed_users",
                org="globex",
                tenant_id=kept["petraTenantId"],
            )
            == 4321
        )


async def _tenant_gone(run: Running, tenant_id: str) -> bool:
    samples = await run.metrics()
    return not any(("tenant_id", tenant_id) in labels for _name, labels in samples)


async def test_failures_keep_last_values_until_they_go_stale(tmp_path: Path) -> None:
    """5xx keeps the last good usage until max_staleness_seconds, then drops it."""
    polling = {"max_staleness_seconds": 3}
    async with running_daemon(tmp_path, [ACME], polling=polling) as run:
        await run.wait_metric("petra_up", 1, org="acme")
        run.simulator.set_fault("acme", StatusFault(503, "maintenance"))
        samples = await run.wait_metric("petra_up", 0, org="acme")
        assert value(samples, "petra_org_tenants", org="acme") == 3
        samples = await run.wait_metric("petra_org_tenants", None, org="acme")
        assert value(samples, "petra_last_success_timestamp_seconds", org="acme") is not None
        assert not any(name.startswith("petra_tenant_") for name, _labels in samples)
        failed = run.events("poll_failed", org="acme")
        assert failed
        assert failed[0]["status"] == 503


async def test_endpoints_answer(tmp_path: Path) -> None:
    """/healthz, /readyz, /api/v1/status, /api/v1/orgs/NAME, / and OpenMetrics all work."""
    async with running_daemon(tmp_path, [ACME], extra_keys={"umbrella": REVOKED_KEY}) as run:
        await run.wait_metric("petra_auth_failure", 1, org="umbrella")
        await run.wait_metric("petra_up", 1, org="acme")
        assert (await run.get("/healthz"))[0] == 200
        assert (await run.get("/readyz"))[0] == 200
        status, text = await run.get("/api/v1/status")
        assert status == 200
        document = json.loads(text)
        assert document["orgs"][0]["org"] == "umbrella"  # failing orgs first
        assert document["orgs"][0]["state"] == "auth_failed"
        assert document["summary"]["auth_failing"] == 1
        acme = next(o for o in document["orgs"] if o["org"] == "acme")
        assert acme["tenants"] == 3
        assert acme["key_fingerprint"].startswith("sha256:")
        status, text = await run.get("/api/v1/orgs/acme")
        assert status == 200
        assert len(json.loads(text)["tenant_list"]) == 3
        assert (await run.get("/api/v1/orgs/nobody"))[0] == 404
        status, page = await run.get("/")
        assert status == 200
        assert "umbrella" in page
        assert "KEY REJECTED" in page
        headers = {"Accept": "application/openmetrics-text; version=1.0.0"}
        async with run.http.get(run.url + "/metrics", headers=headers) as response:
            body = await response.text()
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert body.rstrip().endswith("# EOF")
        assert 'petra_up{org="acme"} 1.0' in body
        assert_no_key_material([REVOKED_KEY, ACME.key], run.log_stream.getvalue(), *run.pages)


async def _count_at_least(run: Running, name: str, count: int) -> bool:
    return run.simulator.request_count(name) >= count
