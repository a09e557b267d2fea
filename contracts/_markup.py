"""Bounds on how much markup an XML body holds, checked on its bytes before any parse.

libxml2 bounds depth and text-node size, but not how many elements or attributes a document
has: 40 MB of ``<a/>`` is ten million elements, which the parse, the depth walk of huge mode,
schema validation and mapping each visit (about 20 s in all, measured). Counting bytes costs
a few milliseconds for 40 MB and nothing for the usual 5-50 KB message.

The counts are upper bounds, never undercounts: every tag, comment, processing instruction
and CDATA section starts with ``<``, every attribute (namespace declarations included) has an
``=``. Text may hold ``=`` and CDATA ``<`` too, so the limits sit far above real messages
(the 50 KB XBau bench message has 1,625 ``<`` and 370 ``=``).
"""

from __future__ import annotations

from ._errors import MessageRejected

__all__ = ["MAX_ATTRIBUTES", "MAX_MARKUP", "check_markup"]

# About 500,000 elements (start and end tag each count); libxml2 parses that in ~0.1 s.
MAX_MARKUP = 1_000_000
# libxml2 takes ~1.2 s for one element with a million attributes: half of that, at most.
MAX_ATTRIBUTES = 500_000


def check_markup(
    raw: bytes, *, max_markup: int = MAX_MARKUP, max_attributes: int = MAX_ATTRIBUTES
) -> None:
    """Raise ``MessageRejected("parse", "too-many-elements"|"too-many-attributes")``."""
    markup = raw.count(b"<")
    if markup > max_markup:
        raise MessageRejected(
            "parse",
            "too-many-elements",
            f"{markup} tags and other markup exceed the limit of {max_markup}",
        )
    attributes = raw.count(b"=")
    if attributes > max_attributes:
        raise MessageRejected(
            "parse",
            "too-many-attributes",
            f"up to {attributes} attributes exceed the limit of {max_attributes}",
        )
