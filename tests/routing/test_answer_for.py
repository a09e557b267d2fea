"""``answer_for`` reads the original message when, and only when, the answer carries it."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from lxml import etree

from poststelle.contracts.replies import CannotAnswerError, CaseReply
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


class _Loader:
    def __init__(self, result: bytes | Exception) -> None:
        self.result = result
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, original: dict[str, Any]) -> bytes:
        self.calls.append(original)
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


async def test_rejection_loads_the_original_by_the_records_reference() -> None:
    load = _Loader(ORIGINAL)
    original = {"ref": "stream:INBOX/7", "sha256": "abc", "size": len(ORIGINAL)}
    answer = await answer_for(
        "case-1", _record(original=original), CaseReply(kind="rejection"), load
    )
    root = etree.fromstring(answer.content)
    assert base64.b64decode(root.findtext("rueckweisungDaten/nachricht") or "") == ORIGINAL
    assert load.calls == [original]


async def test_other_answers_do_not_load_the_original() -> None:
    load = _Loader(AssertionError("must not be loaded"))
    reply = CaseReply(kind="status", antrag_vollstaendig=True)
    answer = await answer_for("case-1", _record(original={"ref": "stream:INBOX/7"}), reply, load)
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
    record: dict[str, Any], load: _Loader, words: str
) -> None:
    with pytest.raises(CannotAnswerError, match=words):
        await answer_for("case-1", record, CaseReply(kind="rejection"), load)
