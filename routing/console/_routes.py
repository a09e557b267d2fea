"""The routing page: the active table, its diff to the previous one, explain, adding a rule.

The active table is what ``current`` in the ``routes`` bucket names; the previous one is
the pointer's prior revision (the bucket keeps ten), whose snapshot the store keeps while
it is among the last three. Explain is ``Resolver.explain`` on the active table, with an
AGS turned into its Gemeinde's ARS the way the hub does (``table.live.region_as_ars``).
Adding a rule publishes a new snapshot with compare-and-set on the revision the operator
saw: two operators editing at once cannot overwrite each other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError

from poststelle.routing.table.files import TableDiff, diff
from poststelle.routing.table.live import ags_index, region_as_ars
from poststelle.routing.table.resolver import Resolution, Resolver, RouteQuery, compile_table
from poststelle.routing.table.rules import RouteTable, RouteTableError, Rule, Tenant
from poststelle.routing.table.store import (
    POINTER_KEY,
    RouteTableStore,
    SnapshotPointer,
    StoredTable,
)

__all__ = ["ActiveTable", "RoutesCache", "add_rule", "explain_query"]

log = logging.getLogger(__name__)

RULE_FORM_FIELDS = ("ars", "leistung", "standard", "message_type", "reader", "channel")


@dataclass(frozen=True)
class ActiveTable:
    stored: StoredTable
    resolver: Resolver
    previous: SnapshotPointer | None
    changes: TableDiff | None  # ``None``: no previous table, or its snapshot is gone
    previous_problem: str = ""


class RoutesCache:
    """The active table compiled once per snapshot, not once per page view."""

    def __init__(self) -> None:
        self._active: ActiveTable | None = None

    async def active(self, js: JetStreamContext) -> ActiveTable | None:
        store = await RouteTableStore.open(js)
        found = await store.read_pointer()
        if found is None:
            return None
        pointer, revision = found
        cached = self._active
        if cached is not None and cached.stored.pointer == pointer:
            return cached
        table = await store.fetch(pointer)
        previous, changes, problem = await _previous(store, pointer, table)
        self._active = ActiveTable(
            StoredTable(table, pointer, revision), compile_table(table), previous, changes, problem
        )
        return self._active


async def _previous(
    store: RouteTableStore, pointer: SnapshotPointer, table: RouteTable
) -> tuple[SnapshotPointer | None, TableDiff | None, str]:
    try:
        history = await store.kv.history(POINTER_KEY)
    except NotFoundError:
        return None, None, ""
    pointers = []
    for entry in history:
        if entry.value:
            try:
                pointers.append(SnapshotPointer.from_bytes(entry.value))
            except RouteTableError:
                continue
    older = [p for p in pointers if p.sequence < pointer.sequence]
    if not older:
        return None, None, ""
    previous = max(older, key=lambda p: p.sequence)
    try:
        before = await store.fetch(previous)
    except RouteTableError as error:
        return previous, None, "; ".join(error.problems)
    return previous, diff(before, table), ""


def _blank(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def explain_query(resolver: Resolver, form: dict[str, str]) -> Resolution:
    """``form``: standard, message_type, region (ARS or AGS), leistung, reader, channel, at."""
    region = _blank(form.get("region"))
    at_text = _blank(form.get("at"))
    query = RouteQuery(
        leistung=_blank(form.get("leistung")),
        ars=region_as_ars(region, ags_index(resolver)),
        standard=_blank(form.get("standard")),
        message_type=_blank(form.get("message_type")),
        reader=_blank(form.get("reader")),
        channel=_blank(form.get("channel")),
        at=date.fromisoformat(at_text) if at_text else None,
    )
    return resolver.explain(query)


async def add_rule(
    js: JetStreamContext, form: dict[str, str], *, expected_revision: int, actor: str
) -> StoredTable:
    """Publish the active table plus one rule. A tenant or back end the table does not
    declare yet is declared with it. Raises ``RouteTableError`` with the problems."""
    store = await RouteTableStore.open(js)
    current = await store.load()
    table = current.table if current is not None else RouteTable()
    fields: dict[str, Any] = {name: _blank(form.get(name)) for name in RULE_FORM_FIELDS}
    fields["tenant"] = (form.get("tenant") or "").strip()
    fields["backend"] = (form.get("backend") or "").strip()
    priority = (form.get("priority") or "").strip()
    fields["priority"] = priority or 0
    note = _blank(form.get("note"))
    fields["note"] = note or f"added in the console by {actor}"
    try:
        rule = Rule(**fields)
    except ValidationError as error:
        raise RouteTableError(
            [f"{'.'.join(str(p) for p in e['loc']) or 'rule'}: {e['msg']}" for e in error.errors()]
        ) from None
    tenants = dict(table.tenants)
    declared = tenants.get(rule.tenant)
    try:
        if declared is None:
            tenants[rule.tenant] = Tenant(id=rule.tenant, backends=(rule.backend,))
        elif rule.backend not in declared.backends:
            tenants[rule.tenant] = declared.model_copy(
                update={"backends": (*declared.backends, rule.backend)}
            )
        new_table = RouteTable(tenants=tenants, rules=(*table.rules, rule))
    except ValidationError as error:
        raise RouteTableError([str(e["msg"]) for e in error.errors()]) from None
    published = await store.publish(new_table, expected_revision=expected_revision)
    log.info(
        "console added a rule by=%s rule=%s snapshot=%s",
        actor,
        rule.describe(),
        published.pointer.snapshot,
    )
    return published
