"""``poststelle``: the hub's command line.

Each area contributes its sub-commands through a ``register(subparsers)`` function, listed
in ``_COMMAND_MODULES``; this module owns only the hub commands (``run``, ``trace``,
``schema``); the shared options live in ``common``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

from poststelle.routing.cli import quarantine
from poststelle.routing.cli.common import add_common_options, config_from, with_hub_client
from poststelle.routing.hub.config import ConfigError, config_file_given

__all__ = ["build_parser", "main"]

log = logging.getLogger("poststelle")

# Modules that add sub-commands: each exposes ``register(subparsers)``.
_COMMAND_MODULES: tuple[str, ...] = (
    "poststelle.contracts.cli",
    "poststelle.adapters.xta.cli",
    "poststelle.routing.cli.routes",
    "poststelle.routing.cli.dlq",
    "poststelle.routing.cli.stats",
)


# -- run -------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    from poststelle.routing.hub.demo import prepare_demo
    from poststelle.routing.hub.runtime import Hub, HubAlreadyRunningError

    demo_on = not config_file_given(args.config) if args.demo is None else bool(args.demo)
    config = config_from(args, demo=demo_on, **{"http.port": args.http_port})
    demo = prepare_demo(config) if demo_on else None
    if demo is not None:
        config = demo.config

    async def serve() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        async with Hub(config) as hub:
            print(f"Poststelle hub running (NATS {hub.nats_url})", flush=True)
            print(f"  submit XÖV messages:  POST {hub.http_url}/v1/submissions", flush=True)
            print(f"  health:               GET  {hub.http_url}/healthz", flush=True)
            print(f"  API documentation:    {hub.http_url}/docs", flush=True)
            for worker in hub.workers:
                where = worker.backend.health().get("folder") or worker.backend.kind
                backend = f"{worker.backend.tenant}/{worker.backend.name}"
                print(f"  deliveries for {backend}: {where}", flush=True)
            if not hub.config.backends:
                print(
                    "  no back ends configured: messages are quarantined as unroutable", flush=True
                )
            for line in demo.summary() if demo else _demo_off(args):
                print(f"  {line}", flush=True)
            print("Press Ctrl+C to stop.", flush=True)
            await stop.wait()
        return 0

    try:
        return asyncio.run(serve())
    except HubAlreadyRunningError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if demo is not None:
            demo.stop()


def _demo_off(args: argparse.Namespace) -> list[str]:
    why = "--no-demo" if args.demo is False else "a config file is in use"
    return [
        f"demo: off ({why}): no demo back end, route or XTA simulator; "
        "--demo adds them to the configuration"
    ]


# -- commands that talk to a running hub's NATS -----------------------------------------


def _cmd_trace(args: argparse.Namespace) -> int:
    async def work(hub: Any) -> int:
        entries = await hub.audit.read(args.case_id)
        if not entries:
            print(f"no audit trail for case {args.case_id}", file=sys.stderr)
            return 1
        if args.json:
            print(json.dumps([entry.model_dump(mode="json") for entry in entries], indent=2))
            return 0
        print(f"case {args.case_id}")
        for entry in entries:
            details = " ".join(
                f"{key}={value}" for key, value in entry.detail.items() if value is not None
            )
            print(f"  {entry.at.isoformat(timespec='milliseconds')}  {entry.hop:<13} {details}")
        return 0

    return asyncio.run(with_hub_client(args, work))


def _cmd_schema(args: argparse.Namespace) -> int:
    if args.asyncapi:
        from poststelle.contracts.asyncapi import ASYNCAPI_PATH as path
        from poststelle.contracts.asyncapi import hub_asyncapi as build
    elif args.reply:
        from poststelle.contracts.replies import CASE_REPLY_SCHEMA_PATH as path
        from poststelle.contracts.replies import case_reply_json_schema as build
    else:
        from poststelle.contracts.events import CASE_EVENT_SCHEMA_PATH as path
        from poststelle.contracts.events import case_event_json_schema as build

    text = json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
    if args.write:
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    else:
        sys.stdout.write(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poststelle",
        description="Poststelle: the digital mailroom of German public administration.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    # A one-shot command prints its answer; its progress notes would only bury it. Services
    # (``run``, ``xta-sim serve``) log what they do at INFO.
    parser.set_defaults(log_level=logging.WARNING)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="start the hub (embedded NATS unless configured)")
    add_common_options(run)
    run.add_argument("--http-port", type=int, help="portal intake port (default 8080)")
    run.add_argument(
        "--demo",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="add the demo back end, routes, schema sets and XTA simulator "
        "(default: on without a config file, off with one)",
    )
    run.set_defaults(func=_cmd_run, log_level=logging.INFO)

    trace = commands.add_parser("trace", help="show a case's hops in order")
    add_common_options(trace)
    trace.add_argument("case_id")
    trace.add_argument("--json", action="store_true")
    trace.set_defaults(func=_cmd_trace)

    quarantine.register(commands)

    schema = commands.add_parser(
        "schema", help="print the CaseEvent JSON Schema (or --asyncapi, --reply)"
    )
    schema_kind = schema.add_mutually_exclusive_group()
    schema_kind.add_argument("--asyncapi", action="store_true", help="the AsyncAPI document")
    schema_kind.add_argument(
        "--reply", action="store_true", help="the JSON Schema of back-end replies (CaseReply)"
    )
    schema.add_argument("--write", action="store_true", help="update contracts/ in place")
    schema.set_defaults(func=_cmd_schema)

    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else args.log_level,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    from poststelle.contracts.registry import ContractError
    from poststelle.mappings.engine import MappingError

    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ContractError, MappingError) as exc:  # e.g. `run` with a bad mapping file
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (``poststelle trace ... | head``)
        # Python would complain again when it flushes stdout at exit: point it elsewhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
