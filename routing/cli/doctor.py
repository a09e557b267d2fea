"""``poststelle doctor``: check a deployment and say what to do about each problem.

It looks and never repairs: it joins the configured NATS (or the embedded server of a
running hub on the data folder) without creating a stream, a consumer or a server, so what
it reports is what the hub finds. Each check is one row: ``ok``, ``warn`` or ``fail``, what
was found, and the remedy. Exit status: 0 all ok, 3 warnings only (as ``audit-config``), 1
when something is broken.

Checks: NATS reachable and JetStream on; every stream and bucket of the topology present
with the configured replicas (and, in a cluster, every replica current); the routing core's,
the reply router's and each back end's durable consumer present and not stalled; schema sets
registered for the XML standards; certificates the hub presents or uses not expired nor
expiring; federation peers reachable with their table mirror and INBOX source flowing;
quarantine and DLQ empty; the conservation balance even.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from poststelle.contracts.registry import ContractRegistry
from poststelle.routing.cli.common import add_common_options, config_from
from poststelle.routing.hub.config import ConfigError, HubConfig
from poststelle.routing.hub.delivery import consumer_name
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from poststelle.routing.hub.replies import REPLY_ROUTER_DURABLE
from poststelle.routing.hub.runtime import connect
from poststelle.routing.ops.stats import collect_stats
from poststelle.routing.streams.topology import (
    ATTACHMENTS_BUCKET,
    CASES,
    CASES_BUCKET,
    DELIVERED_BUCKET,
    INBOX,
    REPLIES,
    ROUTER_DURABLE,
    ROUTES_BUCKET,
    STREAMS,
)

__all__ = ["EXIT_BROKEN", "EXIT_WARNINGS", "Check", "diagnose", "register"]

EXIT_BROKEN = 1
EXIT_WARNINGS = 3
# A certificate that ends within this many days is worth a warning now.
DEFAULT_CERT_WARN_DAYS = 30
_TIMEOUT = 3.0

Status = Literal["ok", "warn", "fail"]
_ORDER: dict[Status, int] = {"ok": 0, "warn": 1, "fail": 2}


@dataclass(frozen=True)
class Check:
    """One row of the report: what was checked, how it stands, what to do."""

    check: str
    status: Status
    detail: str
    remedy: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _ok(check: str, detail: str) -> Check:
    return Check(check, "ok", detail)


def _presence(check: str, missing: list[str], expected: int, remedy: str) -> Check:
    """Whether every one of ``expected`` things the hub creates at start is there."""
    if missing:
        return Check(check, "fail", f"missing: {', '.join(missing)}", remedy)
    return _ok(check, f"all {expected} present")


# -- NATS --------------------------------------------------------------------------------


def _nats_url(config: HubConfig) -> tuple[str | None, str]:
    """The URL to try and how to name it in the report."""
    if config.nats.url:
        return config.nats.url, f"NATS at {config.nats.url}"
    running = EmbeddedNatsServer.discover(config.data_dir / "nats")
    return running, f"the embedded NATS of {config.data_dir}"


async def _connect(config: HubConfig) -> tuple[NatsClient | None, Check]:
    url, where = _nats_url(config)
    if url is None:
        return None, Check(
            "nats",
            "fail",
            f"no hub runs on {config.data_dir} and no nats.url is configured",
            f"start the hub: `poststelle run --data-dir {config.data_dir}`, or give the "
            "cluster's URL with --nats-url / nats.url",
        )
    try:
        client = await asyncio.wait_for(connect(config, url, persistent=False), 15.0)
    except Exception as exc:
        return None, Check(
            "nats",
            "fail",
            f"{where} is not reachable: {exc!r}",
            "check that nats-server runs and listens there, the URL, and the hub's "
            "credentials (nats.credentials / nats.nkey_seed)",
        )
    return client, _ok(
        "nats",
        f"connected to {where} ({client.connected_url.netloc if client.connected_url else url})",
    )


async def _jetstream(js: JetStreamContext) -> Check:
    try:
        info = await asyncio.wait_for(js.account_info(), _TIMEOUT)
    except Exception as exc:
        return Check(
            "jetstream",
            "fail",
            f"JetStream does not answer: {exc!r}",
            "start nats-server with JetStream enabled (`jetstream { store_dir: ... }`), "
            "or give the hub's user access to the JetStream API",
        )
    return _ok("jetstream", f"{info.streams} streams, {info.consumers} consumers")


# -- topology ----------------------------------------------------------------------------


def _storage_names() -> Iterator[tuple[str, str]]:
    """(stream name, what it is) of every stream and bucket the hub needs."""
    for spec in STREAMS:
        yield spec.name, f"stream {spec.name}"
    for bucket in (ROUTES_BUCKET, CASES_BUCKET, DELIVERED_BUCKET):
        yield f"KV_{bucket}", f"KV bucket {bucket}"
    yield f"OBJ_{ATTACHMENTS_BUCKET}", f"object store {ATTACHMENTS_BUCKET}"


async def _streams(js: JetStreamContext, config: HubConfig) -> list[Check]:
    wanted = config.nats.replicas
    missing: list[str] = []
    checks: list[Check] = []
    for stream, label in _storage_names():
        try:
            info = await asyncio.wait_for(js.stream_info(stream), _TIMEOUT)
        except NotFoundError:
            missing.append(label)
            continue
        replicas = info.config.num_replicas or 1
        if replicas != wanted:
            checks.append(
                Check(
                    f"replicas {stream}",
                    "fail",
                    f"{label} has {replicas} replica(s), nats.replicas is {wanted}",
                    # The hub keeps a running stream's replica count: an operator's call.
                    f"`nats stream edit {stream} --replicas {wanted}` (or set nats.replicas "
                    f"to {replicas} if that is what this deployment wants)",
                )
            )
        lagging = [
            peer.name or "?"
            for peer in (info.cluster.replicas or [] if info.cluster else [])
            if peer.offline or not peer.current
        ]
        if lagging:
            checks.append(
                Check(
                    f"replicas {stream}",
                    "fail" if len(lagging) * 2 >= replicas else "warn",
                    f"{label}: replica(s) not current on {', '.join(lagging)}",
                    "bring the cluster node(s) back (`nats server report jetstream`); a "
                    "stream without a majority of current replicas takes no writes",
                )
            )
    checks.insert(
        0,
        _presence(
            "streams",
            missing,
            len(list(_storage_names())),
            "start `poststelle run` against this NATS once: the hub creates its topology "
            "at start (it never deletes data)",
        ),
    )
    if not any(c.check.startswith("replicas") for c in checks):
        checks.append(_ok("replicas", f"{wanted} per stream, as configured"))
    return checks


async def _consumers(js: JetStreamContext, config: HubConfig) -> list[Check]:
    expected = [
        (INBOX, ROUTER_DURABLE, "routing core"),
        (REPLIES, REPLY_ROUTER_DURABLE, "reply router"),
    ]
    expected += [
        (CASES, consumer_name(b.tenant, b.name), f"back end {b.tenant}/{b.name}")
        for b in config.backends
    ]
    checks: list[Check] = []
    missing: list[str] = []
    for stream, durable, role in expected:
        try:
            info = await asyncio.wait_for(js.consumer_info(stream, durable), _TIMEOUT)
        except NotFoundError:
            missing.append(f"{durable} ({role})")
            continue
        ack_pending = info.num_ack_pending or 0
        limit = info.config.max_ack_pending or 0
        if limit > 0 and ack_pending >= limit:
            checks.append(
                Check(
                    f"consumer {durable}",
                    "fail",
                    f"{ack_pending} messages unacknowledged, max_ack_pending is {limit}: the "
                    "consumer gets nothing more",
                    f"look at the {role}'s log for what hangs; restart its hub process",
                )
            )
        pending = info.num_pending or 0
        if stream == INBOX and pending > config.intake.max_backlog:
            checks.append(
                Check(
                    f"consumer {durable}",
                    "warn",
                    f"{pending} arrivals behind, the intake refuses above "
                    f"{config.intake.max_backlog}",
                    "add hub workers (`poststelle run --workers N`) or hosts (`--role worker`)",
                )
            )
    checks.insert(
        0,
        _presence(
            "consumers",
            missing,
            len(expected),
            "start the hub (`poststelle run`): its workers create their consumers; a "
            "native back end's is created by the primary",
        ),
    )
    return checks


async def _parked(js: JetStreamContext) -> list[Check]:
    try:
        stats = await asyncio.wait_for(collect_stats(js), 10.0)
    except Exception as exc:
        return [Check("balance", "warn", f"stream figures not read: {exc!r}", "run doctor again")]
    balance = stats["conservation"]
    checks = []
    if balance["quarantined"]:
        checks.append(
            Check(
                "quarantine",
                "warn",
                f"{balance['quarantined']} arrival(s) parked",
                "`poststelle quarantine list` shows step and reason; fix the cause, then "
                "`poststelle quarantine replay`",
            )
        )
    if balance["dead_lettered"]:
        checks.append(
            Check(
                "dlq",
                "warn",
                f"{balance['dead_lettered']} delivery(ies) dead-lettered",
                "`poststelle dlq list`; once the back end takes them, `poststelle dlq replay`",
            )
        )
    if balance["unaccounted"]:
        checks.append(
            Check(
                "balance",
                "fail",
                f"{balance['unaccounted']} arrival(s) unaccounted for",
                "`poststelle stats --json` shows the figures; see docs/operations.md",
            )
        )
    else:
        checks.append(_ok("balance", f"{balance['received']} received, every one accounted for"))
    return checks


# -- schemas, certificates, federation ---------------------------------------------------


def _schemas(config: HubConfig) -> list[Check]:
    try:
        registry = ContractRegistry.for_data_dir(config.data_dir)
    except Exception as exc:
        return [
            Check(
                "schemas",
                "fail",
                f"contract registry unreadable: {exc}",
                "`poststelle contracts list` names the broken descriptor",
            )
        ]
    xml = [c for c in registry.contracts if c.format != "json"]
    served = [c for c in xml if registry.schema_set_for(c) is not None]
    unserved = sorted((c for c in xml if registry.schema_set_for(c) is None), key=lambda c: c.key)
    if not served:
        return [
            Check(
                "schemas",
                "fail",
                f"no schema set registered in {config.data_dir}: every XML message is "
                "quarantined as schema-unusable",
                "`poststelle contracts add <folder or zip of the standard's XSDs> "
                f"--data-dir {config.data_dir}`",
            )
        ]
    # A standard the configured routes send somewhere should validate; others may never come.
    routed = {route.standard for route in config.routes if route.standard}
    needed = [c.key for c in unserved if c.standard in routed]
    others = [c.key for c in unserved if c.standard not in routed]
    detail = f"{len(served)} of {len(xml)} XML standard versions have schemas"
    checks = [_ok("schemas", detail + (f" (none for {', '.join(others)})" if others else ""))]
    if needed:
        checks.append(
            Check(
                "schemas",
                "warn",
                f"routes name {', '.join(needed)}, which has no schema set",
                "`poststelle contracts add <XSD set of that version>`",
            )
        )
    return checks


def _certificate_files(config: HubConfig) -> Iterator[tuple[str, Path]]:
    """(setting, file) of every certificate the hub presents or logs in with."""
    if config.http.tls_certfile is not None:
        yield "http.tls_certfile", config.http.tls_certfile
    for kind, entries in (("inbound", config.inbound), ("backends", config.backends)):
        for entry in entries:
            for key, value in entry.settings.items():
                if isinstance(value, str) and key.endswith(("cert", "certfile")):
                    yield f"{kind}.{entry.name}.settings.{key}", Path(value)


def _not_after(path: Path) -> datetime:
    from cryptography import x509

    return x509.load_pem_x509_certificate(path.read_bytes()).not_valid_after_utc


def _certificates(config: HubConfig, warn_days: int) -> list[Check]:
    checks = []
    now = datetime.now(UTC)
    for setting, path in _certificate_files(config):
        name = f"certificate {setting}"
        try:
            ends = _not_after(path)
        except (OSError, ValueError) as exc:
            checks.append(
                Check(name, "fail", f"{path} unreadable: {exc}", f"put a PEM certificate at {path}")
            )
            continue
        left = ends - now
        when = ends.strftime("%Y-%m-%d %H:%M UTC")
        if left <= timedelta(0):
            checks.append(
                Check(name, "fail", f"{path} expired {when}", f"renew it and replace {path}")
            )
        elif left <= timedelta(days=warn_days):
            checks.append(
                Check(
                    name,
                    "warn",
                    f"{path} expires {when} (in {left.days} day(s))",
                    f"renew it before {when} and replace {path}",
                )
            )
        else:
            checks.append(_ok(name, f"{path} valid until {when}"))
    return checks or [_ok("certificates", "none configured")]


async def _federation(nc: NatsClient, js: JetStreamContext, config: HubConfig) -> list[Check]:
    federation = config.federation
    if federation.state is None:
        return []
    if not federation.peers:
        return [_ok("federation", f"state {federation.state}, no peers configured")]
    try:
        inbox = await js.stream_info(INBOX)
    except NotFoundError:
        inbox = None
    configured = {
        source.external.api
        for source in (inbox.config.sources or [] if inbox else [])
        if source.external and source.external.api
    }
    # The server's source states do not say which peer they pull from: any error is news.
    source_errors = [s.error for s in (inbox.sources or [] if inbox else []) if s.error]
    checks = []
    for peer in federation.peers:
        name = f"peer {peer}"
        try:
            await asyncio.wait_for(nc.jetstream(domain=peer).account_info(), _TIMEOUT)
        except Exception as exc:
            checks.append(
                Check(
                    name,
                    "fail",
                    f"{peer}'s JetStream (domain {peer}) does not answer: {exc!r}",
                    "check the leaf link: nats.leaf_remotes / leaf_listen_port on both hubs, "
                    "the leaf nkey, and that the peer's hub runs",
                )
            )
            continue
        problems = []
        if f"$JS.{peer}.API" not in configured:
            problems.append("INBOX does not source the peer's FEDERATION stream")
        problems += [f"INBOX source error: {error}" for error in source_errors]
        try:
            mirror = await js.stream_info(f"KV_{ROUTES_BUCKET}-{peer}")
        except NotFoundError:
            problems.append("no mirror of the peer's routing table")
        else:
            if mirror.mirror is not None and mirror.mirror.error:
                problems.append(f"table mirror error: {mirror.mirror.error}")
        if problems:
            checks.append(
                Check(
                    name,
                    "fail",
                    "; ".join(problems),
                    "restart the primary hub: it sets up sources and mirrors for every peer "
                    "in federation.peers at start",
                )
            )
        else:
            checks.append(_ok(name, "reachable, table mirrored, INBOX source flowing"))
    return checks


# -- the report ----------------------------------------------------------------------------


async def diagnose(
    config: HubConfig, *, cert_warn_days: int = DEFAULT_CERT_WARN_DAYS
) -> list[Check]:
    """Every check's row, in report order."""
    checks = [*_schemas(config), *_certificates(config, cert_warn_days)]
    nc, reached = await _connect(config)
    checks.insert(0, reached)
    if nc is None:
        return checks
    try:
        js = nc.jetstream()
        broker = await _jetstream(js)
        checks.insert(1, broker)
        if broker.status == "fail":
            return checks
        steps: list[Callable[[], Awaitable[list[Check]]]] = [
            lambda: _streams(js, config),
            lambda: _consumers(js, config),
            lambda: _federation(nc, js, config),
            lambda: _parked(js),
        ]
        position = 2
        for step in steps:
            found = await step()
            checks[position:position] = found
            position += len(found)
        return checks
    finally:
        await nc.close()


