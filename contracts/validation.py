"""Validation outcomes: what a schema said about a message, error by error."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["SchemaError", "ValidationOutcome"]

Status = Literal["valid", "invalid", "not-performed"]
Mode = Literal["lxml", "strict"]


@dataclass(frozen=True)
class SchemaError:
    """One finding: where (line, element path) and what."""

    line: int | None
    path: str | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.path}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "path": self.path, "message": self.message}


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
