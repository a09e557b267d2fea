"""Case trace: find a case by any id an operator may be given, then its hops in order.

What an operator has in hand and how it leads to the case:

- the case id: the ``AUDIT`` subject ``audit.<case id>``;
- an XÖV ``nachrichtenUUID``: the case id is derived from it and the standard's namespace
  (``contracts.message_identity``), so each known namespace gives one candidate to look up;
- an XTA MessageID (or an HTTP Idempotency-Key), an OZG ``transactionId`` or a
  ``vorgangNummer``: these are facts of the ``received`` hop (the number is derived from the
  case id), found by reading the newest ``SCAN_WINDOW`` audit records. Older arrivals are
  found by their case id or nachrichtenUUID; the page says how far the scan reached.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from poststelle.adapters._ozg import vorgang_nummer
from poststelle.contracts.envelope import audit_subject, safe_token
from poststelle.contracts.events import deterministic_case_id
from poststelle.routing.ops.audit import AuditEntry, AuditTrail
from poststelle.routing.ops.parked import walk_parked
from poststelle.routing.streams.topology import AUDIT, CASES_BUCKET

__all__ = ["SCAN_WINDOW", "CaseTrace", "Search", "find_cases", "load_trace"]

SCAN_WINDOW = 20_000
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_MAX_QUERY = 200


@dataclass(frozen=True)
class Search:
    query: str
    cases: list[tuple[str, str]]  # (case id, how it was found)
    scanned: int  # audit records read by the scan (0: not needed)


async def _has_trail(js: JetStreamContext, case_id: str) -> bool:
    try:
        info = await js.stream_info(AUDIT, subjects_filter=audit_subject(case_id))
    except NotFoundError:
        return False
    return bool((info.state.subjects or {}).get(audit_subject(case_id)))


async def find_cases(js: JetStreamContext, query: str, namespaces: list[str]) -> Search:
    text = query.strip()[:_MAX_QUERY]
    if not text:
        return Search(text, [], 0)
    candidates: list[tuple[str, str]] = []
    if _UUID.match(text):
        candidates.append((text.lower(), "case id"))
        for namespace in namespaces:
            candidates.append(
                (deterministic_case_id(f"xoev:{namespace}", text), f"nachrichtenUUID ({namespace})")
            )
    found = []
    seen = set()
    for case_id, how in candidates:
        if case_id not in seen and await _has_trail(js, case_id):
            seen.add(case_id)
            found.append((case_id, how))
    if found:
        return Search(text, found, 0)
    return await _scan(js, text)


async def _scan(js: JetStreamContext, text: str) -> Search:
    """The newest audit records' ``received`` hops whose facts name ``text``."""
    try:
        info = await js.stream_info(AUDIT)
    except NotFoundError:
        return Search(text, [], 0)
    last = int(info.state.last_seq or 0)
    number = text.upper()
    found: dict[str, str] = {}
    scanned = 0
    walk = walk_parked(js, AUDIT, after=max(0, last - SCAN_WINDOW), until=last, bodies=True)
    async for record in walk:
        scanned += 1
        try:
            entry = json.loads(record.data)
        except ValueError:
            continue
        if not isinstance(entry, dict) or entry.get("hop") != "received":
            continue
        case_id = str(entry.get("case_id", ""))
        detail = entry.get("detail") or {}
        if detail.get("transport_id") == text:
            found.setdefault(case_id, "transport id (XTA MessageID, Idempotency-Key)")
        elif detail.get("source_message_id") == text:
            found.setdefault(case_id, "source message id")
        elif case_id and vorgang_nummer(case_id) == number:
            found.setdefault(case_id, "vorgangNummer")
    return Search(text, list(found.items()), scanned)


@dataclass(frozen=True)
class CaseTrace:
    case_id: str
    entries: list[AuditEntry]
    record: dict[str, Any] | None

    @property
    def vorgang_nummer(self) -> str:
        return vorgang_nummer(self.case_id)


async def load_trace(js: JetStreamContext, case_id: str) -> CaseTrace:
    entries = await AuditTrail(js).read(case_id)
    record = None
    try:
        kv = await js.key_value(CASES_BUCKET)
        stored = await kv.get(safe_token(case_id))
        if stored.value:
            loaded = json.loads(stored.value)
            record = loaded if isinstance(loaded, dict) else None
    except (NotFoundError, ValueError):
        record = None
    return CaseTrace(case_id, entries, record)
