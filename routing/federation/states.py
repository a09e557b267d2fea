"""Federation between state hubs: territory, peer tables, cases across JetStream domains.

Each Land runs its own hub with its own nats-server and JetStream domain (the state id, e.g.
``sh``, ``by``); the servers are joined by leaf-node connections. Three mechanisms:

- **Territory.** A hub owns the ARS prefix of its Land and may only publish rules inside it
  (``routes import --state sh``). A rule without an ARS claims every state and is refused.
- **Peer tables, read-only.** ``mirror_peer_table`` creates a local stream ``KV_routes-<peer>``
  mirroring the peer's ``KV_routes`` through ``$JS.<peer>.API``. The returned store refuses to
  publish: a mirror has no subjects of its own, and writing through it would land in the
  local bucket.
- **The link carries no hub subjects.** Over a leaf node the account's subject space is
  shared: without filters a peer's ``INBOX`` (``inbox.>``) would capture this hub's arrivals as
  well (observed with nats-server 2.x). :func:`leafnode_config` denies every hub-local subject
  in both directions; JetStream API and sourcing traffic still pass.
- **Cases for another state.** The origin hub publishes the raw arrival to its local
  ``FEDERATION`` stream under ``fed.<target>.<origin>`` (:func:`forward_to_peer`). The target
  hub's ``INBOX`` *sources* that subject from the origin's domain, transformed to
  ``inbox.federation.<origin>`` (:func:`add_inbox_sources`). Sourcing is driven by the target
  server and resumes from its last sourced sequence after an outage: nothing is lost and
  nothing is copied twice; the ``Nats-Msg-Id`` dedupe in INBOX covers a re-forwarding origin.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from nats.js.api import (
    ExternalStream,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamSource,
    SubjectTransform,
)
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from poststelle.contracts.envelope import H_ORIGIN_STATE
from poststelle.routing.streams.topology import FEDERATION, FEDERATION_ARRIVALS
from poststelle.routing.table.rules import RouteTable, RouteTableError, validate_ars_prefix
from poststelle.routing.table.store import ROUTES_BUCKET, RouteTableStore

__all__ = [
    "FEDERATION_STREAM",
    "HUB_LOCAL_SUBJECTS",
    "INBOX_STREAM",
    "LEAF_SEED_VARIABLE",
    "STATE_PREFIXES",
    "Territory",
    "add_inbox_sources",
    "check_territory",
    "ensure_federation_stream",
    "federation_subject",
    "forward_to_peer",
    "leafnode_config",
    "mirror_peer_table",
    "state_for_ars",
]

FEDERATION_STREAM = FEDERATION
INBOX_STREAM = "INBOX"
# Kept until every peer sourced it, with room for a long outage of the link, and as long as
# INBOX keeps arrivals: the origin's balance counts a forwarded case from this stream.
FEDERATION_MAX_AGE = 30 * 24 * 3600.0
DEDUPE_WINDOW = 24 * 3600.0

# Short state ids (lower-case, usable as JetStream domains) -> Land code in the ARS.
STATE_PREFIXES: dict[str, str] = {
    "sh": "01",
    "hh": "02",
    "ni": "03",
    "hb": "04",
    "nw": "05",
    "he": "06",
    "rp": "07",
    "bw": "08",
    "by": "09",
    "sl": "10",
    "be": "11",
    "bb": "12",
    "mv": "13",
    "sn": "14",
    "st": "15",
    "th": "16",
}


_ENVIRONMENT_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
# The variable the leaf remotes' nkey seed is read from (``leafnode_config``).
LEAF_SEED_VARIABLE = "POSTSTELLE_LEAF_NKEY_SEED"

# Every subject a hub's streams and buckets listen on; none may cross a federation link.
HUB_LOCAL_SUBJECTS: tuple[str, ...] = (
    "inbox.>",
    "case.>",
    "reply.>",
    "outbox.>",
    "quarantine.>",
    "dlq.>",
    "replays.>",
    "audit.>",
    "fed.>",
    "$KV.>",
    "$O.>",
)

_STATE_BY_CODE = {code: state for state, code in STATE_PREFIXES.items()}


@dataclass(frozen=True, slots=True)
class Territory:
    """The ARS prefixes one hub may publish rules for."""

    state: str
    prefixes: tuple[str, ...]

    @classmethod
    def for_state(cls, state: str) -> Territory:
        code = STATE_PREFIXES.get(state.lower())
        if code is None:
            raise ValueError(
                f"unknown state {state!r}; use one of {', '.join(sorted(STATE_PREFIXES))}"
            )
        return cls(state.lower(), (code,))

    def __post_init__(self) -> None:
        for prefix in self.prefixes:
            validate_ars_prefix(prefix)

    def covers(self, ars: str | None) -> bool:
        return ars is not None and any(ars.startswith(prefix) for prefix in self.prefixes)


def check_territory(table: RouteTable, territory: Territory) -> None:
    """Raise :class:`RouteTableError` naming every rule outside ``territory``."""
    owned = ", ".join(territory.prefixes)
    problems = [
        f"rule {index} ({rule.key}): outside the territory of {territory.state} "
        f"(ARS prefixes {owned})"
        + ("; a rule without ARS claims every state" if rule.ars is None else "")
        for index, rule in enumerate(table.rules, start=1)
        if not territory.covers(rule.ars)
    ]
    if problems:
        raise RouteTableError(problems)


def state_for_ars(ars: str | None) -> str | None:
    """The state whose territory holds ``ars`` (None if unknown or malformed)."""
    if ars is None or len(ars) < 2:
        return None
    return _STATE_BY_CODE.get(ars[:2])


def _state(state: str) -> str:
    if state not in STATE_PREFIXES:
        raise ValueError(f"unknown state {state!r}; use one of {', '.join(sorted(STATE_PREFIXES))}")
    return state


def federation_subject(target: str, origin: str) -> str:
    return f"fed.{_state(target)}.{_state(origin)}"


async def ensure_federation_stream(js: JetStreamContext) -> None:
    """The origin side: cases waiting for peers to source them."""
    config = StreamConfig(
        name=FEDERATION_STREAM,
        subjects=["fed.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=FEDERATION_MAX_AGE,
        duplicate_window=DEDUPE_WINDOW,
    )
    try:
        info = await js.stream_info(FEDERATION_STREAM)
    except NotFoundError:
        await js.add_stream(config)
        return
    # Made by a version that kept 14 days: lengthened, never shortened.
    if info.config.max_age is not None and 0 < info.config.max_age < FEDERATION_MAX_AGE:
        await js.update_stream(replace(info.config, max_age=FEDERATION_MAX_AGE))


async def forward_to_peer(
    js: JetStreamContext,
    *,
    origin: str,
    target: str,
    payload: bytes,
    msg_id: str,
    headers: Mapping[str, str] | None = None,
) -> int:
    """Hand a raw arrival to ``target``'s hub; returns the FEDERATION sequence.

    ``msg_id`` must be the arrival's dedupe key (channel + source message id), so that a
    repeated forward is dropped here and again in the target's INBOX.
    """
    ack = await js.publish(
        federation_subject(target, origin),
        payload,
        stream=FEDERATION_STREAM,
        headers={**(headers or {}), "Nats-Msg-Id": msg_id, H_ORIGIN_STATE: origin},
    )
    return ack.seq


def inbox_sources(local: str, peers: Iterable[str]) -> list[StreamSource]:
    """``INBOX`` sources pulling every peer's cases for ``local`` across domains."""
    return [
        StreamSource(
            name=FEDERATION_STREAM,
            external=ExternalStream(api=f"$JS.{_state(peer)}.API"),
            subject_transforms=[
                SubjectTransform(
                    src=federation_subject(local, peer),
                    dest=FEDERATION_ARRIVALS.replace(">", peer),
                )
            ],
        )
        for peer in peers
    ]


