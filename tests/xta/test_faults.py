"""Fault injection: what the client retries, what it surfaces, and what the hub must dedupe."""

from __future__ import annotations

from pathlib import Path

import pytest

from poststelle.adapters.xta._errors import (
    XtaPermanentError,
    XtaPermissionDenied,
    XtaTechnicalProblem,
    XtaTransientError,
)
from poststelle.adapters.xta._model import MessageType, XtaMessage, XtaMetadata
from poststelle.adapters.xta.client import SendOutcome, XtaClient
from poststelle.adapters.xta.simulator import FaultRule, XtaSimulator

from .conftest import AMT, HUB, make_settings


def _message(message_id: str) -> XtaMessage:
    return XtaMessage(
        metadata=XtaMetadata(
            message_id=message_id,
            author=HUB,
            reader=AMT,
            service="urn:svc",
            message_type=MessageType("x.0205", "urn:x"),
            business_scenario="TEST",
        ),
        content=b"<answer/>",
    )


def test_timeout_then_success(simulator: XtaSimulator, xta_dir: Path) -> None:
    client = XtaClient(make_settings(simulator, xta_dir, read_timeout=0.3))
    simulator.put(HUB.value, b"<x/>")
    simulator.inject(FaultRule("delay", operation="getStatusList", delay=1.0))
    listing = client.get_status_list(HUB)
    assert len(listing.entries) == 1
    assert simulator.calls("getStatusList") == 2


def test_timeout_exhausts_retries(simulator: XtaSimulator, xta_dir: Path) -> None:
    client = XtaClient(make_settings(simulator, xta_dir, read_timeout=0.2, retry_attempts=2))
    simulator.inject(FaultRule("delay", operation="checkAccountActive", delay=0.6, times=2))
    with pytest.raises(XtaTransientError, match="Timeout"):
        client.check_account_active(HUB)


def test_dropped_connection_is_retried(simulator: XtaSimulator, client: XtaClient) -> None:
    message_id = simulator.put(HUB.value, b"<x/>")
    simulator.inject(FaultRule("drop", operation="getMessage", times=2))
    fetched = client.get_message(HUB, message_id)
    assert fetched.message_id == message_id
    assert simulator.calls("getMessage") == 3


def test_technical_fault_is_retried(simulator: XtaSimulator, client: XtaClient) -> None:
    simulator.inject(FaultRule("fault", operation="createMessageId", code="9030"))
    assert client.create_message_id(HUB)
    assert simulator.calls("createMessageId") == 2


def test_technical_fault_surfaces_typed_after_retries(
    simulator: XtaSimulator, client: XtaClient
) -> None:
    simulator.inject(FaultRule("fault", operation="createMessageId", times=10))
    with pytest.raises(XtaTechnicalProblem) as info:
        client.create_message_id(HUB)
    assert info.value.code == "9030"
    assert simulator.calls("createMessageId") == client.settings.retry_attempts


def test_permanent_fault_is_not_retried(simulator: XtaSimulator, client: XtaClient) -> None:
    simulator.inject(
        FaultRule(
            "fault",
            operation="getStatusList",
            exception="PermissionDeniedException",
            code="9011",
            reason="Account ist gesperrt.",
        )
    )
    with pytest.raises(XtaPermissionDenied) as info:
        client.get_status_list(HUB)
    assert info.value.code == "9011"
    assert info.value.exception == "PermissionDeniedException"
    assert simulator.calls("getStatusList") == 1


def test_unknown_message_id_is_permanent(client: XtaClient, simulator: XtaSimulator) -> None:
    with pytest.raises(XtaPermanentError) as info:
        client.get_transport_report(HUB, "urn:de:xta:messageid:nope")
    assert info.value.code == "9070"
    assert simulator.calls("getTransportReport") == 1


def test_send_answer_lost_then_9024_counts_as_success(
    simulator: XtaSimulator, client: XtaClient
) -> None:
    # The server stores the message but the answer is lost; the retry hits fault 9024.
    message_id = client.create_message_id(HUB)
    simulator.inject(FaultRule("drop", operation="sendMessage", after_processing=True))
    assert client.send_message(_message(message_id)) is SendOutcome.ALREADY_ACCEPTED
    assert simulator.calls("sendMessage") == 2
    assert [m.metadata.message_id for m in simulator.mailbox(AMT.value)] == [message_id]


def test_close_lost_is_retried_idempotently(simulator: XtaSimulator, client: XtaClient) -> None:
    message_id = simulator.put(HUB.value, b"<x/>")
    fetched = client.get_message(HUB, message_id)
    simulator.inject(FaultRule("drop", operation="close", after_processing=True))
    # The first close took effect and ended the iterator; the retry names a closed iterator,
    # which the client recognises as success.
    client.close(HUB, fetched.request_id, [message_id])
    assert simulator.calls("close") == 2
    assert simulator.mailbox(HUB.value) == []


def test_close_of_unknown_iterator_fails_on_first_attempt(client: XtaClient) -> None:
    with pytest.raises(XtaPermanentError, match="MsgBoxRequestID"):
        client.close(HUB, "urn:uuid:never-opened", ["urn:x"])


def test_duplicate_delivery_shows_same_message_id_twice(
    simulator: XtaSimulator, client: XtaClient
) -> None:
    message_id = simulator.put(HUB.value, b"<x/>")
    simulator.inject(FaultRule("duplicate", operation="close"))
    seen = []
    for _ in range(2):
        [entry] = client.get_status_list(HUB).entries
        fetched = client.get_message(HUB, entry.message_id)
        seen.append(fetched.message_id)
        client.close(HUB, fetched.request_id, [fetched.message_id])
    assert seen == [message_id, message_id]
    assert simulator.mailbox(HUB.value) == []


def test_stalled_drop_never_takes_effect_and_is_seen_pending_until_it_hits(
    simulator: XtaSimulator, xta_dir: Path
) -> None:
    # A close that hangs past the client's timeout, then dies: the message stays, so it is
    # fetched again (the window between the hub storing a message and closing it).
    client = XtaClient(make_settings(simulator, xta_dir, read_timeout=0.2, retry_attempts=1))
    message_id = simulator.put(HUB.value, b"<x/>")
    fetched = client.get_message(HUB, message_id)
    rule = FaultRule("drop", operation="close", delay=0.5)
    simulator.inject(rule)
    assert simulator.pending_faults() == [rule]
    with pytest.raises(XtaTransientError):
        client.close(HUB, fetched.request_id, [message_id])
    assert simulator.pending_faults() == []
    assert [m.metadata.message_id for m in simulator.mailbox(HUB.value)] == [message_id]


def test_fault_rule_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="unknown XTA operation"):
        FaultRule("fault", operation="getMesage")
    with pytest.raises(ValueError, match="unknown fault kind"):
        FaultRule("explode")  # type: ignore[arg-type]
