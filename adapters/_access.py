"""Who may do what, once a key has named its holder (``_apikey.Caller``).

Portals submit and read the cases they submitted; back ends reply to (and read) the cases
routed to them. ``None`` is the caller when no key is configured: everything is open then.
Whether a back end may reply to a case is decided by the reply intake, which checks it for
every way a reply comes in (HTTP, file drop).
"""

from __future__ import annotations

from typing import Any

from poststelle.adapters._apikey import Caller
from poststelle.adapters._problem import ProblemError
from poststelle.contracts.envelope import H_PORTAL

__all__ = [
    "Forbidden",
    "check_may_read",
    "portal_headers",
    "replying_backend",
    "submitting_portal",
]


class Forbidden(ProblemError):
    """A valid key, but not for this: another portal's case, another back end's case, or
    the wrong kind of key for the route."""

    def __init__(self, detail: str) -> None:
        super().__init__(403, "Forbidden", detail)


def submitting_portal(caller: Caller | None) -> str | None:
    """The portal submitting; a back end's key cannot submit."""
    if caller is None:
        return None
    if caller.kind != "portal":
        raise Forbidden("submissions need a portal's key, not a back end's")
    return caller.name


def portal_headers(portal: str | None) -> dict[str, str]:
    """What a submission carries into the hub so the case registry remembers its portal."""
    return {H_PORTAL: portal} if portal else {}


def replying_backend(caller: Caller | None) -> tuple[str, str] | None:
    """The back end replying as ``(tenant, backend)``; a portal's key cannot reply."""
    if caller is None:
        return None
    if caller.kind != "backend":
        raise Forbidden("replies need the back end's key, not a portal's")
    return caller.backend


def check_may_read(caller: Caller | None, record: dict[str, Any]) -> None:
    """A portal reads the cases it submitted, a back end those routed to it."""
    if caller is None:
        return
    if caller.kind == "portal" and record.get("portal") == caller.name:
        return
    if caller.kind == "backend" and caller.backend == (record.get("tenant"), record.get("backend")):
        return
    raise Forbidden(f"case {record.get('case_id')!r} is not one of {caller.name}'s cases")
