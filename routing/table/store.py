"""The routing table in the ``routes`` KV bucket, atomic for readers, and the hot-reload watcher.

Layout of the bucket:

- ``snapshot.<id>.<n>``: part ``n`` of a compressed snapshot (zlib over a columnar JSON
  document). A national table is several MB, more than one NATS message may carry, hence parts.
- ``current``: a small JSON pointer naming the snapshot id, its part count, size and sha256.

An import writes every part of a new snapshot first and then swaps ``current`` with
compare-and-set on the revision it started from. Readers only ever follow ``current``, so they
see the old table or the new one, never a half-written one; two importers racing cannot both
win. Old snapshots are purged after the swap, keeping the last few so a reader still fetching
one is not cut short.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from nats.js.api import KeyValueConfig
from nats.js.client import JetStreamContext
from nats.js.errors import (
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NotFoundError,
)
from nats.js.kv import KeyValue
from pydantic import ValidationError

from poststelle.routing.streams.topology import ROUTES_BUCKET
from poststelle.routing.table.files import RULE_COLUMNS
from poststelle.routing.table.resolver import Resolver, compile_table
from poststelle.routing.table.rules import RouteTable, RouteTableError, Rule, rules_from_rows

__all__ = [
    "POINTER_KEY",
    "ROUTES_BUCKET",
    "ConcurrentImportError",
    "ReuseIndex",
    "RouteTableStore",
    "RouteTableWatcher",
    "SnapshotPointer",
    "StoredTable",
    "decode_snapshot",
    "decode_snapshot_reusing",
    "encode_snapshot",
    "ensure_routes_bucket",
]

log = logging.getLogger(__name__)

POINTER_KEY = "current"
SNAPSHOT_FORMAT = 1
# Below the server's default max_payload (1 MiB) with room for headers.
PART_BYTES = 512 * 1024
# A snapshot expands about 10x; this bound stops a forged pointer from exhausting memory.
MAX_SNAPSHOT_BYTES = 512 * 1024 * 1024
KEEP_SNAPSHOTS = 3


class ConcurrentImportError(RuntimeError):
    """Another import swapped the pointer first; nothing of ours became visible."""


@dataclass(frozen=True, slots=True)
class SnapshotPointer:
    snapshot: str
    sequence: int
    parts: int
    size: int
    sha256: str
    rules: int
    created: str

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "format": SNAPSHOT_FORMAT,
                "snapshot": self.snapshot,
                "sequence": self.sequence,
                "parts": self.parts,
                "size": self.size,
                "sha256": self.sha256,
                "rules": self.rules,
                "created": self.created,
            }
        ).encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> SnapshotPointer:
        try:
            data = json.loads(raw)
            if data.get("format") != SNAPSHOT_FORMAT:
                raise ValueError(f"unsupported snapshot format {data.get('format')!r}")
            return cls(
                snapshot=str(data["snapshot"]),
                sequence=int(data["sequence"]),
                parts=int(data["parts"]),
                size=int(data["size"]),
                sha256=str(data["sha256"]),
                rules=int(data["rules"]),
                created=str(data["created"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise RouteTableError([f"routing table pointer is unreadable: {error}"]) from None


@dataclass(frozen=True, slots=True)
class StoredTable:
    table: RouteTable
    pointer: SnapshotPointer
    revision: int


# Cells of a row are joined with the ASCII unit separator, which validation refuses inside any
# field: one JSON string per rule parses several times faster than a list of cells, and the
# string doubles as the key for reusing an unchanged rule on reload.
_SEPARATOR = "\x1f"


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def encode_snapshot(table: RouteTable) -> bytes:
    """Tenants, column names and one separator-joined string per rule, as compressed JSON."""
    rows = [
        _SEPARATOR.join([_cell_text(getattr(rule, column)) for column in RULE_COLUMNS])
        for rule in table.rules
    ]
    document = {
        "format": SNAPSHOT_FORMAT,
        "tenants": {
            tenant_id: {"name": tenant.name, "backends": list(tenant.backends)}
            for tenant_id, tenant in table.tenants.items()
        },
        "columns": list(RULE_COLUMNS),
        "rows": rows,
    }
    return zlib.compress(json.dumps(document, separators=(",", ":")).encode(), 6)


ReuseIndex = dict[str, Rule]
"""Rows of a decoded snapshot (as stored) -> their rules, for the next decode to reuse."""


def decode_snapshot(blob: bytes, *, max_size: int = MAX_SNAPSHOT_BYTES) -> RouteTable:
    """Inverse of :func:`encode_snapshot`, validating every rule again."""
    return decode_snapshot_reusing(blob, None, max_size=max_size)[0]


def decode_snapshot_reusing(
    blob: bytes, previous: ReuseIndex | None, *, max_size: int = MAX_SNAPSHOT_BYTES
) -> tuple[RouteTable, ReuseIndex]:
    """Decode, taking rows identical to ``previous``'s from it instead of rebuilding them.

    Hot reloads replace a table by a slightly different one; reusing the unchanged (already
    validated) rules keeps a national table's reload short. Only the watcher keeps an index.
    """
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(blob, max_size)
        if inflater.unconsumed_tail:
            raise RouteTableError([f"routing snapshot expands beyond {max_size} bytes"])
        document = json.loads(raw)
        del raw
        if document.get("format") != SNAPSHOT_FORMAT:
            raise RouteTableError([f"unsupported snapshot format {document.get('format')!r}"])
        columns = [str(column) for column in document["columns"]]
        lines: list[str] = document["rows"]
        if columns != list(RULE_COLUMNS):
            # The index keys are rows in RULE_COLUMNS order; another layout is rebuilt fully.
            previous = None
        rules: list[Rule | None] = [None] * len(lines)
        pending: list[int] = []
        for position, line in enumerate(lines):
            if type(line) is not str:
                raise RouteTableError([f"routing snapshot is corrupt: row {position + 1}"])
            known = previous.get(line) if previous is not None else None
            if known is None:
                pending.append(position)
            else:
                rules[position] = known
        fresh, problems = rules_from_rows(
            columns,
            (lines[position].split(_SEPARATOR) for position in pending),
            lambda i: f"snapshot rule {pending[i] + 1}" if i >= 0 else "snapshot",
        )
        if problems:
            raise RouteTableError([f"routing snapshot fails validation: {p}" for p in problems])
        for position, rule in zip(pending, fresh, strict=True):
            rules[position] = rule
        table = RouteTable.model_validate({"tenants": document["tenants"], "rules": rules})
        return table, dict(zip(lines, table.rules, strict=True))
    except RouteTableError:
        raise
    except ValidationError as error:
        raise RouteTableError(
            [f"routing snapshot fails validation: {e['loc']}: {e['msg']}" for e in error.errors()]
        ) from None
    except (zlib.error, ValueError, KeyError, TypeError, AttributeError) as error:
        raise RouteTableError([f"routing snapshot is corrupt: {error}"]) from None


async def ensure_routes_bucket(js: JetStreamContext, bucket: str = ROUTES_BUCKET) -> KeyValue:
    """Bind to the bucket, creating it if absent (the hub's topology normally has)."""
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        # History on the pointer gives an audit of recent imports.
        config = KeyValueConfig(bucket=bucket, history=10, max_value_size=PART_BYTES + 4096)
        return await js.create_key_value(config)


def _part_key(snapshot: str, index: int) -> str:
    return f"snapshot.{snapshot}.{index}"


class RouteTableStore:
    """Reads and publishes snapshots in one KV bucket."""

    def __init__(
        self,
        kv: KeyValue,
        *,
        read_only: str | None = None,
        js: JetStreamContext | None = None,
        bucket: str = ROUTES_BUCKET,
    ) -> None:
        """``read_only``: why this store refuses to publish (e.g. a peer's mirror). A store
        that publishes needs ``js`` and its ``bucket`` to collect superseded snapshots."""
        self.kv = kv
        self.read_only = read_only
        self._js = js
        self._bucket = bucket

    @classmethod
    async def open(
        cls, js: JetStreamContext, bucket: str = ROUTES_BUCKET, *, create: bool = True
    ) -> RouteTableStore:
        kv = await (ensure_routes_bucket(js, bucket) if create else js.key_value(bucket))
        return cls(kv, js=js, bucket=bucket)

    async def read_pointer(self) -> tuple[SnapshotPointer, int] | None:
        try:
            entry = await self.kv.get(POINTER_KEY)
        except KeyNotFoundError:
            return None
        if entry.value is None or entry.revision is None:
            return None
        return SnapshotPointer.from_bytes(entry.value), entry.revision

    async def fetch(self, pointer: SnapshotPointer) -> RouteTable:
        return (await self.fetch_reusing(pointer, None))[0]

    async def fetch_reusing(
        self, pointer: SnapshotPointer, previous: ReuseIndex | None
    ) -> tuple[RouteTable, ReuseIndex]:
        """Fetch and decode, reusing ``previous``'s unchanged rules (see ReuseIndex)."""
        chunks = []
        for index in range(pointer.parts):
            try:
                entry = await self.kv.get(_part_key(pointer.snapshot, index))
            except KeyNotFoundError:
                raise RouteTableError(
                    [f"snapshot {pointer.snapshot} part {index} is missing"]
                ) from None
            chunks.append(entry.value or b"")
        blob = b"".join(chunks)
        if hashlib.sha256(blob).hexdigest() != pointer.sha256:
            raise RouteTableError([f"snapshot {pointer.snapshot} fails its sha256 check"])
        # Decompression and validation of a national table take seconds: keep the loop free.
        return await asyncio.to_thread(decode_snapshot_reusing, blob, previous)

    async def load(self) -> StoredTable | None:
        found = await self.read_pointer()
        if found is None:
            return None
        pointer, revision = found
        return StoredTable(await self.fetch(pointer), pointer, revision)

    async def publish(
        self,
        table: RouteTable,
        *,
        expected_revision: int | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> StoredTable:
        """Store ``table`` and make it current.

        ``expected_revision`` is the pointer revision the caller based its decision on (0: no
        table yet); ``None`` accepts whatever is current at the moment of writing. The table
        must compile: a table with ties never becomes visible.
        """
        if self.read_only:
            raise RouteTableError([self.read_only])
        compile_table(table)
        blob = await asyncio.to_thread(encode_snapshot, table)
        found = await self.read_pointer()
        current_revision = found[1] if found else 0
        if expected_revision is not None and expected_revision != current_revision:
            raise ConcurrentImportError(
                f"the table changed since it was read (revision {current_revision}, "
                f"expected {expected_revision}); diff again and retry"
            )
        sequence = (found[0].sequence if found else 0) + 1
        snapshot = f"{sequence:08d}-{secrets.token_hex(4)}"
        parts = [blob[i : i + PART_BYTES] for i in range(0, len(blob), PART_BYTES)] or [b""]
        for index, part in enumerate(parts):
            await self.kv.put(_part_key(snapshot, index), part)
            if progress is not None:
                progress(index + 1, len(parts))
        pointer = SnapshotPointer(
            snapshot=snapshot,
            sequence=sequence,
            parts=len(parts),
            size=len(blob),
            sha256=hashlib.sha256(blob).hexdigest(),
            rules=len(table.rules),
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        try:
            if current_revision == 0:
                revision = await self.kv.create(POINTER_KEY, pointer.to_bytes())
            else:
                revision = await self.kv.update(
                    POINTER_KEY, pointer.to_bytes(), last=current_revision
                )
        except KeyWrongLastSequenceError:
            await self._purge_snapshot(snapshot)
            raise ConcurrentImportError(
                "another import replaced the table meanwhile; diff again and retry"
            ) from None
        except BaseException:
            await asyncio.shield(self._purge_snapshot(snapshot))
            raise
        log.info(
            "routing table published snapshot=%s rules=%d bytes=%d revision=%d",
            snapshot,
            len(table.rules),
            len(blob),
            revision,
        )
        await self._collect_garbage(keep_from=sequence - KEEP_SNAPSHOTS + 1)
        return StoredTable(table, pointer, revision)

    async def snapshot_keys(self) -> list[str]:
        """The keys of every stored snapshot part (``snapshot.<name>.<index>``).

        Read from the stream's own subject index, which is exact: nats-py's ``kv.keys()``
        can end its replay early under load and miss keys (nats.py issue 842).
        """
        if self._js is None:
            raise RouteTableError("this store cannot list its snapshots (no JetStream context)")
        prefix = f"$KV.{self._bucket}."
        try:
            info = await self._js.stream_info(
                f"KV_{self._bucket}", subjects_filter=f"{prefix}snapshot.>"
            )
        except NotFoundError:
            return []
        return sorted(subject[len(prefix) :] for subject in info.state.subjects or {})

    async def _drop(self, key: str) -> None:
        # A stream purge of the key's subject, not a KV purge: no reader will ask for a
        # superseded part again, and no purge marker is left behind to be listed forever.
        assert self._js is not None
        await self._js.purge_stream(f"KV_{self._bucket}", subject=f"$KV.{self._bucket}.{key}")

    async def _purge_snapshot(self, snapshot: str) -> None:
        for key in await self.snapshot_keys():
            if key.startswith(f"snapshot.{snapshot}."):
                await self._drop(key)

    async def _collect_garbage(self, keep_from: int) -> None:
        for key in await self.snapshot_keys():
            sequence_text = key.split(".")[1].split("-")[0]
            if sequence_text.isdigit() and int(sequence_text) < keep_from:
                await self._drop(key)


class RouteTableWatcher:
    """Keeps a compiled :class:`Resolver` in step with the ``current`` pointer.

    A new table replaces the resolver only after it fetched, validated and compiled cleanly;
    otherwise the error is logged and the hub keeps routing on the table it has. Replacing is
    one attribute assignment, so a lookup sees either the old resolver or the new one.
    """

    def __init__(
        self,
        store: RouteTableStore,
        *,
        on_swap: Callable[[Resolver, SnapshotPointer], None] | None = None,
        poll_interval: float = 5.0,
    ) -> None:
        self.store = store
        self.resolver: Resolver | None = None
        self.pointer: SnapshotPointer | None = None
        self.last_error: str | None = None
        self._on_swap = on_swap
        self._poll_interval = poll_interval
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self._reuse: ReuseIndex | None = None
        self._discarding: set[asyncio.Task[None]] = set()
        self._stopping = False

    async def start(self) -> None:
        """Load the current table (if any), then follow the pointer in the background."""
        await self.refresh()
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="route-table-watcher")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        # Cancel until the task ends: asyncio.wait_for (used inside nats-py) can swallow a
        # cancellation that races with a result on Python 3.11.
        while not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.5)
        if not task.cancelled() and task.exception() is not None:
            log.warning("routing table watcher ended with error=%r", task.exception())

    async def refresh(self) -> bool:
        """Adopt the pointed-to table if it is new and valid; True if the resolver changed."""
        try:
            found = await self.store.read_pointer()
            if found is None or (self.pointer and found[0].snapshot == self.pointer.snapshot):
                return False
            pointer = found[0]
            table, reuse = await self.store.fetch_reusing(pointer, self._reuse)
            resolver = await asyncio.to_thread(compile_table, table)
        except RouteTableError as error:
            self._reject(str(error))
            return False
        self.resolver, self.pointer, self.last_error = resolver, pointer, None
        self._reuse = reuse
        log.info("routing table loaded snapshot=%s rules=%d", pointer.snapshot, resolver.rule_count)
        if self._on_swap is not None:
            self._on_swap(resolver, pointer)
        async with self._changed:
            self._changed.notify_all()
        return True

    def _reject(self, reason: str) -> None:
        if reason != self.last_error:
            log.error(
                "routing table rejected; keeping snapshot=%s reason=%s",
                self.pointer.snapshot if self.pointer else None,
                reason,
            )
        self.last_error = reason
        # Wake waiters so a test or operator can see the rejection without a timeout.
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        """Return once ``predicate()`` holds after a load or a rejection; bound it with
        ``asyncio.timeout``."""
        async with self._changed:
            await self._changed.wait_for(predicate)

    async def _run(self) -> None:
        while not self._stopping:
            watch: KeyValue.KeyWatcher | None = None
            try:
                watch = await self.store.kv.watch(POINTER_KEY)
                while not self._stopping:
                    # A quiet period ends in a timeout: refresh anyway, a cheap backstop
                    # for an update the watch might have missed across a reconnect.
                    with contextlib.suppress(TimeoutError):
                        await watch.updates(timeout=self._poll_interval)  # type: ignore[no-untyped-call]
                    await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Connection loss or a server restart ends the watch; start a new one.
                log.warning("routing table watch interrupted error=%r; retrying", error)
                await asyncio.sleep(1.0)
            finally:
                if watch is not None:
                    self._discard(watch)

    def _discard(self, watch: KeyValue.KeyWatcher) -> None:
        # Unsubscribing can block while the client reconnects; never make the loop (or a
        # cancellation) wait for it.
        task = asyncio.get_running_loop().create_task(_stop_quietly(watch))
        self._discarding.add(task)
        task.add_done_callback(self._discarding.discard)


async def _stop_quietly(watch: KeyValue.KeyWatcher) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5):
            await watch.stop()  # type: ignore[no-untyped-call]
