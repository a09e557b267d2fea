"""Tenant isolation enforced by nats-server: users with permissions, generated from the table.

Every tenant gets one user. Its permissions allow exactly:

- pulling from and acknowledging on its back ends' durable consumers on ``CASES``
  (``case_<tenant>_<backend>``, see :func:`backend_consumer_name`; the hub creates them),
- publishing answers on ``reply.<tenant>.>``,
- receiving replies on its own inbox prefix ``_INBOX_<tenant>`` (connect with
  ``inbox_prefix``): the shared ``_INBOX.>`` would let it read other users' replies.

Everything else is denied by the server: other tenants' consumers and subjects, reading the
stream directly, creating consumers, the routing table. The hub user may do everything in its
own domain but nothing through a peer's JetStream API (``$JS.<peer>.API.>``), so it cannot
alter a peer state's table; plain ``$KV`` traffic never crosses the federation link (see
``federation.leafnode_config``).

Passwords are random and written in clear text to a credentials file beside the config (mode
0600). Production deployments should move to nkeys or the operator/JWT mode; the permission
layout stays the same.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from poststelle.routing.federation.states import STATE_PREFIXES
from poststelle.routing.table.rules import RouteTable, Tenant

__all__ = [
    "CASES_STREAM",
    "HUB_USER",
    "NatsAuthConfig",
    "backend_consumer_name",
    "generate_auth_config",
    "hub_permissions",
    "tenant_inbox_prefix",
    "tenant_permissions",
]

CASES_STREAM = "CASES"
HUB_USER = "hub"


def backend_consumer_name(tenant: str, backend: str) -> str:
    """The durable consumer of one back end; ``_`` cannot occur in slugs, so it is unambiguous."""
    return f"case_{tenant}_{backend}"


def tenant_inbox_prefix(tenant: str) -> str:
    return f"_INBOX_{tenant}"


def tenant_permissions(tenant: Tenant) -> dict[str, Any]:
    publish = ["$JS.API.INFO", f"reply.{tenant.id}.>"]
    for backend in tenant.backends:
        consumer = backend_consumer_name(tenant.id, backend)
        publish += [
            f"$JS.API.CONSUMER.INFO.{CASES_STREAM}.{consumer}",
            f"$JS.API.CONSUMER.MSG.NEXT.{CASES_STREAM}.{consumer}",
            f"$JS.ACK.{CASES_STREAM}.{consumer}.>",
        ]
    return {
        "publish": {"allow": publish},
        "subscribe": {"allow": [f"{tenant_inbox_prefix(tenant.id)}.>"]},
    }


def hub_permissions(own_state: str | None) -> dict[str, Any]:
    peers = sorted(state for state in STATE_PREFIXES if state != own_state)
    deny = [f"$JS.{peer}.API.>" for peer in peers]
    return {
        "publish": {"allow": [">"], "deny": deny},
        "subscribe": {"allow": [">"]},
    }


@dataclass(frozen=True)
class NatsAuthConfig:
    """The ``authorization`` block and the passwords it uses (user -> password)."""

    text: str
    passwords: dict[str, str]

    def credentials_json(self) -> str:
        return json.dumps(self.passwords, indent=2, sort_keys=True) + "\n"


def _user(name: str, password: str, permissions: dict[str, Any]) -> str:
    # JSON is valid nats-server configuration syntax and quotes every subject safely.
    return json.dumps({"user": name, "password": password, "permissions": permissions})


def generate_auth_config(
    table: RouteTable,
    *,
    own_state: str | None = None,
    passwords: dict[str, str] | None = None,
    extra_users: Iterable[tuple[str, str, dict[str, Any]]] = (),
) -> NatsAuthConfig:
    """Users for the hub and every tenant of ``table``; reuses ``passwords`` where given."""
    if HUB_USER in table.tenants:
        raise ValueError(f"tenant id {HUB_USER!r} is reserved for the hub's own user")
    known = dict(passwords or {})

    def password(user: str) -> str:
        return known.setdefault(user, secrets.token_urlsafe(24))

    users = [_user(HUB_USER, password(HUB_USER), hub_permissions(own_state))]
    for tenant in table.tenants.values():
        users.append(_user(tenant.id, password(tenant.id), tenant_permissions(tenant)))
    users += [_user(name, pw, perms) for name, pw, perms in extra_users]
    body = ",\n    ".join(users)
    text = f"authorization {{\n  users: [\n    {body}\n  ]\n}}\n"
    used = {HUB_USER, *table.tenants}
    return NatsAuthConfig(text, {user: pw for user, pw in known.items() if user in used})
