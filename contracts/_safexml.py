"""Hostile-input-proof XML and JSON parsing: the first step of every message's life.

Policy (each violation is a ``MessageRejected(step="parse", reason=...)``):

* no DTD at all (``dtd-forbidden``): it is the carrier of XXE and entity-expansion attacks, and no
  XÖV standard uses one; entities are never resolved and the network is never touched;
* size (``too-large``), nesting depth (``too-deep``) and the number of elements and
  attributes (``too-many-elements``, ``too-many-attributes``, see ``_markup``) are bounded;
* encodings: UTF-8 (with or without BOM), UTF-16 with BOM, and the Latin family some legacy
  Fachverfahren still declare; anything else is refused by name (``encoding-unsupported``) rather
  than guessed, and a BOM contradicting the declaration is refused (``encoding-conflict``);
* empty (``empty``), binary (``not-xml``), truncated (``truncated``) and otherwise malformed
  (``not-well-formed``) input is told apart so operators see at a glance what arrived.
"""

from __future__ import annotations

import codecs
import functools
import json
import re
import threading
from typing import Any

from lxml import etree

from ._errors import MessageRejected
from ._markup import check_markup

__all__ = [
    "ALLOWED_ENCODINGS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DEPTH",
    "json_depth_exceeds",
    "parse_json",
    "parse_xml",
]

# XTA's container limit, as the intake's default (``intake.max_message_bytes``).
DEFAULT_MAX_BYTES = 40 * 1024 * 1024
# libxml2 refuses anything deeper than 256 levels without XML_PARSE_HUGE; we keep that ceiling
# and let callers go lower.
DEFAULT_MAX_DEPTH = 256

ALLOWED_ENCODINGS = frozenset(
    {"utf-8", "utf-16", "utf-16-le", "utf-16-be", "iso8859-1", "iso8859-15", "cp1252", "ascii"}
)

