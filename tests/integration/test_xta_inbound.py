"""XTA mailbox → hub: real SOAP over HTTP (simulator) and a real nats-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from poststelle.adapters.base import AdapterContext
from poststelle.adapters.testing import InboundAdapterContract, RecordingPublisher
from poststelle.adapters.xta.adapter import XtaMailboxAdapter, XtaMailboxSettings
from poststelle.adapters.xta.simulator import XtaSimulator
from poststelle.contracts.events import CaseEvent
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.stats import collect_stats
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag
from tests.xta.conftest import AMT, HUB


def _mailbox_settings(sim: XtaSimulator, corpus_dir: Path) -> dict[str, Any]:
    return {
        "connection": {
            "service_url": sim.url,
            "xsd_dir": str(corpus_dir / "xta-2.1.1"),
            "retry_attempts": 2,
            "retry_initial_wait": 0.01,
            "retry_max_wait": 0.05,
        },
        "readers": [{"identifier": HUB.value}],
        "poll_interval": 0.1,
    }


def _with_mailbox(config: HubConfig, sim: XtaSimulator, corpus_dir: Path) -> HubConfig:
    inbound = {"name": "xta-hub", "kind": "xta", "settings": _mailbox_settings(sim, corpus_dir)}
    return HubConfig.model_validate({**config.model_dump(), "inbound": [inbound]})


def _delivered(hub: Hub) -> list[CaseEvent]:
    folder = hub.workers[0].backend.folder  # type: ignore[attr-defined]
    return [CaseEvent.model_validate_json(p.read_bytes()) for p in folder.glob("*.json")]


async def test_mailbox_message_is_delivered_and_closed(
    hub_config: HubConfig, xta_sim: XtaSimulator, corpus_dir: Path
) -> None:
    body, nachrichten_uuid = xbau_antrag()
    xta_id = xta_sim.put(HUB.value, body, author=AMT)
    async with Hub(_with_mailbox(hub_config, xta_sim, corpus_dir)) as hub:
        [event] = await eventually(lambda: _delivered(hub))
        await eventually(lambda: xta_sim.mailbox(HUB.value) == [])
    assert event.data.origin.channel == "xta"
    assert event.data.origin.source_message_id == nachrichten_uuid
    assert event.data.origin.reply_route["in_reply_to"] == xta_id
    assert event.data.nachrichten_uuid == nachrichten_uuid
    assert event.data.origin.reply_route["reader"] == AMT.value
    assert event.data.origin.reply_route["author"] == HUB.value


async def test_close_waits_for_jetstream(
    hub_config: HubConfig,
    xta_sim: XtaSimulator,
    corpus_dir: Path,
    fresh_nats: EmbeddedNatsServer,
) -> None:
    async with Hub(_with_mailbox(hub_config, xta_sim, corpus_dir)) as hub:
        await eventually(lambda: xta_sim.calls("getStatusList") >= 1)
        fresh_nats.stop()
        body, _ = xbau_antrag()
        xta_sim.put(HUB.value, body, author=AMT)
        await eventually(lambda: xta_sim.calls("getMessage") >= 2, within=30)
        # JetStream is down: the message was fetched but must not have been closed.
        assert len(xta_sim.mailbox(HUB.value)) == 1
        assert xta_sim.calls("close") == 0
        fresh_nats.start()
        await eventually(lambda: len(_delivered(hub)) == 1, within=30)
        await eventually(lambda: xta_sim.mailbox(HUB.value) == [], within=30)
        # Fetched several times, stored once.
        assert (await hub.js.stream_info("INBOX")).state.messages == 1


async def test_resend_with_a_new_xta_message_id_is_the_same_message(
    hub_config: HubConfig, xta_sim: XtaSimulator, corpus_dir: Path
) -> None:
    """At-least-once senders resend an XBau message under a new XTA MessageID: the
    nachrichtenUUID makes it the same message (one case, one delivery), the second
    mailbox message is closed all the same, and its MessageID is kept in the audit trail."""
    body, nachrichten_uuid = xbau_antrag()
    first = xta_sim.put(HUB.value, body, author=AMT)
    second = xta_sim.put(HUB.value, body, author=AMT)
    assert first != second
    async with Hub(_with_mailbox(hub_config, xta_sim, corpus_dir)) as hub:
        await eventually(lambda: xta_sim.mailbox(HUB.value) == [])
        [event] = await eventually(lambda: _delivered(hub))
        await eventually(lambda: hub.counters.get("intake.duplicate") == 1)
        assert hub.audit is not None
        trail = await hub.audit.read(event.data.case_id)
        inbox = await hub.js.stream_info("INBOX")
    assert event.data.nachrichten_uuid == nachrichten_uuid
    assert event.data.origin.source_message_id == nachrichten_uuid
    assert inbox.state.messages == 1
    assert xta_sim.calls("close") == 2
    transport_ids = {
        e.detail.get("transport_id") for e in trail if e.hop in {"received", "duplicate"}
    }
    assert transport_ids == {first, second}
    assert [e.hop for e in trail].count("routed") == 1


async def test_the_same_message_over_http_and_xta_is_one_case(
    hub_config: HubConfig, xta_sim: XtaSimulator, corpus_dir: Path
) -> None:
    """One identity rule for every channel: a message that came over HTTP and then through
    the mailbox is a recognised duplicate there, and the balance stays exact."""
    body, _ = xbau_antrag()
    async with (
        Hub(_with_mailbox(hub_config, xta_sim, corpus_dir)) as hub,
        httpx.AsyncClient(base_url=hub.http_url) as http,
    ):
        answer = (
            await http.post(
                "/v1/submissions", content=body, headers={"Content-Type": "application/xml"}
            )
        ).json()
        [event] = await eventually(lambda: _delivered(hub))
        xta_sim.put(HUB.value, body, author=AMT)
        await eventually(lambda: hub.counters.get("intake.duplicate") == 1)
        await eventually(lambda: xta_sim.mailbox(HUB.value) == [])
        balance = (await collect_stats(hub.js))["conservation"]
    assert event.data.case_id == answer["case_id"]
    assert event.data.origin.channel == "portal"
    assert (balance["received"], balance["routed"], balance["unaccounted"]) == (1, 1, 0)


class TestXtaMailboxContract(InboundAdapterContract):
    @pytest.fixture
    async def adapter(
        self,
        publisher: RecordingPublisher,
        xta_sim: XtaSimulator,
        corpus_dir: Path,
        tmp_path: Path,
    ) -> AsyncIterator[XtaMailboxAdapter]:
        settings = XtaMailboxSettings.model_validate(_mailbox_settings(xta_sim, corpus_dir))
        adapter = XtaMailboxAdapter(
            name="xta-hub",
            settings=settings,
            context=AdapterContext(data_dir=tmp_path, publish=publisher),
        )
        self._sim = xta_sim
        await adapter.start()
        await eventually(lambda: adapter.poller.healthy)
        yield adapter
        await adapter.stop()

    async def put(self, adapter: Any, raw: bytes) -> str:
        return self._sim.put(HUB.value, raw, author=AMT)

    async def still_at_source(self, adapter: Any) -> set[str]:
        return {m.metadata.message_id for m in self._sim.mailbox(HUB.value)}
