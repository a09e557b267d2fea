"""Answers in XÖV: canonical reply events become XBau 2.6 messages for the origin.

A back end answers with a ``ReplyEvent`` (receipt, status, decision, rejection). The builders
here turn it into the XBau message the origin understands, with author and reader swapped
relative to the message answered, and valid against the published XBau 2.6 schemas
(tests prove it against ``../shared/corpus/xbau-2.6/xsd``):

=============  ==================================================
kind           message
=============  ==================================================
receipt        ``prozessnachrichten.generischeQuittierungEingang.1180``
rejection      ``prozessnachrichten.rueckweisung.G2G.1100``
status         ``baugenehmigung.formellePruefung.0201``
decision       ``baugenehmigung.bescheid.0205``
=============  ==================================================
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Literal

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field

from poststelle.contracts._rejected import rejected_message

__all__ = [
    "ANSWER_MESSAGE_TYPES",
    "KINDS_CARRYING_ORIGINAL",
    "QUITTIERBARE_NACHRICHTEN",
    "AnlageRef",
    "AnsweredMessage",
    "HeaderAuthority",
    "RejectionReason",
    "ReplyContent",
    "ReplyEvent",
    "SchriftgutobjektErgebnis",
    "build_answer",
    "latin_text",
]

XBAU_NS = "http://www.xleitstelle.de/xbau/2/6"
KERN_NS = "http://www.xleitstelle.de/xbau/kernmodul/1/3/0"
G2G_NS = "http://xoev.de/schemata/basisnachricht/g2g/1_1"
_KERNMODUL_STANDARD = "XBau-Kernmodul"
_ANSWER_NAMESPACE = uuid.UUID("0b6a3c52-8f1e-5d47-a9b0-6c2e4f8d1a73")

ANSWER_MESSAGE_TYPES: dict[str, str] = {
    "receipt": "prozessnachrichten.generischeQuittierungEingang.1180",
    "rejection": "prozessnachrichten.rueckweisung.G2G.1100",
    "status": "baugenehmigung.formellePruefung.0201",
    "decision": "baugenehmigung.bescheid.0205",
}
# The answers that carry the answered message itself, so its bytes must be at hand: XBau 1100
# embeds it in rueckweisungDaten/nachricht (type Rueckweisung, "ohne Attachments").
KINDS_CARRYING_ORIGINAL = frozenset({"rejection"})
# Code list urn:xoev-de:xbau:codeliste:nachricht-eingangsquittierung 1.0: the only message
# types a generic receipt (1180) may acknowledge.
QUITTIERBARE_NACHRICHTEN = frozenset(
    {
        "0121", "0201", "0203", "0211", "0213", "0221", "0223", "0231", "0233", "0241",
        "0243", "0251", "0253", "0261", "0263", "0300", "0301", "0302", "0306", "0502",
    }
)  # fmt: skip
_LISTS = {
    "xbau-nachrichten": ("urn:xoev-de:xbau:codeliste:xbau-nachrichten", "4.0"),
    "kernmodul-nachrichten": (
        "urn:xoev-de:xbau-kernmodul:codeliste:xbau-kernmodul-nachrichten",
        "3.0",
    ),
    "verzeichnisdienst": ("urn:xoev-de:kosit:codeliste:verzeichnisdienst", "1"),
    "fehlerkennzahlen": ("urn:xoev-de:xbau:codeliste:xbau-fehlerkennzahlen", "2.2"),
    "eingangsquittierung": ("urn:xoev-de:xbau:codeliste:nachricht-eingangsquittierung", "1.0"),
    "anlagen": ("urn:xoev-de:xbau:codeliste:anlagen", "3.0"),
    "mimetype": ("urn:xoev-de:xbau:codeliste:xbau-mimetype", "2.0"),
    "formellebefunde": ("urn:xoev-de:xbau:codeliste:formellebefunde", "2.0"),
    "nebenbestimmungart": ("urn:xoev-de:xbau:codeliste:nebenbestimmungart", "3.0"),
    "rechtsbereich": ("urn:xoev-de:xbau:codeliste:rechtsbereich", "2.0"),
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HeaderAuthority(_Model):
    """An authority as the XÖV G2G header names it (DVDV)."""

    kennung: str = Field(description="'praefix:kennung', e.g. 'bau:010020000000'")
    name: str


class AnsweredMessage(_Model):
    """Header facts of the message being answered, kept in the case registry."""

    nachrichten_uuid: str
    nachrichtentyp: str = Field(description="Code of the answered message, e.g. '0200'")
    erstellungszeitpunkt: datetime
    author: HeaderAuthority
    reader: HeaderAuthority
    referenz_antragsservice: str | None = None
    raw: bytes | None = Field(default=None, description="The original message (for 1100)")


def _latin_safe(code: int) -> bool:
    # Tab, line feed, carriage return, printable ASCII and Latin-1's letters and signs but the
    # soft hyphen: a subset of every XÖV Latin string type (String.Latin, DIN 91379 datatype
    # C), so a text made of it is valid wherever an answer carries free text.
    return (
        code in (0x9, 0xA, 0xD) or 0x20 <= code <= 0x7E or (0xA1 <= code <= 0xFF and code != 0xAD)
    )


def latin_text(text: str) -> str:
    """``text`` with every character outside the Latin set written as ``U+XXXX``: a schema
    error quoting a Cyrillic name still fits an 1100's ``fehlertext`` and says what it quoted."""
    if all(_latin_safe(ord(char)) for char in text):
        return text
    return "".join(char if _latin_safe(ord(char)) else f"U+{ord(char):04X}" for char in text)


