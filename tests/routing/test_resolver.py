from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from poststelle.routing.table.resolver import RouteQuery, compile_table, specificity
from poststelle.routing.table.rules import RouteTableError

from .helpers import BAUGENEHMIGUNG, GEWERBE, KIEL, LUEBECK, table

LAND = {"tenant": "land-sh", "backend": "fallback", "ars": "01"}
KIEL_ANY = {"tenant": "kiel", "backend": "dms", "ars": KIEL}
KIEL_BAU = {"tenant": "kiel", "backend": "bauamt", "ars": KIEL, "leistung": BAUGENEHMIGUNG}
LUEBECK_BAU = {
    "tenant": "luebeck",
    "backend": "bauamt",
    "ars": LUEBECK,
    "leistung": BAUGENEHMIGUNG,
}


def test_most_specific_rule_wins_and_explains_why() -> None:
    resolver = compile_table(table(LAND, KIEL_ANY, KIEL_BAU, LUEBECK_BAU))
    query = RouteQuery(leistung=BAUGENEHMIGUNG, ars=KIEL)
    fast = resolver.resolve(query)
    explained = resolver.explain(query)
    assert (fast.tenant, fast.backend) == ("kiel", "bauamt")
    assert explained.rule == fast.rule
    assert [c.rule.backend for c in explained.candidates] == ["bauamt", "dms", "fallback"]
    assert explained.decided_by == "Leistung: specific > any"


def test_kiel_never_reaches_luebeck() -> None:
    resolver = compile_table(table(KIEL_BAU, LUEBECK_BAU))
    assert resolver.resolve(RouteQuery(leistung=BAUGENEHMIGUNG, ars=KIEL)).tenant == "kiel"
    assert resolver.resolve(RouteQuery(leistung=BAUGENEHMIGUNG, ars=LUEBECK)).tenant == "luebeck"
    assert not resolver.resolve(RouteQuery(leistung=GEWERBE, ars=KIEL)).routed


def test_longer_prefix_beats_specific_leistung() -> None:
    land_bau = {**LAND, "leistung": BAUGENEHMIGUNG}
    resolver = compile_table(table(land_bau, KIEL_ANY))
    explained = resolver.explain(RouteQuery(leistung=BAUGENEHMIGUNG, ars=KIEL))
    assert explained.backend == "dms"
    assert explained.decided_by == "ARS prefix length: 12 (Gemeinde) > 2 (Land)"


@pytest.mark.parametrize(
    ("extra", "query_extra", "criterion"),
    [
        (
            {"standard": "xbau", "message_type": "baugenehmigung.antrag.0200"},
            {"standard": "xbau", "message_type": "baugenehmigung.antrag.0200"},
            "standard/message type: standard+message type > any",
        ),
        ({"reader": "bau:010020000000"}, {"reader": "bau:010020000000"}, "reader: specific > any"),
        ({"channel": "xta"}, {"channel": "xta"}, "channel: specific > any"),
        ({"priority": 5}, {}, "priority: 5 > 0"),
    ],
)
def test_each_later_criterion_decides(
    extra: dict[str, object], query_extra: dict[str, Any], criterion: str
) -> None:
    special = {**KIEL_BAU, "backend": "dms", **extra}
    resolver = compile_table(table(KIEL_BAU, special))
    explained = resolver.explain(RouteQuery(leistung=BAUGENEHMIGUNG, ars=KIEL, **query_extra))
    assert explained.backend == "dms"
    assert explained.decided_by == criterion
    assert resolver.resolve(explained.query).rule == explained.rule


def test_constraint_not_met_means_not_a_candidate() -> None:
    special = {**KIEL_BAU, "backend": "dms", "channel": "xta"}
    resolver = compile_table(table(KIEL_BAU, special))
    explained = resolver.explain(RouteQuery(leistung=BAUGENEHMIGUNG, ars=KIEL, channel="portal"))
    assert explained.backend == "bauamt"
    assert explained.decided_by == "only matching rule"