async def add_inbox_sources(js: JetStreamContext, local: str, peers: Iterable[str]) -> None:
    """Add (idempotently) the peers' sources to the existing ``INBOX`` stream."""
    info = await js.stream_info(INBOX_STREAM)
    config = info.config
    existing = {
        (source.external.api if source.external else None) for source in config.sources or []
    }
    wanted = [
        s for s in inbox_sources(local, peers) if s.external and s.external.api not in existing
    ]
    if wanted:
        config.sources = [*(config.sources or []), *wanted]
        await js.update_stream(config)


async def mirror_peer_table(js: JetStreamContext, peer: str) -> RouteTableStore:
    """A local, read-only mirror of ``peer``'s routes bucket, usable with RouteTableWatcher."""
    bucket = f"{ROUTES_BUCKET}-{_state(peer)}"
    stream = f"KV_{bucket}"
    try:
        await js.stream_info(stream)
    except NotFoundError:
        await js.add_stream(
            StreamConfig(
                name=stream,
                mirror=StreamSource(
                    name=f"KV_{ROUTES_BUCKET}", external=ExternalStream(api=f"$JS.{peer}.API")
                ),
                max_msgs_per_subject=10,
                allow_direct=False,
            )
        )
    # A mirror keeps the origin's subjects ($KV.routes.<key>); nats-py does not translate
    # for mirrors, so bind the key prefix explicitly.
    kv = KeyValue(name=bucket, stream=stream, pre=f"$KV.{ROUTES_BUCKET}.", js=js, direct=False)
    return RouteTableStore(
        kv,
        read_only=f"the table of {peer} is a read-only mirror; import it on {peer}'s hub",
    )


def leafnode_config(
    *,
    listen_port: int | None = None,
    listen_host: str = "127.0.0.1",
    remotes: Iterable[str] = (),
    remote_seed_variable: str | None = None,
) -> str:
    """The ``leafnodes { ... }`` block of a state hub's nats-server configuration.

    ``listen_port`` accepts peers' leaf connections; ``remotes`` are peer URLs
    (``nats-leaf://host:port``) this hub connects to. Each remote filters the hub-local
    subjects in both directions. With ``remote_seed_variable`` each remote authenticates
    with the nkey whose seed the server reads from that environment variable (nats-server
    resolves ``$NAME`` from its environment), so the seed is in no file; the peer accepts
    the link when its ``authorization`` holds the public key (``nats-config --peer``).

    The listening side does not advertise its leaf address (``no_advertise``): a peer
    reconnects at the URL it was given (a proxy, a NAT or a DNS name), not at the listen
    address this server would otherwise gossip (often loopback or an internal interface),
    which would bypass the way the operator set up or not reach the server at all.
    """
    deny = json.dumps(list(HUB_LOCAL_SUBJECTS))
    credentials = ""
    if remote_seed_variable is not None:
        if not _ENVIRONMENT_NAME.fullmatch(remote_seed_variable):
            raise ValueError(f"not an environment variable name: {remote_seed_variable!r}")
        credentials = f", nkey: ${remote_seed_variable}"
    lines = ["leafnodes {"]
    if listen_port is not None:
        lines += [
            f"  host: {json.dumps(listen_host)}",
            f"  port: {listen_port}",
            "  no_advertise: true",
        ]
    remote_blocks = [
        f"    {{ url: {json.dumps(url)}{credentials}, deny_imports: {deny}, deny_exports: {deny} }}"
        for url in remotes
    ]
    if remote_blocks:
        lines += ["  remotes: [", *remote_blocks, "  ]"]
    lines.append("}")
    return "\n".join(lines) + "\n"
