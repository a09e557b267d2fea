"""The adapter uses lookupService before an answer and getNextStatusList to drain a mailbox
larger than one status-list page (over real SOAP with the simulator)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from poststelle.adapters.base import AdapterContext
from poststelle.adapters.errors import PermanentDeliveryError
from poststelle.adapters.xta._errors import XtaServiceUnavailable
from poststelle.adapters.xta._model import MessageType
from poststelle.adapters.xta.adapter import (
    XtaAdapterConfig,
    XtaInboundAdapter,
    XtaMailboxAdapter,
    XtaMailboxSettings,
    XtaOutboundSender,
    XtaParty,
)
from poststelle.adapters.xta.client import SendOutcome, XtaClient
from poststelle.adapters.xta.simulator import FaultRule, XtaSimulator
from poststelle.contracts.replies import Answer

from .conftest import AMT, HUB, make_settings

XBAU = "urn:xoev-de:xleitstelle:standard:xbau"
BESCHEID = MessageType("baugenehmigung.bescheid.0205", "http://www.xleitstelle.de/xbau/2/6")


async def _send(sender: XtaOutboundSender, service: str = XBAU) -> Any:
    return await sender.send(
        b"<bescheid/>",
        author=HUB,
        reader=AMT,
        service=service,
        message_type=BESCHEID,
        business_scenario="XBAU",
    )


def _paging_adapter(
    simulator: XtaSimulator, xta_dir: Path, published: list[str]
) -> XtaInboundAdapter:
    """An inbound adapter for HUB's mailbox with two status-list items a page, so a few
    messages take several pages; it records the source id of each message it publishes."""

    async def publish_raw(
        body: bytes, source_id: str, facts: dict[str, Any], attachments: Any
    ) -> None:
        published.append(source_id)

    config = XtaAdapterConfig(
        connection=make_settings(simulator, xta_dir),
        readers=[XtaParty(identifier=HUB.value)],
        max_list_items=2,
    )
    return XtaInboundAdapter(config, publish_raw)


async def test_answer_to_a_reader_without_the_service_is_refused(
    simulator: XtaSimulator, xta_dir: Path
) -> None:
    simulator.offer(AMT.value, "urn:xoev-de:xdomea")
    sender = XtaOutboundSender(XtaClient(make_settings(simulator, xta_dir)))
    with pytest.raises(XtaServiceUnavailable, match=f"{AMT.value} does not offer service {XBAU}"):
        await _send(sender)
    assert simulator.calls("lookupService") == 1
    assert simulator.calls("sendMessage") == 0 and simulator.mailbox(AMT.value) == []
    # The service it does offer goes through.
    sent = await _send(sender, "urn:xoev-de:xdomea")
    assert sent.outcome is SendOutcome.ACCEPTED
    assert len(simulator.mailbox(AMT.value)) == 1


async def test_unknown_availability_or_a_failed_lookup_still_sends(
    simulator: XtaSimulator, xta_dir: Path
) -> None:
    sender = XtaOutboundSender(XtaClient(make_settings(simulator, xta_dir, retry_attempts=1)))
    # No directory entry for AMT: ServiceIsAvailableUnknown.
    assert (await _send(sender)).outcome is SendOutcome.ACCEPTED
    simulator.inject(
        FaultRule("fault", operation="lookupService", exception="ParameterIsNotValidException")
    )
    assert (await _send(sender)).outcome is SendOutcome.ACCEPTED
    assert simulator.calls("lookupService") == 2
    assert len(simulator.mailbox(AMT.value)) == 2


async def test_the_check_can_be_left_out(simulator: XtaSimulator, xta_dir: Path) -> None:
    simulator.offer(AMT.value, "urn:other")
    sender = XtaOutboundSender(XtaClient(make_settings(simulator, xta_dir)), check_service=False)
    assert (await _send(sender)).outcome is SendOutcome.ACCEPTED
    assert simulator.calls("lookupService") == 0


async def test_mailbox_adapter_answer_fails_permanently_with_the_reason(
    simulator: XtaSimulator, xta_dir: Path, tmp_path: Path
) -> None:
    simulator.offer(AMT.value, "urn:other")
    settings = XtaMailboxSettings(
        connection=make_settings(simulator, xta_dir), readers=[XtaParty(identifier=HUB.value)]
    )

    async def publish(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("nothing is polled here")

    context = AdapterContext(data_dir=tmp_path, publish=publish)
    adapter = XtaMailboxAdapter(name="xta", settings=settings, context=context)
    answer = Answer(
        case_id="case-1",
        kind="decision",
        content=b"<bescheid/>",
        content_type="application/xml",
        message_type=BESCHEID.code,
        namespace=BESCHEID.payload_schema,
        reply_route={"reader": AMT.value, "author": HUB.value, "service": XBAU},
    )
    with pytest.raises(PermanentDeliveryError, match="does not offer service"):
        await adapter.answer(answer)
    assert simulator.mailbox(AMT.value) == []


async def test_poll_round_pages_through_a_full_mailbox(
    simulator: XtaSimulator, xta_dir: Path
) -> None:
    ids = [simulator.put(HUB.value, f"<m{i}/>".encode()) for i in range(5)]
    published: list[str] = []
    result = await _paging_adapter(simulator, xta_dir, published).poll_once()
    assert result.received == 5 and not result.failures
    assert published == ids
    assert simulator.calls("getStatusList") == 1
    assert simulator.calls("getNextStatusList") == 2  # pages 2 and 3
    assert simulator.mailbox(HUB.value) == []


async def test_a_failed_next_page_is_a_recorded_failure(
    simulator: XtaSimulator, xta_dir: Path
) -> None:
    ids = [simulator.put(HUB.value, f"<m{i}/>".encode()) for i in range(3)]
    published: list[str] = []
    simulator.inject(
        FaultRule("fault", operation="getNextStatusList", exception="PermissionDeniedException")
    )
    result = await _paging_adapter(simulator, xta_dir, published).poll_once()
    assert published == ids[:2]
    [failure] = result.failures
    assert failure.operation == "getNextStatusList"
    # The rest waits in the mailbox for the next round.
    assert [m.metadata.message_id for m in simulator.mailbox(HUB.value)] == ids[2:]