def test_message_level_outranks_reader() -> None:
    by_type = {**KIEL_BAU, "standard": "xbau", "message_type": "baugenehmigung.antrag.0200"}
    by_reader = {**KIEL_BAU, "backend": "dms", "reader": "bau:010020000000"}
    resolver = compile_table(table(by_reader, by_type))
    query = RouteQuery(
        leistung=BAUGENEHMIGUNG,
        ars=KIEL,
        standard="xbau",
        message_type="baugenehmigung.antrag.0200",
        reader="bau:010020000000",
    )
    winner = resolver.resolve(query).rule
    assert winner is not None and winner.backend == "bauamt"
    assert specificity(winner) == (12, 1, 2, 0, 0, 0)


def test_ties_are_rejected_at_compile() -> None:
    twin = {**KIEL_BAU, "backend": "dms"}
    with pytest.raises(RouteTableError, match="rules tie") as caught:
        compile_table(table(KIEL_BAU, twin))
    assert len(caught.value.problems) == 1


def test_same_criteria_with_disjoint_validity_is_a_merger_not_a_tie() -> None:
    old = {**KIEL_BAU, "valid_until": "2027-01-01"}
    new = {**KIEL_BAU, "backend": "dms", "valid_from": "2027-01-01"}
    resolver = compile_table(table(old, new))
    query = RouteQuery(leistung=BAUGENEHMIGUNG, ars=KIEL, at=date(2026, 12, 31))
    assert resolver.resolve(query).backend == "bauamt"
    later = RouteQuery(leistung=BAUGENEHMIGUNG, ars=KIEL, at=date(2027, 1, 1))
    assert resolver.resolve(later).backend == "dms"
    explained = resolver.explain(later)
    assert [c.rule.backend for c in explained.excluded] == ["bauamt"]
    # 23:30 UTC on New Year's Eve is already 2027 in Kiel.
    midnight = RouteQuery(
        leistung=BAUGENEHMIGUNG, ars=KIEL, at=datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    )
    assert resolver.resolve(midnight).backend == "dms"


def test_overlapping_validity_ties() -> None:
    old = {**KIEL_BAU, "valid_until": "2027-02-01"}
    new = {**KIEL_BAU, "backend": "dms", "valid_from": "2027-01-01"}
    with pytest.raises(RouteTableError, match="overlapping validity"):
        compile_table(table(old, new))


def test_expired_only_rule_is_unroutable_with_reason() -> None:
    resolver = compile_table(table({**KIEL_BAU, "valid_until": "2020-01-01"}))
    explained = resolver.explain(RouteQuery(leistung=BAUGENEHMIGUNG, ars=KIEL))
    assert not explained.routed
    assert explained.reason == "unroutable"
    assert "1 outside their validity" in explained.decided_by


@pytest.mark.parametrize("ars", [None, "", "garbage", "0100200000021234", "０１"])
def test_odd_query_regions_fall_back_without_crashing(ars: str | None) -> None:
    everywhere = {"tenant": "land-sh", "backend": "fallback"}
    resolver = compile_table(table(KIEL_ANY, everywhere))
    assert resolver.resolve(RouteQuery(ars=ars)).backend == "fallback"


def test_shorter_query_region_matches_only_shorter_rules() -> None:
    resolver = compile_table(table(LAND, KIEL_ANY))
    assert resolver.resolve(RouteQuery(ars="01002")).backend == "fallback"


def test_explanation_serialises() -> None:
    resolver = compile_table(table(LAND, KIEL_BAU))
    data = resolver.explain(RouteQuery(leistung=BAUGENEHMIGUNG, ars=KIEL, at=date(2026, 5, 1)))
    as_dict = data.to_dict()
    assert as_dict["tenant"] == "kiel"
    assert as_dict["query"]["at"] == "2026-05-01"
    assert len(as_dict["candidates"]) == 2
