"""Validation outcomes: what a schema said about a message, error by error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["LEVELS", "Level", "SchemaError", "ValidationOutcome"]

Status = Literal["valid", "invalid", "not-performed"]
Mode = Literal["lxml", "strict", "schematron"]
# How far a message is checked: parsed only, against its XSD, or against the XSD and then the
# Schematron rules its standard ships (contracts/_schematron.py, docs/schematron.md).
Level = Literal["well-formed", "xsd", "schematron"]
LEVELS: tuple[Level, ...] = ("well-formed", "xsd", "schematron")


@dataclass(frozen=True)
class SchemaError:
    """One finding: where (line, element path) and what; a Schematron finding also names
    the assert (or report) that failed by its ``id``."""

    line: int | None
    path: str | None
    message: str
    id: str | None = None

    def __str__(self) -> str:
        rule = f"[{self.id}] " if self.id else ""
        return f"line {self.line}: {self.path}: {rule}{self.message}"

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"line": self.line, "path": self.path, "message": self.message}
        if self.id is not None:
            found["id"] = self.id
        return found


@dataclass(frozen=True)
class ValidationOutcome:
    """``not-performed`` is not an error: the schema set is simply not registered (yet)."""

    status: Status
    mode: Mode | None = None
    schema: str | None = None
    errors: tuple[SchemaError, ...] = ()
    note: str | None = None

    @property
    def valid(self) -> bool:
        return self.status == "valid"

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "mode": self.mode,
            "schema": self.schema,
            "errors": [e.as_dict() for e in self.errors],
            "note": self.note,
        }
