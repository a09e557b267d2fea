"""Small builders shared by the routing tests."""

from __future__ import annotations

from typing import Any

from poststelle.routing.table.rules import RouteTable

KIEL = "010020000002"
LUEBECK = "010030000003"
BAUGENEHMIGUNG = "99066005001000"
GEWERBE = "99050012104000"


def table(*rules: dict[str, Any], tenants: dict[str, Any] | None = None) -> RouteTable:
    declared = tenants or {
        "kiel": {"name": "Landeshauptstadt Kiel", "backends": ["bauamt", "dms"]},
        "luebeck": {"backends": ["bauamt"]},
        "land-sh": {"backends": ["fallback"]},
    }
    return RouteTable.model_validate({"tenants": declared, "rules": list(rules)})
