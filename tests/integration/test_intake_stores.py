"""The intake stores the arrival and its ``received`` record together (one round trip), and
returns — so the portal answers 202 — only after JetStream acknowledged both."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext

from poststelle.contracts.envelope import H_MSG_ID, H_RECEIVED_AT, inbox_subject
from poststelle.contracts.intake import IntakeUnavailable
from poststelle.contracts.message_identity import identify_message
from poststelle.routing.hub.intake import Intake
from poststelle.routing.ops.audit import AuditTrail
from poststelle.routing.ops.metrics import Counters
from poststelle.routing.streams.topology import AUDIT, INBOX
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag


class HeldPublishes:
    """The hub's JetStream, with the publishes to one stream's subjects held until released
    (and then, if told so, refused as a broker timeout)."""

    def __init__(self, js: JetStreamContext, prefix: str) -> None:
        self._js = js
        self._prefix = prefix
        self.release = asyncio.Event()
        self.refuse = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._js, name)

    async def publish(self, subject: str, payload: bytes = b"", **options: Any) -> Any:
        if subject.startswith(self._prefix):
            await self.release.wait()
            if self.refuse:
                raise nats.errors.TimeoutError
        return await self._js.publish(subject, payload, **options)


async def _count(js: JetStreamContext, stream: str) -> int:
    return int((await js.stream_info(stream)).state.messages)


def _intake(js: Any) -> Intake:
    return Intake(js, AuditTrail(js), Counters())


async def _received_hops(js: JetStreamContext, case_id: str) -> int:
    return sum(entry.hop == "received" for entry in await AuditTrail(js).read(case_id))


async def test_accept_returns_only_after_the_received_record_is_stored(
    js: JetStreamContext,
) -> None:
    held = HeldPublishes(js, "audit.")
    body, _ = xbau_antrag()
    accepting = asyncio.create_task(_intake(held).accept(body, channel="portal", adapter="http"))
    await eventually(lambda: _count(js, INBOX))
    assert not accepting.done(), "answered before the received record was stored"
    held.release.set()
    accepted = await accepting
    assert await _received_hops(js, accepted.case_id) == 1


async def test_the_arrival_and_its_record_are_published_together(js: JetStreamContext) -> None:
    """The received record is stored while the INBOX publish is still out: concurrent, not
    one round trip after the other."""
    held = HeldPublishes(js, "inbox.")
    body, _ = xbau_antrag()
    accepting = asyncio.create_task(_intake(held).accept(body, channel="portal", adapter="http"))
    await eventually(lambda: _count(js, AUDIT))
    assert not accepting.done(), "answered before the arrival was stored"
    assert await _count(js, INBOX) == 0
    held.release.set()
    accepted = await accepting
    assert not accepted.duplicate and await _count(js, INBOX) == 1


async def test_a_refused_record_refuses_the_arrival_and_the_resend_is_recorded_once(
    js: JetStreamContext,
) -> None:
    held = HeldPublishes(js, "audit.")
    held.refuse = True
    held.release.set()
    body, _ = xbau_antrag()
    with pytest.raises(IntakeUnavailable):
        await _intake(held).accept(body, channel="portal", adapter="http")
    assert await _count(js, INBOX) == 1  # stored, but not acknowledged to the sender
    again = await _intake(js).accept(body, channel="portal", adapter="http")
    assert again.duplicate
    assert await _received_hops(js, again.case_id) == 1


async def test_a_resend_within_the_audit_window_keeps_one_received_record(
    js: JetStreamContext,
) -> None:
    body, _ = xbau_antrag()
    intake = _intake(js)
    first = await intake.accept(body, channel="portal", adapter="http")
    second = await intake.accept(body, channel="portal", adapter="http")
    assert (first.duplicate, second.duplicate) == (False, True)
    assert await _received_hops(js, first.case_id) == 1


async def test_a_resend_after_the_audit_window_takes_its_record_back(
    js: JetStreamContext,
) -> None:
    """The original arrived an hour ago (AUDIT dedupes for two minutes, INBOX for a day):
    INBOX says duplicate, so the re-send's received record leaves the trail again."""
    body, _ = xbau_antrag()
    identity = identify_message(body)
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    await js.publish(
        inbox_subject("portal", "http"),
        body,
        headers={H_MSG_ID: identity.dedupe_key, H_RECEIVED_AT: an_hour_ago},
    )
    await AuditTrail(js).append(identity.case_id, "received", channel="portal")
    again = await _intake(js).accept(body, channel="portal", adapter="http")
    assert again.duplicate and again.received_at == an_hour_ago
    assert await _received_hops(js, identity.case_id) == 1
