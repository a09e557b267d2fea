"""Quarantine and DLQ for the console: listing with filters, one record in full, replays.

Listing reads headers only (``list_quarantined``, ``list_dead_letters``), in one walk that
also yields the values the filters offer; one record's page
reads its body, from the claim check when it waits in the object store, and shows at most
``MAX_SHOWN_BYTES`` of it. The lines that the validation errors name (``line 12: ...`` in
the record's detail) are marked in the raw view, whose lines are the message's own.
Replays go through ``replay_quarantined`` / ``replay_dead_letters`` with the user as
``actor``: each case's audit trail gets a ``replayed`` hop naming who did it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from lxml import etree
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from poststelle.contracts.envelope import H_DETAIL, H_REASON, H_STEP
from poststelle.contracts.registry import ContractRegistry
from poststelle.routing.ops.dlq import DeadLetter, list_dead_letters, replay_dead_letters
from poststelle.routing.ops.parked import ReplayResult
from poststelle.routing.ops.quarantine import (
    QuarantinedMessage,
    list_quarantined,
    replay_quarantined,
)
from poststelle.routing.streams.claim_check import BodyMissing, body_ref_of, load_body
from poststelle.routing.streams.topology import DLQ, QUARANTINE

__all__ = [
    "MAX_LISTED",
    "MAX_SHOWN_BYTES",
    "Listed",
    "ParkedFilter",
    "ParkedListing",
    "ParkedView",
    "Standards",
    "error_lines",
    "list_dead",
    "list_parked",
    "load_parked",
    "replay_dead",
    "replay_parked",
]

# Pages list this many records at most; the filters narrow what is beyond.
MAX_LISTED = 500
MAX_SHOWN_BYTES = 512 * 1024
_LINE = re.compile(r"\bline (\d+)\b")


class Standards:
    """Which standard a quarantined arrival belongs to, from its dedupe id alone
    (``xoev:<namespace>:<nachrichtenUUID>``): the list reads no bodies."""

    def __init__(self, registry: ContractRegistry) -> None:
        self._by_namespace = {
            namespace: contract.standard
            for contract in registry.contracts
            for namespace in contract.namespaces
        }

    @property
    def namespaces(self) -> dict[str, str]:
        return dict(self._by_namespace)

    def of(self, identity: str) -> str:
        if not identity.startswith("xoev:"):
            return ""
        namespace = identity[len("xoev:") :].rsplit(":", 1)[0]
        return self._by_namespace.get(namespace, "")


@dataclass(frozen=True)
class ParkedFilter:
    reason: str = ""
    standard: str = ""
    channel: str = ""

    def keeps(self, item: QuarantinedMessage, standard: str) -> bool:
        return (
            (not self.reason or item.reason == self.reason)
            and (not self.standard or standard == self.standard)
            and (not self.channel or item.channel == self.channel)
        )


@dataclass(frozen=True)
class Listed:
    item: QuarantinedMessage
    standard: str


@dataclass(frozen=True)
class ParkedListing:
    items: list[Listed]
    more: bool  # more than ``MAX_LISTED`` passed the filter
    # What the filter can choose from: the values present in the whole quarantine.
    reasons: list[str]
    standards: list[str]
    channels: list[str]


async def list_parked(
    js: JetStreamContext, wanted: ParkedFilter, standards: Standards
) -> ParkedListing:
    """The quarantine's records that pass ``wanted``, oldest first, from one walk over the
    headers, which also gives the values each filter offers."""
    everything = [Listed(item, standards.of(item.identity)) for item in await list_quarantined(js)]
    kept = [listed for listed in everything if wanted.keeps(listed.item, listed.standard)]
    return ParkedListing(
        items=kept[:MAX_LISTED],
        more=len(kept) > MAX_LISTED,
        reasons=sorted({listed.item.reason for listed in everything}),
        standards=sorted({listed.standard for listed in everything if listed.standard}),
        channels=sorted({listed.item.channel for listed in everything if listed.item.channel}),
    )


@dataclass(frozen=True)
class ParkedView:
    stream: str
    sequence: int
    subject: str
    headers: dict[str, str]
    step: str
    reason: str
    detail: str
    size: int
    text: str
    truncated: bool
    pretty: str
    format: str
    body_problem: str = ""
    marked: frozenset[int] = field(default_factory=frozenset)

    @property
    def numbered(self) -> list[tuple[int, str, bool]]:
        """(line number, line, named by an error) for the raw view."""
        return [
            (number, line, number in self.marked)
            for number, line in enumerate(self.text.splitlines(), start=1)
        ]


def error_lines(detail: str) -> frozenset[int]:
    """The line numbers a validation detail names (``line 12: /x:a: ...``)."""
    return frozenset(int(n) for n in _LINE.findall(detail) if 0 < int(n) < 10_000_000)


def _pretty(raw: bytes, content_type: str) -> tuple[str, str]:
    """(format, pretty text): XML through a parser that loads nothing, JSON indented; ``""``
    when the body is neither or does not parse (the raw view still shows it)."""
    stripped = raw.lstrip()
    if stripped.startswith((b"{", b"[")) or "json" in content_type:
        try:
            return "json", json.dumps(json.loads(raw), indent=2, ensure_ascii=False)
        except ValueError:
            return "json", ""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
    )
    try:
        root = etree.fromstring(raw, parser)
    except etree.XMLSyntaxError:
        return "xml", ""
    return "xml", etree.tostring(root, pretty_print=True, encoding="unicode")


async def load_parked(js: JetStreamContext, stream: str, sequence: int) -> ParkedView | None:
    """One record of ``QUARANTINE`` or ``DLQ`` with its body; ``None`` when it is gone."""
    if stream not in (QUARANTINE, DLQ):
        raise ValueError(f"not a parking stream: {stream}")
    try:
        msg = await js.get_msg(stream, sequence)
    except NotFoundError:
        return None
    headers = dict(msg.headers or {})
    raw = msg.data or b""
    problem = ""
    body = body_ref_of(headers)
    size = len(raw)
    if body is not None:
        size = body.size
        try:
            raw = await load_body(js, body)
        except BodyMissing as exc:
            problem = f"the body is not readable from its claim check: {exc}"
    truncated = len(raw) > MAX_SHOWN_BYTES
    shown = raw[:MAX_SHOWN_BYTES]
    detail = headers.get(H_DETAIL, "")
    form, pretty = _pretty(shown, headers.get("Content-Type", "")) if not truncated else ("", "")
    return ParkedView(
        stream=stream,
        sequence=sequence,
        subject=msg.subject or "",
        headers=headers,
        step=headers.get(H_STEP, ""),
        reason=headers.get(H_REASON, ""),
        detail=detail,
        size=size,
        text=shown.decode("utf-8", errors="replace"),
        truncated=truncated,
        pretty=pretty,
        format=form,
        body_problem=problem,
        marked=error_lines(detail),
    )


async def replay_parked(js: JetStreamContext, sequences: list[int], *, actor: str) -> ReplayResult:
    return await replay_quarantined(js, sequences=sequences, actor=actor)


async def list_dead(js: JetStreamContext, consumer: str = "") -> tuple[list[DeadLetter], bool]:
    letters = await list_dead_letters(js, consumer=consumer or None, limit=MAX_LISTED + 1)
    return letters[:MAX_LISTED], len(letters) > MAX_LISTED


async def replay_dead(js: JetStreamContext, sequences: list[int], *, actor: str) -> ReplayResult:
    return await replay_dead_letters(js, sequences=sequences, actor=actor)
