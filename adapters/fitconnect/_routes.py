"""Destination discovery as the FIT-Connect Routing API describes it (``routing-api.yaml``,
version 2.0.0): ``GET /routes?leikaKey=…&ars=…`` names the destinations that take a service
for a region, so a portal finds where to send.

The hub answers for the destinations it runs (its ``fitconnect`` inbound adapters) from its own
routing table: the caller (``routing/hub``) passes a ``lookup`` that resolves Leistung and ARS
to the destinations responsible. Each route carries ``destinationSignature``: a PS512 JWS by the
destination's signing key over its addressing facts (submission host, services with their
areas and Leistungen, destination id), as the Routing API's signed addressing information.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from poststelle.adapters.fitconnect._crypto import sign

__all__ = [
    "ROUTING_API_VERSION",
    "RouteLookup",
    "RoutedDestination",
    "routing_api",
]

ROUTING_API_VERSION = {"major": 2, "minor": 0, "patch": 0}
_LEIKA = "urn:de:fim:leika:leistung:"
_AREA = "urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:rs:"
_ARS_LENGTHS = frozenset({2, 3, 5, 9, 12})
_MAX_LIMIT = 500


@dataclass(frozen=True, slots=True)
class RoutedDestination:
    """A destination of this hub as a routing answer names it."""

    destination_id: str
    submission_url: str
    signing_key: Any
    name: str

    def route(self, leika_key: str, ars: str) -> dict[str, Any]:
        host = urlsplit(self.submission_url).netloc
        claims = {
            "submissionHost": host,
            "iss": "poststelle",
            "services": [{"gebietIDs": [_AREA + ars], "leistungIDs": [_LEIKA + leika_key]}],
            "destinationId": self.destination_id,
            "iat": int(time.time()),
            "jti": str(uuid.uuid4()),
        }
        return {
            "destinationId": self.destination_id,
            "destinationSignature": sign(claims, self.signing_key, typ="JWT"),
            "destinationName": self.name,
            "origin": "Poststelle",
        }


# (leikaKey, ars) -> the destinations responsible, most specific first.
RouteLookup = Callable[[str, str], Sequence[RoutedDestination]]


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/problem+json",
    )


def _int(value: str | None, default: int, low: int, high: int) -> int | None:
    if value is None:
        return default
    if not value.isdigit() or not low <= int(value) <= high:
        return None
    return int(value)


def routing_api(lookup: RouteLookup) -> APIRouter:
    """``/routes`` and ``/info`` of the Routing API (mount under a prefix such as
    ``/fitconnect/v1``, the API's base path being ``…/v1``)."""
    router = APIRouter(tags=["FIT-Connect routing"])

    @router.get("/routes", summary="Destinations for a Leistung and a region (Routing API)")
    async def routes(request: Request) -> JSONResponse:
        query = request.query_params
        leika = query.get("leikaKey", "")
        if not (len(leika) == 14 and leika.isdigit() and leika.startswith("99")):
            return _problem(400, "Bad Request", "leikaKey must be a Leistungsschlüssel (99 + 12)")
        areas = [name for name in ("ars", "ags", "areaId") if name in query]
        if len(areas) != 1:
            return _problem(400, "Bad Request", "give exactly one of ars, ags and areaId")
        if areas != ["ars"]:
            # The routing table is keyed by ARS; an AGS lacks the Gemeindeverband digits.
            return _problem(400, "Bad Request", f"{areas[0]} is not supported here, give ars")
        ars = query["ars"]
        if not (ars.isdigit() and len(ars) in _ARS_LENGTHS):
            return _problem(400, "Bad Request", "ars must have 2, 3, 5, 9 or 12 digits")
        offset = _int(query.get("offset"), 0, 0, 1_000_000)
        limit = _int(query.get("limit"), 100, 1, _MAX_LIMIT)
        if offset is None or limit is None:
            return _problem(400, "Bad Request", "offset >= 0, 1 <= limit <= 500")
        found = list(lookup(leika, ars))
        page = [d.route(leika, ars) for d in found[offset : offset + limit]]
        return JSONResponse(
            {"count": len(page), "offset": offset, "totalCount": len(found), "routes": page}
        )

    @router.get("/info", summary="Routing API version")
    async def info() -> dict[str, Any]:
        return {"version": ROUTING_API_VERSION}

    return router
