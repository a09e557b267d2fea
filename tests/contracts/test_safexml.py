"""The hostile-input set: every attack or damaged input ends in a precise parse rejection."""

from __future__ import annotations

import codecs
import contextlib
import socket
import threading

import pytest

from poststelle.contracts._errors import MessageRejected
from poststelle.contracts._safexml import parse_json, parse_xml


def _reason(raw: bytes, **kwargs: int) -> str:
    with pytest.raises(MessageRejected) as caught:
        parse_xml(raw, **kwargs)
    assert caught.value.step == "parse"
    return caught.value.reason


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<lolz>&lol9;</lolz>"""


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
            id="xxe-file",
        ),
        pytest.param(BILLION_LAUGHS, id="billion-laughs"),
        pytest.param(b'<!DOCTYPE x SYSTEM "http://example.invalid/x.dtd"><x/>', id="external-dtd"),
        pytest.param(
            b'<!DOCTYPE x [<!ENTITY % p SYSTEM "http://example.invalid/p.dtd"> %p;]><x/>',
            id="parameter-entity",
        ),
        pytest.param(b"<!-- harmless -->\n<!DOCTYPE x><x/>", id="after-comment"),
        pytest.param(codecs.BOM_UTF8 + b"<!DOCTYPE x><x/>", id="after-bom"),
        pytest.param("<!DOCTYPE x><x/>".encode("utf-16"), id="utf16"),
    ],
)
def test_any_dtd_is_forbidden(raw: bytes) -> None:
    assert _reason(raw) == "dtd-forbidden"


def test_xxe_url_never_touches_the_network() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.3)
    port = listener.getsockname()[1]
    hits: list[object] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            hits.append(listener.accept())

    thread = threading.Thread(target=accept)
    thread.start()
    raw = (
        f'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "http://127.0.0.1:{port}/x">]>'
        "<x>&e;</x>"
    ).encode()
    try:
        assert _reason(raw) == "dtd-forbidden"
    finally:
        thread.join()
        listener.close()
    assert hits == []


def test_undeclared_entity_is_not_well_formed() -> None:
    assert _reason(b"<x>&e;</x>") == "not-well-formed"


def test_xinclude_is_not_processed() -> None:
    raw = (
        b'<x xmlns:xi="http://www.w3.org/2001/XInclude">'
        b'<xi:include href="/etc/passwd" parse="text"/></x>'
    )
    root = parse_xml(raw)
    assert "root:" not in (root.xpath("string()") or "")
    assert len(root) == 1


def test_doctype_text_inside_cdata_is_fine() -> None:
    root = parse_xml(b"<x><![CDATA[<!DOCTYPE x>]]></x>")
    assert root.text == "<!DOCTYPE x>"


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (codecs.BOM_UTF8 + "<x>Größe</x>".encode(), "Größe"),
        ('<?xml version="1.0" encoding="UTF-16"?><x>Straße</x>'.encode("utf-16"), "Straße"),
        ('<?xml version="1.0" encoding="ISO-8859-1"?><x>Müller</x>'.encode("latin-1"), "Müller"),
        ('<?xml version="1.0" encoding="ISO-8859-15"?><x>5 €</x>'.encode("iso8859-15"), "5 €"),
        ('<?xml version="1.0" encoding="windows-1252"?><x>„Zitat“</x>'.encode("cp1252"), "„Zitat“"),
    ],
    ids=["utf8-bom", "utf16-bom", "latin1", "latin9", "cp1252"],
)
def test_accepted_encodings_decode_correctly(raw: bytes, text: str) -> None:
    assert parse_xml(raw).text == text


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'<?xml version="1.0" encoding="EBCDIC-US"?><x/>', "encoding-unsupported"),
        (b'<?xml version="1.0" encoding="UTF-7"?><x/>', "encoding-unsupported"),
        (b'<?xml version="1.0" encoding="klingon"?><x/>', "encoding-unsupported"),
        (codecs.BOM_UTF8 + b'<?xml version="1.0" encoding="ISO-8859-1"?><x/>', "encoding-conflict"),
        ("<x/>".encode("utf-32"), "encoding-unsupported"),
        (b'<?xml version="1.0" encoding="UTF-8"?><x>M\xfcller</x>', "bad-encoding"),
    ],
    ids=["ebcdic", "utf7", "unknown", "bom-conflict", "utf32", "invalid-utf8"],
)
def test_refused_encodings_are_named(raw: bytes, reason: str) -> None:
    assert _reason(raw) == reason


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not-xml"),
        (bytes(range(256)), "not-xml"),
        (b"%PDF-1.7\n", "not-xml"),
        (b'<?xml version="1.0"?><a><b>text</b><c>', "truncated"),
        (b"<a><b></a>", "not-well-formed"),
    ],
    ids=["empty", "png", "binary", "pdf", "truncated", "mismatched-tags"],
)
def test_damaged_input_is_told_apart(raw: bytes, reason: str) -> None:
    assert _reason(raw) == reason


def test_size_limit() -> None:
    raw = b"<x>" + b"a" * 2000 + b"</x>"
    assert _reason(raw, max_bytes=1000) == "too-large"
    assert parse_xml(raw, max_bytes=5000).text == "a" * 2000


def test_depth_limits() -> None:
    deep = b"<a>" * 300 + b"</a>" * 300
    assert _reason(deep) == "too-deep"
    medium = b"<a>" * 40 + b"</a>" * 40
    assert _reason(medium, max_depth=32) == "too-deep"
    assert parse_xml(medium).tag == "a"


def test_a_text_node_over_libxml2s_ten_megabytes_parses() -> None:
    # One scanned plan of 9 MB is 12 MB of base64 in one element.
    plan = "QUJD" * 3_000_000
    root = parse_xml(f"<antrag><anlage>{plan}</anlage></antrag>".encode())
    assert len(root[0].text or "") == len(plan)


def test_a_large_body_keeps_the_depth_limit() -> None:
    # Huge mode lifts libxml2's own ceiling of 256 levels; the hub's limit still holds.
    padding = "<p>" + "x" * 11_000_000 + "</p>"
    deep = "<a>" * 300 + padding + "</a>" * 300
    with pytest.raises(MessageRejected) as refused:
        parse_xml(deep.encode())
    assert refused.value.reason == "too-deep"
    assert parse_xml(("<a>" * 200 + padding + "</a>" * 200).encode()).tag == "a"


def test_json_submissions() -> None:
    assert parse_json(codecs.BOM_UTF8 + b'{"a": [1, {"b": "]"}]}') == {"a": [1, {"b": "]"}]}
    for raw, reason in [
        (b"[" * 100 + b"]" * 100, "too-deep"),
        (b'{"a": [1, 2', "truncated"),
        (b'{"a": 1,}', "not-well-formed"),
        (b'{"a": "M\xfcller"}', "bad-encoding"),
        (b"", "empty"),
    ]:
        with pytest.raises(MessageRejected) as caught:
            parse_json(raw)
        assert (caught.value.step, caught.value.reason) == ("parse", reason), raw


# The quick prolog check reads 512 bytes: whatever straddles that window must still be judged
# by the full 4 KiB scan, with the full scan's reason.
_DECL = b"<?xml version='1.0' encoding='UTF-8'?>"
_DOCTYPE = b'<!DOCTYPE r [<!ENTITY e "x">]>'


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (_DECL + b"<!--" + b"c" * 600 + b"-->" + _DOCTYPE + b"<r/>", "dtd-forbidden"),
        (_DECL + b" " * 600 + _DOCTYPE + b"<r/>", "dtd-forbidden"),
        (_DECL + b"<?pi " + b"p" * 600 + b"?>" + _DOCTYPE + b"<r/>", "dtd-forbidden"),
        (_DECL + _DOCTYPE + b"<r/>", "dtd-forbidden"),
        (
            b"<?xml version='1.0'" + b" " * 600 + b"encoding='EBCDIC-US'?><r/>",
            "encoding-unsupported",
        ),
        (b"<?xml version='1.0' encoding='EBCDIC-US'?><r/>", "encoding-unsupported"),
        (b"<?xml version='1.0' encoding='no-such-codec'?><r/>", "encoding-unsupported"),
    ],
)
def test_a_prolog_straddling_the_quick_window_gets_the_full_check(raw: bytes, reason: str) -> None:
    with pytest.raises(MessageRejected) as caught:
        parse_xml(raw)
    assert caught.value.reason == reason


def test_the_quick_window_passes_an_ordinary_head() -> None:
    from poststelle.contracts._safexml import _quick_prolog_ok

    assert _quick_prolog_ok(_DECL + b"\n<r/>")
    assert not _quick_prolog_ok(codecs.BOM_UTF8 + _DECL + b"<r/>")  # BOM: the full scan
    assert parse_xml(_DECL + b"<!-- c -->\n<r>x</r>").text == "x"
