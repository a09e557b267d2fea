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
