"""Test messages built from the shipped examples, with fresh ids where a test needs them."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

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
