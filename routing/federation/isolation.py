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

Every user is an nkey (Ed25519): the server's configuration holds only public keys, so
nothing the hub writes for the server is a secret. Each user's seed (its private key) goes
into a file of its own, mode 0600, handed to that user alone; nats-py connects with
``nkeys_seed=<file>`` (the hub: ``nats.nkey_seed``). The operator/JWT mode of ``nsc`` keeps
the same permission layout.

A peer state's leaf link is a user too (``leaf-<peer>``, ``nats-config --peer``): the peer's
server authenticates with that seed (``states.leafnode_config(remote_seed_variable=...)``)
and may not move hub-local subjects across the link.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import nkeys

from poststelle.routing.federation.states import HUB_LOCAL_SUBJECTS, STATE_PREFIXES
from poststelle.routing.streams.topology import BACKEND_CONSUMER_PREFIX
from poststelle.routing.table.rules import RouteTable, Tenant

__all__ = [
    "CASES_STREAM",
    "HUB_USER",
    "NatsAuthConfig",
    "backend_consumer_name",
    "generate_auth_config",
    "hub_permissions",
    "leaf_permissions",
    "leaf_user",
    "new_user_seed",
    "public_key",
    "tenant_inbox_prefix",
    "tenant_permissions",
]

CASES_STREAM = "CASES"
HUB_USER = "hub"


def backend_consumer_name(tenant: str, backend: str) -> str:
    """The durable consumer of one back end; ``_`` cannot occur in slugs, so it is unambiguous."""
    return f"{BACKEND_CONSUMER_PREFIX}{tenant}_{backend}"


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


def new_user_seed() -> str:
    """A fresh user nkey's seed (``SU...``): the private key, for its user's file only."""
    return bytes(nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER)).decode()


def public_key(seed: str) -> str:
    """The public key (``U...``) of a user seed; raises ``ValueError`` for anything else."""
    try:
        pair = nkeys.from_seed(bytearray(seed.strip().encode()))
    except nkeys.NkeysError as error:
        raise ValueError(f"not an nkey seed: {type(error).__name__}") from None
    key = bytes(pair.public_key).decode()
    pair.wipe()
    if not key.startswith("U"):
        raise ValueError("not a user nkey seed (it must start with SU)")
    return key


def leaf_user(peer: str) -> str:
    """The user a peer state's hub links its leaf node as."""
    return f"leaf-{peer}"


def leaf_permissions() -> dict[str, Any]:
    """A peer's leaf link: the hub-local subjects neither way, as the remote's own filters
    (``states.leafnode_config``) say too; this side enforces it whatever the peer configures.
    JetStream API and sourcing traffic between the domains pass."""
    deny = list(HUB_LOCAL_SUBJECTS)
    return {
        "publish": {"allow": [">"], "deny": deny},
        "subscribe": {"allow": [">"], "deny": deny},
    }


@dataclass(frozen=True)
class NatsAuthConfig:
    """The ``authorization`` block (public keys only) and each user's seed (user -> seed)."""

    text: str
    seeds: dict[str, str]


_CLIENT = ["STANDARD"]
_LEAF = ["LEAFNODE"]


def _user(
    name: str, nkey: str, permissions: dict[str, Any], connections: list[str] = _CLIENT
) -> str:
    # JSON is valid nats-server configuration syntax and quotes every subject safely; the
    # comment names the user, which an nkey entry otherwise does not. The connection type
    # keeps a client's seed from opening a leaf link and a leaf link's from acting a client.
    entry = json.dumps(
        {"nkey": nkey, "permissions": permissions, "allowed_connection_types": connections}
    )
    return f"# {name}\n    {entry}"


def generate_auth_config(
    table: RouteTable,
    *,
    own_state: str | None = None,
    seeds: Mapping[str, str] | None = None,
    leaf_peers: Iterable[str] = (),
    extra_users: Iterable[tuple[str, str, dict[str, Any]]] = (),
) -> NatsAuthConfig:
    """nkey users for the hub, every tenant of ``table`` and each peer state's leaf link
    (``leaf-<peer>``); reuses ``seeds`` where given (regenerating after a table change
    rotates nobody). ``extra_users`` are ``(name, public key, permissions)``."""
    peers = list(leaf_peers)
    for name in (HUB_USER, *(leaf_user(peer) for peer in peers)):
        if name in table.tenants:
            raise ValueError(f"tenant id {name!r} is reserved for the hub's own users")
    for peer in peers:
        if peer not in STATE_PREFIXES or peer == own_state:
            raise ValueError(f"{peer!r} is not a peer state")
    known = dict(seeds or {})

    def nkey(user: str) -> str:
        return public_key(known.setdefault(user, new_user_seed()))

    users = [_user(HUB_USER, nkey(HUB_USER), hub_permissions(own_state))]
    for tenant in table.tenants.values():
        users.append(_user(tenant.id, nkey(tenant.id), tenant_permissions(tenant)))
    for peer in peers:
        users.append(_user(leaf_user(peer), nkey(leaf_user(peer)), leaf_permissions(), _LEAF))
    users += [_user(name, key, perms) for name, key, perms in extra_users]
    body = ",\n    ".join(users)
    text = f"authorization {{\n  users: [\n    {body}\n  ]\n}}\n"
    used = {HUB_USER, *table.tenants, *(leaf_user(peer) for peer in peers)}
    return NatsAuthConfig(text, {user: seed for user, seed in known.items() if user in used})
