"""Message understanding in one call: safe parse -> identify -> validate -> map.

``inspect_message(raw)`` is what the routing core calls for every arrival. It returns an
``InspectedMessage`` carrying everything a ``CaseEventData`` needs except the routing result
and transport facts, or raises ``MessageRejected(step, reason, detail)``: the message goes to
quarantine under ``quarantine.<step>.<reason>``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree
from pydantic import TypeAdapter

from poststelle.mappings.engine import (
    BUILTIN_MAPPINGS_DIR,
    Attachment,
    MappedMessage,
    MappingFailed,
    MappingSet,
)

from ._errors import MessageRejected
from ._safexml import DEFAULT_MAX_BYTES, parse_json, parse_xml
from .data_dir import resolve_data_dir
from .events import AttachmentRef, CaseEventData, Origin
from .registry import ContractRegistry, Identification
from .validation import Level, ValidationOutcome

__all__ = [
    "InspectedMessage",
    "MessageInspector",
    "MessageRejected",
    "attachment_object_name",
    "attachment_refs",
    "claim_check_ref",
    "inspect_message",
]

log = logging.getLogger(__name__)

_JSON_TYPES = ("application/json", "+json")


@dataclass(frozen=True)
class InspectedMessage:
    standard: str
    version: str
    message_type: str
    namespace: str
    nachrichten_uuid: str | None = None
    author: str | None = None  # "praefix:kennung"
    reader: str | None = None
    leistung: str | None = None
    region: str | None = None
    applicant: dict[str, Any] | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    attachments: tuple[Attachment, ...] = ()
    validation: ValidationOutcome = field(
        default_factory=lambda: ValidationOutcome(status="not-performed")
    )
    format: str = "xml"

    def case_event_data(
        self,
        *,
        case_id: str,
        origin: Origin,
        tenant: str,
        backend: str,
        attachments: list[AttachmentRef] | None = None,
        original: AttachmentRef | None = None,
    ) -> CaseEventData:
        """The CaseEvent payload, once routing and the claim check have done their part.

        The mapped values come from the message, so they are validated, but in one pass over
        plain values: a model per nested part costs more than the check itself."""
        return CaseEventData.model_validate(
            {
                "case_id": case_id,
                "standard": self.standard,
                "version": self.version,
                "message_type": self.message_type,
                "nachrichten_uuid": self.nachrichten_uuid,
                "leistung": self.leistung,
                "region": self.region,
                "author": _authority(self.author),
                "reader": _authority(self.reader),
                "origin": origin,
                "tenant": tenant,
                "backend": backend,
                "applicant": self.applicant or None,
                "fields": dict(self.fields),
                "attachments": list(attachments or []),
                "original": original,
            }
        )


def attachment_object_name(case_id: str, sha256: str) -> str:
    """Where an inline attachment lives in the ``attachments`` object store."""
    return f"{case_id}/{sha256}"


def claim_check_ref(
    case_id: str, name: str, media_type: str, content: bytes, *, sha256: str | None = None
) -> AttachmentRef:
    """The reference to bytes stored under ``attachment_object_name`` in the object store.
    ``sha256`` is the content's digest when the caller already computed it."""
    return AttachmentRef.model_validate(
        _claim_check_fields(case_id, name, media_type, content, sha256)
    )


def _claim_check_fields(
    case_id: str, name: str, media_type: str, content: bytes, sha256: str | None
) -> dict[str, Any]:
    digest = sha256 or hashlib.sha256(content).hexdigest()
    return {
        "name": name,
        "media_type": media_type,
        "kind": "inline",
        "size": len(content),
        "sha256": digest,
        "ref": f"attachments/{attachment_object_name(case_id, digest)}",
    }


# One validation of the whole list: an XBau application has dozens of Anlagen, and a model
# built one by one costs twice as much as the check in one pass.
_ATTACHMENT_REFS: TypeAdapter[list[AttachmentRef]] = TypeAdapter(list[AttachmentRef])


def attachment_refs(case_id: str, attachments: Sequence[Attachment]) -> list[AttachmentRef]:
    """The CaseEvent's view of a message's attachments: inline ones by their claim check
    (the caller stores ``content`` under ``attachment_object_name``), references as given."""
    refs: list[dict[str, Any]] = []
    for attachment in attachments:
        if attachment.kind == "inline" and attachment.content is not None:
            refs.append(
                _claim_check_fields(
                    case_id,
                    attachment.name,
                    attachment.media_type,
                    attachment.content,
                    attachment.sha256,
                )
            )
        elif attachment.ref:
            refs.append(
                {
                    "name": attachment.name,
                    "media_type": attachment.media_type,
                    "kind": "reference",
                    "size": attachment.size,
                    "sha256": attachment.sha256,
                    "ref": attachment.ref,
                }
            )
    return _ATTACHMENT_REFS.validate_python(refs)


def _authority(value: str | None) -> dict[str, str] | None:
    if not value:
        return None
    prefix, _, code = value.partition(":")
    return {"prefix": prefix, "code": code}


