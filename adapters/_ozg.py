"""``POST /antrag``: the OZG-Cloud-compatible multipart intake of online applications.

A portal sends ``formData`` (JSON: ``control`` with the routing facts, the form's own
fields beside it), ``representation`` (the application as PDF) and ``attachment`` parts,
at most ``max_attachments`` files together (a setting; more get ``413`` naming the limit).
The files are claim-checked into the ``attachments`` object store first, then the formData
is published with references to them, and only after JetStream's ack the portal gets its
``vorgang``. A crash in between leaves at most unreferenced
objects, never an event pointing at missing bytes.

The answer is ``202 Accepted`` rather than the ``200`` some OZG-Cloud set-ups send: the
application is stored, not yet processed; portal clients treat every 2xx as success.
Re-sending a transactionId answers with the same ``vorgang`` (JetStream dedupes the
publish), ``statusSince`` included: the time of the first acceptance. Files of a re-send
land under the same content-addressed names, so identical files are merely rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from poststelle.adapters._access import portal_headers
from poststelle.adapters._attachments import (
    InboundFile,
    StoreAttachment,
    attachments_header,
    claim_check,
)
from poststelle.adapters._names import safe_file_name
from poststelle.adapters._problem import not_stored, problem, problem_response_doc
from poststelle.adapters.base import Publish
from poststelle.contracts.events import AttachmentRef
from poststelle.contracts.intake import DEFAULT_MAX_ATTACHMENTS
from poststelle.contracts.message_identity import issued_by

__all__ = [
    "ANTRAG_PATH",
    "DEFAULT_MAX_ATTACHMENTS",
    "AntragAccepted",
    "StoreAttachment",
    "Vorgang",
    "add_ozg_intake",
    "vorgang_nummer",
]

log = logging.getLogger(__name__)

ANTRAG_PATH = "/antrag"
CHANNEL = "portal"
FORM_DATA = "formData"
REPRESENTATION = "representation"
ATTACHMENT = "attachment"
STATUS_NEW = "NEU"
# The transactionId becomes part of a NATS header and the dedupe key: visible ASCII only.
_TRANSACTION_ID = re.compile(r"^[\x21-\x7e]{1,200}$")
# Crockford's base32: no I, L, O, U, so a number read over the phone is not misheard.
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class Vorgang(BaseModel):
    vorgangId: str = Field(description="The hub's case id (stable for a transactionId)")
    vorgangNummer: str = Field(description="Human-readable case number, e.g. PS-7K3M-9QX2-T8DA")
    status: str = Field(description="Always NEU on acceptance")
    statusSince: str = Field(
        description="When the hub first accepted the submission (ISO 8601); the same on re-sends"
    )


class AntragAccepted(BaseModel):
    transactionId: str
    vorgang: Vorgang


def vorgang_nummer(case_id: str) -> str:
    """A short, stable, human-readable number for a case: ``PS-`` and 12 base32 digits."""
    value = int(hashlib.sha256(case_id.encode()).hexdigest()[:15], 16)  # 60 bits
    digits = "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(55, -1, -5))
    return f"PS-{digits[:4]}-{digits[4:8]}-{digits[8:]}"


class _Refused(Exception):
    """The submission is refused before anything is stored."""

    def __init__(self, status: int, title: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail, self.extra = status, title, detail, extra


@dataclass(frozen=True)
class _Submission:
    transaction_id: str
    document: bytes
    files: list[InboundFile]


def _form_document(raw: bytes) -> tuple[str, bytes]:
    """The transactionId and the JSON the routing core maps (``{"formData": {...}}``).

    Portals send either the form itself (``{"control": ..., ...}``) or it wrapped in
    ``formData``; the first is wrapped, the second passes on byte for byte.
    """
    if not raw.strip():
        raise _Refused(400, "Empty formData", "the formData part is empty")
    try:
        parsed: Any = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        detail = f"the formData part is not JSON: {exc}"
        raise _Refused(400, "formData is not JSON", detail) from exc
    if not isinstance(parsed, dict):
        raise _Refused(422, "Invalid formData", "formData must be a JSON object")
    wrapped = isinstance(parsed.get(FORM_DATA), dict) and "control" not in parsed
    form = parsed[FORM_DATA] if wrapped else parsed
    control = form.get("control")
    if not isinstance(control, dict):
        raise _Refused(422, "Invalid formData", "formData has no control object")
    transaction_id = control.get("transactionId")
    if not isinstance(transaction_id, str) or not _TRANSACTION_ID.fullmatch(transaction_id):
        raise _Refused(
            422,
            "Invalid formData",
            "control.transactionId must be a string of 1 to 200 visible ASCII characters",
        )
    try:
        rewrapped = json.dumps({FORM_DATA: form}, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        # JSON lets "\ud800" stand alone; such text has no UTF-8 form and no event could
        # carry it on (found by python -m fuzz: it was a 500).
        raise _Refused(
            422, "Invalid formData", f"formData holds a lone surrogate escape: {exc.reason}"
        ) from exc
    return transaction_id, raw if wrapped else rewrapped


def _too_large(limit: int) -> _Refused:
    detail = f"the body exceeds the limit of {limit} bytes"
    return _Refused(413, "Submission too large", detail, limit=limit)


def _too_many_files(limit: int) -> _Refused:
    detail = (
        f"more than {limit} file parts (representation and attachments); "
        f"this intake takes at most {limit} per application (http.max_attachments)"
    )
    return _Refused(413, "Too many attachments", detail, limit=limit)


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        yield chunk


async def _read_submission(request: Request, limit: int, max_files: int) -> _Submission:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "multipart/form-data":
        raise _Refused(
            415,
            "Unsupported media type",
            f"send the application as multipart/form-data, not {media_type or 'nothing'}",
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    parser = MultiPartParser(
        request.headers,
        _limited(request, limit),
        # One more for a formData sent as a file (a Blob); the exact count follows below.
        max_files=max_files + 1,
        max_fields=1,
        max_part_size=limit,
    )
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if exc.message.startswith("Too many files"):
            raise _too_many_files(max_files) from exc
        raise _Refused(400, "Malformed multipart body", exc.message) from exc
    try:
        form_data: list[bytes] = []
        # The representation leads, so back ends find the application itself first.
        representations: list[InboundFile] = []
        attachments: list[InboundFile] = []
        for part, value in form.multi_items():
            if part == FORM_DATA:
                # Sent as a plain field or, as JavaScript clients do with a Blob, as a file.
                form_data.append(value.encode() if isinstance(value, str) else await value.read())
            elif part in (REPRESENTATION, ATTACHMENT):
                if not isinstance(value, UploadFile):
                    raise _Refused(
                        400, "Malformed multipart body", f"part {part!r} must be a file upload"
                    )
                number = len(representations) + len(attachments) + 1
                (representations if part == REPRESENTATION else attachments).append(
                    InboundFile(
                        name=safe_file_name(value.filename, f"{part}-{number}"),
                        media_type=value.content_type or "application/octet-stream",
                        content=await value.read(),
                    )
                )
            else:
                raise _Refused(
                    400,
                    "Unexpected part",
                    f"unknown part {part!r}: send formData, representation and attachment",
                )
    finally:
        await form.close()
    files = representations + attachments
    if len(files) > max_files:
        raise _too_many_files(max_files)
    if len(form_data) != 1:
        raise _Refused(
            400,
            "formData missing" if not form_data else "formData repeated",
            f"send exactly one formData part, not {len(form_data)}",
        )
    transaction_id, document = _form_document(form_data[0])
    return _Submission(transaction_id, document, files)


_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": [FORM_DATA],
                "properties": {
                    FORM_DATA: {
                        "type": "string",
                        "description": (
                            "JSON: control{transactionId, zustaendigeStelle, "
                            "organisationsEinheitenId, leikaIds, formId, name, serviceKonto"
                            "{type, trustLevel, postfachAddress}} and the form's fields; "
                            'also accepted wrapped as {"formData": {...}}'
                        ),
                    },
                    REPRESENTATION: {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "The application as PDF",
                    },
                    ATTACHMENT: {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": (
                            "Attachments (Nachweise); at most http.max_attachments file "
                            "parts per application, representation included"
                        ),
                    },
                },
            },
            "encoding": {FORM_DATA: {"contentType": "application/json"}},
        }
    },
}


def add_ozg_intake(
    app: FastAPI,
    publish: Publish,
    *,
    max_body_bytes: int,
    store_attachment: StoreAttachment | None,
    adapter_name: str,
    portal: Callable[..., Awaitable[str | None]],
    responses: Mapping[int | str, dict[str, Any]],
    max_attachments: int = DEFAULT_MAX_ATTACHMENTS,
) -> None:
    """Serve ``POST /antrag`` on ``app``. Without ``store_attachment`` only submissions
    without file parts can be taken. ``portal`` is the dependency naming the submitting
    portal (``None`` with API keys off); ``responses`` documents its refusals."""

    @app.post(
        ANTRAG_PATH,
        status_code=202,
        response_model=AntragAccepted,
        summary="Submit an online application (OZG-Cloud multipart)",
        description=(
            "Stores the files in the attachments object store, then the formData; answers "
            "once both are stored. Re-sending the same transactionId is harmless: same "
            "vorgang, one case."
        ),
        openapi_extra={"requestBody": _REQUEST_BODY},
        responses={
            **responses,
            400: problem_response_doc("Malformed multipart body or formData not JSON"),
            413: problem_response_doc("Body over the size limit or too many file parts"),
            415: problem_response_doc("Not multipart/form-data"),
            422: problem_response_doc("formData without control.transactionId"),
            500: problem_response_doc("The application cannot be stored (not worth retrying)"),
            503: problem_response_doc("The hub is unavailable for now; see Retry-After"),
        },
    )
    async def antrag(request: Request, portal_name: str | None = Depends(portal)) -> JSONResponse:
        try:
            submission = await _read_submission(request, max_body_bytes, max_attachments)
        except _Refused as refused:
            log.info("antrag refused status=%s detail=%s", refused.status, refused.detail)
            return problem(refused.status, refused.title, refused.detail, **refused.extra)
        case_id = issued_by(CHANNEL, submission.transaction_id).case_id
        refs: list[AttachmentRef] = []
        if submission.files:
            if store_attachment is None:
                # A set-up without a store cannot heal by retrying: not a 503.
                return problem(500, "No attachment store", "this intake cannot take file parts")
            try:
                refs = await claim_check(case_id, submission.files, store_attachment)
            except Exception as exc:  # nothing was published: the answer says if a retry helps
                return not_stored(exc, "the files")
        try:
            accepted = await publish(
                submission.document,
                channel=CHANNEL,
                adapter=adapter_name,
                source_message_id=submission.transaction_id,
                content_type="application/json",
                extra_headers={
                    **attachments_header(refs),
                    **portal_headers(portal_name),
                },
            )
        except Exception as exc:
            return not_stored(exc, "the application")
        log.info(
            "antrag accepted transaction_id=%s case_id=%s files=%d duplicate=%s",
            submission.transaction_id,
            accepted.case_id,
            len(refs),
            accepted.duplicate,
        )
        answer = AntragAccepted(
            transactionId=submission.transaction_id,
            vorgang=Vorgang(
                vorgangId=accepted.case_id,
                vorgangNummer=vorgang_nummer(accepted.case_id),
                status=STATUS_NEW,
                statusSince=accepted.received_at or datetime.now(UTC).isoformat(),
            ),
        )
        return JSONResponse(answer.model_dump(), status_code=202)