class RejectionReason(_Model):
    """One reason of a rejection (XBau 1100 ``fehlermeldung``)."""

    code: str = Field(default="X001", description="XBau Fehlerkennzahl, e.g. X001 = not valid")
    text: str | None = Field(default=None, description="The reason in plain words")


class AnlageRef(_Model):
    """A document that belongs to a decision (XBau ``anlage``), e.g. the Bescheid as PDF."""

    bezeichnung: str = Field(description="Title of the document, e.g. 'Baugenehmigung'")
    dateiname: str = Field(description="File name, e.g. 'baugenehmigung.pdf'")
    dokumentid: str = Field(description="The document's id in the back end, e.g. a urn:uuid")
    mime_type: str = Field(default="application/pdf", description="XBau MIME type code")
    anlageart: str = Field(default="9999", description="XBau Anlagen code; 9999 = other")
    datum: date | None = Field(default=None, description="Date of the document; default today")


class SchriftgutobjektErgebnis(_Model):
    """The import of one Schriftgutobjekt by an archive (xdomea 0506 ``AusgesondertesSGO``)."""

    id: str = Field(
        pattern=r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$",
        description="The Schriftgutobjekt's ID (a UUID) as the Aussonderung (0503) named it",
    )
    erfolgreich: bool = Field(description="Whether the archive imported it")
    fehlermeldungen: list[str] = Field(
        default_factory=list, description="Why not, in plain words, one per entry"
    )
    archivkennung: str | None = Field(
        default=None, description="The archive's own id for it, when imported"
    )


