"""Routing-table files an attacker (or a slip of the keyboard) made: each is refused with a
``RouteTableError`` quickly and in bounded memory, found by ``python -m fuzz``."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from poststelle.routing.table.files import (
    MAX_ALIAS_NODES,
    load_table,
    load_tenants,
    parse_csv,
    parse_yaml,
)
from poststelle.routing.table.resolver import compile_table
from poststelle.routing.table.rules import RouteTableError, Tenant

TENANTS = {"kiel": Tenant(id="kiel", backends=["bauamt", "dms"])}


def _alias_bomb(levels: int) -> str:
    lines = ["rules:", " - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f" - &a{n} [{', '.join(f'*a{n - 1}' for _ in range(9))}]" for n in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_it_is_expanded() -> None:
    # Nine levels of nine aliases: 387 million nodes once expanded; before the bound, a
    # problem message quoting the expanded rules filled 24 GB and the process was killed.
    began = time.perf_counter()
    with pytest.raises(RouteTableError, match=f"aliases expand to more than {MAX_ALIAS_NODES}"):
        parse_yaml(_alias_bomb(9))
    assert time.perf_counter() - began < 1.0


def test_a_self_referencing_alias_is_refused() -> None:
    with pytest.raises(RouteTableError):
        parse_yaml("a: &a [*a, *a]\n")


def test_shared_backend_lists_by_alias_still_load() -> None:
    table = parse_yaml(
        "tenants:\n"
        "  kiel: {backends: &shared [bauamt, dms]}\n"
        "  luebeck: {backends: *shared}\n"
        "rules:\n"
        "  - {ars: '01002', tenant: kiel, backend: dms}\n"
    )
    assert table.tenants["luebeck"].backends == table.tenants["kiel"].backends


def test_a_rule_that_is_no_mapping_is_named_without_quoting_it_whole() -> None:
    with pytest.raises(RouteTableError) as refused:
        parse_yaml("rules:\n  - [" + ", ".join(["x" * 50] * 1000) + "]\n")
    assert "expected a mapping of rule fields, got list" in str(refused.value)
    assert len(str(refused.value)) < 200


def test_rules_csv_naming_a_device_is_not_read(tmp_path: Path) -> None:
    table = tmp_path / "table.yaml"
    table.write_text("tenants: {}\nrules_csv: /dev/zero\n")
    with pytest.raises(RouteTableError, match="rules_csv /dev/zero: not a regular file"):
        load_table(table)


def test_rules_csv_naming_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "rules.csv")
    table = tmp_path / "table.yaml"
    table.write_text("tenants: {}\nrules_csv: rules.csv\n")
    with pytest.raises(RouteTableError, match=r"rules\.csv: not a regular file"):
        load_table(table)


def test_a_table_file_over_the_limit_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from poststelle.routing.table import files

    monkeypatch.setattr(files, "MAX_TABLE_CHARS", 100)
    path = tmp_path / "t.yaml"
    path.write_text("tenants: {}\n" + "#" * 200 + "\n")
    with pytest.raises(RouteTableError, match="larger than 100 bytes"):
        load_tenants(path)


def test_crlf_files_read_as_before(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(b"tenant;backend;ars\r\nkiel;bauamt;01002\r\n")
    assert [rule.ars for rule in load_table(path, tenants=TENANTS).rules] == ["01002"]


def test_a_csv_cell_over_the_field_limit_is_a_problem_not_a_crash() -> None:
    with pytest.raises(RouteTableError, match="not valid CSV: field larger than field limit"):
        parse_csv('tenant;backend;note\nkiel;bauamt;"' + "x" * 200_000 + "\n", TENANTS)


@pytest.mark.serial  # timed: run alone, not beside the parallel suite's load
def test_many_identical_rules_give_a_bounded_list_of_ties_quickly() -> None:
    # Every pair was reported: 4,000 copies of one rule made 2.3 GB of problems in 15 s.
    table = parse_csv("tenant;backend\n" + "kiel;bauamt\n" * 20_000, TENANTS)
    began = time.perf_counter()
    with pytest.raises(RouteTableError) as refused:
        compile_table(table)
    assert time.perf_counter() - began < 1.0
    problems = refused.value.problems
    assert len(problems) == 101
    assert problems[-1] == "... and 19899 further rules tie with the rules above"


def test_three_tying_rules_name_each_later_rule_once() -> None:
    table = parse_csv(
        "tenant;backend;valid_from;valid_until\n"
        "kiel;bauamt;2026-01-01;2026-06-01\n"
        "kiel;dms;2026-05-01;2026-07-01\n"
        "kiel;bauamt;2026-08-01;\n"
        "kiel;dms;2026-09-01;2027-01-01\n",
        TENANTS,
    )
    with pytest.raises(RouteTableError) as refused:
        compile_table(table)
    problems = refused.value.problems
    # 1-2 overlap (May), 3-4 overlap (from September); 2-3 and 1-3 do not.
    assert len(problems) == 2
    assert "2026-05-01" in problems[0] and "2026-09-01" in problems[1]
