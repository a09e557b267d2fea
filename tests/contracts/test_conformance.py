"""Conformance over the real corpus: every xdomea message and our XBau messages go through the
whole pipeline; broken variants fail at the right step with a precise reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from lxml import etree

from poststelle.contracts.inspection import MessageInspector, MessageRejected

from .conftest import EXAMPLE_0200, MESSAGES


def _xdomea_messages(corpus_dir: Path) -> list[Path]:
    found = sorted((corpus_dir / "xdomea" / "messages").rglob("*.xml"))
    assert len(found) == 8, found
    return found


def test_every_xdomea_message_identifies_validates_and_maps(
    corpus_dir: Path, inspector: MessageInspector
) -> None:
    for path in _xdomea_messages(corpus_dir):
        version = path.parent.name.removeprefix("xdomea_")
        message_type = re.sub(r"^xx_|\.xml$", "", path.name)
        result = inspector.inspect(path.read_bytes())
        assert (result.standard, result.version, result.message_type) == (
            "xdomea",
            version,
            message_type,
        ), path
        assert result.validation.status == "valid", (path, result.validation.errors)
        # Both xdomea header variants (2.4.0 Kennung, 3.0.0 Behoerdenschluessel) give an author.
        assert result.author == "AbsBehoerdenkennungPraefixCode:LATh", path
        assert result.reader == "EmpBehoerdenkennungPraefixCode:LATh", path
        assert result.fields["prozess_id"] == "242f44e8-bebf-4503-a086-db252c6a4277"


def test_xdomea_0503_names_its_primary_document(
    corpus_dir: Path, inspector: MessageInspector
) -> None:
    raw = (
        corpus_dir / "xdomea/messages/xdomea_3.0.0/xx_Aussonderung.Aussonderung.0503.xml"
    ).read_bytes()
    (attachment,) = inspector.inspect(raw).attachments
    assert attachment.kind == "reference"
    assert attachment.name.endswith("_PDF-A1b_CMYK_20150731.pdf")


@pytest.mark.parametrize(
    "path", [EXAMPLE_0200, *sorted(MESSAGES.glob("xbau-*.xml"))], ids=lambda p: p.name
)
def test_xbau_messages_pass_the_pipeline(path: Path, inspector: MessageInspector) -> None:
    result = inspector.inspect(path.read_bytes())
    assert result.standard == "xbau" and result.version == "2.6"
    assert result.validation.status == "valid"
    assert result.validation.mode == "lxml"
    assert re.fullmatch(r"[0-9a-f-]{36}", result.nachrichten_uuid or "")


def test_strict_mode_validates_with_xmlschema(inspector: MessageInspector) -> None:
    result = inspector.inspect(EXAMPLE_0200.read_bytes(), strict=True)
    assert result.validation.mode == "strict"
    assert result.validation.status == "valid"


def _mutated(raw: bytes, change: object) -> bytes:
    root = etree.fromstring(raw)
    change(root)  # type: ignore[operator]
    return etree.tostring(root)


def _rejection(inspector: MessageInspector, raw: bytes) -> MessageRejected:
    with pytest.raises(MessageRejected) as caught:
        inspector.inspect(raw)
    return caught.value


def test_missing_required_element_is_schema_invalid_with_line_and_path(
    inspector: MessageInspector,
) -> None:
    raw = EXAMPLE_0200.read_bytes()
    broken = raw.replace(b"<xbau:bezeichnungDesBauvorhabens>", b"<!--").replace(
        b"</xbau:bezeichnungDesBauvorhabens>", b"-->"
    )
    error = _rejection(inspector, broken)
    assert (error.step, error.reason) == ("validate", "schema-invalid")
    first = error.errors[0]
    assert first.line is not None and first.line > 50
    assert "bauvorhaben" in (first.path or "")
    assert "beteiligte" in first.message
    # The same finding in strict mode, with the xmlschema engine.
    root = etree.fromstring(broken)
    strict = inspector.registry.validate(root, inspector.registry.identify(root), strict=True)
    assert strict.status == "invalid" and strict.mode == "strict"
    assert strict.errors and strict.errors[0].path


@pytest.mark.parametrize(
    ("namespace", "reason"),
    [
        ("http://www.xleitstelle.de/xbau/2/5", "unknown-version"),
        ("urn:example:not-a-standard", "wrong-namespace"),
        ("", "wrong-namespace"),
    ],
)
def test_namespace_errors(inspector: MessageInspector, namespace: str, reason: str) -> None:
    raw = (
        f'<m:baugenehmigung.antrag.0200 xmlns:m="{namespace}"/>'
        if namespace
        else "<baugenehmigung.antrag.0200/>"
    ).encode()
    error = _rejection(inspector, raw)
    assert (error.step, error.reason) == ("identify", reason)
    if reason == "unknown-version":
        assert "2.5" in error.detail and "2.6" in error.detail


def test_unknown_xdomea_version(inspector: MessageInspector) -> None:
    raw = b'<x:Aussonderung.Aussonderung.0503 xmlns:x="urn:xoev-de:xdomea:schema:2.3.0"/>'
    error = _rejection(inspector, raw)
    assert error.reason == "unknown-version"
    assert "2.4.0" in error.detail and "3.0.0" in error.detail


def test_wrong_root(inspector: MessageInspector) -> None:
    raw = b'<x:baugenehmigung.antrag.9999 xmlns:x="http://www.xleitstelle.de/xbau/2/6"/>'
    error = _rejection(inspector, raw)
    assert (error.step, error.reason) == ("identify", "unknown-message-type")
    assert "baugenehmigung.antrag.9999" in error.detail


def test_unknown_namespace(inspector: MessageInspector) -> None:
    error = _rejection(inspector, b'<a xmlns="urn:nobody"/>')
    assert (error.step, error.reason) == ("identify", "unknown-namespace")


def test_unregistered_schema_set_means_validation_not_performed(tmp_path: Path) -> None:
    result = MessageInspector(tmp_path).inspect(EXAMPLE_0200.read_bytes())
    assert result.validation.status == "not-performed"
    assert "contracts add" in (result.validation.note or "")
    assert result.region == "01002000"  # identification and mapping still work


def test_missing_required_mapped_field_is_a_map_rejection(tmp_path: Path) -> None:
    raw = _mutated(
        EXAMPLE_0200.read_bytes(),
        lambda root: root.remove(
            root.find("{http://www.xleitstelle.de/xbau/2/6}referenzAntragsservice")
        ),
    )
    with pytest.raises(MessageRejected) as caught:
        MessageInspector(tmp_path).inspect(raw)  # no schema: mapping is the only guard
    assert (caught.value.step, caught.value.reason) == ("map", "missing-field")
    assert "referenz_antragsservice" in caught.value.detail