class ReplyContent(_Model):
    """What a back end says about a case: the business content of an answer."""

    kind: Literal["receipt", "status", "decision", "rejection"] = Field(
        description="receipt: received (XBau 1180; xdomea 0504/0505/0507); status: formal "
        "check (XBau 0201); decision: the Bescheid (XBau 0205) or the archive's import "
        "(xdomea 0506); rejection: refused (XBau 1100)"
    )
    vorgang: str | None = Field(default=None, description="The authority's file number")
    # status (formelle Prüfung)
    antrag_vollstaendig: bool | None = Field(
        default=None, description="status: whether the application is complete (required)"
    )
    befunde: list[str] = Field(
        default_factory=list, description="status: what is missing or wrong, one per entry"
    )
    frist: date | None = Field(default=None, description="status: deadline for the befunde")
    spaetestes_genehmigungsdatum: date | None = Field(
        default=None, description="status, when complete: latest date of the decision"
    )
    anschreiben: list[str] = Field(
        default_factory=list, description="status: covering letter, one paragraph per entry"
    )
    # decision (Bescheid)
    ist_genehmigung: bool | None = Field(
        default=None, description="decision: granted (true) or refused (false) (required)"
    )
    begruendung: str | None = Field(default=None, description="decision: the reasons")
    nebenbestimmungen: list[str] = Field(
        default_factory=list, description="decision: conditions (Auflagen), one per entry"
    )
    rechtsbehelfsbelehrung: list[str] = Field(
        default_factory=list,
        description="decision: how to appeal, one paragraph per entry; a standard text if empty",
    )
    anlagen: list[AnlageRef] = Field(
        default_factory=list, description="decision: the documents, at least the Bescheid"
    )
    # rejection
    errors: list[RejectionReason] = Field(
        default_factory=list, description="rejection: the reasons; X001 if empty"
    )
    # receipt
    information: list[str] = Field(
        default_factory=list,
        description="receipt: notes to the sender, one per entry (xdomea: the Kopf's Hinweis)",
    )
    # xdomea decision (0506 AussonderungImportBestaetigen)
    schriftgutobjekte: list[SchriftgutobjektErgebnis] = Field(
        default_factory=list,
        description="xdomea decision: the import result of each Schriftgutobjekt (required)",
    )


class ReplyEvent(ReplyContent):
    """A reply bound to the message it answers: what the XÖV builders need."""

    case_id: str
    answered: AnsweredMessage
    nachrichten_uuid: str | None = Field(
        default=None, description="Id of the answer; derived from case and kind when absent"
    )
    created: datetime | None = None


# -- building blocks -------------------------------------------------------------------------


def _sub(
    parent: etree._Element, tag: str, text: str | None = None, **attrib: str
) -> etree._Element:
    element = etree.SubElement(parent, tag, attrib)
    if text is not None:
        element.text = text
    return element


def _code(parent: etree._Element, tag: str, value: str, code_list: str) -> etree._Element:
    uri, version = _LISTS[code_list]
    element = _sub(parent, tag, listURI=uri, listVersionID=version)
    _sub(element, "code", value)
    return element


def _text_block(parent: etree._Element, tag: str, paragraphs: list[str]) -> None:
    element = _sub(parent, tag)
    for paragraph in paragraphs:
        _sub(element, "textabsatz", paragraph)


def _formatted(parent: etree._Element, tag: str, text: str) -> None:
    # XBau's TextFormatiert carries the text base64-encoded.
    _sub(_sub(parent, tag), "text", base64.b64encode(text.encode("utf-8")).decode("ascii"))


