"""The intake's identity scan reads the head of a body chunk by chunk and stops at the
nachrichtenUUID: the same identity as a parse of the whole 64 KiB head, for a fraction of the
work on a large body."""

from __future__ import annotations

import hashlib
import json
import re

import pytest
from lxml import etree

from poststelle.contracts.message_identity import MessageIdentity, identify_message

from .conftest import EXAMPLE_0200, MESSAGES

XBAU = "xoev:http://www.xleitstelle.de/xbau/2/6"
BENCH_UUID = "3f6c2a9e-8d41-4b7a-9c15-2e7f0b4d9a61"
LARGE = MESSAGES / "xbau-antrag-0200-50k.xml"
_UUID_ELEMENT = re.compile(rb"<nachrichtenUUID>[^<]+</nachrichtenUUID>")


def _whole_head(raw: bytes) -> MessageIdentity:
    """The scan as it was before it read in chunks: all of the first 64 KiB fed at once."""
    parser = etree.XMLPullParser(
        events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False
    )
    namespace: str | None = None
    try:
        parser.feed(raw[: 64 * 1024])
        for count, (event, element) in enumerate(parser.read_events()):
            name = etree.QName(element)
            if namespace is None:
                namespace = name.namespace or ""
            elif event == "end" and name.localname == "nachrichtenUUID" and element.text:
                return MessageIdentity(scope=f"xoev:{namespace}", value=element.text.strip())
            if count > 200:
                break
    except etree.XMLSyntaxError:
        pass
    return MessageIdentity(scope="body", value="sha256-" + hashlib.sha256(raw).hexdigest())


def _with_head_padding(raw: bytes, size: int) -> bytes:
    """``raw`` with a comment of ``size`` bytes in front of its nachrichtenUUID."""
    match = _UUID_ELEMENT.search(raw)
    assert match is not None
    padding = b"<!--" + b"x" * (size - 7) + b"-->"
    return raw[: match.start()] + padding + raw[match.start() :]


def _with_elements_before_uuid(raw: bytes, count: int) -> bytes:
    match = _UUID_ELEMENT.search(raw)
    assert match is not None
    return raw[: match.start()] + b"<x/>" * count + raw[match.start() :]


def _inputs() -> dict[str, bytes]:
    messages = {path.name: path.read_bytes() for path in sorted(MESSAGES.glob("*.xml"))}
    messages[EXAMPLE_0200.name] = EXAMPLE_0200.read_bytes()
    inputs: dict[str, bytes] = {}
    for name, raw in messages.items():
        inputs[name] = raw
        for cut in (100, 600, 1023, 1024, 1025, 4096, 5000):
            inputs[f"{name}[:{cut}]"] = raw[:cut]
    large = LARGE.read_bytes()
    inputs.update(
        {
            "uuid after the first chunk": _with_head_padding(large, 5000),
            "uuid behind 64 KiB": _with_head_padding(large, 70 * 1024),
            "uuid after the event limit": _with_elements_before_uuid(large, 120),
            "uuid just within the event limit": _with_elements_before_uuid(large, 90),
            "utf-16": large.decode().replace("'UTF-8'", "'UTF-16'").encode("utf-16"),
            "umlauts across a chunk border": _with_head_padding(
                large.replace(
                    b"<nachrichtenkopf.g2g>",
                    b"<!--" + "ü".encode() * 700 + b"--><nachrichtenkopf.g2g>",
                    1,
                ),
                1500,
            ),
            "malformed before the uuid": large.replace(b"<nachrichtenkopf.g2g>", b"<a<b>", 1),
            "entity declaration": b'<!DOCTYPE r [<!ENTITY e "v">]><r xmlns="urn:x">'
            b"<nachrichtenUUID>&e;</nachrichtenUUID></r>",
            "no namespace": b"<r><nachrichtenUUID> 42 </nachrichtenUUID></r>",
            "empty uuid": b'<r xmlns="urn:x"><nachrichtenUUID></nachrichtenUUID></r>',
            "json": json.dumps({"nachrichtenUUID": BENCH_UUID}).encode(),
            "not xml": b"%PDF-1.7\n" + bytes(range(256)) * 40,
            "empty": b"",
        }
    )
    return inputs


INPUTS = _inputs()


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_chunked_scan_finds_what_the_whole_head_parse_finds(name: str) -> None:
    assert identify_message(INPUTS[name]) == _whole_head(INPUTS[name])


def test_a_50_kb_message_is_identified_by_its_nachrichten_uuid() -> None:
    assert identify_message(LARGE.read_bytes()) == MessageIdentity(XBAU, BENCH_UUID)


def test_a_uuid_after_the_first_chunk_is_found() -> None:
    raw = _with_head_padding(LARGE.read_bytes(), 5000)
    assert raw.index(BENCH_UUID.encode()) > 4096
    assert identify_message(raw) == MessageIdentity(XBAU, BENCH_UUID)


def test_the_scan_stops_at_the_uuid() -> None:
    """What follows the nachrichtenUUID is not read: a defect there (within the first
    64 KiB) no longer makes the identity the body hash. The whole-head parse saw it."""
    raw = LARGE.read_bytes()
    damaged = raw[:8000] + b"<<not xml>>" + raw[8000:]
    assert identify_message(damaged) == MessageIdentity(XBAU, BENCH_UUID)
    assert _whole_head(damaged).scope == "body"
