"""A back end that consumes CASES itself: the hub creates its consumer and leaves it alone."""

from __future__ import annotations

from typing import Any

import httpx
import nats
from nats.js import JetStreamContext

from poststelle.contracts.events import CaseEvent
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.delivery import durable_consumer_config, ensure_backend_consumer
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.stats import collect_stats
from poststelle.routing.streams.topology import BACKEND_CONSUMED_BY, CASES
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag


async def test_native_backend_pulls_its_own_consumer(hub_config: HubConfig) -> None:
    document = hub_config.model_dump(mode="json")
    document["backends"] = [{"tenant": "stadt-kiel", "name": "dms", "kind": "nats"}]
    document["routes"] = [{"standard": "xbau", "tenant": "stadt-kiel", "backend": "dms"}]
    config = HubConfig.model_validate(document)
    async with Hub(config) as hub, httpx.AsyncClient(base_url=hub.http_url) as http:
        assert hub.workers == []  # the hub runs no delivery worker for it
        body, nachrichten_uuid = xbau_antrag()
        await http.post(
            "/v1/submissions", content=body, headers={"Content-Type": "application/xml"}
        )

        # Delivered once JetStream stored it under the back end's subject; not pulled yet.
        balance = await eventually(lambda: _delivered(hub, 1))
        assert (balance["native_backlog"], balance["delivering"]) == (1, 0)
        assert balance["delivered_by_backend"] == {"case_stadt-kiel_dms": 1}

        fachverfahren = await nats.connect(hub.nats_url)
        try:
            js = fachverfahren.jetstream()
            subscription = await js.pull_subscribe_bind("case_stadt-kiel_dms", stream=CASES)
            [msg] = await subscription.fetch(1, timeout=10)
            event = CaseEvent.model_validate_json(msg.data)
            assert msg.headers is not None and msg.headers["Nats-Msg-Id"] == event.id
            await msg.ack_sync()
            info = await js.consumer_info(CASES, "case_stadt-kiel_dms")
        finally:
            await fachverfahren.close()
        after = (await collect_stats(hub.js))["conservation"]
    assert event.data.nachrichten_uuid == nachrichten_uuid
    assert (event.data.tenant, event.data.backend) == ("stadt-kiel", "dms")
    assert info.config.filter_subject == "case.stadt-kiel.dms.>"
    assert (info.num_pending, info.num_ack_pending) == (0, 0)
    assert (after["delivered"], after["native_backlog"], after["unaccounted"]) == (1, 0, 0)


async def _delivered(hub: Hub, count: int) -> dict[str, Any] | None:
    balance: dict[str, Any] = (await collect_stats(hub.js))["conservation"]
    return balance if balance["delivered"] == count and balance["in_flight"] == 0 else None


async def test_a_native_consumer_made_before_the_marker_gets_it(js: JetStreamContext) -> None:
    """A hub upgraded in place: the back end's consumer exists without metadata; the next
    start marks it as consumed by the back end (and keeps its position)."""
    old = durable_consumer_config(5)
    old.durable_name, old.filter_subject, old.metadata = "case_kiel_dms", "case.kiel.dms.>", None
    await js.add_consumer(CASES, old)
    assert await ensure_backend_consumer(js, "kiel", "dms", 5) == "case_kiel_dms"
    info = await js.consumer_info(CASES, "case_kiel_dms")
    assert (info.config.metadata or {}).get(BACKEND_CONSUMED_BY) == "backend"
