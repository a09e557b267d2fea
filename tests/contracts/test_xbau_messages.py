"""The committed XBau 2.6 messages are valid against the real, published XSD (no own reading)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from .conftest import EXAMPLE_0200, MESSAGES

XBAU_NS = "http://www.xleitstelle.de/xbau/2/6"
ALL_MESSAGES = [*sorted(MESSAGES.glob("xbau-*.xml")), EXAMPLE_0200]


@pytest.fixture(scope="module")
def baugenehmigung_schema(xbau_xsd_dir: Path) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(
        etree.parse(str(xbau_xsd_dir / "xbau-nachrichten-baugenehmigung.xsd"), parser)
    )


@pytest.mark.parametrize("path", ALL_MESSAGES, ids=lambda p: p.name)
def test_message_is_valid_against_xbau_26(
    path: Path, baugenehmigung_schema: etree.XMLSchema
) -> None:
    doc = etree.parse(str(path))
    ok = baugenehmigung_schema.validate(doc)
    assert ok, [f"{e.line}: {e.message}" for e in baugenehmigung_schema.error_log]
    assert etree.QName(doc.getroot()).namespace == XBAU_NS


def test_benchmark_messages_have_their_nominal_sizes() -> None:
    assert 4_500 <= len((MESSAGES / "xbau-antrag-0200-5k.xml").read_bytes()) <= 6_000
    assert 45_000 <= len((MESSAGES / "xbau-antrag-0200-50k.xml").read_bytes()) <= 55_000


def test_example_carries_the_routing_facts(example_0200: bytes) -> None:
    root = etree.fromstring(example_0200)
    ns = {"x": XBAU_NS}
    assert root.findtext("nachrichtenkopf.g2g/leser/kennung") == "bau:010020000000"
    # The building site lies in Kiel, Schleswig-Holstein (AGS 01002000).
    assert root.xpath("string(//x:gemeindeschluessel/code)", namespaces=ns) == "01002000"


def test_a_broken_message_is_caught(baugenehmigung_schema: etree.XMLSchema) -> None:
    # Guards the test above against a schema that accepts anything.
    doc = etree.parse(str(EXAMPLE_0200))
    doc.getroot().remove(doc.getroot().find(f"{{{XBAU_NS}}}bauvorhaben"))
    assert not baugenehmigung_schema.validate(doc)
