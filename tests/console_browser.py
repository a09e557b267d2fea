"""What the console's browser test and its screenshots share: Debian's chromium driven by
Selenium, and a hub with console accounts, a routing table that lacks Lübeck and a Lübeck
application parked as unroutable.

Selenium gets both paths (``/usr/bin/chromium``, ``/usr/bin/chromedriver``): with them it
never tries to download a browser or a driver. ``.ci/run`` installs the two packages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from poststelle.contracts.envelope import H_CASE_ID, H_ORIGINAL_SUBJECT
from poststelle.routing.console import hash_password
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.dlq import publish_dead_letter
from poststelle.routing.ops.quarantine import list_quarantined
from poststelle.routing.table.files import load_table
from poststelle.routing.table.store import RouteTableStore
from tests.messages import xbau_antrag

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
OPERATOR = ("olga", "olga-operator-pass")
READER = ("rudi", "rudi-reads-only-pass")
KIEL_ONLY = """\
tenants:
  kiel: {name: Landeshauptstadt Kiel, backends: [bauakte]}
  land-sh: {name: Land Schleswig-Holstein, backends: [poststelle]}
rules:
  - {ars: "010020000000", standard: xbau, tenant: kiel, backend: bauakte}
  - {ars: "01002", tenant: land-sh, backend: poststelle, priority: -1}
"""
XML = {"Content-Type": "application/xml"}


def with_console(config: HubConfig) -> HubConfig:
    """``config`` with the Kiel and Lübeck back ends, no static routes, two accounts."""
    document = config.model_dump(mode="json")
    document["backends"] = [
        {"tenant": "kiel", "name": "bauakte"},
        {"tenant": "luebeck", "name": "bauakte"},
        {"tenant": "land-sh", "name": "poststelle"},
    ]
    document["routes"] = []
    document["console"] = {
        "accounts": {
            OPERATOR[0]: {"password_hash": hash_password(OPERATOR[1]), "role": "operator"},
            READER[0]: {"password_hash": hash_password(READER[1]), "role": "read-only"},
        }
    }
    return HubConfig.model_validate(document)


@contextlib.contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[WebDriver]:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists():
            raise RuntimeError(
                f"{path} is missing: apt-get install chromium chromium-driver (.ci/run does)"
            )
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--lang=en",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    )
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: WebDriver, css: str, timeout: float = 20.0) -> Any:
    return WebDriverWait(driver, timeout).until(
        expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, css))
    )


def until(check: Callable[[], Any], timeout: float = 30.0, every: float = 0.2) -> Any:
    """Poll a blocking ``check`` (in the browser's thread) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s (last value: {result!r})")
        time.sleep(every)


def text_of(driver: WebDriver, element_id: str) -> str | None:
    """An element's text, ``None`` while htmx swaps it (the element found is gone)."""
    try:
        return str(driver.find_element(By.ID, element_id).text)
    except StaleElementReferenceException:
        return None


def log_in(driver: WebDriver, base: str, account: tuple[str, str]) -> None:
    driver.get(f"{base}/console/")
    wait_for(driver, "#username").send_keys(account[0])
    driver.find_element(By.ID, "password").send_keys(account[1])
    driver.find_element(By.ID, "login").click()
    wait_for(driver, "#received")


def add_luebeck_rule(driver: WebDriver, hub: Hub) -> str:
    """The routing page's form: a rule for Lübeck's ARS, added once the hub follows it.
    Returns what the page says was added."""
    wait_for(driver, "#add-rule")
    for field, value in {
        "r-ars": "010030000000",
        "r-standard": "xbau",
        "r-tenant": "luebeck",
        "r-backend": "bauakte",
    }.items():
        driver.find_element(By.ID, field).send_keys(value)
    driver.find_element(By.ID, "add").click()
    added = str(wait_for(driver, "#rule-added").text)
    until(lambda: hub.route_watcher is not None and hub.route_watcher.pointer.rules == 3)  # type: ignore[union-attr]
    return added


@dataclass(frozen=True)
class Parked:
    case_id: str
    nachrichten_uuid: str
    sequence: int


async def import_table(hub: Hub, text: str, folder: Path) -> None:
    file = folder / "routes.yaml"
    file.write_text(text, encoding="utf-8")
    store = await RouteTableStore.open(hub.js)
    current = await store.load()
    await store.publish(load_table(file), expected_revision=current.revision if current else 0)


async def park_unroutable(hub: Hub, folder: Path) -> Parked:
    """Kiel routed, Lübeck parked: the table has no rule for Lübeck's ARS."""
    await import_table(hub, KIEL_ONLY, folder)
    watcher = hub.route_watcher
    assert watcher is not None, "the hub follows the stored table"
    await asyncio.wait_for(watcher.wait_until(lambda: watcher.pointer is not None), 30)
    kiel, _ = xbau_antrag()
    luebeck, uuid = xbau_antrag()
    luebeck = luebeck.replace(b"<code>01002000</code>", b"<code>01003000</code>")
    async with httpx.AsyncClient(base_url=hub.http_url) as intake:
        await intake.post("/v1/submissions", content=kiel, headers=XML)
        answer = await intake.post(
            "/v1/submissions",
            content=luebeck,
            headers={**XML, "Idempotency-Key": "xta-4f1c9e2a"},
        )
    case_id = answer.json()["case_id"]
    for _ in range(600):
        parked = await list_quarantined(hub.js, reason="unroutable")
        if parked:
            return Parked(case_id, uuid, parked[0].sequence)
        await asyncio.sleep(0.05)
    raise AssertionError("the Lübeck application was not quarantined")


async def add_dead_letter(hub: Hub) -> None:
    """A delivery the back end refused for good, as a delivery worker records it."""
    await publish_dead_letter(
        hub.js,
        "case_kiel_bauakte",
        1,
        json.dumps({"specversion": "1.0", "id": "evt-demo", "type": "demo"}).encode(),
        {
            H_CASE_ID: "3f0c2a4e-8d1b-5e6f-9a7b-2c4d6e8f0a1b",
            H_ORIGINAL_SUBJECT: "case.kiel.bauakte.baugenehmigung_antrag_0200",
        },
        reason="permanent",
        detail="webhook: HTTP 422 from the back end: field 'aktenzeichen' is missing",
    )
