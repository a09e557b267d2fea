"""``poststelle routes ...``: import, export, diff, list, resolve, generate.

Exit codes: 0 success (for ``resolve``: routed), 1 the table or the input was refused (or the
message is unroutable), 2 NATS unreachable or no table stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TextIO

from poststelle.contracts.progress import step_progress
from poststelle.routing.cli.common import HubUnavailableError, add_common_options, hub_client
from poststelle.routing.federation.states import Territory, check_territory
from poststelle.routing.table.files import (
    diff,
    dump_csv,
    dump_yaml,
    load_table,
    load_tenants,
    rule_to_dict,
)
from poststelle.routing.table.resolver import Resolution, RouteQuery, compile_table
from poststelle.routing.table.rules import ARS_LEVELS, RouteTable, RouteTableError, Tenant
from poststelle.routing.table.store import (
    ROUTES_BUCKET,
    ConcurrentImportError,
    RouteTableStore,
    StoredTable,
)

__all__ = ["register"]

log = logging.getLogger(__name__)

EXIT_OK, EXIT_REFUSED, EXIT_UNAVAILABLE = 0, 1, 2


class _Unavailable(Exception):
    pass


@asynccontextmanager
async def _store(args: argparse.Namespace) -> AsyncIterator[RouteTableStore]:
    try:
        async with hub_client(args) as hub:
            yield await RouteTableStore.open(hub.js, args.bucket)
    except HubUnavailableError as error:
        raise _Unavailable(str(error)) from None


async def _stored(store: RouteTableStore) -> StoredTable:
    stored = await store.load()
    if stored is None:
        raise _Unavailable("no routing table stored yet; run 'poststelle routes import FILE'")
    return stored


def _run(coroutine: Callable[[], Awaitable[int]]) -> int:
    try:
        return asyncio.run(_guard(coroutine))
    except KeyboardInterrupt:
        return 130


async def _guard(coroutine: Callable[[], Awaitable[int]]) -> int:
    try:
        return await coroutine()
    except RouteTableError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_REFUSED
    except ConcurrentImportError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_REFUSED
    except _Unavailable as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE


async def _read_input(args: argparse.Namespace, store: RouteTableStore | None) -> RouteTable:
    path = Path(args.file)
    tenants: dict[str, Tenant] | None = None
    if args.tenants:
        tenants = load_tenants(Path(args.tenants))
    elif path.suffix.lower() == ".csv" and store is not None:
        current = await store.load()
        tenants = dict(current.table.tenants) if current else None
    table = load_table(path, tenants=tenants)
    state = args.state or os.environ.get("POSTSTELLE_STATE")
    if state:
        try:
            territory = Territory.for_state(state)
        except ValueError as error:
            raise RouteTableError([str(error)]) from None
        check_territory(table, territory)
    compile_table(table)
    return table


def _cmd_import(args: argparse.Namespace) -> int:
    async def run() -> int:
        # Steps on stderr (a bar per step on a terminal): stdout stays the result.
        async with _store(args) as store:
            with step_progress(announce=True) as progress:
                progress.step(f"reading and validating {args.file}")
                table = await _read_input(args, store)
                progress.step(f"comparing {len(table.rules):,} valid rules with the stored table")
                current = await store.load()
                old = current.table if current else RouteTable()
                changes = diff(old, table)
                print(changes.summary())
                if args.dry_run:
                    print("dry run: nothing stored")
                    return EXIT_OK
                progress.step("publishing the snapshot")
                published = await store.publish(
                    table,
                    expected_revision=current.revision if current else 0,
                    progress=progress.update,
                )
                print(
                    f"imported {len(table.rules)} rules as snapshot {published.pointer.snapshot} "
                    f"(revision {published.revision})"
                )
                return EXIT_OK

    return _run(run)


def _with_stored(args: argparse.Namespace, action: Callable[[StoredTable], int]) -> int:
    async def run() -> int:
        async with _store(args) as store:
            stored = await _stored(store)
        return await asyncio.to_thread(action, stored)

    return _run(run)


def _cmd_export(args: argparse.Namespace) -> int:
    def write(stored: StoredTable) -> int:
        text = dump_csv(stored.table) if args.format == "csv" else dump_yaml(stored.table)
        if args.output:
            Path(args.output).write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
        return EXIT_OK

    return _with_stored(args, write)


def _cmd_diff(args: argparse.Namespace) -> int:
    async def run() -> int:
        async with _store(args) as store:
            table = await _read_input(args, store)
            current = await store.load()
        changes = diff(current.table if current else RouteTable(), table)
        if args.json:
            print(json.dumps(changes.to_dict() | {"summary": changes.summary()}, default=str))
        else:
            for line in changes.lines():
                print(line)
            print(changes.summary())
        return EXIT_OK

    return _run(run)


def _cmd_list(args: argparse.Namespace) -> int:
    def show(stored: StoredTable) -> int:
        _print_rules(stored, args.json, sys.stdout)
        return EXIT_OK

    return _with_stored(args, show)


def _print_rules(stored: StoredTable, as_json: bool, out: TextIO) -> None:
    table = stored.table
    if as_json:
        document = {
            "snapshot": stored.pointer.snapshot,
            "revision": stored.revision,
            "created": stored.pointer.created,
            "tenants": {t: v.model_dump(exclude={"id"}) for t, v in table.tenants.items()},
            "rules": [rule_to_dict(rule) for rule in table.rules],
        }
        json.dump(document, out, default=str)
        out.write("\n")
        return
    out.write(
        f"# snapshot {stored.pointer.snapshot} revision {stored.revision} "
        f"created {stored.pointer.created}: {len(table.rules)} rules, "
        f"{len(table.tenants)} tenants\n"
    )
    for rule in table.rules:
        out.write(f"{rule.describe()}\n")


def _parse_at(value: str) -> date | datetime:
    try:
        return datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO date (2027-01-01) or date-time"
        ) from None


def _cmd_resolve(args: argparse.Namespace) -> int:
    async def run() -> int:
        if args.table:
            tenants = load_tenants(Path(args.tenants)) if args.tenants else None
            table = load_table(Path(args.table), tenants=tenants)
        else:
            async with _store(args) as store:
                table = (await _stored(store)).table
        query = RouteQuery(
            leistung=args.leistung,
            ars=args.ars,
            standard=args.standard,
            message_type=args.message_type,
            reader=args.reader,
            channel=args.channel,
            at=args.at,
        )
        resolution = compile_table(table).explain(query)
        if args.json:
            print(json.dumps(resolution.to_dict(), default=str))
        else:
            _print_resolution(resolution, sys.stdout)
        return EXIT_OK if resolution.routed else EXIT_REFUSED

    return _run(run)


def _print_resolution(resolution: Resolution, out: TextIO) -> None:
    when = resolution.to_dict()["query"]["at"]
    if resolution.rule is None:
        out.write(f"unroutable at {when}: {resolution.decided_by}\n")
    else:
        out.write(f"routed to {resolution.tenant}/{resolution.backend} at {when}\n")
        out.write(f"rule: {resolution.rule.key}\n")
        out.write(f"decided by: {resolution.decided_by}\n")
    if resolution.candidates:
        out.write("candidates, best first:\n")
    for position, candidate in enumerate(resolution.candidates, start=1):
        level = ARS_LEVELS[candidate.specificity[0]]
        out.write(
            f"  {position}. {candidate.rule.tenant}/{candidate.rule.backend} "
            f"[{level}] {candidate.rule.key}\n"
        )
    for candidate in resolution.excluded:
        out.write(f"  not valid at {when}: {candidate.rule.describe()}\n")


def _cmd_generate(args: argparse.Namespace) -> int:
    from poststelle.routing.table.generator import write_national_table

    print(f"generating up to {args.rules:,} rules for every German Gemeinde ...", file=sys.stderr)
    try:
        written = write_national_table(
            Path(args.output), max_rules=args.rules, leistungen=args.leistungen, seed=args.seed
        )
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_REFUSED
    for path in written:
        print(path)
    return EXIT_OK


SEED_SUFFIX = ".nk"


def _cmd_nats_config(args: argparse.Namespace) -> int:
    from poststelle.routing.federation.isolation import generate_auth_config

    async def run() -> int:
        if args.table:
            tenants = load_tenants(Path(args.tenants)) if args.tenants else None
            table = load_table(Path(args.table), tenants=tenants)
        else:
            async with _store(args) as store:
                table = (await _stored(store)).table
        return await asyncio.to_thread(write, table)

    def write(table: RouteTable) -> int:
        seeds_dir = Path(args.seeds)
        # Reuse the seeds already there, so regenerating after a table change rotates nobody.
        known: dict[str, str] = {}
        for file in sorted(seeds_dir.glob(f"*{SEED_SUFFIX}")):
            known[file.name.removesuffix(SEED_SUFFIX)] = file.read_text(encoding="utf-8").strip()
        try:
            config = generate_auth_config(
                table, own_state=args.state, seeds=known, leaf_peers=args.peer
            )
        except ValueError as error:
            raise RouteTableError([str(error)]) from None
        _write_private(Path(args.output), config.text)
        seeds_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        seeds_dir.chmod(0o700)
        for user, seed in config.seeds.items():
            _write_private(seeds_dir / f"{user}{SEED_SUFFIX}", seed + "\n")
        print(
            f"{args.output}: {len(config.seeds)} nkey users (public keys only); each user's "
            f"seed in {seeds_dir}/<user>{SEED_SUFFIX} (mode 0600), the hub's for nats.nkey_seed"
        )
        return EXIT_OK

    return _run(run)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text, encoding="utf-8")


def _add_connection(parser: argparse.ArgumentParser) -> None:
    add_common_options(parser)
    parser.add_argument("--bucket", default=ROUTES_BUCKET, help=argparse.SUPPRESS)


def _add_input(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="routing table: .yaml/.yml (tenants and rules) or .csv")
    parser.add_argument(
        "--tenants", help="YAML file declaring tenants (for CSV; default: the stored tenants)"
    )
    parser.add_argument(
        "--state",
        help="refuse rules outside this state's territory, e.g. sh (env POSTSTELLE_STATE)",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``routes`` (with its subcommands) and ``nats-config`` to the ``poststelle`` CLI."""
    command = subparsers.add_parser(
        "nats-config", help="nats-server nkey users and permissions isolating the tenants"
    )
    command.add_argument("--table", help="take tenants from this file instead of the hub")
    command.add_argument("--tenants", help="tenants for a CSV --table")
    command.add_argument("--state", help="this hub's state: its user may not reach peers' API")
    command.add_argument(
        "--peer",
        action="append",
        default=[],
        help="a peer state whose leaf link to this hub needs a user (leaf-<peer>; repeatable)",
    )
    command.add_argument("-o", "--output", default="nats-auth.conf", help="config to write")
    command.add_argument(
        "--seeds",
        default="nats-seeds",
        help="folder of the users' nkey seeds, <user>.nk (read and updated; keep it private)",
    )
    _add_connection(command)
    command.set_defaults(func=_cmd_nats_config)

    routes = subparsers.add_parser("routes", help="the routing table: import, resolve, ...")
    commands = routes.add_subparsers(dest="routes_command", required=True)

    command = commands.add_parser("import", help="validate a table and make it current")
    _add_input(command)
    _add_connection(command)
    command.add_argument("--dry-run", action="store_true", help="validate and diff only")
    command.set_defaults(func=_cmd_import)

    command = commands.add_parser("export", help="write the current table")
    command.add_argument("--format", choices=("yaml", "csv"), default="yaml")
    command.add_argument("-o", "--output", help="file to write (default: stdout)")
    _add_connection(command)
    command.set_defaults(func=_cmd_export)

    command = commands.add_parser("diff", help="what importing FILE would add, change, remove")
    _add_input(command)
    _add_connection(command)
    command.add_argument("--json", action="store_true")
    command.set_defaults(func=_cmd_diff)

    command = commands.add_parser("list", help="the current table's rules")
    _add_connection(command)
    command.add_argument("--json", action="store_true")
    command.set_defaults(func=_cmd_list)

    command = commands.add_parser("resolve", help="which rule routes a message, and why")
    command.add_argument("--leistung", help="LeiKa key (14 digits)")
    command.add_argument("--ars", help="ARS of the municipality (12 digits)")
    command.add_argument("--standard")
    command.add_argument("--message-type")
    command.add_argument("--reader", help="reader authority id, praefix:kennung")
    command.add_argument("--channel")
    command.add_argument("--at", type=_parse_at, help="date of validity (default: today)")
    command.add_argument("--json", action="store_true")
    command.add_argument("--table", help="resolve against this file instead of the hub")
    command.add_argument("--tenants", help="tenants for a CSV --table")
    _add_connection(command)
    command.set_defaults(func=_cmd_resolve)

    command = commands.add_parser("generate", help="write a national-scale example table")
    command.add_argument("-o", "--output", default="national", help="output folder")
    command.add_argument("--rules", type=int, default=200_000, help="at most this many rules")
    command.add_argument(
        "--leistungen", type=int, default=21, help="number of Leistungen (at most 21)"
    )
    command.add_argument("--seed", type=int, default=2024)
    command.set_defaults(func=_cmd_generate)
