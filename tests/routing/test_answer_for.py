"""``answer_for`` reads the original message when, and only when, the answer carries it, and
holds every XÖV answer it builds to its contract's schema."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from poststelle.contracts.inspection import MessageInspector
from poststelle.contracts.registry import ContractRegistry
from poststelle.contracts.replies import AnswerInvalidError, CannotAnswerError, CaseReply
from poststelle.routing.hub.replies import answer_for
from poststelle.routing.streams.originals import OriginalGone

ORIGINAL = b"<xbau:baugenehmigung.antrag.0200 xmlns:xbau='http://www.xleitstelle.de/xbau/2/6'/>"


def _record(**extra: Any) -> dict[str, Any]:
    return {
        "case_id": "case-1",
        "origin": {"channel": "xta", "adapter": "xta-hub", "reply_route": {}},
        "message_type": "baugenehmigung.antrag.0200",
        "nachrichten_uuid": "5b1d8a52-0d8e-4c0e-9a61-2c4f8e0d1b37",
        "author": "bap:010000000001",
        "reader": "bau:010020000000",
        "answered": {"erstellungszeitpunkt": "2026-03-10T09:00:00+00:00"},
        **extra,
    }


@pytest.fixture
def unregistered(tmp_path: Path) -> MessageInspector:
    """No schema set: validation is not performed, as for an arrival."""
    return MessageInspector(tmp_path)


@pytest.fixture(scope="module")
def xdomea(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> MessageInspector:
    data_dir = tmp_path_factory.mktemp("xdomea")
    ContractRegistry.for_data_dir(data_dir).add_schema_set(corpus_dir / "xdomea" / "schemes")
    return MessageInspector(data_dir)


def _xdomea_record() -> dict[str, Any]:
    """A case that came as an xdomea 2.4.0 0501 by XTA."""
    return {
        "case_id": "case-x",
        "origin": {"channel": "xta", "adapter": "xta-hub", "reply_route": {}},
        "standard": "xdomea",
        "version": "2.4.0",
        "message_type": "Aussonderung.Anbieteverzeichnis.0501",
        "author": "dvdv:behoerde",
        "reader": "dvdv:archiv",
        "answered": {"prozess_id": "242f44e8-bebf-4503-a086-db252c6a4277"},
    }


class _Loader:
    def __init__(self, result: bytes | Exception) -> None:
        self.result = result
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, original: dict[str, Any]) -> bytes:
        self.calls.append(original)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


async def test_rejection_loads_the_original_by_the_records_reference(
    unregistered: MessageInspector,
) -> None:
    load = _Loader(ORIGINAL)
    original = {"ref": "stream:INBOX/7", "sha256": "abc", "size": len(ORIGINAL)}
    answer = await answer_for(
        "case-1",
        _record(original=original),
        CaseReply(kind="rejection"),
        load,
        inspector=unregistered,
    )
    root = etree.fromstring(answer.content)
    assert base64.b64decode(root.findtext("rueckweisungDaten/nachricht") or "") == ORIGINAL
    assert load.calls == [original]


async def test_other_answers_do_not_load_the_original(unregistered: MessageInspector) -> None:
    load = _Loader(AssertionError("must not be loaded"))
    reply = CaseReply(kind="status", antrag_vollstaendig=True)
    record = _record(original={"ref": "stream:INBOX/7"})
    answer = await answer_for("case-1", record, reply, load, inspector=unregistered)
    assert answer.message_type == "baugenehmigung.formellePruefung.0201"
    assert load.calls == []


@pytest.mark.parametrize(
    ("record", "load", "words"),
    [
        (_record(), _Loader(ORIGINAL), "keeps no reference to its original"),
        (
            _record(original={"ref": "stream:INBOX/7"}),
            _Loader(OriginalGone("the original (stream:INBOX/7) is no longer in INBOX")),
            "no longer in INBOX",
        ),
    ],
)
async def test_rejection_without_its_original_cannot_be_answered(
    record: dict[str, Any], load: _Loader, words: str, unregistered: MessageInspector
) -> None:
    with pytest.raises(CannotAnswerError, match=words):
        await answer_for(
            "case-1", record, CaseReply(kind="rejection"), load, inspector=unregistered
        )


async def test_an_answer_its_schema_refuses_is_not_built(xdomea: MessageInspector) -> None:
    # xdomea 2.4.0 types Hinweis as xoev-lc:String.Latin: Cyrillic is outside that set.
    reply = CaseReply(kind="receipt", information=["Anbietung erhalten: Жданов"])
    with pytest.raises(AnswerInvalidError) as refused:
        await answer_for("case-x", _xdomea_record(), reply, _Loader(b""), inspector=xdomea)
    assert refused.value.reason == "answer-schema-invalid"
    assert "Aussonderung.AnbietungEmpfangBestaetigen.0504" in str(refused.value)
    [error] = refused.value.errors
    assert "Hinweis" in error.message and "pattern" in error.message
    assert error.line is not None and error.line > 1
    # The inbound format: count and first error with line, path and message.
    assert f"1 schema error(s), first: line {error.line}: " in str(refused.value)


async def test_a_valid_answer_passes_its_schema(xdomea: MessageInspector) -> None:
    reply = CaseReply(kind="receipt", information=["Anbietung erhalten, Übernahme folgt (€ 0)."])
    answer = await answer_for("case-x", _xdomea_record(), reply, _Loader(b""), inspector=xdomea)
    assert answer.message_type == "Aussonderung.AnbietungEmpfangBestaetigen.0504"
    ident, outcome = xdomea.validate(answer.content)
    assert (ident.version, outcome.status) == ("2.4.0", "valid")
