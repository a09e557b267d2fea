"""The console in a real headless browser (Debian's chromium, driven by Selenium): log in,
find the quarantined message, see its error, fix the route, replay it, see it delivered.

The hub runs on this test's event loop; the browser is driven from a thread, so the hub
keeps serving while Selenium waits.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.audit import AuditTrail
from poststelle.routing.ops.quarantine import list_quarantined
from tests.console_browser import (
    OPERATOR,
    XML,
    Parked,
    add_luebeck_rule,
    chromium,
    log_in,
    park_unroutable,
    text_of,
    until,
    wait_for,
    with_console,
)
from tests.messages import xbau_antrag


def _flow(driver: WebDriver, hub: Hub, parked: Parked, delivered: Path) -> list[str]:
    base = hub.http_url
    log_in(driver, base, OPERATOR)
    assert "olga" in driver.find_element(By.ID, "who").text
    assert int(driver.find_element(By.ID, "quarantined").text) == 1
    # The overview follows the hub by itself (htmx, every 5 s): one more arrival shows up
    # without a reload.
    assert driver.execute_script("return typeof htmx") == "object"
    received = int(driver.find_element(By.ID, "received").text)
    with httpx.Client(base_url=base) as intake:
        intake.post("/v1/submissions", content=xbau_antrag()[0], headers=XML)
    until(lambda: text_of(driver, "received") == str(received + 1), timeout=20)

    # Find the quarantined message and see its error.
    driver.find_element(By.LINK_TEXT, "Quarantine").click()
    wait_for(driver, "#quarantine-list")
    driver.find_element(By.CSS_SELECTOR, f'a.open[data-case="{parked.case_id}"]').click()
    assert wait_for(driver, "#reason").text == "unroutable"
    error = driver.find_element(By.ID, "error-detail").text
    assert "01003" in error, error
    assert parked.nachrichten_uuid in driver.find_element(By.ID, "raw").text
    message_page = driver.current_url

    # Fix the route: a rule for Lübeck's ARS.
    driver.find_element(By.LINK_TEXT, "Routing").click()
    assert "luebeck/bauakte" in add_luebeck_rule(driver, hub)
    assert "+ leistung=* ars=010030000000" in driver.find_element(By.ID, "diff").text

    # Replay it, with confirmation.
    driver.get(message_page)
    wait_for(driver, "#replay").click()
    assert "Replay 1 record?" in wait_for(driver, "h1").text
    assert parked.case_id in driver.find_element(By.ID, "confirm-list").text
    driver.find_element(By.ID, "confirm-replay").click()
    assert f"#{parked.sequence}" in wait_for(driver, "#replayed").text

    # See it delivered: the case's trace ends with the delivery.
    driver.find_element(By.LINK_TEXT, "Case trace").click()
    wait_for(driver, "#q").send_keys(parked.nachrichten_uuid)
    driver.find_element(By.ID, "search").click()
    assert wait_for(driver, "#case-id").text == parked.case_id

    def delivered_hop() -> list[str] | None:
        driver.refresh()
        hops = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#timeline .hop-name")]
        return hops if "delivered" in hops else None

    hops: list[str] = until(delivered_hop)
    assert driver.find_element(By.ID, "case-state").text == "delivered"
    assert "console:olga" in driver.find_element(By.CSS_SELECTOR, ".hop-replayed").text
    assert delivered.exists()
    return hops


async def test_log_in_find_fix_replay_and_see_it_delivered(
    hub_config: HubConfig, tmp_path: Path
) -> None:
    async with Hub(with_console(hub_config)) as hub:
        parked = await park_unroutable(hub, tmp_path)
        folder = next(w for w in hub.workers if w.backend.tenant == "luebeck").backend.folder  # type: ignore[attr-defined]
        target = folder / f"{parked.case_id}.json"

        def drive() -> list[str]:
            with chromium() as driver:
                return _flow(driver, hub, parked, target)

        hops = await asyncio.to_thread(drive)
        assert hops.index("quarantined") < hops.index("replayed") < hops.index("delivered")
        assert await list_quarantined(hub.js) == []
        [replayed] = [
            e for e in await AuditTrail(hub.js).read(parked.case_id) if e.hop == "replayed"
        ]
        assert replayed.detail["by"] == "console:olga"
