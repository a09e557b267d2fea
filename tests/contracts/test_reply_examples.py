"""The reply contract: the committed JSON Schema is the model's, and every example under
``examples/replies/`` is a valid reply by both, one per kind, that the hub can answer in XBau."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import jsonschema
import pytest
from lxml import etree

from poststelle.contracts.answers import ReplyContent, build_answer
from poststelle.contracts.replies import (
    CASE_REPLY_SCHEMA_PATH,
    CaseReply,
    case_reply_json_schema,
    reply_event,
)

from .conftest import REPO_ROOT
from .test_answers import _answered, schemas  # noqa: F401  (schemas is a fixture)

EXAMPLES = REPO_ROOT / "examples" / "replies"
KINDS = get_args(ReplyContent.model_fields["kind"].annotation)


def _examples() -> list[Path]:
    return sorted(EXAMPLES.glob("*.json"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(CASE_REPLY_SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_committed_reply_schema_matches_the_model() -> None:
    committed = json.loads(CASE_REPLY_SCHEMA_PATH.read_text(encoding="utf-8"))
    assert committed == case_reply_json_schema(), (
        "contracts/case-reply.schema.json is stale: run 'poststelle schema --reply --write'"
    )


def test_every_reply_field_is_described() -> None:
    schema = case_reply_json_schema()
    undocumented = [
        f"{name}.{field}"
        for name, model in [("CaseReply", schema), *schema["$defs"].items()]
        for field, spec in model.get("properties", {}).items()
        if not spec.get("description")
    ]
    assert undocumented == []


def test_there_is_an_example_per_kind() -> None:
    kinds = [json.loads(path.read_text(encoding="utf-8"))["kind"] for path in _examples()]
    assert sorted(kinds) == sorted(KINDS)
    assert [path.stem for path in _examples()] == sorted(KINDS)


@pytest.mark.parametrize("path", _examples(), ids=lambda path: path.stem)
def test_example_is_valid_by_model_and_schema(
    path: Path, validator: jsonschema.Draft202012Validator
) -> None:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []
    # extra="forbid": a misspelt field is an error, not silently dropped.
    assert CaseReply.model_validate(document).kind == path.stem


@pytest.mark.parametrize("path", _examples(), ids=lambda path: path.stem)
def test_example_becomes_a_valid_xbau_answer(
    path: Path,
    schemas: dict[str, etree.XMLSchema],  # noqa: F811
) -> None:
    reply = CaseReply.model_validate_json(path.read_bytes())
    # A receipt may only acknowledge message types of its code list, 0201 among them.
    answered = _answered("0201" if reply.kind == "receipt" else "0200")
    root = etree.fromstring(build_answer(reply_event("case-1", reply, answered)))
    schema = schemas[
        "xbau-nachrichten-baugenehmigung.xsd"
        if reply.kind in ("status", "decision")
        else "xbau-kernmodul-prozessnachrichten.xsd"
    ]
    assert schema.validate(root), [f"{e.line}: {e.message}" for e in schema.error_log]


@pytest.mark.parametrize(
    "document",
    [
        {"kind": "verdict"},
        {"kind": "status", "case_id": "c-1"},  # the case id is the path's or the file's
        {"kind": "decision", "ist_genehmigung": "ja"},
        {"kind": "status", "frist": "15.04.2026"},
    ],
    ids=["unknown-kind", "case-id-in-body", "not-a-boolean", "not-a-date"],
)
def test_schema_and_model_refuse_the_same_bad_replies(
    document: dict[str, Any], validator: jsonschema.Draft202012Validator
) -> None:
    assert list(validator.iter_errors(document))
    with pytest.raises(ValueError):
        CaseReply.model_validate(document)