_STEP = "parse"
_PROLOG = re.compile(r"(?:\s+|<\?.*?\?>|<!--.*?-->)*", re.DOTALL)
_DECLARED_ENCODING = re.compile(r"""^<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_local = threading.local()
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


# libxml2 refuses a text node over 10,000,000 bytes unless XML_PARSE_HUGE is set: the base64
# of one building plan of 7.5 MB. Bodies that could hold such a node are parsed in huge mode,
# which also lifts libxml2's own depth ceiling, so the depth is then checked here.
_LIBXML2_TEXT_LIMIT = 10_000_000


def _parser(*, huge: bool = False) -> etree.XMLParser:
    # lxml parsers must not be shared between threads; one per thread is reused because
    # building a parser costs about as much as parsing a small message.
    name = "huge_parser" if huge else "parser"
    parser: etree.XMLParser | None = getattr(_local, name, None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=huge,
            remove_comments=False,
            collect_ids=False,
        )
        setattr(_local, name, parser)
    return parser


def _reject(reason: str, detail: str) -> MessageRejected:
    return MessageRejected(_STEP, reason, detail)


def _canonical(encoding: str) -> str:
    try:
        return codecs.lookup(encoding).name
    except LookupError as exc:
        raise _reject("encoding-unsupported", f"unknown encoding {encoding!r}") from exc


def _prolog_text(raw: bytes) -> tuple[str, str | None]:
    """Decode enough of the head to read the XML declaration; return it and the BOM's encoding."""
    head = raw[:4096]
    if head.startswith(codecs.BOM_UTF8):
        return head[3:].decode("utf-8", "replace"), "utf-8"
    # UTF-32's little-endian BOM begins with UTF-16's: test the longer one first.
    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
        raise _reject("encoding-unsupported", "UTF-32 is not accepted")
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head.decode("utf-16", "replace"), "utf-16"
    if head[:2] in (b"<\x00", b"\x00<"):  # UTF-16 without BOM, as XML 1.0 appendix F allows
        codec = "utf-16-le" if head[0] == 0x3C else "utf-16-be"
        return head[: len(head) // 2 * 2].decode(codec, "replace"), codec
    # Latin-1 maps every byte, so the prolog can be read before the real encoding is known.
    return head.decode("latin-1"), None


# Enough for the declaration and the root's start tag in every message seen; a head that
# does not settle the prolog within it is checked over 4 KiB as before.
_QUICK_HEAD = 512


def _quick_prolog_ok(raw: bytes) -> bool:
    """True when the first bytes alone show the prolog is fine: no BOM, an allowed declared
    encoding (if any) and the root's start tag right after the prolog, so no DOCTYPE.

    Only ever says yes where ``_check_prolog``'s full scan passes too (the declaration and
    every prolog item end inside the window, and what follows is an element); everything else
    goes the full way, with its reasons."""
    if raw[:1] != b"<":  # a BOM, UTF-16, leading white space: the full scan
        return False
    text = raw[:_QUICK_HEAD].decode("latin-1")
    pos = _PROLOG.match(text).end()  # type: ignore[union-attr]  # '*' always matches
    if pos + 1 >= len(text) or text[pos] != "<" or text[pos + 1] in "?!":
        return False  # a comment, PI or DOCTYPE at the edge of the window, or not XML
    if text.startswith("<?xml"):
        if not 0 <= text.find(">") < pos:
            return False
        match = _DECLARED_ENCODING.match(text)
        if match:
            try:
                declared = codecs.lookup(match.group(1)).name
            except LookupError:
                return False
            if declared not in ALLOWED_ENCODINGS:
                return False
    return True


def _check_prolog(raw: bytes) -> None:
    if _quick_prolog_ok(raw):
        return
    text, bom = _prolog_text(raw)
    stripped = text.lstrip()
    if not stripped.startswith("<"):
        kind = "binary data" if "\x00" in text[:512] else "text that does not start with '<'"
        raise _reject("not-xml", f"input is {kind}")
    match = _DECLARED_ENCODING.match(text)
    if match:
        declared = _canonical(match.group(1))
        if declared not in ALLOWED_ENCODINGS:
            raise _reject(
                "encoding-unsupported",
                f"declared encoding {match.group(1)!r} is not one of UTF-8, UTF-16, "
                "ISO-8859-1/-15, windows-1252",
            )
        if bom is not None and not declared.startswith(bom[:5]):
            raise _reject(
                "encoding-conflict",
                f"byte order mark says {bom}, declaration says {match.group(1)!r}",
            )
    # A DOCTYPE can only stand in the prolog; scanning just that keeps a CDATA section
    # mentioning '<!DOCTYPE' from being refused.
    pos = _PROLOG.match(text).end()  # type: ignore[union-attr]  # '*' always matches
    if text.startswith("<!DOCTYPE", pos) or text.startswith("<!doctype", pos):
        raise _reject("dtd-forbidden", "a document type declaration (DTD) is not accepted")


@functools.lru_cache(maxsize=8)
def _element_at_depth(depth: int) -> etree.XPath:
    # One location step per level: libxml2 visits each element once, where a Python walk
    # took 0.6 s for the 500,000 elements _markup lets through (0.04 s this way).
    return etree.XPath("boolean(" + "/*" * depth + ")")


def _depth_exceeds(root: etree._Element, limit: int) -> bool:
    # Only runs when libxml2's own ceiling does not apply (huge mode) or a caller asks for less.
    return bool(_element_at_depth(limit + 1)(root))


def parse_xml(
    raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH
) -> etree._Element:
    """Parse ``raw`` into its root element or raise ``MessageRejected(step="parse")``."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise _reject("not-xml", f"expected bytes, got {type(raw).__name__}")
    if len(raw) == 0:
        raise _reject("empty", "the message is empty")
    if len(raw) > max_bytes:
        raise _reject("too-large", f"{len(raw)} bytes exceed the limit of {max_bytes}")
    raw = bytes(raw)
    check_markup(raw)  # element and attribute counts, before libxml2 builds them
    _check_prolog(raw)
    huge = len(raw) > _LIBXML2_TEXT_LIMIT
    try:
        root = etree.fromstring(raw, _parser(huge=huge))
    except etree.XMLSyntaxError as exc:
        message = str(exc)
        if "Excessive depth" in message:
            raise _reject("too-deep", f"nesting deeper than {DEFAULT_MAX_DEPTH}") from exc
        if "Premature end" in message or "EndTag" in message or "end of data" in message:
            raise _reject("truncated", message) from exc
        if "encoding" in message.lower() or "Input is not proper UTF-8" in message:
            raise _reject("bad-encoding", message) from exc
        raise _reject("not-well-formed", message) from exc
    except ValueError as exc:  # lxml raises this for some undecodable inputs
        raise _reject("bad-encoding", str(exc)) from exc
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        # Defence in depth: the prolog scan should have caught it already.
        raise _reject("dtd-forbidden", "a document type declaration (DTD) is not accepted")
    if (huge or max_depth < DEFAULT_MAX_DEPTH) and _depth_exceeds(root, max_depth):
        raise _reject("too-deep", f"nesting deeper than {max_depth}")
    return root


# Everything but brackets and quotes: what is left of a document once its text is dropped.
_NOT_STRUCTURE = bytes(byte for byte in range(256) if byte not in b'[]{}"')


def json_depth_exceeds(data: bytes, limit: int) -> bool:
    """Whether JSON ``data`` nests deeper than ``limit``, decided on the bytes (no recursion).

    Work is done by C-level bytes operations, not a Python loop per character: a 40 MB body
    is settled in well under a second. Malformed input errs on the side of "too deep"."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    # Escapes pair up left to right: drop escaped backslashes, then escaped quotes; the quotes
    # left delimit strings, whose brackets are text.
    unescaped = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = b"".join(unescaped.translate(None, _NOT_STRUCTURE).split(b'"')[::2])
    # Each pass removes the innermost level of every nest, so passes count depth.
    levels = 0
    while levels <= limit:
        # A placeholder keeps a pair removed in this pass from joining its neighbours.
        shorter = structure.replace(b"[]", b"-").replace(b"{}", b"-").replace(b"-", b"")
        if len(shorter) == len(structure):
            break
        structure = shorter
        levels += 1
    # What no pass removed is unbalanced: each opening bracket left may still nest deeper.
    return levels + structure.count(b"[") + structure.count(b"{") > limit


def parse_json(raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = 64) -> Any:
    """Parse a JSON submission with the same size, depth and encoding discipline as XML."""
    if len(raw) == 0:
        raise _reject("empty", "the message is empty")
    if len(raw) > max_bytes:
        raise _reject("too-large", f"{len(raw)} bytes exceed the limit of {max_bytes}")
    try:
        text = bytes(raw).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _reject("bad-encoding", f"JSON must be UTF-8: {exc}") from exc
    # json.loads recurses per nesting level; bound the depth before it can exhaust the stack.
    if json_depth_exceeds(raw, max_depth):
        raise _reject("too-deep", f"JSON nesting deeper than {max_depth}")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        reason = "truncated" if exc.pos >= len(text.rstrip()) else "not-well-formed"
        raise _reject(reason, f"invalid JSON: {exc}") from exc
    # JSON lets a surrogate escape stand alone ("\ud800"); such a string has no UTF-8 form,
    # so no event could carry it. Only bodies that escape surrogates at all pay for the check.
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(document, ensure_ascii=False).encode()
        except UnicodeEncodeError as exc:
            raise _reject("bad-encoding", f"JSON holds a lone surrogate: {exc.reason}") from exc
    return document
