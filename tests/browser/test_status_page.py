"""The status page in a real browser: headless Debian Chromium driven by Selenium.

The first test loads the page of the real daemon polling the simulator (both on
127.0.0.1), over HTTPS with basic auth (a web config with a throwaway CA; the
browser sends the credentials on every request), under the
Content-Security-Policy the daemon sends, and checks what
an operator relies on: one row per org, failing orgs first, the filter, the
self-refresh (server-rendered rows swapped in) keeping the filter, an org's
tenants, HTML from the API shown as text, and nothing in the browser's console:
no script error and no blocked inline script or style. It saves screenshots
under artifacts/. The second shows every state with JavaScript off.

Selenium is blocking, so every browser call runs in a thread while the event
loop keeps serving the daemon and the simulator.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, Final

import pytest
from aiohttp.test_utils import TestServer
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait

from collector.exposition import Exposition
from collector.metrics import PetraCollector
from collector.petra_simulator import SimulatedOrg, Simulator, StatusFault, sim_key
from collector.petra_usage import TenantUsage, UsageReport
from collector.state import OrgState
from collector.state_records import Health
from collector.web_app import PAGE_SECURITY_HEADERS, make_web_app
from collector.web_status import HEALTH_LABELS
from tests.integration.harness import Running, running_daemon
from tests.leaks import assert_no_key_material
from tests.outcomes import succeed
from tests.tools import require_tool
from tests.waiting import HANG_SECONDS
from tests.webtls import TlsFiles, basic_auth, bcrypt_hash, write_web_config

ARTIFACTS: Final = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM_FLAGS: Final = (
    "--headless",
    "--no-sandbox",  # the tests run as root in CI containers
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1366,900",
)
XSS: Final = "<img src=x onerror=alert(1)>"
CSP: Final = PAGE_SECURITY_HEADERS["Content-Security-Policy"]
ACME = SimulatedOrg("acme", sim_key("acme"), "Acme MSP", tenant_count=3)
GLOBEX = SimulatedOrg("globex", sim_key("globex"), "Globex Managed IT", tenant_count=5)
EVIL = SimulatedOrg("evil", sim_key("evil"), f"{XSS} & Sons", tenant_count=1)
REVOKED_KEY = "petra_revoked_browser_Zq8vNw3rTt5yXkLm"
PASSWORD = "browser-operator-password"
EVIL_TENANT: Final = {
    "petraTenantId": "Evil01",
    "microsoftTenantId": "a1b2c3d4-5e6f-7890-abcd-ef1234567890",
    "onboardingDate": "2025-01-02",
    "displayName": f"<b>bold</b> {XSS}",
    "service": "<script>alert(3)</script>",
    "isPaused": False,
    "firstBillableDate": "2025-02-01",
    "billableStatus": "Trial",
    "totalLicensedUsers": 120,
    "billableUsersThisMonth": 118,
    "proratingPercentageThisMonth": 100,
}
TENANTS_JS: Final = """
const row = document.querySelector('#rows tr[data-detail-for="evil"]');
if (!row || !row.querySelector('table.tenants tbody tr')) { return null; }
return Array.from(row.querySelectorAll('table.tenants tbody tr')).map(
  tr => Array.from(tr.cells).map(td => td.textContent));
"""

# Every row as data: what the cells say and carry, not how the markup is spelled.
# Per cell: label, class, title, text (without the <small> line), link, <small> line.
ROWS_JS: Final = """
return Array.from(document.querySelectorAll('#rows tr[data-org]')).map(tr => ({
  org: tr.dataset.org, state: tr.dataset.state, cls: tr.className, hidden: tr.hidden,
  cells: Array.from(tr.cells).map(td => [
    td.dataset.label, td.className, td.title,
    Array.from(td.childNodes).filter(n => n.nodeName !== 'SMALL').map(n => n.textContent).join(''),
    td.querySelector('a') ? td.querySelector('a').getAttribute('href') : null,
    td.querySelector('small') ? td.querySelector('small').textContent : null])
}));
"""


def start_chromium(profile: Path, *, javascript: bool) -> WebDriver:
    """Headless Chromium with a fresh profile whose console log can be read."""
    chromium = require_tool("chromium", "chromium")
    chromedriver = require_tool("chromedriver", "chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The daemon's certificate is from a CA made for the test; TLS is still spoken.
    options.accept_insecure_certs = True
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2}
        )
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    driver.set_page_load_timeout(15)
    return driver


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Headless Chromium, quit after the module."""
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"), javascript=True)
    try:
        yield driver
    finally:
        driver.quit()


