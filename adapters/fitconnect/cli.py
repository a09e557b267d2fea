"""``poststelle fitconnect-sim``: run the FIT-Connect simulator, send a submission as a sender
would, list what it holds, inject faults.

poststelle fitconnect-sim [--host 127.0.0.1] [--port 8471] [--keys-dir DIR]
poststelle fitconnect-sim send --url URL --client-id ID --client-secret S --destination UUID FILE
poststelle fitconnect-sim list --url URL [--replies]
poststelle fitconnect-sim fault --url URL --kind KIND [--operation OP] [--times N] ... | --clear

``serve`` registers one destination with fresh keys and two API clients (a sender and the
destination's subscriber) and writes what a hub needs into ``--keys-dir``: the destination's
private keys (``decryption.jwk``, ``signing.jwk``) and ``destination.json`` (ids, secrets).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from poststelle.adapters._simcli import (
    add_fault_parser,
    fault_command,
    list_command,
    serve_until_interrupted,
)
from poststelle.adapters.fitconnect._client import FitConnectClient, FitConnectError
from poststelle.adapters.fitconnect._config import FitConnectConnectionSettings
from poststelle.adapters.fitconnect._crypto import CryptoError, KeyPair, generate_key, load_key
from poststelle.adapters.fitconnect._sender import OutgoingAttachment, send_submission
from poststelle.adapters.fitconnect.simulator import OPERATIONS, FitConnectSimulator

__all__ = ["DEFAULT_PORT", "SimulatedSetup", "register", "set_up"]

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8471
DEFAULT_SERVICE = "urn:de:fim:leika:leistung:99010003001006"
XBAU_NS = "http://www.xleitstelle.de/xbau/2/6"


@dataclass(frozen=True)
class SimulatedSetup:
    """One destination of a running simulator and the API clients around it."""

    url: str
    token_url: str
    destination_id: str
    subscriber_id: str
    subscriber_secret: str
    sender_id: str
    sender_secret: str
    decryption_key: str
    signing_key: str


def _key(folder: Path, name: str, kid: str, use: str) -> KeyPair:
    """The key kept in ``folder`` from an earlier start, else a new one (kept there)."""
    path = folder / name
    if path.is_file():
        try:
            return KeyPair(load_key(path, private=True, purpose=name))
        except CryptoError:
            logger.warning("fitconnect-sim: %s unusable, making a new key", path)
    pair = generate_key(kid, use=use)
    path.write_text(pair.private_json(), encoding="utf-8")
    path.chmod(0o600)
    return pair


def set_up(simulator: FitConnectSimulator, folder: Path) -> SimulatedSetup:
    """Register a destination whose keys live in ``folder`` and write ``destination.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    encryption = _key(folder, "decryption.jwk", "poststelle-demo-enc", "enc")
    signature = _key(folder, "signing.jwk", "poststelle-demo-sig", "sig")
    destination = simulator.add_destination(encryption.public, signature.public)
    subscriber = simulator.add_client("subscriber", (destination.destination_id,))
    sender = simulator.add_client("sender")
    setup = SimulatedSetup(
        url=simulator.url,
        token_url=simulator.token_url,
        destination_id=destination.destination_id,
        subscriber_id=subscriber[0],
        subscriber_secret=subscriber[1],
        sender_id=sender[0],
        sender_secret=sender[1],
        decryption_key=str(folder / "decryption.jwk"),
        signing_key=str(folder / "signing.jwk"),
    )
    (folder / "destination.json").write_text(json.dumps(asdict(setup), indent=2) + "\n")
    return setup


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    sim = subparsers.add_parser(
        "fitconnect-sim",
        help="run a FIT-Connect Submission API simulator (HTTP on loopback, OAuth included)",
    )
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    sim.add_argument(
        "--keys-dir",
        type=Path,
        default=Path("fitconnect-sim"),
        help="where the destination's keys and destination.json are kept",
    )
    sim.set_defaults(func=_serve, log_level=logging.INFO)
    actions = sim.add_subparsers(dest="fitconnect_sim_action", required=False)

    send = actions.add_parser("send", help="send a file as a submission, as a sender would")
    send.add_argument("--url", required=True, help="simulator base URL, e.g. http://127.0.0.1:8471")
    send.add_argument("--token-url", help="default: <url>/token")
    send.add_argument("--client-id", required=True, help="a sender client")
    send.add_argument("--client-secret", required=True)
    send.add_argument("--destination", required=True, help="destination id")
    send.add_argument("--service", default=DEFAULT_SERVICE, help="LeiKa URN of the service")
    send.add_argument("--mime-type", default="application/xml")
    send.add_argument("--schema-uri", default=XBAU_NS, help="the data's schema")
    send.add_argument(
        "--attach", type=Path, action="append", default=[], help="a PDF attachment (repeat)"
    )
    send.add_argument("file", type=Path)
    send.set_defaults(func=_send)

    lst = actions.add_parser("list", help="the simulator's submissions and their state")
    lst.add_argument("--url", required=True)
    lst.add_argument(
        "--replies", action="store_true", help="the replies in the cases and their state instead"
    )
    lst.add_argument("--json", action="store_true", help="the simulator's JSON as it is")
    lst.set_defaults(func=_list)

    fault = add_fault_parser(
        actions,
        description="Kinds: status (an HTTP error), delay, expire-token (401 once), "
        "tamper (serve a JWE with a changed ciphertext byte).",
        kinds=["status", "delay", "expire-token", "tamper"],
        operations=["*", *OPERATIONS],
    )
    fault.add_argument("--status", type=int, default=503, help="for --kind status")
    fault.add_argument("--delay", type=float, default=0.0, help="seconds, for --kind delay")
    fault.set_defaults(func=_fault)


