"""Console state every hub process shares through NATS KV: open sessions, failed logins.

A session is valid while its key is in ``console_sessions``: the cookie's signature says the
hub issued it, the key says nobody has logged it out since. Each request reads the key
(one direct get, no per-process cache), so a logout or a "log out everywhere" holds for the
very next request in every process. The key's value names the account and a fingerprint
of its password hash: a session outlives neither the account nor a change of its password.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable

from nats.js import JetStreamContext
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from poststelle.routing.console._auth import ConsoleAccount, Session
from poststelle.routing.streams.topology import (
    CONSOLE_LOGIN_WINDOW,
    CONSOLE_LOGINS_BUCKET,
    CONSOLE_SESSIONS_BUCKET,
)

__all__ = ["LoginThrottle", "SessionStore", "end_sessions"]


def _account_token(name: str) -> str:
    # Account names may hold '.', the key's separator, or begin with one: hex keeps one
    # name one token, so "olga.*" finds olga's sessions and nobody else's.
    return name.encode().hex()


class SessionStore:
    """The ``console_sessions`` bucket: ``<account hex>.<session id>`` -> account + fingerprint."""

    def __init__(self, js: Callable[[], JetStreamContext], secret: bytes) -> None:
        # A getter: the app is made before the hub connects.
        self._js = js
        self._kv: KeyValue | None = None
        # Keyed, so the bucket's contents say nothing about the hash to whoever reads them.
        self._fingerprint_key = hmac.new(secret, b"console-account", hashlib.sha256).digest()

    async def _bucket(self) -> KeyValue:
        # Opened on first use: the hub declares it (``ensure_topology``) before it serves.
        if self._kv is None:
            self._kv = await self._js().key_value(CONSOLE_SESSIONS_BUCKET)
        return self._kv

    def fingerprint(self, account: ConsoleAccount) -> str:
        hashed = account.password_hash.get_secret_value().encode()
        return hmac.new(self._fingerprint_key, hashed, hashlib.sha256).hexdigest()

    @staticmethod
    def _key(user: str, session_id: str) -> str:
        return f"{_account_token(user)}.{session_id}"

    async def open(self, session: Session, account: ConsoleAccount) -> None:
        value = {"u": session.user, "f": self.fingerprint(account), "e": session.expires}
        await (await self._bucket()).create(
            self._key(session.user, session.session_id),
            json.dumps(value, separators=(",", ":")).encode(),
        )

    async def holds(self, session: Session, account: ConsoleAccount) -> bool:
        """Whether the session is open and was opened with the account's current hash."""
        try:
            entry = await (await self._bucket()).get(self._key(session.user, session.session_id))
        except KeyNotFoundError:  # logged out, expired, or never opened here
            return False
        try:
            value = json.loads(entry.value or b"")
            user, fingerprint = str(value["u"]), str(value["f"])
        except (ValueError, KeyError, TypeError):
            return False
        return user == session.user and hmac.compare_digest(fingerprint, self.fingerprint(account))

    async def close(self, user: str, session_id: str) -> None:
        await (await self._bucket()).purge(self._key(user, session_id))

    async def close_all(self, user: str) -> int:
        """Ends every session of ``user``; returns how many were open."""
        return await end_sessions(self._js(), user)


async def end_sessions(js: JetStreamContext, user: str) -> int:
    """Ends every console session of ``user`` in every hub process (its keys are purged);
    returns how many were open. ``poststelle console-logout`` and "log out everywhere"."""
    bucket = await js.key_value(CONSOLE_SESSIONS_BUCKET)
    watcher = await bucket.watch(f"{_account_token(user)}.*", ignore_deletes=True, meta_only=True)
    keys: list[str] = []
    try:
        async for entry in watcher:
            if entry is None:  # the end of what the bucket holds now
                break
            keys.append(entry.key)
    finally:
        await watcher.stop()  # type: ignore[no-untyped-call]
    for key in keys:
        await bucket.purge(key)
    return len(keys)


class LoginThrottle:
    """At most ``attempts`` logins per account name in the window (``console_logins``' TTL),
    counted by every hub process together: argon2 makes each guess slow, this makes a run
    of them stop, however many workers the guesses are spread over.

    Each attempt is counted before its password is checked, with compare-and-set, so
    parallel guesses cannot slip through between a check and a count."""

    def __init__(
        self,
        js: Callable[[], JetStreamContext],
        attempts: int = 10,
        window: float = CONSOLE_LOGIN_WINDOW,
    ) -> None:
        self._js = js
        self._kv: KeyValue | None = None
        self._attempts = attempts
        self._window = window

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            self._kv = await self._js().key_value(CONSOLE_LOGINS_BUCKET)
        return self._kv

    @staticmethod
    def _key(name: str) -> str:
        # The name is the caller's input, any text: a digest is a valid key of fixed size.
        return hashlib.sha256(name.encode()).hexdigest()

    async def admit(self, name: str) -> bool:
        """Counts one attempt for ``name``; ``False`` when the window's attempts are used up."""
        bucket = await self._bucket()
        key = self._key(name)
        for _ in range(20):
            now = time.time()
            try:
                entry = await bucket.get(key)
                revision = entry.revision
                stored = json.loads(entry.value or b"[]")
            except KeyNotFoundError:
                revision, stored = 0, []
            except ValueError:
                stored = []
            recent = [float(t) for t in stored if isinstance(t, int | float)]
            recent = [t for t in recent if t > now - self._window]
            admitted = len(recent) < self._attempts
            value = json.dumps([*recent, now][-self._attempts :]).encode()
            try:
                if revision:
                    await bucket.update(key, value, last=revision)
                else:
                    await bucket.create(key, value)
            except KeyWrongLastSequenceError:
                await asyncio.sleep(0.005)  # another process counted one just now
                continue
            return admitted
        return False  # so contended that counting failed: refuse rather than not count

    async def succeeded(self, name: str) -> None:
        await (await self._bucket()).purge(self._key(name))
