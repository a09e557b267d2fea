from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from poststelle.routing.table.files import (
    diff,
    dump_csv,
    dump_yaml,
    load_table,
    load_tenants,
    parse_csv,
    parse_yaml,
)
from poststelle.routing.table.resolver import RouteQuery, compile_table
from poststelle.routing.table.rules import RouteTable, RouteTableError

from .helpers import BAUGENEHMIGUNG, KIEL, LUEBECK

DATA = Path(__file__).with_name("data")


def test_operator_yaml_loads_without_quoting() -> None:
    table = load_table(DATA / "sh.yaml")
    assert [rule.ars for rule in table.rules] == ["01", KIEL, KIEL, LUEBECK]
    assert table.rules[2].leistung is None
    assert table.rules[3].valid_from == date(2026, 1, 1)
    assert table.tenants["kiel"].name == "Landeshauptstadt Kiel"
    resolved = compile_table(table).resolve(RouteQuery(leistung=BAUGENEHMIGUNG, ars=KIEL))
    assert (resolved.tenant, resolved.backend) == ("kiel", "bauamt")


def test_yaml_and_csv_round_trip() -> None:
    table = load_table(DATA / "sh.yaml")
    assert parse_yaml(dump_yaml(table)) == table
    assert parse_csv(dump_csv(table), table.tenants) == table


def test_semicolon_csv_with_comments(tmp_path: Path) -> None:
    path = tmp_path / "rules.csv"
    path.write_text(
        "# exported from a spreadsheet\ntenant;backend;ars;leistung\n"
        f"kiel;bauamt;{KIEL};{BAUGENEHMIGUNG}\nkiel;dms;{KIEL};\n",
        encoding="utf-8-sig",
    )
    table = load_table(path, tenants=load_tenants(DATA / "sh.yaml"))
    assert [(r.backend, r.leistung) for r in table.rules] == [
        ("bauamt", BAUGENEHMIGUNG),
        ("dms", None),
    ]


def test_yaml_can_pull_rules_from_csv(tmp_path: Path) -> None:
    (tmp_path / "more.csv").write_text(f"tenant,backend,ars\nluebeck,bauamt,{LUEBECK}\n")
    (tmp_path / "t.yaml").write_text(
        "tenants:\n  luebeck: {backends: [bauamt]}\nrules_csv: more.csv\n"
    )
    assert load_table(tmp_path / "t.yaml").rules[0].ars == LUEBECK


def test_csv_needs_tenants(tmp_path: Path) -> None:
    path = tmp_path / "rules.csv"
    path.write_text("tenant,backend\nkiel,dms\n")
    with pytest.raises(RouteTableError, match="--tenants"):
        load_table(path)


def test_every_problem_is_reported_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(
        "tenant,backend,ars\n"
        "kiel,dms,0100\n"  # line 2: not a level boundary
        "kiel,dms\n"  # line 3: short row
        "kiehl,dms,01\n"  # line 4: unknown tenant (reported once the rows parse)
    )
    with pytest.raises(RouteTableError) as caught:
        load_table(path, tenants=load_tenants(DATA / "sh.yaml"))
    problems = caught.value.problems
    assert any("line 2: ars:" in p and "level boundary" in p for p in problems)
    assert any("line 3" in p and "2 cells for 3 columns" in p for p in problems)
    assert len(problems) == 2


def test_unknown_tenant_message_from_file(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(
        "tenants:\n  kiel: {backends: [bauamt]}\nrules:\n  - {tenant: kiehl, backend: bauamt}\n"
    )
    with pytest.raises(RouteTableError, match="unknown tenant 'kiehl'; did you mean 'kiel'"):
        load_table(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tenants: [a, b]\n", "'tenants' must be a mapping"),
        ("rules: {a: 1}\n", "'rules' must be a list"),
        ("routes: []\n", "unknown top-level keys: routes"),
        ("rules: [\n", "not valid YAML"),
        ("- just a list\n", "expected a mapping"),
        ("rules:\n  - plain text\n", "expected a mapping of rule fields"),
        ("tenants:\n  Kiel: {backends: [bauamt]}\n", "not a valid id"),
        ("tenants:\n  kiel: {backends: []}\n", "at least 1 item"),
        ("rules:\n  - {tenant: kiel, backend: dms, colour: red}\n", "colour: unknown field"),
    ],
)
def test_bad_yaml_gets_clear_errors(text: str, message: str) -> None:
    with pytest.raises(RouteTableError, match=message):
        parse_yaml(text)


def test_missing_file_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(RouteTableError, match="cannot read"):
        load_table(tmp_path / "absent.yaml")
    (tmp_path / "t.json").write_text("{}")
    with pytest.raises(RouteTableError, match="unknown format"):
        load_table(tmp_path / "t.json")


def test_diff_reports_added_changed_removed() -> None:
    old = load_table(DATA / "sh.yaml")
    land, kiel_bau, kiel_any, _luebeck = old.rules
    # Kiel's catch-all moves to the Bauamt, Lübeck's rule goes, two rules arrive.
    land_bau = replace(land, leistung="99066005001001")
    other = replace(kiel_any, ars="010030000004", tenant="luebeck", backend="bauamt")
    moved = replace(kiel_any, backend="bauamt")
    edited = RouteTable(tenants=old.tenants, rules=(land, land_bau, kiel_bau, moved, other))
    result = diff(old, edited)
    assert [r.ars for r in result.added] == ["01", "010030000004"]
    assert [(a.backend, b.backend) for a, b in result.changed] == [("dms", "bauamt")]
    assert [r.ars for r in result.removed] == [LUEBECK]
    assert result.summary() == "rules: +2 ~1 -1; tenants: +0 ~0 -0"
    assert f"~ {kiel_any.key}: backend: dms -> bauamt" in result.lines()
    assert diff(old, old).empty
