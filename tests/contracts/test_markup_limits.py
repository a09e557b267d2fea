"""Element and attribute counts are bounded before libxml2 parses a body, the depth check of
huge mode is linear, and the identity scan survives undeclared prefixes (found by
``python -m fuzz``)."""

from __future__ import annotations

import time

import pytest

from poststelle.contracts._markup import MAX_ATTRIBUTES, MAX_MARKUP, check_markup
from poststelle.contracts._safexml import parse_xml
from poststelle.contracts.inspection import MessageRejected
from poststelle.contracts.message_identity import identify_message


def _reason(raw: bytes) -> str:
    with pytest.raises(MessageRejected) as refused:
        parse_xml(raw)
    assert refused.value.step == "parse"
    return refused.value.reason


def test_ten_million_elements_are_refused_before_parsing() -> None:
    # 40 MB of <a/>: the parse and the huge-mode depth walk took 20 s to reach a verdict.
    raw = b"<r>" + b"<a/>" * 10_000_000 + b"</r>"
    began = time.perf_counter()
    assert _reason(raw) == "too-many-elements"
    assert time.perf_counter() - began < 0.5


def test_an_element_with_a_million_attributes_is_refused() -> None:
    raw = b"<r " + b"".join(b'a%d="1" ' % n for n in range(MAX_ATTRIBUTES + 1)) + b"/>"
    assert _reason(raw) == "too-many-attributes"


def test_the_limits_sit_far_above_a_real_message(example_0200: bytes) -> None:
    check_markup(example_0200)
    assert example_0200.count(b"<") * 100 < MAX_MARKUP
    parse_xml(example_0200)


def test_markup_just_within_the_limit_parses() -> None:
    elements = MAX_MARKUP // 2 - 1  # <a/> is one '<'; <r> and </r> two more
    root = parse_xml(b"<r>" + b"<a/>" * (elements - 2) + b"</r>")
    assert len(root) == elements - 2


def test_depth_is_checked_in_huge_mode_in_linear_time() -> None:
    filler = b"<t>" + b"x" * 10_500_000 + b"</t>"  # over libxml2's text limit: huge mode
    deep = b"<r>" + b"<d>" * 300 + b"</d>" * 300 + filler + b"</r>"
    assert _reason(deep) == "too-deep"
    wide = b"<r>" + b"<c>" * 250 + b"</c>" * 250 + b"<a/>" * 400_000 + filler + b"</r>"
    began = time.perf_counter()
    parse_xml(wide)
    assert time.perf_counter() - began < 0.5


def test_a_depth_of_exactly_the_limit_passes_in_huge_mode() -> None:
    filler = b"<t>" + b"x" * 10_500_000 + b"</t>"
    # The root is level 1, the 255 <d> levels 2..256, so the deepest element is at 256.
    at_limit = b"<r>" + b"<d>" * 255 + b"</d>" * 255 + filler + b"</r>"
    parse_xml(at_limit)
    with pytest.raises(MessageRejected, match="deeper than 100"):
        parse_xml(at_limit, max_depth=100)


def test_an_undeclared_prefix_gives_the_body_hash_not_a_crash() -> None:
    # lxml raised ValueError("Invalid tag name 'xdomea:Staat'") out of the identity scan.
    raw = (
        b'<xdomea:Nachricht xmlns:xdomea="urn:xoev-de:xdomea:schema:3.0.0">'
        b"<nachrichtenUUID>ab</nachrichtenUUID><xlomea:Staat/></xdomea:Nachricht>"
    )
    assert identify_message(raw).scope.startswith("xoev:")
    undeclared_first = b"<xlomea:Staat><nachrichtenUUID>ab</nachrichtenUUID></xlomea:Staat>"
    assert identify_message(undeclared_first).scope == "body"


def test_json_with_a_lone_surrogate_is_refused_and_a_pair_is_kept() -> None:
    from poststelle.contracts._safexml import parse_json

    # A lone "\ud800" parsed, then failed as PydanticSerializationError once the mapped
    # value reached the CaseEvent (found by python -m fuzz).
    for lone in (b'{"a": "x\\ud800"}', b'["\\udfff"]', b'{"\\udbff": 1}'):
        with pytest.raises(MessageRejected) as refused:
            parse_json(lone)
        assert refused.value.reason == "bad-encoding"
    assert parse_json(b'{"a": "\\ud83d\\ude00", "b": "\\\\ud800"}') == {
        "a": "😀",
        "b": "\\ud800",
    }
