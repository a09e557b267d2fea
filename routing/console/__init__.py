"""The operator's web console at ``/console``: overview, quarantine, DLQ, case trace, routing.

Server-rendered Jinja2 pages with a vendored htmx (``static/``, no build step, no network);
operator accounts from ``[console.accounts.NAME]`` with argon2 hashes; signed session
cookies whose sessions live in NATS KV (shared by every hub process, ended by a logout);
a CSRF token on every POST; replays only for operators, each audited with the user.

May import ops, table, streams, adapters, contracts, mappings; never hub, federation or cli.
"""

from poststelle.routing.console._app import CONSOLE_PATH, ConsoleHub, create_console_app
from poststelle.routing.console._auth import (
    OPERATOR,
    READ_ONLY,
    ConsoleAccount,
    ConsoleConfig,
    hash_password,
)
from poststelle.routing.console._sessions import end_sessions

__all__ = [
    "CONSOLE_PATH",
    "OPERATOR",
    "READ_ONLY",
    "ConsoleAccount",
    "ConsoleConfig",
    "ConsoleHub",
    "create_console_app",
    "end_sessions",
    "hash_password",
]
