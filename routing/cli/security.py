"""``poststelle hash-key`` (a new API key and the digest to configure instead of it),
``poststelle console-hash-password`` (the argon2 hash of a console account's password),
``poststelle console-logout`` (end an account's console sessions in every process) and
``poststelle audit-config`` (the insecure settings of a hub config, each with its remedy; the
same list is logged by ``poststelle run`` at start-up)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from poststelle.adapters._apikey import MIN_KEY_LENGTH, hash_api_key, is_key_digest, new_api_key
from poststelle.routing.cli.common import add_common_options, with_hub_client
from poststelle.routing.hub.config import ConfigError, HubConfig, config_file_given, load_config

__all__ = ["EXIT_WARNINGS", "Finding", "audit", "log_insecure_settings", "register"]

log = logging.getLogger(__name__)

EXIT_WARNINGS = 3  # audit-config: the config loads but has insecure settings
_MIN_PASSWORD_LENGTH = 12


@dataclass(frozen=True)
class Finding:
    """One insecure setting: where, what is wrong, what to do."""

    setting: str
    problem: str
    remedy: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name other than localhost: assume it is reachable from elsewhere


_HASH_REMEDY = "put its digest in the config instead: `poststelle hash-key --stdin` prints it"


def _key_findings(setting: str, configured: str) -> list[Finding]:
    if is_key_digest(configured):
        return []
    findings = [Finding(setting, "API key in clear text in the config file", _HASH_REMEDY)]
    if len(configured) < MIN_KEY_LENGTH:
        findings.append(
            Finding(
                setting,
                f"API key of {len(configured)} characters may be guessable",
                "make a new one with `poststelle hash-key` (43 random characters)",
            )
        )
    return findings


def _http_findings(config: HubConfig) -> list[Finding]:
    http = config.http
    findings: list[Finding] = []
    exposed = not _is_loopback(http.host)
    has_keys = bool(http.api_keys) or any(b.api_key is not None for b in config.backends)
    if exposed and not has_keys:
        findings.append(
            Finding(
                "http.api_keys",
                f"the intake listens on {http.host} without API keys: anyone who reaches "
                "it can submit cases and read their state",
                "give each portal a key under [http.api_keys] (`poststelle hash-key`), or "
                "bind http.host to 127.0.0.1 behind a proxy that authenticates",
            )
        )
    if exposed and http.tls_certfile is None:
        findings.append(
            Finding(
                "http.tls_certfile",
                f"the intake listens on {http.host} over plain HTTP: keys and applications "
                "travel unencrypted",
                "set http.tls_certfile and http.tls_keyfile, or bind http.host to 127.0.0.1 "
                "behind a TLS-terminating proxy",
            )
        )
    for name, key in http.api_keys.items():
        findings += _key_findings(f"http.api_keys.{name}", key.get_secret_value())
    for index, backend in enumerate(config.backends):
        if backend.api_key is not None:
            findings += _key_findings(
                f"backends[{index}].api_key", backend.api_key.get_secret_value()
            )
    if http.callback_url is not None:
        findings += _plain_http_findings("http.callback_url", str(http.callback_url))
        if http.callback_secret is None:
            findings.append(
                Finding(
                    "http.callback_secret",
                    "portal callbacks are sent unsigned: the portal cannot tell them from "
                    "forgeries",
                    "set http.callback_secret (a long random string) and verify the signature",
                )
            )
    return findings


def _plain_http_findings(setting: str, url: str) -> list[Finding]:
    parts = urlsplit(url)
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        return [
            Finding(
                setting,
                f"plain HTTP to {parts.hostname}: case data travels unencrypted",
                "use an https:// URL",
            )
        ]
    return []


def _backend_findings(config: HubConfig) -> list[Finding]:
    findings: list[Finding] = []
    for index, backend in enumerate(config.backends):
        if backend.kind != "webhook":
            continue
        where = f"backends[{index}].settings"
        url = str(backend.settings.get("url", ""))
        findings += _plain_http_findings(f"{where}.url", url)
        secret = str(backend.settings.get("secret") or "")
        if len(secret) < MIN_KEY_LENGTH:
            findings.append(
                Finding(
                    f"{where}.secret",
                    "the webhook's signing secret is "
                    + (f"only {len(secret)} characters" if secret else "missing")
                    + ": signatures can be forged",
                    "set a long random secret (`poststelle hash-key` prints a key to use) and "
                    "have the receiver verify signature and timestamp",
                )
            )
    return findings


def _nats_findings(config: HubConfig) -> list[Finding]:
    nats = config.nats
    findings: list[Finding] = []
    for url in [u.strip() for u in (nats.url or "").split(",") if u.strip()]:
        parts = urlsplit(url if "://" in url else f"nats://{url}")
        if parts.password:
            findings.append(
                Finding(
                    "nats.url",
                    f"the NATS URL for {parts.hostname} holds a password",
                    "use nkeys: `poststelle nats-config` writes the server's users and the "
                    "hub's seed file, named by nats.nkey_seed",
                )
            )
        elif (
            not _is_loopback(parts.hostname)
            and nats.credentials is None
            and nats.nkey_seed is None
            and not parts.username
        ):
            findings.append(
                Finding(
                    "nats.nkey_seed",
                    f"the hub connects to NATS on {parts.hostname} without credentials",
                    "set nats.nkey_seed (from `poststelle nats-config`) or nats.credentials",
                )
            )
    if nats.leaf_listen_port is not None and nats.auth_file is None:
        findings.append(
            Finding(
                "nats.leaf_listen_port",
                "the embedded server accepts leaf connections from any peer that reaches "
                f"port {nats.leaf_listen_port}: no leaf authentication",
                "set nats.auth_file to the users of `poststelle nats-config --peer <state>` "
                "(and nats.nkey_seed): each peer's leaf link then signs with its nkey",
            )
        )
    for remote in nats.leaf_remotes:
        parts = urlsplit(remote)
        if not parts.username and nats.leaf_nkey_seed is None:
            findings.append(
                Finding(
                    "nats.leaf_remotes",
                    f"the leaf link to {parts.hostname} carries no credentials",
                    "set nats.leaf_nkey_seed to the leaf-<state> seed the peer's "
                    "`nats-config --peer` made, and have the peer require it (its auth_file)",
                )
            )
        elif parts.password:
            findings.append(
                Finding(
                    "nats.leaf_remotes",
                    f"the leaf link to {parts.hostname} holds a password in the config",
                    "use an nkey for the leaf link instead of user and password",
                )
            )
    return findings


def _console_findings(config: HubConfig) -> list[Finding]:
    console, http = config.console, config.http
    if (
        console.accounts
        and not _is_loopback(http.host)
        and http.tls_certfile is None
        and not console.secure_cookies
    ):
        return [
            Finding(
                "console.secure_cookies",
                f"the console is served on {http.host} over plain HTTP: operators' "
                "passwords and session cookies travel unencrypted",
                "set http.tls_certfile and http.tls_keyfile, or serve it through a TLS "
                "proxy and set console.secure_cookies = true",
            )
        ]
    return []


def audit(config: HubConfig) -> list[Finding]:
    """Every insecure setting of ``config``; an empty list when none was found."""
    return [
        *_http_findings(config),
        *_backend_findings(config),
        *_nats_findings(config),
        *_console_findings(config),
    ]


def log_insecure_settings(config: HubConfig) -> int:
    """``run``'s preflight: log each finding as a warning; returns how many there were."""
    findings = audit(config)
    for finding in findings:
        log.warning(
            "insecure setting %s: %s remedy=%r", finding.setting, finding.problem, finding.remedy
        )
    return len(findings)


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