def worst(checks: list[Check]) -> Status:
    return max((c.status for c in checks), key=_ORDER.__getitem__, default="ok")


def _print_table(checks: list[Check], out: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    terminal = out.isatty()
    # Not a terminal (a pipe, a log): wide enough that no remedy is cut into pieces.
    console = Console(file=out, width=None if terminal else 240, no_color=not terminal)
    table = Table(show_lines=False)
    for column in ("check", "status", "found", "remedy"):
        table.add_column(column, overflow="fold")
    style = {"ok": "green", "warn": "yellow", "fail": "bold red"}
    for check in checks:
        table.add_row(
            check.check,
            f"[{style[check.status]}]{check.status}[/]",
            check.detail,
            check.remedy,
        )
    console.print(table)


def _cmd_doctor(args: argparse.Namespace) -> int:
    try:
        # The deployment `poststelle run` with these options would be (demo without a file).
        config = config_from(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        print(
            "  remedy: `poststelle audit-config --config FILE` shows the setting", file=sys.stderr
        )
        return 2
    checks = asyncio.run(diagnose(config, cert_warn_days=args.cert_warn_days))
    status = worst(checks)
    if args.json:
        print(json.dumps({"status": status, "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        _print_table(checks, sys.stdout)
        failed = sum(1 for c in checks if c.status == "fail")
        warned = sum(1 for c in checks if c.status == "warn")
        print(
            "healthy"
            if status == "ok"
            else f"{failed} check(s) failed, {warned} warning(s): see the remedy column"
        )
    return {"ok": 0, "warn": EXIT_WARNINGS, "fail": EXIT_BROKEN}[status]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``doctor`` to the ``poststelle`` CLI."""
    command = subparsers.add_parser(
        "doctor",
        help="check a deployment (NATS, streams, consumers, schemas, certificates, "
        "federation); exit 1 when broken, 3 with warnings",
    )
    add_common_options(command)
    command.add_argument(
        "--cert-warn-days",
        type=int,
        default=DEFAULT_CERT_WARN_DAYS,
        help=f"warn about certificates ending within this many days ({DEFAULT_CERT_WARN_DAYS})",
    )
    command.add_argument("--json", action="store_true")
    command.set_defaults(func=_cmd_doctor)
