"""The sender's flow against the simulator over real HTTP: what a portal encrypts arrives at the
destination, which alone can decrypt it; the Zustelldienst's submit-submission names the tags."""

from __future__ import annotations

import json

import pytest

from poststelle.adapters.fitconnect import (
    SUBMIT_SUBMISSION,
    CryptoError,
    FitConnectClient,
    FitConnectPermanentError,
    MetadataValidator,
    OutgoingAttachment,
    decrypt,
    generate_key,
    load_key,
    read_event,
)
from poststelle.adapters.fitconnect._metadata import check_content
from poststelle.adapters.fitconnect.simulator import (
    FaultRule,
    FitConnectSimulator,
    SimulatedDestination,
)
from tests.fitconnect.conftest import (
    SERVICE,
    DestinationKeys,
    connection,
    send_xbau,
)
from tests.messages import xbau_antrag


async def test_submission_reaches_the_destination_encrypted_end_to_end(
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    sender: FitConnectClient,
    subscriber: FitConnectClient,
    metadata_schema,
) -> None:
    body, _ = xbau_antrag()
    plan = OutgoingAttachment(b"%PDF-1.7 Lageplan", filename="lageplan.pdf")
    sent = await send_xbau(sender, destination, body, attachments=[plan])
    [listed] = await subscriber.list_submissions(destination.destination_id)
    assert listed["submissionId"] == sent.submission_id
    assert listed["caseId"] == sent.case_id

    fetched = await subscriber.submission(sent.submission_id)
    private = destination_keys.encryption.key
    # Nothing readable travels: only the destination's private key opens it.
    assert body not in json.dumps(fetched).encode()
    metadata = MetadataValidator(metadata_schema).parse(
        decrypt(fetched["encryptedMetadata"], private, what="metadata")
    )
    data = decrypt(fetched["encryptedData"], private, what="data")
    attachment = decrypt(
        await subscriber.attachment(sent.submission_id, plan.attachment_id), private
    )
    assert data == body
    assert attachment == plan.content
    check_content(metadata, data, {plan.attachment_id: attachment})
    assert metadata["contentStructure"]["data"]["submissionSchema"]["mimeType"] == "application/xml"

    other = generate_key("someone-else", use="enc", bits=4096)
    with pytest.raises(CryptoError, match="encrypted for key"):
        decrypt(fetched["encryptedData"], other.key)

    [token] = await subscriber.events(sent.case_id)
    keys = {
        k: load_key(v, private=False, purpose="sig")
        for k, v in (await subscriber.service_keys()).items()
    }
    event = read_event(token, keys)
    assert event.event == SUBMIT_SUBMISSION
    assert event.submission_id == sent.submission_id
    assert event.case_id == sent.case_id
    assert event.tags() == sent.tags


async def test_a_submission_waits_for_all_announced_attachments(
    sender: FitConnectClient, destination: SimulatedDestination
) -> None:
    announced = await sender.announce(
        destination.destination_id, SERVICE, ["4f1a6d9e-8a4b-4a8e-9b8f-2d2b6a1c0e11"]
    )
    with pytest.raises(FitConnectPermanentError) as refused:
        await sender.submit(announced["submissionId"], "a.b.c.d.e", None)
    assert refused.value.status == 422
    assert "missing-attachments" in refused.value.problem["type"]


async def test_token_endpoint_refuses_a_wrong_secret(fc_sim: FitConnectSimulator) -> None:
    client_id, _ = fc_sim.add_client("sender")
    async with FitConnectClient(connection(fc_sim, (client_id, "wrong"))) as client:
        with pytest.raises(FitConnectPermanentError) as refused:
            await client.info()
    assert refused.value.status == 401
    assert refused.value.operation == "token"


async def test_transient_faults_are_retried_and_an_expired_token_renewed(
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    subscriber: FitConnectClient,
) -> None:
    fc_sim.inject(FaultRule("status", operation="list", status=503, times=2))
    assert await subscriber.list_submissions(destination.destination_id) == []
    assert fc_sim.calls("list") == 3
    tokens = fc_sim.calls("token")
    fc_sim.inject(FaultRule("expire-token", operation="list"))
    assert await subscriber.list_submissions(destination.destination_id) == []
    assert fc_sim.calls("token") == tokens + 1


async def test_a_subscriber_sees_only_its_destinations(
    fc_sim: FitConnectSimulator, destination: SimulatedDestination
) -> None:
    stranger = fc_sim.add_client("subscriber", ("00000000-0000-4000-8000-000000000000",))
    async with FitConnectClient(connection(fc_sim, stranger)) as client:
        with pytest.raises(FitConnectPermanentError) as refused:
            await client.list_submissions(destination.destination_id)
    assert refused.value.status == 403


def test_fault_rules_are_checked() -> None:
    with pytest.raises(ValueError, match="tamper"):
        FaultRule("tamper", operation="list")
    with pytest.raises(ValueError, match="unknown operation"):
        FaultRule("status", operation="nope")
