"""Safe parsing and identification of an XÖV message: the first step of the routing core.

``inspect_message`` turns raw bytes into an ``InspectedMessage`` or raises
``MessageRejected`` with the pipeline step and a short machine-readable reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

__all__ = ["InspectedMessage", "MessageRejected", "inspect_message"]

XBAU_26_NS = "http://www.xleitstelle.de/xbau/2/6"
KNOWN_ROOTS: dict[tuple[str, str], tuple[str, str]] = {
    (XBAU_26_NS, "baugenehmigung.antrag.0200"): ("xbau", "2.6"),
    (XBAU_26_NS, "baugenehmigung.formellePruefung.0201"): ("xbau", "2.6"),
    (XBAU_26_NS, "baugenehmigung.bescheid.0205"): ("xbau", "2.6"),
}


class MessageRejected(Exception):
    """A message that cannot go on; it is quarantined under ``step`` and ``reason``."""

    def __init__(self, step: str, reason: str, detail: str) -> None:
        super().__init__(f"{step}/{reason}: {detail}")
        self.step = step
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class InspectedMessage:
    standard: str
    version: str
    message_type: str
    namespace: str
    nachrichten_uuid: str | None = None
    author: str | None = None
    reader: str | None = None
    leistung: str | None = None
    region: str | None = None
    fields: dict[str, object] = field(default_factory=dict)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _authority(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    prefix = element.findtext(".//praefix/code") or element.findtext(".//praefix")
    code = element.findtext(".//kennung")
    if not code:
        return None
    return f"{(prefix or '').strip()}:{code.strip()}"


def inspect_message(raw: bytes) -> InspectedMessage:
    try:
        root = etree.fromstring(raw, _parser())
    except etree.XMLSyntaxError as exc:
        raise MessageRejected("parse", "not-xml", str(exc)) from exc
    qname = etree.QName(root)
    known = KNOWN_ROOTS.get((qname.namespace or "", qname.localname))
    if known is None:
        raise MessageRejected(
            "identify",
            "unknown-message",
            f"no contract for root {{{qname.namespace}}}{qname.localname}",
        )
    head = root.find("nachrichtenkopf.g2g")
    return InspectedMessage(
        standard=known[0],
        version=known[1],
        message_type=qname.localname,
        namespace=qname.namespace or "",
        nachrichten_uuid=root.findtext(
            "nachrichtenkopf.g2g/identifikation.nachricht/nachrichtenUUID"
        ),
        author=_authority(head.find("autor") if head is not None else None),
        reader=_authority(head.find("leser") if head is not None else None),
    )
