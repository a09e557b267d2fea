"""Answers in xdomea 3.0.0 and 2.4.0: an archive's (or a DMS's) reply to an Aussonderung
message.

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

xdomea 2.4.0 has no 0507 and reports the import of a 0503 as one ``ErfolgOderMisserfolg``
(successful when every object was imported, the objects' Fehlermeldungen joined, one
``Rueckgabeparameter`` with ID and Archivkennung per imported object that has one).

The ``Kopf`` (``NkBasisType``) keeps the answered message's ``ProzessID`` (xdomea has no
per-message UUID: the ProzessID names the whole Aussonderung), swaps Absender and Empfaenger,
and carries the back end's ``information`` as ``Hinweis``. Valid against the published xdomea
schemas (tests prove it against ``../shared/corpus/xdomea/schemes``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lxml import etree
from pydantic import BaseModel, ConfigDict

from poststelle.contracts.answers import ReplyContent, SchriftgutobjektErgebnis

__all__ = [
    "XDOMEA_ANSWERS",
    "XdomeaAnswered",
    "build_xdomea_answer",
    "xdomea_answer_type",
    "xdomea_namespace",
]

_NACHRICHTENTYP_LIST = "urn:xoev-de:xdomea:codeliste:nachrichtentyp"

# (code of the answered message, reply kind) -> the answer's message type, per version.
XDOMEA_ANSWERS: dict[str, dict[tuple[str, str], str]] = {
    "3.0.0": {
        ("0501", "receipt"): "Aussonderung.AnbietungEmpfangBestaetigen.0504",
        ("0502", "receipt"): "Aussonderung.BewertungEmpfangBestaetigen.0505",
        ("0503", "receipt"): "Aussonderung.AussonderungEmpfangBestaetigen.0507",
        ("0503", "decision"): "Aussonderung.AussonderungImportBestaetigen.0506",
    },
    "2.4.0": {
        ("0501", "receipt"): "Aussonderung.AnbietungEmpfangBestaetigen.0504",
        ("0502", "receipt"): "Aussonderung.BewertungEmpfangBestaetigen.0505",
        ("0503", "decision"): "Aussonderung.AussonderungImportBestaetigen.0506",
    },
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
    answers = XDOMEA_ANSWERS.get(answered.version)
    if answers is None:
        raise ValueError(
            f"xdomea answers are built for {', '.join(XDOMEA_ANSWERS)}, not {answered.version}"
        )
    message_type = answers.get((answered.nachrichtentyp, kind))
    if message_type is None:
        possible = sorted(k for (code, k) in answers if code == answered.nachrichtentyp)
        raise ValueError(
            f"xdomea {answered.version} has no {kind} answer to a "
            f"{answered.nachrichtentyp} message"
            + (f" (possible: {', '.join(possible)})" if possible else "")
        )
    return message_type


class _Writer:
    """Elements in one version's namespace, with what differs between the versions."""

    def __init__(self, version: str) -> None:
        self.version = version
        self.ns = xdomea_namespace(version)
        spec = _VERSIONS[version]
        self.list_version, self.kennung = spec.list_version, spec.kennung
        self.imported = spec.imported

    def sub(self, parent: etree._Element, local: str, text: str | None = None) -> etree._Element:
        element = etree.SubElement(parent, f"{{{self.ns}}}{local}")
        if text is not None:
            element.text = text
        return element

    def code(self, parent: etree._Element, local: str, value: str) -> None:
        etree.SubElement(self.sub(parent, local), "code").text = value


def _kontakt(w: _Writer, parent: etree._Element, local: str, party: _Party) -> None:
    kontakt = w.sub(parent, local)
    praefix, sep, schluessel = (party.kennung or "").partition(":")
    if sep and (praefix or schluessel):
        kennung = w.sub(kontakt, "Behoerdenkennung")
        if schluessel:
            w.code(kennung, w.kennung, schluessel)
        if praefix:
            w.code(kennung, "Praefix", praefix)
    if party.institution:
        w.sub(w.sub(kontakt, "Institution"), "Name", party.institution)