def _timestamp(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def _answer_uuid(reply: ReplyEvent) -> str:
    if reply.nachrichten_uuid:
        return reply.nachrichten_uuid
    # Deterministic: building the same answer twice yields the same nachrichtenUUID, so a
    # retried delivery is recognised as the same message by the receiver.
    return str(uuid.uuid5(_ANSWER_NAMESPACE, f"{reply.case_id}\x1f{reply.kind}"))


def _root(message: str, namespace: str) -> etree._Element:
    prefix = "xbau" if namespace == XBAU_NS else "xbauk"
    return etree.Element(
        f"{{{namespace}}}{message}",
        nsmap={prefix: namespace, "bn-g2g": G2G_NS},
        produkt="Poststelle",
        produkthersteller="Poststelle contributors",
        produktversion="0.1",
        # Kernmodul messages declare the Kernmodul as their standard (fixed in the schema).
        standard="XBau-Hochbau" if namespace == XBAU_NS else _KERNMODUL_STANDARD,
        version="2.6" if namespace == XBAU_NS else "1.3.0",
    )


def _authority(parent: etree._Element, tag: str, authority: HeaderAuthority) -> None:
    element = _sub(parent, tag)
    _code(element, "verzeichnisdienst", "DVDV", "verzeichnisdienst")
    _sub(element, "kennung", authority.kennung)
    _sub(element, "name", authority.name)


def _header(root: etree._Element, reply: ReplyEvent, code: str, code_list: str) -> None:
    head = _sub(root, "nachrichtenkopf.g2g")
    ident = _sub(head, "identifikation.nachricht")
    _sub(ident, "nachrichtenUUID", _answer_uuid(reply))
    _code(ident, "nachrichtentyp", code, code_list)
    _sub(ident, "erstellungszeitpunkt", _timestamp(reply.created or datetime.now(UTC)))
    # The answer goes back: who wrote the original reads this, and vice versa.
    _authority(head, "leser", reply.answered.author)
    _authority(head, "autor", reply.answered.reader)


def _bezug(root: etree._Element, tag: str, reply: ReplyEvent) -> None:
    bezug = _sub(root, tag)
    if reply.answered.referenz_antragsservice:
        _sub(bezug, "referenz", reply.answered.referenz_antragsservice)
    if reply.vorgang:
        _sub(bezug, "vorgang", reply.vorgang)
    _id_nachricht(bezug, "bezugNachricht", reply.answered)


def _id_nachricht(parent: etree._Element, tag: str, answered: AnsweredMessage) -> None:
    ref = _sub(parent, tag)
    _sub(ref, f"{{{G2G_NS}}}nachrichtenUUID", answered.nachrichten_uuid)
    uri, version = _LISTS["xbau-nachrichten"]
    code = _sub(ref, f"{{{G2G_NS}}}nachrichtentyp", listURI=uri, listVersionID=version)
    _sub(code, "code", answered.nachrichtentyp)
    _sub(ref, f"{{{G2G_NS}}}erstellungszeitpunkt", _timestamp(answered.erstellungszeitpunkt))


def _anlagen(parent: etree._Element, tag: str, anlagen: list[AnlageRef], created: date) -> None:
    container = _sub(parent, tag)
    for anlage in anlagen:
        element = _sub(container, "anlage")
        _sub(element, "bezeichnung", anlage.bezeichnung)
        _sub(element, "versionsnummer", "1")
        _sub(element, "datum", (anlage.datum or created).isoformat())
        _code(element, "anlageart", anlage.anlageart, "anlagen")
        _code(element, "mimeType", anlage.mime_type, "mimetype")
        anhang = _sub(_sub(element, "anhangOderVerlinkung"), "anhang")
        _sub(anhang, "dokumentid", anlage.dokumentid)
        _sub(anhang, "dateiname", anlage.dateiname)


# -- the four answers ---------------------------------------------------------------------


def _receipt(reply: ReplyEvent) -> etree._Element:
    code = reply.answered.nachrichtentyp
    if code not in QUITTIERBARE_NACHRICHTEN:
        raise ValueError(
            f"XBau 1180 may only acknowledge the message types of code list "
            f"nachricht-eingangsquittierung, not {code}"
        )
    root = _root(ANSWER_MESSAGE_TYPES["receipt"], KERN_NS)
    _header(root, reply, "1180", "kernmodul-nachrichten")
    _bezug(root, "bezug", reply)
    _code(root, "nachrichtentyp", code, "eingangsquittierung")
    if reply.information:
        _text_block(root, "information", reply.information)
    return root


def _rejection(reply: ReplyEvent) -> etree._Element:
    if reply.answered.raw is None:
        raise ValueError("XBau 1100 carries the rejected message: answered.raw is required")
    nachricht = rejected_message(reply.answered.raw)
    root = _root(ANSWER_MESSAGE_TYPES["rejection"], KERN_NS)
    _header(root, reply, "1100", "kernmodul-nachrichten")
    data = _sub(root, "rueckweisungDaten")
    for error in reply.errors or [RejectionReason()]:
        reason = _sub(data, "rueckweisungsgrund")
        _code(reason, "grund", error.code, "fehlerkennzahlen")
        if error.text:
            _sub(reason, "fehlertext", error.text)
    _id_nachricht(data, "idNachricht", reply.answered)
    _sub(data, "nachricht", base64.b64encode(nachricht).decode("ascii"))
    return root


def _status(reply: ReplyEvent) -> etree._Element:
    if reply.antrag_vollstaendig is None:
        raise ValueError("a status answer (0201) needs antrag_vollstaendig")
    root = _root(ANSWER_MESSAGE_TYPES["status"], XBAU_NS)
    x = f"{{{XBAU_NS}}}"
    _header(root, reply, "0201", "xbau-nachrichten")
    _bezug(root, f"{x}bezug", reply)
    _sub(root, f"{x}antragVollstaendig", "true" if reply.antrag_vollstaendig else "false")
    if reply.befunde:
        befund_frist = _sub(root, f"{x}befundFrist")
        liste = _sub(befund_frist, f"{x}befundliste")
        for text in reply.befunde:
            befund = _sub(liste, f"{x}befund")
            # 99 = sonstiger Befund: the back end's free text says what is wrong.
            _code(befund, f"{x}artDesBefundes", "99", "formellebefunde")
            _text_block(befund, f"{x}beschreibung", [text])
        if reply.frist:
            _sub(befund_frist, f"{x}frist", reply.frist.isoformat())
    if reply.antrag_vollstaendig and reply.spaetestes_genehmigungsdatum:
        complete = _sub(root, f"{x}unterlagenAntragVollstaendig")
        datum = _sub(complete, f"{x}genehmigungsdatum")
        _sub(
            datum, f"{x}spaetestesGenehmigungsdatum", reply.spaetestes_genehmigungsdatum.isoformat()
        )
    if reply.anschreiben:
        _text_block(root, f"{x}anschreiben", reply.anschreiben)
    return root


def _decision(reply: ReplyEvent) -> etree._Element:
    if reply.ist_genehmigung is None:
        raise ValueError("a decision answer (0205) needs ist_genehmigung")
    if not reply.anlagen:
        raise ValueError("XBau 0205 requires at least one Anlage (the Bescheid document)")
    root = _root(ANSWER_MESSAGE_TYPES["decision"], XBAU_NS)
    x = f"{{{XBAU_NS}}}"
    created = reply.created or datetime.now(UTC)
    _header(root, reply, "0205", "xbau-nachrichten")
    _bezug(root, f"{x}bezug", reply)
    bescheid = _sub(root, f"{x}bescheid")
    _sub(_sub(bescheid, f"{x}tenor"), f"{x}istGenehmigung", str(reply.ist_genehmigung).lower())
    for text in reply.nebenbestimmungen:
        item = _sub(bescheid, f"{x}nebenbestimmung")
        _code(item, f"{x}art", "2", "nebenbestimmungart")  # 2 = Auflage
        _code(item, f"{x}rechtsbereich", "01", "rechtsbereich")
        _formatted(item, f"{x}nebenbestimmung", text)
    if reply.begruendung:
        _formatted(bescheid, f"{x}begruendung", reply.begruendung)
    _text_block(
        bescheid,
        f"{x}rechtshelfsbelehrung",
        reply.rechtsbehelfsbelehrung or ["Gegen diesen Bescheid ist der Widerspruch zulässig."],
    )
    _anlagen(root, f"{x}anlagen", reply.anlagen, created.date())
    return root


_BUILDERS: dict[str, Callable[[ReplyEvent], etree._Element]] = {
    "receipt": _receipt,
    "rejection": _rejection,
    "status": _status,
    "decision": _decision,
}


def build_answer(reply: ReplyEvent) -> bytes:
    """The XBau 2.6 message answering ``reply.answered``; raises ``ValueError`` when the
    reply lacks what the message type requires."""
    root = _BUILDERS[reply.kind](reply)
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data
