"""``poststelle hash-key``: a new API key and the digest to configure instead of it."""

from __future__ import annotations

import argparse
import json
import sys

from poststelle.adapters._apikey import MIN_KEY_LENGTH, hash_api_key, new_api_key

__all__ = ["register"]


def _cmd_hash_key(args: argparse.Namespace) -> int:
    if args.stdin:
        # From standard input, not argv: a key on the command line lands in shell history.
        key = sys.stdin.readline().rstrip("\r\n")
        if not key:
            print("error: no key on standard input", file=sys.stderr)
            return 2
        if len(key) < MIN_KEY_LENGTH:
            print(
                f"warning: a key of {len(key)} characters may be guessable; "
                f"`poststelle hash-key` makes one of 43",
                file=sys.stderr,
            )
    else:
        key = new_api_key()
    digest = hash_api_key(key)
    if args.json:
        print(json.dumps({"key": None if args.stdin else key, "digest": digest}))
        return 0
    if not args.stdin:
        print(f"key:    {key}")
        print("        (give this to the portal or back end; the hub keeps only the digest)")
    print(f"digest: {digest}")
    name = args.name or "portal-name"
    print("config: [http.api_keys]  " + f'{name} = "{digest}"')
    print(f'        or in its [[backends]] entry: api_key = "{digest}"')
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``hash-key`` to the ``poststelle`` CLI."""
    command = subparsers.add_parser(
        "hash-key", help="a new API key and the digest to put in the config"
    )
    command.add_argument(
        "--stdin", action="store_true", help="hash the key on standard input instead"
    )
    command.add_argument("--name", help="portal name for the printed config line")
    command.add_argument("--json", action="store_true")
    command.set_defaults(func=_cmd_hash_key)
