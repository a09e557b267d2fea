"""What the destination refuses, and that it stores before it answers: each refusal is
published (encrypted, with its reason) before reject-submission, and an answer that could not
be posted is given in a later round without a second case."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from poststelle.adapters.base import AdapterContext
from poststelle.adapters.fitconnect import (
    REJECT_SUBMISSION,
    FitConnectClient,
    OutgoingAttachment,
    build_metadata,
    encrypt,
    generate_key,
    load_key,
)
from poststelle.adapters.fitconnect.adapter import FitConnectAdapter, FitConnectSettings
from poststelle.adapters.fitconnect.simulator import (
    FaultRule,
    FitConnectSimulator,
    SimulatedDestination,
)
from poststelle.adapters.testing import RecordingPublisher
from poststelle.contracts.envelope import H_REFUSED
from poststelle.contracts.intake import Accepted
from tests.fitconnect.conftest import (
    SERVICE,
    XBAU_SCHEMA_URI,
    DestinationKeys,
    adapter_settings,
    case_events,
    send_xbau,
)
from tests.messages import xbau_antrag


class _Publisher(RecordingPublisher):
    """Records the headers too: the refusal travels in one."""

    def __init__(self) -> None:
        super().__init__()
        self.headers: list[dict[str, str]] = []

    async def __call__(self, raw: bytes, **kwargs: Any) -> Accepted:
        accepted = await super().__call__(raw, **kwargs)
        self.headers.append(dict(kwargs.get("extra_headers") or {}))
        return accepted


@pytest.fixture
async def adapter(
    tmp_path: Path,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    metadata_schema: Path,
) -> AsyncIterator[FitConnectAdapter]:
    settings = adapter_settings(fc_sim, destination, destination_keys, tmp_path, metadata_schema)
    built = FitConnectAdapter(
        name="fitconnect-amt",
        settings=FitConnectSettings.model_validate(settings),
        context=AdapterContext(data_dir=tmp_path, publish=_Publisher()),
    )
    yield built
    await built.stop()


def _publisher(adapter: FitConnectAdapter) -> _Publisher:
    publisher = adapter._publish
    assert isinstance(publisher, _Publisher)
    return publisher


def _refusals(adapter: FitConnectAdapter) -> list[dict[str, str]]:
    return [json.loads(h[H_REFUSED]) for h in _publisher(adapter).headers if H_REFUSED in h]


def _problems(sim: FitConnectSimulator, case_id: str, keys: DestinationKeys) -> list[Any]:
    events = case_events(sim, case_id, keys)
    assert events[-1].event == REJECT_SUBMISSION
    return [p["type"].rsplit("/", 1)[-1] for p in events[-1].problems]


async def test_an_attachment_exchanged_at_rest_is_caught_by_the_signed_tags(
    adapter: FitConnectAdapter,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    sender: FitConnectClient,
) -> None:
    plan = OutgoingAttachment(b"%PDF-1.7 Lageplan", filename="lageplan.pdf")
    sent = await send_xbau(sender, destination, attachments=[plan])
    # A well-formed JWE for the destination, only not the one the sender uploaded.
    public = load_key(destination_keys.encryption.public, private=False, purpose="enc")
    fc_sim.replace_attachment(sent.submission_id, plan.attachment_id, encrypt(b"%PDF evil", public))
    result = await adapter.poll_once()
    assert (result.accepted, result.rejected, result.failures) == (0, 1, [])
    [refusal] = _refusals(adapter)
    assert (refusal["step"], refusal["reason"]) == ("fitconnect", "incorrect-authentication-tags")
    assert _problems(fc_sim, sent.case_id, destination_keys) == ["incorrect-authentication-tags"]
    # What was refused is kept as it came: encrypted, the exchanged attachment included.
    [(raw, source_id)] = _publisher(adapter).published
    kept = json.loads(raw)
    assert source_id == sent.submission_id
    assert kept["attachments"][plan.attachment_id].count(".") == 4
    assert b"Lageplan" not in raw and b"evil" not in raw


async def test_unreadable_metadata_and_a_wrong_data_hash_are_named(
    adapter: FitConnectAdapter,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    sender: FitConnectClient,
) -> None:
    public = load_key(destination_keys.encryption.public, private=False, purpose="enc")
    announced = await sender.announce(destination.destination_id, SERVICE, [])
    await sender.submit(announced["submissionId"], encrypt(b"{not json", public), None)
    swapped = await send_xbau(sender, destination)
    other, _ = xbau_antrag()
    fc_sim.replace_data(swapped.submission_id, encrypt(other, public))
    stranger = generate_key("stranger", use="enc")
    foreign = await sender.announce(destination.destination_id, SERVICE, [])
    await sender.submit(foreign["submissionId"], encrypt(b"{}", stranger.key), None)

    result = await adapter.poll_once()
    assert (result.accepted, result.rejected) == (0, 3)
    reasons = sorted(r["reason"] for r in _refusals(adapter))
    assert reasons == ["encryption-issue", "incorrect-authentication-tags", "syntax-violation"]
    assert _problems(fc_sim, announced["caseId"], destination_keys) == ["syntax-violation"]
    assert _problems(fc_sim, foreign["caseId"], destination_keys) == ["encryption-issue"]


async def test_a_data_hash_mismatch_under_valid_tags_is_refused(
    adapter: FitConnectAdapter,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    sender: FitConnectClient,
) -> None:
    other, _ = xbau_antrag()
    # The sender describes one message and encrypts another (the tags are those it sent).
    metadata = build_metadata(
        service=SERVICE, data=other, schema_uri=XBAU_SCHEMA_URI, mime_type="application/xml",
        attachments=[],
    )  # fmt: skip
    sent = await send_xbau(sender, destination, metadata=metadata)
    await adapter.poll_once()
    assert _problems(fc_sim, sent.case_id, destination_keys) == ["hash-mismatch"]


async def test_stored_before_answered_and_answered_later_when_posting_failed(
    adapter: FitConnectAdapter,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    sender: FitConnectClient,
) -> None:
    sent = await send_xbau(sender, destination)
    fc_sim.inject(FaultRule("status", operation="post-event", status=503, times=2))
    first = await adapter.poll_once()
    assert first.accepted == 0 and len(first.failures) == 1
    assert "post-event" in first.failures[0]
    # Stored, not answered: the Zustelldienst still offers it.
    assert fc_sim.state_of(sent.submission_id) == "submitted"
    second = await adapter.poll_once()
    assert (second.accepted, second.failures) == (1, [])
    assert fc_sim.state_of(sent.submission_id) == "accepted"
    ids = [source for _, source in _publisher(adapter).published]
    # Stored twice under one identity: the hub's intake takes the second as a duplicate.
    assert ids == [sent.submission_id, sent.submission_id]


async def test_the_round_goes_on_when_one_submission_cannot_be_fetched(
    adapter: FitConnectAdapter,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    sender: FitConnectClient,
) -> None:
    first = await send_xbau(sender, destination)
    second = await send_xbau(sender, destination)
    fc_sim.inject(FaultRule("status", operation="submission", status=500, times=2))
    result = await adapter.poll_once()
    assert result.accepted == 1 and len(result.failures) == 1
    states = {fc_sim.state_of(first.submission_id), fc_sim.state_of(second.submission_id)}
    assert states == {"accepted", "submitted"}
    assert (await adapter.poll_once()).accepted == 1


async def test_a_reply_key_that_no_reply_could_be_encrypted_for_is_refused_at_once(
    adapter: FitConnectAdapter,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    sender: FitConnectClient,
) -> None:
    public = generate_key("portal-reply", use="enc").public
    channels = {
        # Long enough for the schema, yet no modulus: zero bits, or not base64url at all.
        "zero": {**public, "n": "A" * 683},
        "garbled": {**public, "n": "*" * 683},
    }
    sent = {
        name: await send_xbau(
            sender,
            destination,
            reply_channel={
                "fitConnect": {"processStandards": ["urn:x"], "encryptionPublicKey": key}
            },
        )
        for name, key in channels.items()
    }
    result = await adapter.poll_once()
    assert (result.accepted, result.rejected) == (0, 2)
    for submission in sent.values():
        assert _problems(fc_sim, submission.case_id, destination_keys) == ["schema-violation"]
    details = sorted(r["detail"] for r in _refusals(adapter))
    assert all("replyChannel/fitConnect/encryptionPublicKey" in d for d in details), details
    assert any("0 bits" in d for d in details) and any("base64url" in d for d in details)


async def test_the_service_keys_are_fetched_once_per_event_log(
    adapter: FitConnectAdapter,
    destination: SimulatedDestination,
    sender: FitConnectClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The destination's own accept-submission SETs name a kid the Zustelldienst never has:
    # each must not fetch the service's keys again.
    first = await send_xbau(sender, destination)
    assert (await adapter.poll_once()).accepted == 1
    await send_xbau(sender, destination, case_id=first.case_id)
    assert (await adapter.poll_once()).accepted == 1
    fetches: list[str] = []
    service_keys = adapter.client.service_keys

    async def counted() -> dict[str, Any]:
        fetches.append("service-keys")
        return await service_keys()

    monkeypatch.setattr(adapter.client, "service_keys", counted)
    await send_xbau(sender, destination, case_id=first.case_id)
    result = await adapter.poll_once()
    assert (result.accepted, result.rejected, result.failures) == (1, 0, [])
    assert fetches == ["service-keys"]
