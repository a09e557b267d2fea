"""Webhook signatures as a receiver checks them: the reference receiver
(``tests/adapters/receiver.py``, built on ``adapters.webhook.verify``) takes what the webhook
back end signs and refuses a tampered body or timestamp, an old timestamp (a replayed
capture), a wrong secret and a missing signature."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from poststelle.adapters.base import AdapterContext
from poststelle.adapters.testing import sample_event
from poststelle.adapters.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookBackend,
    WebhookSettings,
    sign,
    verify,
)
from tests.adapters.receiver import Receiver, webhook_receiver

SECRET = b"a-long-shared-webhook-secret-0123456789"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver(SECRET) as running:
        yield running


def _backend(
    url: str, tmp_path: Path, transport: httpx.AsyncBaseTransport | None = None
) -> WebhookBackend:
    return WebhookBackend(
        name="bauakte",
        tenant="stadt-kiel",
        settings=WebhookSettings.model_validate({"url": url, "secret": SECRET.decode()}),
        context=AdapterContext(data_dir=tmp_path),
        transport=transport,
    )


async def _captured_request(tmp_path: Path) -> httpx.Request:
    """One delivery as the back end sends it, caught before the network."""
    caught: list[httpx.Request] = []

    def keep(request: httpx.Request) -> httpx.Response:
        caught.append(request)
        return httpx.Response(200)

    backend = _backend("https://receiver.example/cases", tmp_path, httpx.MockTransport(keep))
    await backend.deliver(sample_event("stadt-kiel", "bauakte"))
    await backend.stop()
    [request] = caught
    return request


async def _post(receiver: Receiver, body: bytes, headers: dict[str, str]) -> int:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(receiver.url, content=body, headers=headers)
    return response.status_code


def _headers(request: httpx.Request, **changed: str) -> dict[str, str]:
    kept = {
        name: request.headers[name]
        for name in ("Content-Type", "Idempotency-Key", TIMESTAMP_HEADER, SIGNATURE_HEADER)
    }
    return {**kept, **changed}


async def test_a_delivery_is_verified_by_the_reference_receiver(
    receiver: Receiver, tmp_path: Path
) -> None:
    backend = _backend(receiver.url, tmp_path)
    event = sample_event("stadt-kiel", "bauakte")
    await backend.deliver(event)
    await backend.stop()
    assert receiver.bad_signatures == 0
    assert receiver.accepted_keys() == [event.id]


async def test_tampering_replay_and_wrong_secret_are_refused(
    receiver: Receiver, tmp_path: Path
) -> None:
    request = await _captured_request(tmp_path)
    body = request.content
    timestamp = request.headers[TIMESTAMP_HEADER]
    signature = request.headers[SIGNATURE_HEADER]
    assert signature == sign(SECRET, timestamp, body)
    # The capture itself passes (within the tolerance, a receiver dedupes by Idempotency-Key).
    assert await _post(receiver, body, _headers(request)) == 200

    tampered = body.replace(b"stadt-kiel", b"stadt-luebeck", 1)
    assert tampered != body
    old = str(int(time.time()) - 301)  # past the receiver's 300 s tolerance
    future = str(int(time.time()) + 400)  # well past it: the clock moves towards it
    refused = {
        "tampered body": (tampered, _headers(request)),
        "tampered timestamp": (body, _headers(request, **{TIMESTAMP_HEADER: future})),
        "old timestamp, signed": (
            body,
            _headers(request, **{TIMESTAMP_HEADER: old, SIGNATURE_HEADER: sign(SECRET, old, body)}),
        ),
        "future timestamp, signed": (
            body,
            _headers(
                request, **{TIMESTAMP_HEADER: future, SIGNATURE_HEADER: sign(SECRET, future, body)}
            ),
        ),
        "wrong secret": (
            body,
            _headers(request, **{SIGNATURE_HEADER: sign(b"another-secret", timestamp, body)}),
        ),
        "no signature": (body, _headers(request, **{SIGNATURE_HEADER: ""})),
        "no timestamp": (body, _headers(request, **{TIMESTAMP_HEADER: ""})),
    }
    for case, (content, headers) in refused.items():
        assert await _post(receiver, content, headers) == 401, case
    assert receiver.bad_signatures == len(refused)
    assert len(receiver.accepted_keys()) == 1, "only the genuine delivery was taken"


def test_verify_edges() -> None:
    now = int(time.time())
    body = b'{"id": "e-1"}'
    assert verify(SECRET, str(now), body, sign(SECRET, str(now), body))
    assert verify(SECRET, str(now - 290), body, sign(SECRET, str(now - 290), body))
    assert not verify(SECRET, "yesterday", body, sign(SECRET, "yesterday", body))
    # A tighter tolerance refuses what the default takes.
    signed_old = sign(SECRET, str(now - 60), body)
    assert verify(SECRET, str(now - 60), body, signed_old)
    assert not verify(SECRET, str(now - 60), body, signed_old, tolerance=30)
    # Without the "sha256=" scheme the header does not match.
    assert not verify(SECRET, str(now), body, sign(SECRET, str(now), body).split("=", 1)[1])