class MessageInspector:
    """The pipeline with its registry and mappings loaded once; safe to share."""

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        registry: ContractRegistry | None = None,
        mappings: MappingSet | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if registry is None:
            if data_dir is None:
                data_dir = resolve_data_dir()
            registry = ContractRegistry.for_data_dir(data_dir)
        if mappings is None:
            dirs = [BUILTIN_MAPPINGS_DIR]
            if data_dir is not None:
                dirs.append(data_dir / "mappings")
            mappings = MappingSet.load(dirs, known=registry.known_message_types())
        self.registry = registry
        self.mappings = mappings
        self.max_bytes = max_bytes

    def inspect(
        self,
        raw: bytes,
        *,
        content_type: str | None = None,
        strict: bool = False,
        require_valid: bool = True,
        level: Level | None = None,
    ) -> InspectedMessage:
        """Run the pipeline; ``require_valid=False`` reports invalidity instead of raising.
        ``level`` overrides the contract's validation level (``ContractRegistry.validate``)."""
        is_json = content_type is not None and any(t in content_type for t in _JSON_TYPES)
        document: Any
        if is_json:
            document = parse_json(raw, max_bytes=self.max_bytes)
            ident = self.registry.identify_json(document)
            outcome = ValidationOutcome(status="not-performed", note="JSON has no schema")
        else:
            document, ident, outcome = self._validated(raw, strict, require_valid, level)
        # An invalid message (kept only for reporting) is not mapped: its facts are untrusted.
        if outcome.status == "invalid":
            mapped = MappedMessage(event={}, applicant=None, fields={})
        else:
            mapped = self._map(document, ident)
        event = mapped.event
        return InspectedMessage(
            standard=ident.standard,
            version=ident.version,
            message_type=ident.message_type,
            namespace=ident.namespace,
            nachrichten_uuid=event.get("nachrichten_uuid"),
            author=event.get("author"),
            reader=event.get("reader"),
            leistung=event.get("leistung"),
            region=event.get("region"),
            applicant=mapped.applicant,
            fields=mapped.fields,
            attachments=mapped.attachments,
            validation=outcome,
            format="json" if is_json else "xml",
        )

    def validate(
        self, raw: bytes, *, strict: bool = False, level: Level | None = None
    ) -> tuple[Identification, ValidationOutcome]:
        """Safe parse, identify and validate an XML message without mapping it: the check
        ``inspect`` makes, with its verdicts and errors, for a message the hub wrote itself
        (an answer on the reply path). Raises ``MessageRejected`` like ``inspect``."""
        _, ident, outcome = self._validated(raw, strict, True, level)
        return ident, outcome

    def _validated(
        self, raw: bytes, strict: bool, require_valid: bool, level: Level | None
    ) -> tuple[etree._Element, Identification, ValidationOutcome]:
        document = parse_xml(raw, max_bytes=self.max_bytes)
        ident = self.registry.identify(document)
        outcome = self.registry.validate(document, ident, strict=strict, level=level)
        if outcome.status == "invalid" and require_valid:
            first = outcome.errors[0] if outcome.errors else None
            # A Schematron failure is a reason of its own: the structure is valid, a
            # business rule of the standard is not met.
            business = outcome.mode == "schematron"
            raise MessageRejected(
                "validate",
                "schematron-invalid" if business else "schema-invalid",
                f"{len(outcome.errors)} "
                f"{'Schematron failure' if business else 'schema error'}(s), first: {first}",
                errors=outcome.errors,
            )
        return document, ident, outcome

    def header_facts(self, raw: bytes) -> InspectedMessage | None:
        """Header facts of an XML message that failed validation: enough to address a
        rejection to its author, nothing more (its business content stays untrusted)."""
        try:
            document = parse_xml(raw, max_bytes=self.max_bytes)
            ident = self.registry.identify(document)
        except MessageRejected:
            return None
        mapping = self.mappings.header_mapping(ident.contract.header, ident.namespace)
        if mapping is None:
            return None
        try:
            mapped = mapping.apply(document)
        except (MappingFailed, etree.XPathEvalError):
            return None
        return InspectedMessage(
            standard=ident.standard,
            version=ident.version,
            message_type=ident.message_type,
            namespace=ident.namespace,
            nachrichten_uuid=mapped.event.get("nachrichten_uuid"),
            author=mapped.event.get("author"),
            reader=mapped.event.get("reader"),
            fields=mapped.fields,
            validation=ValidationOutcome(status="invalid"),
        )

    def _map(self, document: Any, ident: Identification) -> MappedMessage:
        mapping = self.mappings.get(ident.standard, ident.version, ident.message_type)
        if mapping is None:
            mapping = self.mappings.header_mapping(ident.contract.header, ident.namespace)
        if mapping is None:
            return MappedMessage(event={}, applicant=None, fields={})
        try:
            return mapping.apply(document)
        except MappingFailed as exc:
            raise MessageRejected("map", exc.reason, f"{mapping.file.name}: {exc.detail}") from exc
        except etree.XPathEvalError as exc:
            raise MessageRejected("map", "xpath-failed", f"{mapping.file.name}: {exc}") from exc


@functools.lru_cache(maxsize=8)
def _inspector_for(data_dir: Path | None) -> MessageInspector:
    return MessageInspector(data_dir)


def inspect_message(
    raw: bytes,
    *,
    data_dir: Path | None = None,
    content_type: str | None = None,
    strict: bool = False,
    inspector: MessageInspector | None = None,
) -> InspectedMessage:
    """Safe parse -> identify -> validate (when the schema set is registered) -> map.

    Raises ``MessageRejected`` with ``step`` in parse/identify/validate/map. The default
    inspector for a data folder is built once and reused.
    """
    if inspector is None:
        if data_dir is None:
            data_dir = resolve_data_dir()
        inspector = _inspector_for(data_dir)
    result = inspector.inspect(raw, content_type=content_type, strict=strict)
    log.debug(
        "message inspected standard=%s version=%s type=%s validation=%s",
        result.standard,
        result.version,
        result.message_type,
        result.validation.status,
    )
    return result
