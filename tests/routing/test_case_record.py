"""The ``cases`` registry record and the CASES subject, built per routed message: the shared
encoder and the memoised subject give exactly what a fresh ``json.dumps`` and the three
token substitutions gave."""

from __future__ import annotations

import json
from datetime import date

from poststelle.contracts.envelope import case_subject, safe_token
from poststelle.routing.hub.core import CaseRecord


def test_record_bytes_are_those_of_json_dumps() -> None:
    record = CaseRecord(
        case_id="7d0c2b8e-0b6f-5a55-9f5e-2f1d7c1a0e11",
        state="routed",
        origin={"channel": "xta", "adapter": "xta-sh", "reply_route": {"author": "bau:1"}},
        tenant="kiel",
        backend="fachverfahren",
        standard="xbau",
        version="2.6",
        message_type="baugenehmigung.antrag.0200",
        nachrichten_uuid="3f6c2a9e-8d41-4b7a-9c15-2e7f0b4d9a61",
        author="bau:010020000000",
        reader=None,
        # A mapped date is not JSON: ``default=str`` writes it, as it always did.
        answered={"erstellungszeitpunkt": date(2026, 3, 12), "author_name": "Bauamt Lübeck"},
    )
    expected = json.dumps(record.__dict__, separators=(",", ":"), default=str).encode()
    assert record.encode() == expected
    assert json.loads(record.encode())["answered"]["erstellungszeitpunkt"] == "2026-03-12"


def test_case_subject_is_three_safe_tokens_every_time() -> None:
    for _ in range(2):  # the second answer comes from the cache
        subject = case_subject("Kiel Bauamt", "fach.verfahren", "baugenehmigung.antrag.0200")
        assert subject == ".".join(
            [
                "case",
                safe_token("Kiel Bauamt"),
                safe_token("fach.verfahren"),
                safe_token("baugenehmigung.antrag.0200"),
            ]
        )
    assert subject == "case.Kiel_Bauamt.fach_verfahren.baugenehmigung_antrag_0200"
