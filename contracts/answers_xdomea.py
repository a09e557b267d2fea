"""Answers in xdomea 3.0.0: an archive's (or a DMS's) reply to an Aussonderung message.

The Aussonderung runs 0501 Anbieteverzeichnis (authority → archive), 0502 Bewertungsverzeichnis
(archive → authority), 0503 Aussonderung (authority → archive). Each is confirmed by its
receiver, and the archive reports the import of 0503; those confirmations are what a back end
behind the hub sends back:

==========  ========  ====================================================  ================
answers     kind      message                                               content
==========  ========  ====================================================  ================
0501        receipt   ``Aussonderung.AnbietungEmpfangBestaetigen.0504``     ``Kopf``
0502        receipt   ``Aussonderung.BewertungEmpfangBestaetigen.0505``     ``Kopf``
0503        receipt   ``Aussonderung.AussonderungEmpfangBestaetigen.0507``  ``Kopf``
0503        decision  ``Aussonderung.AussonderungImportBestaetigen.0506``   ``Kopf`` + one
                                                                            ``AusgesondertesSGO``
                                                                            per object
==========  ========  ====================================================  ================

The ``Kopf`` (``NkBasisType``) keeps the answered message's ``ProzessID`` (xdomea has no
per-message UUID: the ProzessID names the whole Aussonderung), swaps Absender and Empfaenger,
and carries the back end's ``information`` as ``Hinweis``. Valid against the published xdomea
3.0.0 schemas (tests prove it against ``../shared/corpus/xdomea/schemes/xdomea_3.0.0``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lxml import etree
from pydantic import BaseModel, ConfigDict

from poststelle.contracts.answers import ReplyContent

__all__ = [
    "XDOMEA_ANSWERS",
    "XDOMEA_NS",
    "XdomeaAnswered",
    "build_xdomea_answer",
    "xdomea_answer_type",
]

XDOMEA_NS = "urn:xoev-de:xdomea:schema:3.0.0"
_NACHRICHTENTYP_LIST = ("urn:xoev-de:xdomea:codeliste:nachrichtentyp", "2.0")

# (code of the answered message, reply kind) -> the answer's message type.
XDOMEA_ANSWERS: dict[tuple[str, str], str] = {
    ("0501", "receipt"): "Aussonderung.AnbietungEmpfangBestaetigen.0504",
    ("0502", "receipt"): "Aussonderung.BewertungEmpfangBestaetigen.0505",
    ("0503", "receipt"): "Aussonderung.AussonderungEmpfangBestaetigen.0507",
    ("0503", "decision"): "Aussonderung.AussonderungImportBestaetigen.0506",
}


class _Party(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kennung: str | None  # "praefix:behoerdenschluessel" as the mapping writes it
    institution: str | None = None


class XdomeaAnswered(BaseModel):
    """Header facts of the xdomea message being answered, from the case registry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    nachrichtentyp: str
    prozess_id: str
    absender: _Party
    empfaenger: _Party

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> XdomeaAnswered:
        """Raises ``ValueError`` when the case lacks what an xdomea answer must carry."""
        facts = record.get("answered") or {}
        if not facts.get("prozess_id"):
            raise ValueError(
                f"case {record.get('case_id')} keeps no ProzessID for an xdomea answer"
            )
        return cls(
            version=str(record.get("version") or ""),
            nachrichtentyp=str(record.get("message_type") or "").rsplit(".", 1)[-1],
            prozess_id=str(facts["prozess_id"]),
            absender=_Party(
                kennung=record.get("author"), institution=facts.get("absender_institution")
            ),
            empfaenger=_Party(
                kennung=record.get("reader"), institution=facts.get("empfaenger_institution")
            ),
        )


def xdomea_answer_type(answered: XdomeaAnswered, kind: str) -> str:
    """The message type answering ``answered`` with a reply of ``kind``; ``ValueError`` when
    xdomea has none (e.g. a decision about an Anbieteverzeichnis)."""
    if answered.version != "3.0.0":
        raise ValueError(f"xdomea answers are built for 3.0.0, not {answered.version}")
    message_type = XDOMEA_ANSWERS.get((answered.nachrichtentyp, kind))
    if message_type is None:
        possible = sorted(k for (code, k) in XDOMEA_ANSWERS if code == answered.nachrichtentyp)
        raise ValueError(
            f"xdomea has no {kind} answer to a {answered.nachrichtentyp} message"
            + (f" (possible: {', '.join(possible)})" if possible else "")
        )
    return message_type


def _sub(parent: etree._Element, local: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, f"{{{XDOMEA_NS}}}{local}")
    if text is not None:
        element.text = text
    return element


def _code(parent: etree._Element, local: str, value: str) -> None:
    etree.SubElement(_sub(parent, local), "code").text = value


def _kontakt(parent: etree._Element, local: str, party: _Party) -> None:
    kontakt = _sub(parent, local)
    praefix, sep, schluessel = (party.kennung or "").partition(":")
    if sep and (praefix or schluessel):
        kennung = _sub(kontakt, "Behoerdenkennung")
        if schluessel:
            _code(kennung, "Behoerdenschluessel", schluessel)
        if praefix:
            _code(kennung, "Praefix", praefix)
    if party.institution:
        _sub(_sub(kontakt, "Institution"), "Name", party.institution)


def _kopf(root: etree._Element, answered: XdomeaAnswered, code: str, hinweis: list[str]) -> None:
    kopf = _sub(root, "Kopf")
    _sub(kopf, "ProzessID", answered.prozess_id)
    typ = _sub(kopf, "Nachrichtentyp")
    typ.set("listURI", _NACHRICHTENTYP_LIST[0])
    typ.set("listVersionID", _NACHRICHTENTYP_LIST[1])
    etree.SubElement(typ, "code").text = code
    _sub(kopf, "Erstellungszeitpunkt", datetime.now(UTC).isoformat(timespec="seconds"))
    # The answer goes back: who sent the answered message receives this one.
    _kontakt(kopf, "Absender", answered.empfaenger)
    _kontakt(kopf, "Empfaenger", answered.absender)
    system = _sub(kopf, "SendendesSystem")
    _sub(system, "Produktname", "Poststelle")
    _sub(system, "Version", "0.1")
    if hinweis:
        _sub(kopf, "Hinweis", "\n".join(hinweis))


def build_xdomea_answer(answered: XdomeaAnswered, reply: ReplyContent) -> tuple[bytes, str]:
    """(message, message type) answering ``answered``; ``ValueError`` when xdomea has no such
    answer or the reply lacks what it requires."""
    message_type = xdomea_answer_type(answered, reply.kind)
    root = etree.Element(f"{{{XDOMEA_NS}}}{message_type}", nsmap={"xdomea": XDOMEA_NS})
    _kopf(root, answered, message_type.rsplit(".", 1)[-1], reply.information)
    if message_type.endswith(".0506"):
        if not reply.schriftgutobjekte:
            raise ValueError(
                "an xdomea 0506 (AussonderungImportBestaetigen) reports at least one "
                "Schriftgutobjekt: schriftgutobjekte is required"
            )
        for result in reply.schriftgutobjekte:
            sgo = _sub(root, "AusgesondertesSGO")
            _sub(sgo, "IDSGO", result.id)
            _sub(sgo, "Erfolgreich", "true" if result.erfolgreich else "false")
            for text in result.fehlermeldungen:
                _sub(sgo, "Fehlermeldung", text)
            if result.archivkennung:
                _sub(sgo, "Archivkennung", result.archivkennung)
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data, message_type
