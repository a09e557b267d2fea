"""FIT-Connect -> hub on a real nats-server: a submission encrypted as a sender does arrives
decrypted as a CaseEvent and is accepted with a SET the sender can verify; a tampered JWE and
metadata that break the schema are rejected with reject-submission and quarantined."""

from __future__ import annotations

import json
from pathlib import Path

from poststelle.adapters.fitconnect import (
    ACCEPT_SUBMISSION,
    REJECT_SUBMISSION,
    SUBMIT_SUBMISSION,
    FitConnectClient,
    OutgoingAttachment,
    build_metadata,
    send_submission,
)
from poststelle.adapters.fitconnect.simulator import (
    FaultRule,
    FitConnectSimulator,
    SimulatedDestination,
)
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.quarantine import list_quarantined
from tests.fitconnect.conftest import (
    SERVICE,
    XBAU_SCHEMA_URI,
    DestinationKeys,
    case_events,
    delivered,
    send_xbau,
    with_destination,
)
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag


async def test_submission_arrives_decrypted_as_a_case_event_and_is_accepted(
    hub_config: HubConfig,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    sender: FitConnectClient,
    metadata_schema: Path,
) -> None:
    body, nachrichten_uuid = xbau_antrag()
    plan = OutgoingAttachment(b"%PDF-1.7 Lageplan 1:500", filename="lageplan.pdf")
    sent = await send_xbau(
        sender,
        destination,
        body,
        attachments=[plan],
        reply_channel={"eMail": {"address": "antragsteller@example.org"}},
    )
    config = with_destination(hub_config, fc_sim, destination, destination_keys, metadata_schema)
    async with Hub(config) as hub:
        [event] = await eventually(lambda: delivered(hub))
        await eventually(lambda: fc_sim.state_of(sent.submission_id) == "accepted")
        health = (await hub.health())["inbound"]["fitconnect-amt"]
    assert event.data.nachrichten_uuid == nachrichten_uuid
    assert event.data.message_type == "baugenehmigung.antrag.0200"
    origin = event.data.origin
    assert (origin.channel, origin.adapter) == ("fitconnect", "fitconnect-amt")
    assert origin.source_message_id == sent.submission_id
    assert origin.reply_route["submission_id"] == sent.submission_id
    assert origin.reply_route["fitconnect_case_id"] == sent.case_id
    assert json.loads(origin.reply_route["reply_channel"]) == {
        "eMail": {"address": "antragsteller@example.org"}
    }
    # Beside the files the XBau message itself references: the one that came with it.
    [attachment] = [a for a in event.data.attachments if a.kind == "inline"]
    assert attachment.name == "lageplan.pdf"
    assert attachment.media_type == "application/pdf"
    assert attachment.size == len(plan.content)

    submitted, accepted = case_events(fc_sim, sent.case_id, destination_keys)
    assert submitted.event == SUBMIT_SUBMISSION
    assert accepted.event == ACCEPT_SUBMISSION
    assert accepted.issuer == destination.destination_id
    assert (accepted.submission_id, accepted.case_id) == (sent.submission_id, sent.case_id)
    # The destination confirms the very JWEs the sender encrypted.
    assert accepted.tags() == sent.tags
    assert health["received"] >= 1 and health["ok"] is True


async def test_tampered_jwe_and_invalid_metadata_are_rejected_and_quarantined(
    hub_config: HubConfig,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    sender: FitConnectClient,
    metadata_schema: Path,
) -> None:
    tampered = await send_xbau(sender, destination)
    # The JWE's ciphertext changes on its way to the destination (the tag stays the same).
    fc_sim.inject(FaultRule("tamper", operation="submission"))

    invalid_body, _ = xbau_antrag()
    metadata = build_metadata(
        service=SERVICE,
        data=invalid_body,
        schema_uri=XBAU_SCHEMA_URI,
        mime_type="application/xml",
        attachments=[],
    )
    metadata["contentStructure"]["data"]["hash"]["type"] = "md5"
    invalid = await send_submission(
        sender,
        destination.destination_id,
        service=SERVICE,
        data=invalid_body,
        schema_uri=XBAU_SCHEMA_URI,
        metadata=metadata,
    )
    config = with_destination(hub_config, fc_sim, destination, destination_keys, metadata_schema)
    async with Hub(config) as hub:
        parked = await eventually(
            lambda: _two(list_quarantined(hub.js)),
        )
        await eventually(lambda: fc_sim.state_of(tampered.submission_id) == "rejected")
        await eventually(lambda: fc_sim.state_of(invalid.submission_id) == "rejected")
        assert delivered(hub) == []

    by_reason = {p.reason: p for p in parked}
    assert set(by_reason) == {"encryption-issue", "schema-violation"}
    assert {p.step for p in parked} == {"fitconnect"}
    assert {p.channel for p in parked} == {"fitconnect"}
    assert "data" in by_reason["encryption-issue"].detail
    assert "hash/type" in by_reason["schema-violation"].detail

    for sent, problem, instance in (
        (tampered, "encryption-issue", "data"),
        (invalid, "schema-violation", "metadata"),
    ):
        submitted, rejected = case_events(fc_sim, sent.case_id, destination_keys)
        assert submitted.event == SUBMIT_SUBMISSION
        assert rejected.event == REJECT_SUBMISSION
        assert rejected.submission_id == sent.submission_id
        [reported] = rejected.problems
        assert reported["type"].endswith(f"/problems/{problem}")
        assert reported["instance"] == instance


async def _two(found: object) -> object:
    items = await found  # type: ignore[misc]
    return items if len(items) >= 2 else None
