from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from poststelle.routing.table.rules import RULE_FIELDS, Rule, rules_from_rows, validate_ars_prefix

from .helpers import BAUGENEHMIGUNG, KIEL, table


@pytest.mark.parametrize("prefix", ["01", "091", "01002", "010025001", KIEL])
def test_level_boundary_prefixes_are_accepted(prefix: str) -> None:
    assert validate_ars_prefix(prefix) == prefix


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        ("0100", "level boundary"),
        ("0100200000021", "level boundary"),
        ("17", "Land code"),
        ("00002", "Land code"),
        ("01a02", "digits only"),
        ("０１", "digits only"),
    ],
)
def test_malformed_prefixes_are_rejected(prefix: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_ars_prefix(prefix)


def test_any_spellings_mean_no_constraint() -> None:
    rule = Rule(tenant="kiel", backend="bauamt", leistung="*", ars="", reader="any")
    assert (rule.leistung, rule.ars, rule.reader) == (None, None, None)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("leistung", "9906600500100"),
        ("reader", "no-colon"),
        ("tenant", "Kiel"),
        ("backend", "bau.amt"),
        ("channel", "x y"),
        ("tenant", "a>b"),
    ],
)
def test_malformed_fields_are_rejected(field: str, value: str) -> None:
    data: dict[str, Any] = {"tenant": "kiel", "backend": "bauamt", field: value}
    with pytest.raises(ValidationError, match=field):
        Rule(**data)


def test_message_type_needs_standard() -> None:
    with pytest.raises(ValidationError, match="must also name its standard"):
        Rule(tenant="kiel", backend="bauamt", message_type="baugenehmigung.antrag.0200")


def test_validity_must_not_be_empty() -> None:
    with pytest.raises(ValidationError, match="must be after"):
        Rule(
            tenant="kiel",
            backend="bauamt",
            valid_from=date(2027, 1, 1),
            valid_until=date(2027, 1, 1),
        )


def test_unknown_tenant_is_rejected_with_suggestion() -> None:
    with pytest.raises(ValidationError, match="unknown tenant 'kiehl'; did you mean 'kiel'"):
        table({"tenant": "kiehl", "backend": "bauamt", "ars": KIEL})


def test_unknown_backend_is_rejected_with_suggestion() -> None:
    with pytest.raises(ValidationError, match=r"no back end 'bauamd'.*did you mean 'bauamt'"):
        table({"tenant": "kiel", "backend": "bauamd", "ars": KIEL})


def test_valid_table_keeps_rules() -> None:
    built = table({"tenant": "kiel", "backend": "dms", "ars": KIEL, "leistung": BAUGENEHMIGUNG})
    assert built.tenants["kiel"].backends == ("bauamt", "dms")
    assert built.rules[0].key.startswith(f"leistung={BAUGENEHMIGUNG} ars={KIEL}")


GOOD_ROWS = [
    {"tenant": "kiel", "backend": "bauamt", "ars": KIEL, "leistung": BAUGENEHMIGUNG},
    {"tenant": "kiel", "backend": "dms", "ars": " 01 ", "leistung": "*", "priority": "-3"},
    {
        "tenant": "kiel",
        "backend": "dms",
        "standard": "xbau",
        "message_type": "a.b",
        "reader": "bau:010020000000",
        "channel": "xta",
        "valid_from": "2026-01-01",
        "valid_until": "2027-01-01",
        "note": "x",
    },
]
BAD_ROWS = [
    {"tenant": "Kiel", "backend": "bauamt"},
    {"tenant": "kiel", "backend": "bauamt", "ars": "0100"},
    {"tenant": "kiel", "backend": "bauamt", "leistung": "123"},
    {"tenant": "kiel", "backend": "bauamt", "message_type": "a.b"},
    {
        "tenant": "kiel",
        "backend": "bauamt",
        "valid_from": "2027-01-01",
        "valid_until": "2026-01-01",
    },
    {"tenant": "kiel", "backend": "bauamt", "reader": "nocolon", "channel": "a b"},
    {"tenant": "kiel", "backend": "bauamt", "note": "two\nlines"},
    {"tenant": "kiel", "backend": "bauamt", "priority": "high"},
]


def test_bulk_rows_give_the_same_rules_as_keyword_construction() -> None:
    columns = RULE_FIELDS
    rows = [[row.get(c) for c in columns] for row in GOOD_ROWS]
    rules, problems = rules_from_rows(columns, rows, lambda i: f"row {i}")
    assert problems == []
    assert rules == [Rule(**row) for row in GOOD_ROWS]
    assert rules[1].ars == "01" and rules[1].leistung is None and rules[1].priority == -3


@pytest.mark.parametrize("row", BAD_ROWS)
def test_bulk_rows_are_refused_like_keyword_construction(row: dict[str, Any]) -> None:
    columns = RULE_FIELDS
    rules, problems = rules_from_rows(columns, [[row.get(c) for c in columns]], lambda i: "row")
    assert rules == []
    with pytest.raises(ValidationError) as caught:
        Rule(**row)
    expected = [str(e["msg"]).removeprefix("Value error, ") for e in caught.value.errors()]
    assert problems == [f"row: {'; '.join(expected)}"]


def test_bulk_rows_reject_unknown_columns_short_rows_and_missing_target() -> None:
    _, problems = rules_from_rows(["tenant", "colour"], [], lambda i: f"row {i}")
    assert problems and "unknown columns colour" in problems[0]
    _, problems = rules_from_rows(["tenant", "backend"], [["kiel"], ["kiel", ""]], str)
    assert problems == ["0: 1 cells for 2 columns", "1: backend: field required"]
