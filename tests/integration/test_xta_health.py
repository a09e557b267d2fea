"""``/healthz`` shows each inbound adapter: a hub polling a simulated XTA mailbox over real
SOAP/HTTP, asked over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from poststelle.adapters.xta.simulator import FaultRule, XtaSimulator
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from tests.integration.conftest import eventually
from tests.integration.test_xta_inbound import _with_mailbox
from tests.messages import xbau_antrag
from tests.xta.conftest import AMT, HUB


async def _mailbox_health(http: httpx.AsyncClient) -> dict[str, Any]:
    report: dict[str, Any] = (await http.get("/healthz")).json()["inbound"]["xta-hub"]
    return report


async def test_healthz_shows_the_xta_mailbox_poller(
    hub_config: HubConfig, xta_sim: XtaSimulator, corpus_dir: Path
) -> None:
    body, _ = xbau_antrag()
    xta_sim.put(HUB.value, body, author=AMT)
    async with (
        Hub(_with_mailbox(hub_config, xta_sim, corpus_dir)) as hub,
        httpx.AsyncClient(base_url=hub.http_url, timeout=10.0) as http,
    ):

        async def received() -> dict[str, Any] | None:
            report = await _mailbox_health(http)
            return report if report["received"] == 1 and report["last_success"] else None

        report = await eventually(received)
        assert report["kind"] == "xta"
        assert report["ok"] is True
        assert report["readers"] == [HUB.value]
        assert report["last_poll"] is not None
        assert report["last_error"] is None and report["last_error_at"] is None

        xta_sim.inject(
            FaultRule(
                "fault",
                operation="getStatusList",
                exception="PermissionDeniedException",
                code="9011",
                reason="Account ist gesperrt.",
                times=1_000,
            )
        )

        async def failing() -> dict[str, Any] | None:
            report = await _mailbox_health(http)
            return report if report["last_error"] else None

        report = await eventually(failing)
        assert "Account ist gesperrt." in report["last_error"]
        assert HUB.value in report["last_error"]
        assert report["last_poll_ok"] is False
        assert report["last_error_at"] >= report["last_success"]

        xta_sim.clear_faults()

        async def recovered() -> dict[str, Any] | None:
            report = await _mailbox_health(http)
            return report if report["last_success"] > report["last_error_at"] else None

        report = await eventually(recovered)
        # The last error stays on show, with its time, after the poller recovered.
        assert "Account ist gesperrt." in report["last_error"]
        assert report["last_poll_ok"] is True
        assert report["received"] == 1
