from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import date

from poststelle.routing.table.generator import (
    LAENDER,
    MERGER_DATE,
    generate_municipalities,
    generate_national_table,
)
from poststelle.routing.table.resolver import RouteQuery, compile_table
from poststelle.routing.table.rules import validate_ars_prefix

from .helpers import GEWERBE


def test_municipalities_follow_the_ars_structure() -> None:
    municipalities = generate_municipalities()
    assert 10_500 <= len(municipalities) <= 11_000
    assert len({m.ars for m in municipalities}) == len(municipalities)
    for municipality in municipalities:
        validate_ars_prefix(municipality.ars)
        assert municipality.ars.startswith(municipality.kreis)
    per_land = Counter(m.ars[:2] for m in municipalities)
    assert per_land == {land.code: land.gemeinden for land in LAENDER}
    ars = {m.ars for m in municipalities}
    assert {"010020000002", "020000000000", "110000000000"} <= ars  # Kiel, Hamburg, Berlin
    # Bayern encodes its seven Regierungsbezirke in the third digit.
    assert {m.ars[2] for m in municipalities if m.ars.startswith("09")} == set("1234567")


def test_generation_is_deterministic() -> None:
    assert generate_municipalities(seed=5) == generate_municipalities(seed=5)
    assert generate_municipalities(seed=5) != generate_municipalities(seed=6)


def test_generated_table_compiles_and_routes() -> None:
    table = generate_national_table(max_rules=40_000)
    assert len(table.rules) == 40_000
    resolver = compile_table(table)
    kiel = resolver.explain(RouteQuery(leistung=GEWERBE, ars="010020000002"))
    assert (kiel.tenant, kiel.backend) == ("g-010020000002", "fv")
    assert resolver.resolve(RouteQuery(leistung=None, ars="010020000002")).tenant == "k-01002"
    assert resolver.resolve(RouteQuery(leistung=GEWERBE, ars="09")).tenant == "land-09"
    merged = [rule for rule in table.rules if rule.valid_from == MERGER_DATE]
    assert merged, "some municipalities merge on the merger date"
    query = RouteQuery(leistung=merged[0].leistung, ars=merged[0].ars, at=date(2027, 6, 1))
    assert resolver.resolve(query).tenant == merged[0].tenant
    earlier = replace(query, at=date(2026, 6, 1))
    assert resolver.resolve(earlier).tenant == f"g-{merged[0].ars}"
