"""RFC 9457 problem documents, shared by every route of the HTTP intake."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

__all__ = ["PROBLEM_MEDIA_TYPE", "problem", "problem_response_doc"]

PROBLEM_MEDIA_TYPE = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)


def problem_response_doc(description: str) -> dict[str, Any]:
    """An OpenAPI ``responses`` entry for a status answered with a problem document."""
    return {
        "description": description,
        "content": {
            PROBLEM_MEDIA_TYPE: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                    },
                }
            }
        },
    }
