"""Test messages built from the shipped examples, with fresh ids where a test needs them."""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from pathlib import Path
from typing import Any

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ANTRAG_0200 = EXAMPLES / "xbau-antrag-0200.xml"

_UUID_ELEMENT = re.compile(rb"(<nachrichtenUUID>)[^<]+(</nachrichtenUUID>)")


def xbau_antrag(nachrichten_uuid: str | None = None) -> tuple[bytes, str]:
    """The example building application with its own nachrichtenUUID."""
    chosen = nachrichten_uuid or str(uuid.uuid4())
    body, count = _UUID_ELEMENT.subn(
        rb"\g<1>" + chosen.encode() + rb"\g<2>", ANTRAG_0200.read_bytes()
    )
    assert count == 1, "the example must carry exactly one nachrichtenUUID"
    return body, chosen


def xbau_antrag_with_files(
    files: list[tuple[str, bytes]], nachrichten_uuid: str | None = None
) -> tuple[bytes, str]:
    """The example application carrying ``files`` (name, PDF bytes) inside the message: each
    an ``anlage`` whose ``dokumentid`` (xs:anyURI) is an RFC 2397 ``data:`` URI, so the
    message stays valid against the XBau 2.6 schema."""
    body, chosen = xbau_antrag(nachrichten_uuid)
    anlagen = b"".join(
        b"<anlage><bezeichnung>Bauvorlage %d</bezeichnung><versionsnummer>1</versionsnummer>"
        b"<datum>2026-03-10</datum>"
        b'<anlageart listURI="urn:xoev-de:xbau:codeliste:anlagen" listVersionID="3.0">'
        b"<code>1020</code></anlageart>"
        b'<mimeType listURI="urn:xoev-de:xbau:codeliste:xbau-mimetype" listVersionID="2.0">'
        b"<code>application/pdf</code></mimeType><anhangOderVerlinkung>"
        b'<anhang filesize="%d" hashValue="%s"><dokumentid>data:application/pdf;base64,%s'
        b"</dokumentid><dateiname>%s</dateiname></anhang></anhangOderVerlinkung></anlage>"
        % (
            index,
            len(content),
            hashlib.sha256(content).hexdigest().encode(),
            base64.b64encode(content),
            name.encode(),
        )
        for index, (name, content) in enumerate(files, start=1)
    )
    head, tail = body.split(b"</xbau:anlagen>")
    return head + anlagen + b"</xbau:anlagen>" + tail, chosen


def xbau_decision(reply_id: str) -> dict[str, Any]:
    """A back end's approval of the example application, with its permit as an attachment:
    the ``POST /v1/cases/{id}/events`` body, a fresh document on every call."""
    return {
        "kind": "decision",
        "vorgang": "BA-2026-00417",
        "ist_genehmigung": True,
        "begruendung": "Das Vorhaben entspricht den Vorschriften (§ 73 LBO SH).",
        "nebenbestimmungen": ["Der Baubeginn ist anzuzeigen."],
        "anlagen": [
            {
                "bezeichnung": "Baugenehmigung",
                "dateiname": "baugenehmigung.pdf",
                "dokumentid": "urn:uuid:7b1c9e52-3f0a-4d8e-9a61-2c4f8e0d1b37",
            }
        ],
        "reply_id": reply_id,
    }
