"""The hub's JetStream topology, created idempotently at start.

Limits here are deliberate: every stream is bounded in age; sizes are bounded by the
server's ``max_file_store`` unless a ``max_bytes`` is given (JetStream reserves a stream's
``max_bytes`` up front, so fixed sizes would refuse to start on a small disk). The dedupe
windows are long enough to cover a source that re-sends after a day-long outage (XÖV
keeps ``nachrichtenUUID`` on re-send).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace

from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError

__all__ = [
    "ADVISORIES",
    "ATTACHMENTS_BUCKET",
    "AUDIT",
    "BACKEND_CONSUMED_BY",
    "BACKEND_CONSUMER_PREFIX",
    "CASES",
    "CASES_BUCKET",
    "CONSOLE_LOGINS_BUCKET",
    "CONSOLE_LOGIN_WINDOW",
    "CONSOLE_SESSIONS_BUCKET",
    "DEAD_LETTER_SOURCES",
    "DELIVERED_BUCKET",
    "DELIVERED_TTL",
    "DLQ",
    "FEDERATION",
    "FEDERATION_ARRIVALS",
    "INBOX",
    "OUTBOX",
    "QUARANTINE",
    "REPLAYS",
    "REPLIES",
    "ROUTER_DURABLE",
    "ROUTES_BUCKET",
    "STREAMS",
    "StreamSpec",
    "ensure_topology",
    "replay_ledger_subject",
    "stream_of_subject",
]

log = logging.getLogger(__name__)

DAY = 24 * 3600.0

INBOX = "INBOX"
CASES = "CASES"
REPLIES = "REPLIES"
OUTBOX = "OUTBOX"
QUARANTINE = "QUARANTINE"
DLQ = "DLQ"
AUDIT = "AUDIT"
ADVISORIES = "ADVISORIES"
REPLAYS = "REPLAYS"
# Cases waiting for a peer state's hub to source them (``federation/states.py``), and the
# INBOX subjects the peer stores them under (``inbox.federation.<origin state>``).
FEDERATION = "FEDERATION"
FEDERATION_ARRIVALS = "inbox.federation.>"
# Metadata key of a back end's CASES consumer saying who consumes it: ``hub`` (a delivery
# worker) or ``backend`` (a native NATS back end, with its own credentials). ``stats`` reads it.
BACKEND_CONSUMED_BY = "poststelle_consumed_by"
# A back end's durable consumer on CASES is ``case_<tenant>_<backend>``.
BACKEND_CONSUMER_PREFIX = "case_"
# Streams whose consumers' exhausted deliveries become DLQ records.
DEAD_LETTER_SOURCES = (INBOX, CASES, REPLIES, OUTBOX)
# The routing core's durable consumer on INBOX; ``stats`` reads its backlog as "in flight".
ROUTER_DURABLE = "router"
ROUTES_BUCKET = "routes"
CASES_BUCKET = "cases"
ATTACHMENTS_BUCKET = "attachments"
# The delivered-ledger: one key per back end and event a back end has confirmed, so that a
# redelivery after a crash (hub or server) is recognised instead of handed over again.
DELIVERED_BUCKET = "delivered"
# How long a confirmation is remembered: longer than any redelivery can come (the consumers'
# ack wait x max deliveries with back-off is well under a day; a replay is a new decision).
DELIVERED_TTL = 7 * DAY
# The console's sessions, one key each, shared by every hub process: a logout deletes its
# key, so a copied cookie is refused by whichever process it reaches. The bucket's TTL is
# the session lifetime (``console.session_hours``): a session's key outlives it nowhere.
CONSOLE_SESSIONS_BUCKET = "console_sessions"
# Failed console logins per account name, counted by every process together. A bucket of
# its own: its TTL is the throttle's window, whatever the session lifetime is.
CONSOLE_LOGINS_BUCKET = "console_logins"
CONSOLE_LOGIN_WINDOW = 600.0


@dataclass(frozen=True)
class StreamSpec:
    name: str
    subjects: tuple[str, ...]
    max_age: float
    duplicate_window: float
    max_bytes: int = -1
    retention: RetentionPolicy = RetentionPolicy.LIMITS
    description: str = ""

    def config(self, replicas: int, max_bytes: int | None = None) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            description=self.description,
            subjects=list(self.subjects),
            retention=self.retention,
            storage=StorageType.FILE,
            num_replicas=replicas,
            max_age=self.max_age,
            max_bytes=self.max_bytes if max_bytes is None else max_bytes,
            # Refuse new data rather than silently dropping unprocessed arrivals.
            discard=DiscardPolicy.NEW,
            duplicate_window=self.duplicate_window,
            max_msg_size=-1,
            allow_direct=True,
        )


STREAMS: tuple[StreamSpec, ...] = (
    StreamSpec(INBOX, ("inbox.>",), 30 * DAY, DAY, description="raw arrivals"),
    StreamSpec(CASES, ("case.>",), 90 * DAY, DAY, description="canonical CaseEvents"),
    StreamSpec(REPLIES, ("reply.>",), 90 * DAY, DAY, description="back-end answers"),
    StreamSpec(OUTBOX, ("outbox.>",), 30 * DAY, DAY, description="answers to origins"),
    StreamSpec(QUARANTINE, ("quarantine.>",), 365 * DAY, DAY, description="parked + reason"),
    StreamSpec(DLQ, ("dlq.>",), 365 * DAY, DAY, description="exhausted deliveries"),
    # One entry per replayed record, ``replays.<from>.<to stream>.<subject>``: what lets the
    # balance tell replays from arrivals. Kept as long as the records replays come from.
    StreamSpec(REPLAYS, ("replays.>",), 365 * DAY, DAY, description="replayed parked records"),
    StreamSpec(AUDIT, ("audit.>",), 365 * DAY, 2 * 60.0, description="case hops"),
    # Advisories are core NATS: a stream keeps those raised while no recorder listens.
    StreamSpec(
        ADVISORIES,
        tuple(
            f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.*"
            for stream in DEAD_LETTER_SOURCES
        ),
        30 * DAY,
        2 * 60.0,
        description="max-deliveries advisories, read by the DLQ recorder",
    ),
)


# The first subject token of each stream a replay may publish to.
_STREAM_OF_PREFIX = {"inbox": INBOX, "case": CASES, "reply": REPLIES, "outbox": OUTBOX}


def stream_of_subject(subject: str) -> str:
    """The hub stream that stores ``subject`` (``""`` for none a replay may target)."""
    return _STREAM_OF_PREFIX.get(subject.split(".", 1)[0], "")


def replay_ledger_subject(source_stream: str, target_subject: str) -> str:
    """``replays.<from stream>.<to stream>.<target subject>``: the target subject lets the
    balance tell which back end a dead letter replayed into ``CASES`` went to (entries
    written before it end after the target stream and count for no back end)."""
    target = stream_of_subject(target_subject) or "OTHER"
    return f"replays.{source_stream}.{target}.{target_subject}"


async def _ensure_stream(js: JetStreamContext, config: StreamConfig, update: bool) -> None:
    assert config.name is not None
    try:
        existing = await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)
        log.info("stream created name=%s replicas=%s", config.name, config.num_replicas)
        return
    if not update:
        return
    # Keep the replica count a running cluster already has: changing it is an operator's call.
    # Keep the sources too: no spec has any, federation adds its peers' to INBOX, and an
    # update without them would stop the peers' cases arriving (every CLI command and each
    # worker process runs this against a live hub).
    wanted = replace(
        config,
        num_replicas=existing.config.num_replicas,
        sources=existing.config.sources or config.sources,
    )
    try:
        await js.update_stream(wanted)
    except BadRequestError as exc:
        log.warning("stream kept as is name=%s reason=%s", config.name, exc.description)


async def _ensure_ttl_bucket(
    js: JetStreamContext, bucket: str, description: str, replicas: int, ttl: float, update: bool
) -> None:
    """A bucket whose entries expire after ``ttl``. The TTL follows the configuration: a
    bucket made with another one is updated (its entries then age by the new TTL), never
    recreated."""
    stream = f"KV_{bucket}"
    try:
        info = await js.stream_info(stream)
    except NotFoundError:
        await js.create_key_value(
            KeyValueConfig(
                bucket=bucket,
                description=description,
                history=1,
                ttl=ttl,
                storage=StorageType.FILE,
                replicas=replicas,
            )
        )
        return
    if not update or (info.config.max_age is not None and abs(info.config.max_age - ttl) < 1e-3):
        return
    try:
        await js.update_stream(replace(info.config, max_age=ttl))
    except BadRequestError as exc:
        log.warning("bucket TTL kept as is bucket=%s reason=%s", bucket, exc.description)
    else:
        log.info("bucket TTL updated bucket=%s ttl=%s", bucket, ttl)


async def ensure_topology(
    js: JetStreamContext,
    *,
    replicas: int = 1,
    stream_max_bytes: Mapping[str, int] | None = None,
    delivered_ttl: float = DELIVERED_TTL,
    console_session_ttl: float = 8 * 3600.0,
    update_existing: bool = True,
) -> None:
    """Create or update every stream and bucket; never deletes or resets data.

    ``stream_max_bytes`` caps streams by name (discard ``new``: a full stream refuses, the
    intake answers 503); the others keep their spec's size (unbounded but by the server).
    ``update_existing=False`` (a CLI command, which may run without the hub's configuration)
    only creates what is missing: it must not put a running hub's limits and TTLs back to
    their defaults."""
    sizes = stream_max_bytes or {}
    for spec in STREAMS:
        await _ensure_stream(js, spec.config(replicas, sizes.get(spec.name)), update_existing)
    for bucket, history, description in (
        (ROUTES_BUCKET, 5, "routing table snapshots and pointer"),
        (CASES_BUCKET, 10, "case registry: origin, correlation ids, state"),
    ):
        try:
            await js.key_value(bucket)
        except (NotFoundError, BadRequestError):
            await js.create_key_value(
                KeyValueConfig(
                    bucket=bucket,
                    description=description,
                    history=history,
                    storage=StorageType.FILE,
                    replicas=replicas,
                )
            )
    for bucket, description, ttl in (
        (
            DELIVERED_BUCKET,
            "delivered-ledger: back end + event id confirmed, kept for a TTL",
            delivered_ttl,
        ),
        (CONSOLE_SESSIONS_BUCKET, "console sessions: one key per login", console_session_ttl),
        (CONSOLE_LOGINS_BUCKET, "console failed logins per account name", CONSOLE_LOGIN_WINDOW),
    ):
        await _ensure_ttl_bucket(js, bucket, description, replicas, ttl, update_existing)
    try:
        await js.object_store(ATTACHMENTS_BUCKET)
    except (NotFoundError, BadRequestError):
        await js.create_object_store(
            ATTACHMENTS_BUCKET,
            config=ObjectStoreConfig(
                description="claim check: attachments and original messages",
                storage=StorageType.FILE,
                replicas=replicas,
            ),
        )
