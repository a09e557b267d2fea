"""The ``/antrag`` route of the portal app on its own: without a hub's attachment store, and
the human-readable case number."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx

from poststelle.adapters._ozg import vorgang_nummer
from poststelle.adapters.portal import create_portal_app
from poststelle.contracts.envelope import H_ATTACHMENTS
from poststelle.contracts.events import deterministic_case_id
from poststelle.contracts.intake import Accepted


class RecordingPublish:
    def __init__(self) -> None:
        self.calls: list[tuple[bytes, dict[str, Any]]] = []

    async def __call__(self, raw: bytes, **kwargs: Any) -> Accepted:
        self.calls.append((raw, kwargs))
        case_id = deterministic_case_id(kwargs["channel"], kwargs["source_message_id"])
        return Accepted(case_id, kwargs["source_message_id"], False, len(self.calls))


def client_for(publish: RecordingPublish) -> httpx.AsyncClient:
    app = create_portal_app(publish, max_body_bytes=1024 * 1024)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://portal")


async def test_form_without_files_needs_no_attachment_store() -> None:
    publish = RecordingPublish()
    transaction_id = str(uuid.uuid4())
    form = {"control": {"transactionId": transaction_id, "formId": "f"}, "feld": "ä"}
    async with client_for(publish) as client:
        response = await client.post("/antrag", files={"formData": (None, json.dumps(form))})
    assert response.status_code == 202, response.text
    [(raw, kwargs)] = publish.calls
    assert json.loads(raw) == {"formData": form}
    assert kwargs["source_message_id"] == transaction_id
    assert kwargs["content_type"] == "application/json"
    assert json.loads(kwargs["extra_headers"][H_ATTACHMENTS]) == []


async def test_file_parts_without_an_attachment_store_are_refused_unpublished() -> None:
    publish = RecordingPublish()
    form = {"control": {"transactionId": "t-1"}}
    async with client_for(publish) as client:
        response = await client.post(
            "/antrag",
            files=[
                ("formData", (None, json.dumps(form))),
                ("representation", ("a.pdf", b"%PDF-1.7", "application/pdf")),
            ],
        )
    assert response.status_code == 500  # a set-up without a store cannot heal
    assert response.headers["content-type"] == "application/problem+json"
    assert publish.calls == []


def test_vorgang_nummer_is_stable_readable_and_distinct() -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    assert vorgang_nummer(first) == vorgang_nummer(first)
    assert vorgang_nummer(first) != vorgang_nummer(second)
    assert re.fullmatch(
        r"PS-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}",
        vorgang_nummer(first),
    )


async def test_a_lone_surrogate_in_form_data_is_refused_unpublished() -> None:
    # json.loads accepts "\ud800" alone; re-encoding it raised UnicodeEncodeError: a 500
    # (found by python -m fuzz). Plain and wrapped forms alike are refused.
    publish = RecordingPublish()
    plain = '{"control": {"transactionId": "t-2"}, "feld": "\\ud800"}'
    wrapped = '{"formData": {"control": {"transactionId": "t-3"}, "feld": "\\udfff"}}'
    async with client_for(publish) as client:
        for form in (plain, wrapped):
            response = await client.post("/antrag", files={"formData": (None, form)})
            assert response.status_code == 422, response.text
            assert "lone surrogate" in response.json()["detail"]
        paired = '{"control": {"transactionId": "t-4"}, "feld": "\\ud83d\\ude00"}'
        response = await client.post("/antrag", files={"formData": (None, paired)})
    assert response.status_code == 202, response.text
    [(raw, _)] = publish.calls
    assert json.loads(raw)["formData"]["feld"] == "😀"
