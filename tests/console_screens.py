"""Screenshots of every console page for docs/console/ (``docs/console/make-screenshots.sh``).

Starts its own nats-server and hub in a temporary folder, sets up the browser test's
scenario (a Lübeck application parked as unroutable, a dead letter), and photographs each
page with the same headless chromium the browser test uses.

    python -m tests.console_screens docs/console
"""

from __future__ import annotations

import asyncio
import base64
import sys
import tempfile
import time
from pathlib import Path

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from poststelle.contracts.registry import ContractRegistry
from poststelle.routing.hub.config import load_config
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.quarantine import list_quarantined
from tests.console_browser import (
    OPERATOR,
    XML,
    Parked,
    add_dead_letter,
    add_luebeck_rule,
    chromium,
    log_in,
    park_unroutable,
    until,
    wait_for,
    with_console,
)
from tests.messages import xbau_antrag

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


async def _park_schema_invalid(hub: Hub) -> int:
    """An application without its mandatory referenzAntragsservice."""
    body, _ = xbau_antrag()
    start = body.index(b"<referenzAntragsservice")
    end = body.index(b"</referenzAntragsservice>") + len(b"</referenzAntragsservice>")
    async with httpx.AsyncClient(base_url=hub.http_url) as intake:
        await intake.post("/v1/submissions", content=body[:start] + body[end:], headers=XML)
    for _ in range(600):
        found = await list_quarantined(hub.js, reason="schema-invalid")
        if found:
            return found[0].sequence
        await asyncio.sleep(0.05)
    raise AssertionError("the schema-invalid application was not quarantined")


def _shoot(driver: WebDriver, folder: Path, name: str) -> None:
    """The whole page, not just the window (Chrome's DevTools capture beyond the viewport)."""
    metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})  # type: ignore[attr-defined]
    size = metrics["cssContentSize"]
    shot = driver.execute_cdp_cmd(  # type: ignore[attr-defined]
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": min(size["height"], 2400),
                "scale": 1,
            },
        },
    )
    path = folder / f"{name}.png"
    path.write_bytes(base64.b64decode(shot["data"]))
    print(f"wrote {path}")


def _pages(driver: WebDriver, hub: Hub, parked: Parked, invalid: int | None, folder: Path) -> None:
    base = hub.http_url
    driver.get(f"{base}/console/login")
    wait_for(driver, "#username")
    _shoot(driver, folder, "login")
    log_in(driver, base, OPERATOR)
    # A second look a little later, with traffic in between: the rates per minute.
    time.sleep(1.5)
    with httpx.Client(base_url=base) as intake:
        for _ in range(4):
            intake.post("/v1/submissions", content=xbau_antrag()[0], headers=XML)
    time.sleep(0.5)
    driver.refresh()
    wait_for(driver, "#received")
    _shoot(driver, folder, "overview")
    # (page, what it shows once loaded, screenshot)
    views = [
        ("quarantine", "#quarantine-list", "quarantine"),
        (f"quarantine/{parked.sequence}", "#error-detail", "quarantine-message"),
    ]
    if invalid is not None:
        views.append((f"quarantine/{invalid}", ".line.marked", "quarantine-schema-error"))
    views.append(("dlq", "#dlq-list", "dlq"))
    for path, loaded, name in views:
        driver.get(f"{base}/console/{path}")
        wait_for(driver, loaded)
        _shoot(driver, folder, name)
    driver.get(f"{base}/console/routing")
    add_luebeck_rule(driver, hub)
    driver.get(
        f"{base}/console/routing?explain=1&standard=xbau"
        "&message_type=baugenehmigung.antrag.0200&region=01002000"
    )
    wait_for(driver, "#explanation")
    driver.execute_script("document.querySelector('#diff').scrollIntoView()")
    _shoot(driver, folder, "routing")
    driver.get(f"{base}/console/quarantine/replay?seq={parked.sequence}")
    wait_for(driver, "#confirm-replay")
    _shoot(driver, folder, "replay-confirm")
    driver.find_element(By.ID, "confirm-replay").click()
    wait_for(driver, "#replayed")

    def delivered() -> bool:
        driver.get(f"{base}/console/trace?q={parked.nachrichten_uuid}")
        wait_for(driver, "#case-id")
        hops = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#timeline .hop-name")]
        return "delivered" in hops

    until(delivered)
    _shoot(driver, folder, "trace")


async def _main(folder: Path) -> None:
    with (
        tempfile.TemporaryDirectory() as scratch,
        EmbeddedNatsServer(store_dir=Path(scratch) / "nats") as server,
    ):
        config = with_console(
            load_config(
                environ={},
                overrides={
                    "data_dir": Path(scratch) / "data",
                    "nats.url": server.client_url,
                    "http.port": 0,
                },
            )
        )
        schemas = CORPUS / "xbau-2.6" / "xsd"
        if schemas.is_dir():  # with XBau's schemas: a schema error marked at its line
            ContractRegistry.for_data_dir(config.data_dir).add_schema_set(schemas)
        async with Hub(config) as hub:
            parked = await park_unroutable(hub, Path(scratch))
            await add_dead_letter(hub)
            invalid = await _park_schema_invalid(hub) if schemas.is_dir() else None
            async with httpx.AsyncClient(base_url=hub.http_url) as intake:
                for _ in range(5):  # some traffic for the overview's figures
                    body, _ = xbau_antrag()
                    await intake.post("/v1/submissions", content=body, headers=XML)

            def drive() -> None:
                with chromium() as driver:
                    _pages(driver, hub, parked, invalid, folder)

            await asyncio.to_thread(drive)


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console")
    target.mkdir(parents=True, exist_ok=True)
    asyncio.run(_main(target))
