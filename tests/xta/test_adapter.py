"""Adapter glue: close only after publish_raw returned; answers go out with a report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from poststelle.adapters.base import AdapterContext
from poststelle.adapters.testing import RecordingPublisher
from poststelle.adapters.xta._model import Attachment, MessageType, TransportStatus
from poststelle.adapters.xta.adapter import (
    XtaAdapterConfig,
    XtaInboundAdapter,
    XtaMailboxAdapter,
    XtaMailboxSettings,
    XtaOutboundSender,
    XtaParty,
)
from poststelle.adapters.xta.client import SendOutcome, XtaClient
from poststelle.adapters.xta.simulator import XtaSimulator

from .conftest import AMT, HUB, make_settings


def _config(sim: XtaSimulator, xta_dir: Path) -> XtaAdapterConfig:
    return XtaAdapterConfig(
        connection=make_settings(sim, xta_dir), readers=[XtaParty(identifier=HUB.value)]
    )


async def test_publish_before_close(simulator: XtaSimulator, xta_dir: Path) -> None:
    ids = [simulator.put(HUB.value, f"<m{i}/>".encode(), author=AMT) for i in range(2)]
    published: list[tuple[bytes, str, dict[str, Any]]] = []

    async def publish_raw(
        body: bytes, source_id: str, metadata: dict[str, Any], attachments: Any
    ) -> None:
        # Still in the mailbox while the hub stores it: close has not happened yet.
        assert source_id in [m.metadata.message_id for m in simulator.mailbox(HUB.value)]
        published.append((body, source_id, metadata))

    adapter = XtaInboundAdapter(_config(simulator, xta_dir), publish_raw)
    assert (await adapter.poll_once()).received == 2
    assert [p[1] for p in published] == ids
    assert published[0][0] == b"<m0/>"
    assert published[0][2]["author"] == AMT.value
    assert published[0][2]["xta_message_id"] == ids[0]
    assert simulator.mailbox(HUB.value) == []


async def test_failed_publish_leaves_message_in_mailbox(
    simulator: XtaSimulator, xta_dir: Path
) -> None:
    message_id = simulator.put(HUB.value, b"<m/>")

    async def publish_raw(
        body: bytes, source_id: str, metadata: dict[str, Any], attachments: Any
    ) -> None:
        raise RuntimeError("JetStream unavailable")

    adapter = XtaInboundAdapter(_config(simulator, xta_dir), publish_raw)
    result = await adapter.poll_once()
    assert result.received == 0
    [failure] = result.failures
    assert (failure.operation, failure.xta_message_id) == ("publish", message_id)
    assert "JetStream unavailable" in failure.error
    assert [m.metadata.message_id for m in simulator.mailbox(HUB.value)] == [message_id]
    assert simulator.calls("close") == 0


async def test_outbound_sender(simulator: XtaSimulator, xta_dir: Path) -> None:
    sender = XtaOutboundSender(XtaClient(make_settings(simulator, xta_dir)))
    answer = await sender.send(
        b"<bescheid/>",
        author=HUB,
        reader=AMT,
        service="urn:xoev-de:xleitstelle:standard:xbau",
        message_type=MessageType(
            "baugenehmigung.bescheid.0205", "http://www.xleitstelle.de/xbau/2/6"
        ),
        business_scenario="XBAU",
        in_reply_to=("urn:earlier",),
    )
    assert answer.outcome is SendOutcome.ACCEPTED
    assert answer.report is not None and answer.report.status is TransportStatus.GREEN
    [delivered] = simulator.mailbox(AMT.value)
    assert delivered.metadata.message_id == answer.message_id
    # Resending with the same id is idempotent.
    again = await sender.send(
        b"<bescheid/>",
        author=HUB,
        reader=AMT,
        service="urn:s",
        message_type=MessageType("x", "urn:x"),
        business_scenario="XBAU",
        message_id=answer.message_id,
    )
    assert again.outcome is SendOutcome.ALREADY_ACCEPTED
    assert len(simulator.mailbox(AMT.value)) == 1


async def test_attachments_without_a_store_leave_the_message_in_the_mailbox(
    simulator: XtaSimulator, xta_dir: Path, tmp_path: Path
) -> None:
    """A set-up that lends no attachment store cannot keep the plans: the message is not
    published without them (never cut off) and stays in the mailbox, the round says why."""
    plan = Attachment(b"%PDF-1.7\n%%EOF\n", "application/pdf", "lageplan.pdf")
    xta_id = simulator.put(HUB.value, b"<antrag/>", author=AMT, attachments=(plan,))
    publisher = RecordingPublisher()
    settings = XtaMailboxSettings(
        connection=make_settings(simulator, xta_dir), readers=[XtaParty(identifier=HUB.value)]
    )
    adapter = XtaMailboxAdapter(
        name="xta", settings=settings, context=AdapterContext(data_dir=tmp_path, publish=publisher)
    )
    result = await adapter.poller.poll_once()
    assert result.received == 0
    [failure] = result.failures
    assert (failure.operation, failure.xta_message_id) == ("publish", xta_id)
    assert "attachment store" in failure.error
    assert publisher.published == []
    assert [m.metadata.message_id for m in simulator.mailbox(HUB.value)] == [xta_id]
