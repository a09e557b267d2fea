"""``poststelle xta-sim``: run the XTA simulator, drop files into its mailboxes, list them.

poststelle xta-sim [--host 127.0.0.1] [--port 8470] [--xsd-dir DIR] [--mailbox ID ...]
poststelle xta-sim put  --url URL --reader ID [--author ID] FILE
poststelle xta-sim list --url URL --reader ID
poststelle xta-sim fault --url URL --kind KIND [--operation OP] [--times N] ... | --clear
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from poststelle.adapters._simcli import (
    add_fault_parser,
    fault_command,
    list_command,
    serve_until_interrupted,
)
from poststelle.adapters.xta.simulator import FaultRule, XtaSimulator

__all__ = ["register"]

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8470


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sim = subparsers.add_parser(
        "xta-sim", help="run an XTA 2.1.1 simulator (SOAP 1.2 on loopback) with mailboxes"
    )
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    sim.add_argument(
        "--xsd-dir", type=Path, help="official XTA 2.1.1 XSDs: reject schema-invalid requests"
    )
    sim.add_argument(
        "--mailbox", action="append", default=[], metavar="ID", help="create a mailbox (repeat)"
    )
    sim.add_argument("--mtom", action="store_true", help="answer getMessage with MTOM")
    sim.set_defaults(func=_serve, log_level=logging.INFO)
    actions = sim.add_subparsers(dest="xta_sim_action", required=False)

    put = actions.add_parser("put", help="drop a file into a mailbox of a running simulator")
    put.add_argument("--url", required=True, help="simulator base URL, e.g. http://127.0.0.1:8470")
    put.add_argument("--reader", required=True, help="mailbox (reader identifier)")
    put.add_argument("--author", default="sim:absender", help="sender identifier")
    put.add_argument("--content-type", default="application/xml")
    put.add_argument("file", type=Path)
    put.set_defaults(func=_put)

    lst = actions.add_parser("list", help="list the messages waiting in a mailbox")
    lst.add_argument("--url", required=True)
    lst.add_argument("--reader", required=True)
    lst.add_argument("--json", action="store_true", help="the simulator's JSON as it is")
    lst.set_defaults(func=_list)

    fault = add_fault_parser(
        actions,
        description="Kinds: delay, fault (an XTA SOAP fault), drop (connection closed), "
        "duplicate (close keeps the messages; getStatusList lists every entry twice), "
        "vanish (getMessage finds the listed message gone).",
        kinds=["delay", "fault", "drop", "duplicate", "vanish"],
        operation_help="XTA operation, e.g. getStatusList",
    )
    fault.add_argument(
        "--delay", type=float, default=0.0, help="seconds, for --kind delay (or drop: stall first)"
    )
    fault.add_argument("--exception", default=FaultRule.exception, help="for --kind fault")
    fault.add_argument("--code", default=FaultRule.code, help="XTA-WS Fehlernummer")
    fault.add_argument("--reason", default=FaultRule.reason)
    fault.add_argument(
        "--after-processing", action="store_true", help="for --kind drop: the call takes effect"
    )
    fault.set_defaults(func=_fault)


def _serve(args: argparse.Namespace) -> int:
    try:
        simulator = XtaSimulator(args.host, args.port, xsd_dir=args.xsd_dir, mtom=args.mtom)
        url = simulator.start()
    except (OSError, LookupError) as exc:
        print(f"xta-sim: cannot start: {exc}", file=sys.stderr)
        return 2
    for reader in args.mailbox:
        simulator.create_mailbox(reader)
    base = url.rsplit("/", 1)[0]
    print(f"XTA simulator: service {url}  admin {base}/admin/mailboxes", flush=True)
    return serve_until_interrupted(simulator)


def _admin_base(url: str) -> str:
    return url.rstrip("/").removesuffix("/xta") + "/admin"


def _admin_url(url: str, reader: str) -> str:
    return f"{_admin_base(url)}/mailboxes/{quote(reader, safe='')}/messages"


def _put(args: argparse.Namespace) -> int:
    try:
        content = args.file.read_bytes()
    except OSError as exc:
        print(f"xta-sim put: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    params = {"author": args.author, "filename": args.file.name, "content_type": args.content_type}
    try:
        response = httpx.post(_admin_url(args.url, args.reader), params=params, content=content)
    except httpx.HTTPError as exc:
        print(f"xta-sim put: {exc}", file=sys.stderr)
        return 1
    if response.status_code != 201:
        print(f"xta-sim put: HTTP {response.status_code}: {response.text}", file=sys.stderr)
        return 1
    print(response.json()["message_id"])
    return 0


def _list(args: argparse.Namespace) -> int:
    def line(entry: Mapping[str, Any]) -> str:
        kind = (entry.get("message_type") or {}).get("code", "-")
        return f"{entry.get('message_id')}  {kind}  {entry.get('filename') or '-'}"

    return list_command(
        "xta-sim",
        _admin_url(args.url, args.reader),
        as_json=args.json,
        empty=f"mailbox {args.reader} is empty",
        line=line,
    )


def _fault(args: argparse.Namespace) -> int:
    rule = {
        "kind": args.kind,
        "operation": args.operation,
        "times": args.times,
        "delay": args.delay,
        "exception": args.exception,
        "code": args.code,
        "reason": args.reason,
        "after_processing": args.after_processing,
    }
    return fault_command("xta-sim", f"{_admin_base(args.url)}/faults", clear=args.clear, rule=rule)
