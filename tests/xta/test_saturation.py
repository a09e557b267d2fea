"""A mailbox cannot be answered 429: while the hub's intake is saturated the poller stops
fetching, and what it left waits in the mailbox for a later round."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from poststelle.adapters.xta.adapter import XtaAdapterConfig, XtaInboundAdapter, XtaParty
from poststelle.adapters.xta.simulator import XtaSimulator

from .conftest import AMT, HUB, make_settings


async def test_the_poller_pauses_while_the_intake_is_saturated(
    simulator: XtaSimulator, xta_dir: Path
) -> None:
    ids = [simulator.put(HUB.value, f"<m{i}/>".encode(), author=AMT) for i in range(3)]
    taken: list[str] = []

    async def publish(body: bytes, source_id: str, facts: dict[str, Any], attachments: Any) -> None:
        taken.append(source_id)

    # Saturated once the first message is in: the intake would refuse the next.
    poller = XtaInboundAdapter(
        XtaAdapterConfig(
            connection=make_settings(simulator, xta_dir), readers=[XtaParty(identifier=HUB.value)]
        ),
        publish,
        saturated=lambda: len(taken) >= 1,
    )
    first = await poller.poll_once()
    assert (first.received, first.paused, first.failures) == (1, True, [])
    assert simulator.calls("getMessage") == 1  # nothing fetched only to be refused
    assert [m.metadata.message_id for m in simulator.mailbox(HUB.value)] == ids[1:]
    # Room again: the next round takes the rest.
    taken.clear()
    poller._saturated = lambda: False
    second = await poller.poll_once()
    assert (second.received, second.paused) == (2, False)
    assert simulator.mailbox(HUB.value) == []
