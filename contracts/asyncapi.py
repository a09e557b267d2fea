"""The hub's messaging contract for back ends, as an AsyncAPI 3.0 document.

Generated with FastStream from the same pydantic models the hub uses, so the document cannot
describe a payload the hub does not send; ``contracts/asyncapi.json`` is the committed copy
(``poststelle schema --asyncapi --write``) and a test fails when the two drift apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from faststream.nats import NatsBroker
from faststream.specification import AsyncAPI

from poststelle.contracts.events import CaseEvent
from poststelle.contracts.replies import CaseReply

__all__ = ["ASYNCAPI_PATH", "hub_asyncapi"]

ASYNCAPI_PATH = Path(__file__).with_name("asyncapi.json")


def hub_asyncapi() -> dict[str, Any]:
    # Never connected: the broker only carries the channel declarations.
    broker = NatsBroker("nats://poststelle-hub:4222")
    broker.publisher(
        "case.{tenant}.{backend}.{message_type}",
        title="CASES",
        description=(
            "Canonical CaseEvents (CloudEvents 1.0) for one back end of one tenant, in stream "
            "CASES. A back end pulls its durable consumer case_<tenant>_<backend>; Nats-Msg-Id "
            "and the event id are the idempotency key."
        ),
        schema=CaseEvent,
    )

    @broker.subscriber(
        "reply.{tenant}.{backend}.{kind}",
        title="REPLIES",
        description=(
            "What a back end reports about a case (receipt, status, decision, rejection), with "
            "the case id in the Poststelle-Case-Id header; the hub answers the case's origin."
        ),
    )
    async def reply(reply: CaseReply) -> None:  # pragma: no cover - documentation only
        return None

    specification = AsyncAPI(
        broker,
        title="Poststelle hub",
        version="1.0.0",
        description="Case events to back ends and their replies, over NATS JetStream.",
        schema_version="3.0.0",
    )
    document: dict[str, Any] = json.loads(specification.to_specification().to_json())
    return document
