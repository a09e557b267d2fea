"""The intake on a real server: what a broker outage answers, and which id decides."""

from __future__ import annotations

import httpx

from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.hub.runtime import Hub
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag

XML = {"Content-Type": "application/xml"}


async def test_broker_outage_answers_503_with_retry_after_then_heals(
    hub: Hub, fresh_nats: EmbeddedNatsServer
) -> None:
    body, _ = xbau_antrag()
    async with httpx.AsyncClient(base_url=hub.http_url, timeout=30.0) as http:
        fresh_nats.stop()
        down = await http.post("/v1/submissions", content=body, headers=XML)
        fresh_nats.start()
        await eventually(lambda: hub.nc is not None and hub.nc.is_connected, within=15)
        retried = await http.post("/v1/submissions", content=body, headers=XML)
    assert down.status_code == 503, down.text
    assert down.headers["content-type"] == "application/problem+json"
    assert int(down.headers["retry-after"]) > 0
    assert retried.status_code == 202, retried.text


async def test_idempotency_key_is_a_fact_the_message_identity_decides(
    hub: Hub, http: httpx.AsyncClient
) -> None:
    """A portal re-sends the same application under a new Idempotency-Key: the
    nachrichtenUUID makes it the same case; both keys are in the audit trail."""
    body, nachrichten_uuid = xbau_antrag()
    first = await http.post(
        "/v1/submissions", content=body, headers={**XML, "Idempotency-Key": "a"}
    )
    second = await http.post(
        "/v1/submissions", content=body, headers={**XML, "Idempotency-Key": "b"}
    )
    assert first.status_code == second.status_code == 202
    assert first.json()["case_id"] == second.json()["case_id"]
    assert first.json()["message_id"] == nachrichten_uuid
    assert second.json()["duplicate"] is True
    assert hub.audit is not None
    trail = await eventually(lambda: hub.audit.read(first.json()["case_id"]))  # type: ignore[union-attr]
    facts = {(e.hop, e.detail.get("transport_id")) for e in trail}
    assert {("received", "a"), ("duplicate", "b")} <= facts