def _read_password() -> str | None:
    """From the terminal, asked twice without echo; else the first line of standard input
    (never from argv, which lands in shell history and the process list)."""
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if first != getpass.getpass("again:    "):
            print("error: the two passwords differ", file=sys.stderr)
            return None
        return first
    return sys.stdin.readline().rstrip("\r\n")


def _cmd_console_hash_password(args: argparse.Namespace) -> int:
    from poststelle.routing.console import hash_password

    password = _read_password()
    if password is None:
        return 2
    if not password:
        print("error: no password given", file=sys.stderr)
        return 2
    if len(password) < _MIN_PASSWORD_LENGTH:
        print(
            f"warning: a password of {len(password)} characters is weak; "
            f"use {_MIN_PASSWORD_LENGTH} or more",
            file=sys.stderr,
        )
    digest = hash_password(password)
    if args.json:
        print(json.dumps({"password_hash": digest}))
        return 0
    print(f"[console.accounts.{args.name or 'NAME'}]")
    print(f'password_hash = "{digest}"')
    print(f'role = "{args.role}"')
    return 0


def _cmd_audit_config(args: argparse.Namespace) -> int:
    path = Path(args.config) if args.config else None
    if not config_file_given(path):
        print("error: give the hub config: --config FILE or $POSTSTELLE_CONFIG", file=sys.stderr)
        return 2
    try:
        config = load_config(path, demo=False)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    findings = audit(config)
    if args.json:
        print(json.dumps([finding.as_dict() for finding in findings], indent=2))
    else:
        for finding in findings:
            print(f"warning: {finding.setting}: {finding.problem}")
            print(f"  remedy: {finding.remedy}")
        print(f"{len(findings)} warning(s)" if findings else "no insecure settings found")
    return EXIT_WARNINGS if findings else 0


def _cmd_console_logout(args: argparse.Namespace) -> int:
    from poststelle.routing.console import end_sessions

    async def work(hub: Any) -> int:
        ended = await end_sessions(hub.js, args.name)
        log.warning("console sessions ended user=%s sessions=%s by=cli", args.name, ended)
        print(f"ended {ended} console session(s) of {args.name}")
        return 0

    return asyncio.run(with_hub_client(args, work))


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``hash-key``, ``console-hash-password``, ``console-logout`` and ``audit-config``
    to the CLI."""
    command = subparsers.add_parser(
        "hash-key", help="a new API key and the digest to put in the config"
    )
    command.add_argument(
        "--stdin", action="store_true", help="hash the key on standard input instead"
    )
    command.add_argument("--name", help="portal name for the printed config line")
    command.add_argument("--json", action="store_true")
    command.set_defaults(func=_cmd_hash_key)

    command = subparsers.add_parser(
        "console-hash-password",
        help="the argon2 hash of a console password (read from the terminal or stdin)",
    )
    command.add_argument("--name", help="account name for the printed config section")
    command.add_argument(
        "--role",
        choices=("operator", "read-only"),
        default="read-only",
        help="(default: %(default)s)",
    )
    command.add_argument("--json", action="store_true")
    command.set_defaults(func=_cmd_console_hash_password)

    command = subparsers.add_parser(
        "console-logout",
        help="end every console session of an account, in every hub process, at once",
    )
    command.add_argument("--name", required=True, help="the account name")
    add_common_options(command)
    command.set_defaults(func=_cmd_console_logout)

    command = subparsers.add_parser(
        "audit-config",
        help="warn about insecure settings in the hub config (exit 3 if there are any)",
    )
    command.add_argument("--config", help="hub config file (default: $POSTSTELLE_CONFIG)")
    command.add_argument("--json", action="store_true")
    command.set_defaults(func=_cmd_audit_config)
