"""The file drop and the webhook take a stored CaseEvent's bytes as they are: the file and
the request body are byte for byte what delivering the parsed model gives."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from poststelle.adapters.base import AdapterContext, StoredCaseEvent
from poststelle.adapters.errors import PermanentDeliveryError
from poststelle.adapters.filedrop import FileDropBackend, FileDropSettings
from poststelle.adapters.testing import sample_event
from poststelle.adapters.webhook import WebhookBackend, WebhookSettings, sign
from poststelle.contracts.events import AttachmentRef, CaseEvent
from tests.adapters.receiver import Receiver, webhook_receiver

TENANT, NAME = "stadt-kiel", "akte"


def _events() -> list[CaseEvent]:
    plain = sample_event(TENANT, NAME)
    rich = sample_event(TENANT, NAME)
    data = rich.data.model_copy(
        update={
            "fields": {"bauvorhaben": "Umbau Straße „Zur Mühle“ 3 – ½ Geschoss", "n": [1, 2.5]},
            "attachments": [
                AttachmentRef(
                    name="Lageplan.pdf", media_type="application/pdf", kind="reference", ref="x"
                )
            ],
        }
    )
    return [plain, rich.model_copy(update={"data": data})]


def _file_drop(data_dir: Path, directory: Path | None = None) -> FileDropBackend:
    settings = (
        FileDropSettings(replies=False)
        if directory is None
        else FileDropSettings(directory=directory, replies=False)
    )
    return FileDropBackend(
        name=NAME, tenant=TENANT, settings=settings, context=AdapterContext(data_dir=data_dir)
    )


def _stored(event: CaseEvent) -> StoredCaseEvent:
    """The event as the delivery worker reads it from ``CASES``."""
    return StoredCaseEvent.from_json(event.model_dump_json().encode())


@pytest.mark.parametrize("event", _events(), ids=["plain", "non-ascii-and-reference"])
async def test_file_drop_writes_the_stored_event_as_deliver_would(
    tmp_path: Path, event: CaseEvent
) -> None:
    by_model = _file_drop(tmp_path, tmp_path / "model")
    by_bytes = _file_drop(tmp_path, tmp_path / "bytes")
    await by_model.deliver(event)
    await by_bytes.deliver_stored(_stored(event))
    written = by_bytes.path_for(event).read_bytes()
    assert written == by_model.path_for(event).read_bytes()
    assert written.startswith(b'{\n  "specversion": "1.0",')  # still indented for people
    assert CaseEvent.model_validate_json(written) == event


async def test_file_drop_refuses_a_stored_event_for_another_back_end(tmp_path: Path) -> None:
    backend = _file_drop(tmp_path)
    stranger = sample_event(TENANT, "other")
    with pytest.raises(PermanentDeliveryError, match="reached stadt-kiel/akte"):
        await backend.deliver_stored(_stored(stranger))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver() as running:
        yield running


async def test_webhook_posts_the_stored_bytes_signed_as_deliver_does(
    receiver: Receiver, tmp_path: Path
) -> None:
    backend = WebhookBackend(
        name=NAME,
        tenant=TENANT,
        settings=WebhookSettings.model_validate(
            {"url": receiver.url, "secret": "s3cret", "headers": {"X-Tenant": "kiel"}}
        ),
        context=AdapterContext(data_dir=tmp_path),
    )
    event = _events()[1]
    try:
        await backend.deliver(event)
        await backend.deliver_stored(_stored(event))
    finally:
        await backend.stop()
    assert receiver.bad_signatures == 0
    (key_model, body_model), (key_bytes, body_bytes) = receiver.received
    assert key_model == key_bytes == event.id
    assert body_model == body_bytes == event.model_dump_json().encode()
    assert json.loads(body_bytes)["data"]["fields"]["bauvorhaben"].startswith("Umbau Straße")


def test_signature_is_hmac_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"a": "\xc3\xa4"}'
    expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(b"k", "1700000000", body) == f"sha256={expected}"