def _serve(args: argparse.Namespace) -> int:
    simulator = FitConnectSimulator(args.host, args.port)
    try:
        simulator.start()
    except (OSError, RuntimeError) as exc:
        print(f"fitconnect-sim: cannot start: {exc}", file=sys.stderr)
        return 2
    setup = set_up(simulator, args.keys_dir)
    print(f"FIT-Connect simulator: {setup.url}  (token endpoint {setup.token_url})", flush=True)
    print(f"  destination {setup.destination_id}: {args.keys_dir / 'destination.json'}")
    print(
        f"  send: poststelle fitconnect-sim send --url {setup.url} --client-id "
        f"{setup.sender_id} --client-secret {setup.sender_secret} --destination "
        f"{setup.destination_id} FILE",
        flush=True,
    )
    return serve_until_interrupted(simulator)


async def _send_file(args: argparse.Namespace, data: bytes, files: list[OutgoingAttachment]) -> str:
    settings = FitConnectConnectionSettings.model_validate(
        {
            "submission_api_url": args.url,
            "token_url": args.token_url or f"{args.url.rstrip('/')}/token",
            "client_id": args.client_id,
            "client_secret": args.client_secret,
            "retry_attempts": 2,
        }
    )
    async with FitConnectClient(settings) as client:
        sent = await send_submission(
            client,
            args.destination,
            service={"identifier": args.service},
            data=data,
            schema_uri=args.schema_uri,
            mime_type=args.mime_type,
            attachments=files,
        )
    return json.dumps({"submissionId": sent.submission_id, "caseId": sent.case_id})


def _send(args: argparse.Namespace) -> int:
    try:
        data = args.file.read_bytes()
        files = [OutgoingAttachment(path.read_bytes(), filename=path.name) for path in args.attach]
    except OSError as exc:
        print(f"fitconnect-sim send: {exc}", file=sys.stderr)
        return 2
    try:
        print(asyncio.run(_send_file(args, data, files)))
    except (FitConnectError, CryptoError, ValueError) as exc:
        print(f"fitconnect-sim send: {exc}", file=sys.stderr)
        return 1
    return 0


def _list(args: argparse.Namespace) -> int:
    what = "replies" if args.replies else "submissions"
    key = "replyId" if args.replies else "submissionId"
    return list_command(
        "fitconnect-sim",
        f"{args.url.rstrip('/')}/admin/{what}",
        as_json=args.json,
        empty=f"no {what}",
        line=lambda e: f"{e[key]}  {e['state']:<9}  case {e['caseId']}  {e['events']} event(s)",
    )


def _fault(args: argparse.Namespace) -> int:
    rule = {
        "kind": args.kind,
        "operation": args.operation,
        "times": args.times,
        "status": args.status,
        "delay": args.delay,
    }
    url = f"{args.url.rstrip('/')}/admin/faults"
    return fault_command("fitconnect-sim", url, clear=args.clear, rule=rule)