def console(driver: WebDriver) -> list[str]:
    """What the page wrote to the console since the last call, warnings and errors."""
    # selenium leaves get_log unannotated
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [str(e["message"]) for e in entries if e["level"] in {"WARNING", "SEVERE"}]


async def call(function: Callable[..., Any], *args: Any) -> Any:
    """Run one blocking Selenium call off the event loop."""
    return await asyncio.to_thread(function, *args)


async def wait_until(driver: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    """Poll `condition` in the browser until it is truthy (HANG_SECONDS at most)."""
    wait = WebDriverWait(driver, HANG_SECONDS, poll_frequency=0.1)
    return await call(wait.until, condition, f"timed out waiting for {what}")


def rows(driver: WebDriver) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = driver.execute_script(ROWS_JS)
    return result


def visible_orgs(driver: WebDriver) -> list[str]:
    return [row["org"] for row in rows(driver) if not row["hidden"]]


def assert_no_alert(driver: WebDriver) -> None:
    """No injected script ran: no alert is open and no <img> made it into the table."""
    with pytest.raises(NoAlertPresentException):
        _ = driver.switch_to.alert.text
    assert driver.execute_script("return document.querySelectorAll('#rows img').length") == 0


async def all_polled(run: Running) -> bool:
    status, text = await run.get("/api/v1/status")
    orgs = json.loads(text)["orgs"] if status == 200 else []
    return len(orgs) == 4 and all(o["state"] != "pending" for o in orgs)


async def test_status_page_in_chromium(tmp_path: Path) -> None:
    """Rows, failing first, filter, refresh keeping the filter, API HTML as text; screenshots.

    This browser is its own and quits while the test's event loop still runs: a
    socket it opened to the TLS port without finishing a handshake is known only
    to that loop, which closes it when the browser hangs up (and would otherwise
    end with the socket open).
    """
    browser = await call(partial(start_chromium, tmp_path / "chromium-profile", javascript=True))
    try:
        await _status_page_in_chromium(tmp_path, browser)
    finally:
        await call(browser.quit)


async def _status_page_in_chromium(tmp_path: Path, browser: WebDriver) -> None:
    simulator = Simulator([ACME, GLOBEX, EVIL])
    simulator.set_tenants("evil", [EVIL_TENANT])
    files = TlsFiles(tmp_path / "tls")
    web_config = write_web_config(
        files.directory / "web.yml",
        tls=files.tls_section(),
        users={"operator": bcrypt_hash(PASSWORD)},
        headers={"X-Frame-Options": "sameorigin"},  # the page's own DENY wins
    )
    credentials = basic_auth("operator", PASSWORD)
    async with running_daemon(
        tmp_path,
        [ACME, GLOBEX, EVIL],
        extra_keys={"umbrella": REVOKED_KEY},
        simulator=simulator,
        web_config=web_config,
        client_ssl=files.client_context(),
        http_headers=credentials,
    ) as run:
        assert run.url.startswith("https://")
        await run.wait_for(lambda: all_polled(run), what="every org polled once")
        async with run.http.get(run.url + "/") as response:
            assert response.headers["Content-Security-Policy"] == CSP
            assert response.headers["X-Frame-Options"] == "DENY"
            assert response.headers["X-Content-Type-Options"] == "nosniff"
        async with run.http.get(run.url + "/", headers={"Authorization": ""}) as response:
            assert response.status == 401
        # Every request the browser makes (the page, its assets, its refreshes) carries them.
        await call(browser.execute_cdp_cmd, "Network.enable", {})
        await call(browser.execute_cdp_cmd, "Network.setExtraHTTPHeaders", {"headers": credentials})
        await call(browser.get, f"{run.url}/?refresh=1")
        assert await call(
            browser.execute_script,
            "return getComputedStyle(document.querySelector('td.s-ok')).fontWeight",
        ) in {"600", "bold"}, "the stylesheet did not load"

        table = await call(rows, browser)
        assert table[0]["org"] == "umbrella"
        assert {r["org"] for r in table} == {"acme", "globex", "evil", "umbrella"}
        by_org = {r["org"]: r for r in table}
        assert by_org["umbrella"]["cells"][1][3].startswith("KEY REJECTED")
        assert by_org["umbrella"]["cls"] == "failing"
        assert by_org["acme"]["cells"][1][3] == "OK"
        assert by_org["acme"]["cells"][2][3] == "Acme MSP"
        assert by_org["acme"]["cells"][3][3] == "3"
        assert by_org["acme"]["cells"][5][5].endswith(" UTC")  # absolute under the relative
        assert by_org["evil"]["cells"][2][3] == f"{XSS} & Sons"
        assert by_org["umbrella"]["cells"][6][3].startswith("key rejected (401)")
        await call(assert_no_alert, browser)

        # Page and JSON come from the same document: same orgs, same order, same states.
        _, text = await run.get("/api/v1/status")
        document = json.loads(text)
        assert [(o["org"], o["state"]) for o in document["orgs"]] == [
            (r["org"], r["state"]) for r in table
        ]
        summary = await call(
            browser.execute_script,
            "return Object.fromEntries(Array.from(document.querySelectorAll('[id^=sum-]'))"
            ".map(e => [e.id.slice(4), Number(e.textContent)]))",
        )
        assert summary == document["summary"]

        # The filter narrows the table.
        box = await call(browser.find_element, By.ID, "filter")
        await call(box.send_keys, "acme")
        await wait_until(browser, lambda d: visible_orgs(d) == ["acme"], "the filter")

        # The script refreshes the rows in place (no reload) and the filter holds.
        await call(browser.execute_script, "window.rowsBefore = document.getElementById('rows')")
        await call(browser.execute_script, "window.notReloaded = true")
        run.simulator.set_fault("acme", StatusFault(500, "Internal error"))
        await wait_until(
            browser,
            lambda d: any(r["org"] == "acme" and r["state"] == "error" for r in rows(d)),
            "acme to show ERROR after a refresh",
        )
        assert await call(browser.execute_script, "return window.notReloaded") is True
        assert await call(
            browser.execute_script, "return document.getElementById('rows') !== window.rowsBefore"
        )
        assert await call(box.get_attribute, "value") == "acme"
        assert await call(visible_orgs, browser) == ["acme"]
        refreshed = {r["org"]: r for r in await call(rows, browser)}
        assert refreshed["evil"]["cells"][2][3] == f"{XSS} & Sons"
        await call(assert_no_alert, browser)

        # Cleared, every row shows again, the failing ones first.
        await call(box.clear)
        await call(browser.execute_script, "petraStatus.applyFilter()")
        assert (await call(visible_orgs, browser))[:2] == ["umbrella", "acme"]

        # A click on an org shows its tenants under it; their names from the API are text.
        link = await call(browser.find_element, By.CSS_SELECTOR, 'tr[data-org="evil"] a')
        await call(link.click)
        tenants = await wait_until(
            browser, lambda d: d.execute_script(TENANTS_JS), "evil's tenants"
        )
        assert tenants == [
            [
                f"<b>bold</b> {XSS}",
                "Evil01",
                "a1b2c3d4-5e6f-7890-abcd-ef1234567890",
                "<script>alert(3)</script>",
                "Trial",
                "no",
                "120",
                "118",
            ]
        ]
        await call(assert_no_alert, browser)
        assert (
            await call(
                browser.execute_script,
                "return document.querySelectorAll('#rows b, #rows script').length",
            )
            == 0
        )
        # The tenants stay open across the next refresh.
        await call(
            browser.execute_script, "window.detailBefore = document.querySelector('tr.detail')"
        )
        await wait_until(
            browser,
            lambda d: d.execute_script(
                "const r = document.querySelector('tr.detail');"
                "return r !== null && r !== window.detailBefore"
                " && r.querySelector('table') !== null"
            ),
            "a refresh that keeps the tenants open",
        )

        # No key, nor any part of one, is on the page, whatever it shows.
        source = await call(lambda: browser.page_source)
        assert_no_key_material([ACME.key, GLOBEX.key, EVIL.key, REVOKED_KEY, PASSWORD], source)

        # Through all of it, nothing in the console: no error, nothing the CSP blocked.
        assert await call(console, browser) == []
        # ... and the console is read and the policy enforced: an inline script is refused.
        await call(
            browser.execute_script,
            "const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
            "document.body.append(s)",
        )
        assert await call(browser.execute_script, "return window.ran") is None
        blocked = await call(console, browser)
        assert any("Content Security Policy" in line for line in blocked), blocked

        # The artefacts: the whole page on a laptop, with evil's tenants open, and on a phone.
        ARTIFACTS.mkdir(exist_ok=True)
        assert await call(browser.save_screenshot, str(ARTIFACTS / "status-page.png"))
        await call(browser.set_window_size, 390, 844)
        assert await call(browser.save_screenshot, str(ARTIFACTS / "status-page-phone.png"))
        await call(browser.set_window_size, 1366, 900)


def _tenant(tenant_id: str, display_name: str, billable: float) -> TenantUsage:
    return TenantUsage(
        tenant_id,
        None,
        display_name,
        "Monitoring",
        "Trial",
        False,
        120.0,
        billable,
        1.0,
        None,
        None,
    )


class FixedDaemon:
    """Every state, with markup in every field that comes from the API or the config."""

    ready = True
    max_staleness = 3600.0
    shard = "1/3"
    telemetry_path = "/metrics"

    def __init__(self) -> None:
        now = time.time()
        ok = OrgState("acme", "sha256:0123456789ab", "file /run/<b>keys</b>/acme", 300.0)
        report = UsageReport(
            "2026-09-21",
            now - 70,
            XSS,
            2.0,
            (_tenant("t1", XSS, 118.0), _tenant("t2", "B", 0.5)),
        )
        succeed(ok, report, now - 70, 0.2)
        rejected = OrgState("umbrella", "sha256:ba9876543210", "env $PETRA_KEY", 300.0)
        message = "key rejected (401): <script>alert(2)</script>"
        rejected.record_auth_failure("usage", message, now - 5, 0.1, 0)
        rejected.record_auth_failure("usage", message, now - 4, 0.1, 1)
        limited = OrgState("initech", "sha256:aaaaaaaaaaaa", "inline in the config file", 300.0)
        succeed(limited, report, now - 90_000, 0.3)
        limited.record_rate_limited(
            "usage", "rate limited (429), retry after 30 s", now - 1, 0.1, now + 29
        )
        pending = OrgState("waiting", "sha256:bbbbbbbbbbbb", "file keys/waiting", 300.0)
        forbidden = OrgState("hooli", "sha256:dddddddddddd", "file keys/hooli", 300.0)
        forbidden.record_error("usage", Health.FORBIDDEN, "forbidden (403)", now - 60, None)
        broken = OrgState("globex", "sha256:cccccccccccc", "file keys/globex", 300.0)
        broken.record_error(
            "usage", Health.ERROR, 'HTTP 502 "<i>bad gateway</i>"', now - 3000, None
        )
        self.states = [ok, rejected, limited, pending, forbidden, broken]
        self.exposition = Exposition(PetraCollector(self.org_states, lambda: self.max_staleness))

    def org_states(self) -> list[OrgState]:
        return self.states

    async def reload(self, reason: str) -> list[str]:
        return [reason]


async def test_every_state_with_javascript_off(tmp_path: Path) -> None:
    """Without JavaScript the server's page is whole: every state, styled, filter by form."""
    assert set(HEALTH_LABELS) == {s.health for s in FixedDaemon().states}
    driver = await call(partial(start_chromium, tmp_path / "profile", javascript=False))
    try:
        async with TestServer(make_web_app(FixedDaemon()), host="127.0.0.1") as server:
            await call(driver.get, str(server.make_url("/")))
            table = await call(rows_without_script, driver)
            assert [r[0] for r in table] == [
                "umbrella",
                "hooli",
                "globex",
                "initech",
                "waiting",
                "acme",
            ]
            states = {r[0]: r[1] for r in table}
            assert states["umbrella"].startswith("KEY REJECTED\n2 failures in a row")
            assert states["initech"] == "RATE LIMITED (stale)"
            assert states["hooli"] == "FORBIDDEN"
            assert states["waiting"] == "PENDING"
            cell = await call(driver.find_element, By.CSS_SELECTOR, "tr[data-org=acme] td.state")
            assert await call(cell.value_of_css_property, "font-weight") in {"600", "bold"}
            ARTIFACTS.mkdir(exist_ok=True)
            assert await call(driver.save_screenshot, str(ARTIFACTS / "status-page-states.png"))

            # The filter box is a form: Enter loads /?q=..., the server hides the rest.
            box = await call(driver.find_element, By.ID, "filter")
            await call(box.send_keys, "globex\n")
            await wait_until(driver, lambda d: "q=globex" in d.current_url, "the filter form")
            shown = [r[0] for r in await call(rows_without_script, driver) if r[2]]
            assert shown == ["globex"]
            assert await call(console, driver) == []
    finally:
        await call(driver.quit)


def rows_without_script(driver: WebDriver) -> list[tuple[str, str, bool]]:
    """Per row: the org, the state cell's text and whether it shows, read by WebDriver alone."""
    found = []
    for row in driver.find_elements(By.CSS_SELECTOR, "#rows tr[data-org]"):
        state = row.find_element(By.CSS_SELECTOR, "td.state")
        found.append((str(row.get_attribute("data-org")), state.text, row.is_displayed()))
    return found
