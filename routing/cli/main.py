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
import socket
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from poststelle.routing.cli import quarantine
from poststelle.routing.cli.common import add_common_options, config_from, with_hub_client
from poststelle.routing.hub.config import ConfigError, config_file_given
from poststelle.routing.hub.supervisor import READY_PREFIX, WorkerSupervisor
from poststelle.routing.ops.metrics import prepare_multiprocess_dir

__all__ = ["build_parser", "main"]

log = logging.getLogger("poststelle")

# Modules that add sub-commands: each exposes ``register(subparsers)``.
_COMMAND_MODULES: tuple[str, ...] = (
    "poststelle.contracts.cli",
    "poststelle.adapters.xta.cli",
    "poststelle.adapters.fitconnect.cli",
    "poststelle.routing.cli.routes",
    "poststelle.routing.cli.dlq",
    "poststelle.routing.cli.stats",
    "poststelle.routing.cli.security",
    "poststelle.routing.cli.doctor",
)


# -- run -------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    from poststelle.routing.hub.demo import prepare_demo
    from poststelle.routing.hub.runtime import Hub, HubAlreadyRunningError, NoHubToJoinError
    from poststelle.routing.hub.supervisor import SupervisorError

    demo_on = not config_file_given(args.config) if args.demo is None else bool(args.demo)
    config = config_from(args, demo=demo_on, **{"http.port": args.http_port})
    primary = args.role == "primary"
    # A worker only adds the demo's back end and route; the demo's schema sets, simulator
    # and XTA mailbox are the primary's.
    demo = prepare_demo(config) if demo_on and primary else None
    if demo is not None:
        config = demo.config
    # Every process of this hub writes its metrics there; /metrics in any of them sums them.
    # A supervised worker keeps its siblings' files: one that died still counts for the hub.
    prepare_multiprocess_dir(config.data_dir / "metrics", clear=primary or not args.supervised)
    if primary:
        from poststelle.routing.cli.security import log_insecure_settings

        log_insecure_settings(config)  # the same list as `poststelle audit-config`
    if args.workers > 1 or not primary:
        _log_process_ids()
    # Workers share the intake's port only where the kernel spreads connections over them; a
    # worker always offers to share (it may join a primary's port on the same host).
    share_port = _CAN_SHARE_PORT and (args.workers > 1 or not primary)

    async def serve() -> int:
        stop = _until_stopped(args.supervised)
        hub = Hub(config, role=args.role, share_http_port=share_port)
        supervisor = None
        try:
            try:
                await hub.start(http=not (args.no_http and hub.role == "worker"))
            except OSError as exc:
                # Most often the intake's port: taken by a hub that does not share it.
                print(f"error: cannot start: {exc}", file=sys.stderr)
                print(
                    "  next: choose a free port (--http-port) or stop what holds it; "
                    "`poststelle doctor` checks the rest",
                    file=sys.stderr,
                )
                return 2
            if args.workers > 1:
                supervisor = WorkerSupervisor(
                    _worker_argv(args, hub, demo_on, share_port), args.workers - 1
                )
                await supervisor.start()
            _print_banner(args, hub, demo, supervisor)
            await stop.wait()
        finally:
            # The workers first: they still use the primary's embedded NATS.
            if supervisor is not None:
                await supervisor.stop()
            await hub.stop()
        return 0

    try:
        return _run_event_loop(serve())
    except (HubAlreadyRunningError, NoHubToJoinError, SupervisorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if demo is not None:
            demo.stop()


def _run_event_loop(main: Coroutine[Any, Any, int]) -> int:
    """The hub's loop: uvloop where it is installed (a tenth less CPU per HTTP request in
    docs/performance.md), asyncio's own elsewhere."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


# Linux and the BSDs; elsewhere each worker would fail to bind: they serve no HTTP then.
_CAN_SHARE_PORT = hasattr(socket, "SO_REUSEPORT")


def _until_stopped(supervised: bool) -> asyncio.Event:
    """Set on SIGTERM or SIGINT; with ``--supervised`` also when standard input closes,
    i.e. when the supervising process died: a worker never outlives its hub."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if supervised:
        stdin = sys.stdin.fileno()

        def on_stdin() -> None:
            if not os.read(stdin, 4096):
                loop.remove_reader(stdin)
                log.info("supervisor gone (stdin closed), stopping pid=%d", os.getpid())
                stop.set()

        loop.add_reader(stdin, on_stdin)
    return stop


def _log_process_ids() -> None:
    """Several processes write to one terminal or journal: each line says whose it is."""
    formatter = logging.Formatter("%(asctime)s %(levelname)s pid=%(process)d %(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)


def _worker_argv(args: argparse.Namespace, hub: Any, demo_on: bool, share_port: bool) -> list[str]:
    """The command line of one worker: this hub's configuration, its NATS, its port."""
    argv = [sys.executable, "-m", "poststelle.routing.cli"]
    if args.verbose:
        argv.append("-v")
    argv += [
        "run",
        *("--role", "worker", "--workers", "1", "--supervised"),
        *("--data-dir", str(hub.config.data_dir)),
        *("--nats-url", hub.nats_url),
        "--demo" if demo_on else "--no-demo",
    ]
    if args.config is not None:
        argv += ["--config", str(args.config)]
    if share_port and hub.portal is not None:
        argv += ["--http-port", hub.http_url.rsplit(":", 1)[1]]
    else:
        argv.append("--no-http")
    return argv


def _print_banner(
    args: argparse.Namespace, hub: Any, demo: Any, supervisor: WorkerSupervisor | None
) -> None:
    if hub.role == "worker":
        intake = f", HTTP intake {hub.http_url}" if hub.portal is not None else ""
        backends = ", ".join(f"{w.backend.tenant}/{w.backend.name}" for w in hub.workers)
        # The first line is the supervisor's ready signal (``READY_PREFIX``).
        print(
            f"{READY_PREFIX} (pid {os.getpid()}, NATS {hub.nats_url}): routing core, "
            f"deliveries for {backends or 'no back end'}{intake}",
            flush=True,
        )
        if supervisor is not None:
            print(f"  worker processes: {args.workers}, pids {_pids(supervisor)}", flush=True)
        print("Press Ctrl+C to stop.", flush=True)
        return
    print(f"Poststelle hub running (NATS {hub.nats_url})", flush=True)
    print(f"  submit XÖV messages:  POST {hub.http_url}/v1/submissions", flush=True)
    print(f"  health:               GET  {hub.http_url}/healthz", flush=True)
    print(f"  metrics (Prometheus): GET  {hub.http_url}/metrics", flush=True)
    print(f"  API documentation:    {hub.http_url}/docs", flush=True)
    print(f"  operator console:     {hub.http_url}/console", flush=True)
    for worker in hub.workers:
        where = worker.backend.health().get("folder") or worker.backend.kind
        backend = f"{worker.backend.tenant}/{worker.backend.name}"
        print(f"  deliveries for {backend}: {where}", flush=True)
    if not hub.config.backends:
        print("  no back ends configured: messages are quarantined as unroutable", flush=True)
    if supervisor is not None:
        print(f"  worker processes: {args.workers}, pids {_pids(supervisor)}", flush=True)
    for line in demo.summary() if demo else _demo_off(args):
        print(f"  {line}", flush=True)
    print("Press Ctrl+C to stop.", flush=True)


def _pids(supervisor: WorkerSupervisor) -> str:
    """This process first, then its workers: ``12 13 14``."""
    return " ".join(str(pid) for pid in [os.getpid(), *supervisor.pids])


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
            print(
                "  next: check the case id (the intake's 202 answer names it; "
                "`poststelle quarantine list` shows parked ones) and --nats-url / --data-dir",
                file=sys.stderr,
            )
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


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
        "--workers",
        type=_positive_int,
        default=os.cpu_count() or 1,
        metavar="N",
        help="processes that route and deliver, this one included, sharing the HTTP port "
        "(default: the number of cores, %(default)s here)",
    )
    run.add_argument(
        "--role",
        choices=("primary", "worker"),
        default="primary",
        help="primary: the whole hub (default); worker: join a running hub's NATS "
        "(--nats-url, or the hub on --data-dir) and only route and deliver, e.g. on another host",
    )
    # Set by the primary for its workers: stop when standard input closes (the primary died).
    run.add_argument("--supervised", action="store_true", help=argparse.SUPPRESS)
    run.add_argument("--no-http", action="store_true", help=argparse.SUPPRESS)
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
    if not args.verbose:
        # httpx logs every request at INFO: a FIT-Connect poller would fill the console.
        logging.getLogger("httpx").setLevel(logging.WARNING)
    from poststelle.contracts.registry import ContractError
    from poststelle.mappings.engine import MappingError

    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(
            "  next: fix the setting named above (`poststelle audit-config` checks a file)",
            file=sys.stderr,
        )
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