def _kopf(
    w: _Writer, root: etree._Element, answered: XdomeaAnswered, code: str, hinweis: list[str]
) -> None:
    kopf = w.sub(root, "Kopf")
    w.sub(kopf, "ProzessID", answered.prozess_id)
    typ = w.sub(kopf, "Nachrichtentyp")
    typ.set("listURI", _NACHRICHTENTYP_LIST)
    typ.set("listVersionID", w.list_version)
    etree.SubElement(typ, "code").text = code
    w.sub(kopf, "Erstellungszeitpunkt", datetime.now(UTC).isoformat(timespec="seconds"))
    # The answer goes back: who sent the answered message receives this one.
    _kontakt(w, kopf, "Absender", answered.empfaenger)
    _kontakt(w, kopf, "Empfaenger", answered.absender)
    system = w.sub(kopf, "SendendesSystem")
    w.sub(system, "Produktname", "Poststelle")
    w.sub(system, "Version", "0.1")
    if hinweis:
        w.sub(kopf, "Hinweis", "\n".join(hinweis))


def _imported_300(
    w: _Writer, root: etree._Element, results: list[SchriftgutobjektErgebnis]
) -> None:
    for result in results:
        sgo = w.sub(root, "AusgesondertesSGO")
        w.sub(sgo, "IDSGO", result.id)
        w.sub(sgo, "Erfolgreich", "true" if result.erfolgreich else "false")
        for text in result.fehlermeldungen:
            w.sub(sgo, "Fehlermeldung", text)
        if result.archivkennung:
            w.sub(sgo, "Archivkennung", result.archivkennung)


def _imported_240(
    w: _Writer, root: etree._Element, results: list[SchriftgutobjektErgebnis]
) -> None:
    # One verdict for the whole Aussonderung: what 2.4.0 can say about its objects.
    outcome = w.sub(root, "ErfolgOderMisserfolg")
    w.sub(outcome, "Erfolgreich", "true" if all(r.erfolgreich for r in results) else "false")
    failures = [f"{r.id}: {text}" for r in results for text in r.fehlermeldungen]
    failures += [
        f"{r.id}: nicht übernommen" for r in results if not r.erfolgreich and not r.fehlermeldungen
    ]
    if failures:
        w.sub(outcome, "Fehlermeldung", "; ".join(failures))
    for result in results:
        if result.erfolgreich and result.archivkennung:
            parameter = w.sub(outcome, "Rueckgabeparameter")
            w.sub(parameter, "ID", result.id)
            w.sub(parameter, "Archivkennung", result.archivkennung)


@dataclass(frozen=True)
class _Version:
    list_version: str  # of the Nachrichtentyp code list the version fixes
    kennung: str  # Behoerdenkennung's key element
    imported: Callable[[_Writer, etree._Element, list[SchriftgutobjektErgebnis]], None]


_VERSIONS = {
    "3.0.0": _Version("2.0", "Behoerdenschluessel", _imported_300),
    "2.4.0": _Version("1.0", "Kennung", _imported_240),
}


def build_xdomea_answer(answered: XdomeaAnswered, reply: ReplyContent) -> tuple[bytes, str]:
    """(message, message type) answering ``answered``; ``ValueError`` when xdomea has no such
    answer or the reply lacks what it requires."""
    message_type = xdomea_answer_type(answered, reply.kind)
    w = _Writer(answered.version)
    root = etree.Element(f"{{{w.ns}}}{message_type}", nsmap={"xdomea": w.ns})
    _kopf(w, root, answered, message_type.rsplit(".", 1)[-1], reply.information)
    if message_type.endswith(".0506"):
        if not reply.schriftgutobjekte:
            raise ValueError(
                "an xdomea 0506 (AussonderungImportBestaetigen) reports at least one "
                "Schriftgutobjekt: schriftgutobjekte is required"
            )
        w.imported(w, root, reply.schriftgutobjekte)
    data: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return data, message_type


def xdomea_namespace(version: str) -> str:
    """The namespace of an xdomea version's messages."""
    return f"urn:xoev-de:xdomea:schema:{version}"
