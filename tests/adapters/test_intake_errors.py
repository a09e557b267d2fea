"""The HTTP intake answers 503 only for what heals by itself: a broker that is away. A body
over the limit is 413, anything else that cannot be stored is 500; all problem+json."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import nats.errors
import pytest

from poststelle.adapters.portal import create_portal_app
from poststelle.contracts.intake import Accepted, IntakeUnavailable, MessageTooLarge


class FailingPublish:
    def __init__(self, error: Exception) -> None:
        self.error = error

    async def __call__(self, raw: bytes, **kwargs: Any) -> Accepted:
        raise self.error


def _client(error: Exception) -> httpx.AsyncClient:
    app = create_portal_app(FailingPublish(error), max_body_bytes=1024 * 1024)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portal")


async def _submit(client: httpx.AsyncClient, route: str) -> httpx.Response:
    if route == "/v1/submissions":
        return await client.post(
            route, content=b"<nachricht/>", headers={"Content-Type": "application/xml"}
        )
    form = {"control": {"transactionId": str(uuid.uuid4())}}
    return await client.post(route, files={"formData": (None, json.dumps(form))})


@pytest.mark.parametrize("route", ["/v1/submissions", "/antrag"])
@pytest.mark.parametrize(
    ("error", "status"),
    [
        (IntakeUnavailable("the message was not stored: TimeoutError()"), 503),
        (nats.errors.ConnectionClosedError(), 503),
        (MessageTooLarge(2_000_000, 1_000_000), 413),
        # Would fail the same way on every retry: not a 503.
        (nats.errors.MaxPayloadError(), 500),
        (ValueError("bad header"), 500),
    ],
)
async def test_error_maps_to_transient_or_permanent(
    route: str, error: Exception, status: int
) -> None:
    async with _client(error) as client:
        response = await _submit(client, route)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status
    if status == 503:
        assert int(response.headers["retry-after"]) > 0
    else:
        assert "retry-after" not in response.headers
    if status == 413:
        assert response.json()["limit"] == 1_000_000
