"""The ``cases`` KV bucket: one record per case (origin, correlation ids, state).

The routing core creates a record when it routes a case; afterwards several workers change
it (the delivery worker records ``delivered``, the reply router the state a reply leads to).
``update_case`` makes those changes revision-checked, so one never erases another's: it
reads, applies the change, and writes only if nobody wrote in between, else it reads again.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from typing import Any

from nats.js import JetStreamContext
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from poststelle.contracts.envelope import safe_token
from poststelle.routing.streams.topology import CASES_BUCKET

__all__ = ["CaseUpdateConflictError", "load_case", "update_case"]

_UPDATE_ATTEMPTS = 10

CaseChange = Callable[[dict[str, Any]], bool]


class CaseUpdateConflictError(RuntimeError):
    """The record kept changing under us; the change was not written."""


# ``js.key_value`` asks the server for the bucket's stream info each time: a round trip per
# delivered event on the delivery path. What it learns (direct gets allowed or not) is kept
# per context; the handle itself is cheap and would keep its context alive in the cache.
_direct_gets: weakref.WeakKeyDictionary[JetStreamContext, bool] = weakref.WeakKeyDictionary()


async def _cases(js: JetStreamContext) -> KeyValue:
    stream = f"KV_{CASES_BUCKET}"
    direct = _direct_gets.get(js)
    if direct is None:
        info = await js.stream_info(stream)
        direct = _direct_gets[js] = bool(info.config.allow_direct)
    return KeyValue(
        name=CASES_BUCKET,
        stream=stream,
        pre=f"$KV.{CASES_BUCKET}.",
        js=js,
        direct=direct,
    )


async def load_case(js: JetStreamContext, case_id: str) -> dict[str, Any] | None:
    kv = await _cases(js)
    try:
        entry = await kv.get(safe_token(case_id))
    except (KeyNotFoundError, KeyDeletedError):
        return None
    if entry.value is None:
        return None
    record: dict[str, Any] = json.loads(entry.value)
    return record


async def update_case(
    js: JetStreamContext, case_id: str, change: CaseChange
) -> dict[str, Any] | None:
    """Apply ``change`` to the case's record in place and store it; ``change`` returns
    ``False`` when there is nothing to write. Returns the record as stored (``None`` when
    no record exists)."""
    kv = await _cases(js)
    key = safe_token(case_id)
    for _ in range(_UPDATE_ATTEMPTS):
        try:
            entry = await kv.get(key)
        except (KeyNotFoundError, KeyDeletedError):
            return None
        if entry.value is None or entry.revision is None:
            return None
        record: dict[str, Any] = json.loads(entry.value)
        if not change(record):
            return record
        try:
            await kv.update(key, json.dumps(record, default=str).encode(), last=entry.revision)
        except KeyWrongLastSequenceError:
            continue
        return record
    raise CaseUpdateConflictError(f"case {case_id!r} changed {_UPDATE_ATTEMPTS} times meanwhile")
