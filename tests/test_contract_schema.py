from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from poststelle.contracts.events import (
    CASE_EVENT_SCHEMA_PATH,
    CaseEvent,
    CaseEventData,
    Origin,
    case_event_json_schema,
    deterministic_event_id,
)


def test_committed_schema_matches_the_model() -> None:
    committed = json.loads(CASE_EVENT_SCHEMA_PATH.read_text(encoding="utf-8"))
    assert committed == case_event_json_schema(), (
        "contracts/case-event.schema.json is stale: run 'poststelle schema --write'"
    )


def _data(source_id: str = "uuid-1") -> CaseEventData:
    return CaseEventData(
        case_id="c-1",
        standard="xbau",
        version="2.6",
        message_type="baugenehmigung.antrag.0200",
        origin=Origin(channel="portal", adapter="http", source_message_id=source_id),
        tenant="t",
        backend="b",
    )


def test_event_ids_are_deterministic() -> None:
    assert CaseEvent.received(_data()).id == CaseEvent.received(_data()).id
    assert CaseEvent.received(_data()).id != CaseEvent.received(_data("uuid-2")).id
    assert deterministic_event_id("m", "a") != deterministic_event_id("m", "b")


def test_event_is_cloudevents_1_0() -> None:
    document = json.loads(CaseEvent.received(_data()).model_dump_json())
    for attribute in ("specversion", "id", "source", "type", "time", "datacontenttype", "data"):
        assert attribute in document
    assert document["specversion"] == "1.0"
    assert document["subject"] == "c-1"


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="extra"):
        CaseEvent.model_validate(
            {**json.loads(CaseEvent.received(_data()).model_dump_json()), "surprise": 1}
        )


def test_committed_asyncapi_matches_the_hub() -> None:
    from poststelle.contracts.asyncapi import ASYNCAPI_PATH, hub_asyncapi

    committed = json.loads(ASYNCAPI_PATH.read_text(encoding="utf-8"))
    generated = hub_asyncapi()
    assert committed == generated, (
        "contracts/asyncapi.json is stale: run 'poststelle schema --asyncapi --write'"
    )
    channels = generated["channels"]
    assert channels["CASES"]["address"] == "case.{tenant}.{backend}.{message_type}"
    messages = generated["components"]["messages"]
    payloads = {name.split(":")[0]: m["payload"]["$ref"] for name, m in messages.items()}
    assert payloads == {
        "CASES": "#/components/schemas/CaseEvent",
        "REPLIES": "#/components/schemas/CaseReply",
    }


async def test_a_faststream_back_end_reads_the_hubs_events() -> None:
    # Pure handler logic, so FastStream's in-memory broker is enough: the JSON the hub
    # publishes is what a FastStream subscriber typed with CaseEvent accepts.
    from faststream.nats import NatsBroker, TestNatsBroker

    broker = NatsBroker()
    received: list[CaseEvent] = []

    @broker.subscriber("case.t.b.>")
    async def fachverfahren(event: CaseEvent) -> None:
        received.append(event)

    event = CaseEvent.received(_data())
    async with TestNatsBroker(broker) as test_broker:
        await test_broker.publish(
            event.model_dump_json().encode(), "case.t.b.baugenehmigung_antrag_0200"
        )
    assert received == [event]
