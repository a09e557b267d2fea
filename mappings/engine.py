"""The declarative mapping engine: YAML files that say where each CaseEvent fact lives.

One file per (standard, version, message type). A file is compiled once (XPath via
``lxml.etree.XPath``, JSON via a small path language) and then applied to every message of its
type. A wrong file is refused when it is loaded, naming file, line and reason, never later on
a message. File format (see ``docs/adding-a-standard.md``)::

    standard: xbau
    version: "2.6"
    message_type: baugenehmigung.antrag.0200
    format: xml                      # or json
    namespaces: {m: "http://www.xleitstelle.de/xbau/2/6"}
    include: [_headers/xoev-g2g.yaml]  # shared header facts
    event:                           # CaseEventData fields
      region: string(m:bauvorhaben/.../code)
      applicant: {name: ..., kind: {const: person}}
    fields:                          # typed business fields
      eingang: {xpath: nachrichtenkopf.g2g/identifikation.nachricht/erstellungszeitpunkt,
                type: datetime, required: true}
    attachments:
      - each: m:anlagen/anlage
        kind: reference              # or inline (base64 text in the message)
        name: anhangOderVerlinkung/anhang/dateiname
        media_type: mimeType/code
        ref: anhangOderVerlinkung/anhang/dokumentid
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import logging
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from lxml import etree

from ._jsonpath import JsonPathError, compile_json_path
from ._yamllines import LineDict, load_with_lines

__all__ = [
    "BUILTIN_MAPPINGS_DIR",
    "EVENT_TARGETS",
    "FIELD_TYPES",
    "Attachment",
    "KnownMessageTypes",
    "MappedMessage",
    "Mapping",
    "MappingError",
    "MappingFailed",
    "MappingSet",
    "load_mapping",
]

log = logging.getLogger(__name__)

# standard -> version -> message types: what the contract registry knows, so that a mapping
# for a misspelled standard, version or message type is refused instead of never applying.
KnownMessageTypes = dict[str, dict[str, frozenset[str]]]

BUILTIN_MAPPINGS_DIR = Path(__file__).resolve().parent
HEADERS_DIR = BUILTIN_MAPPINGS_DIR / "_headers"

# CaseEventData fields a mapping may fill (the rest come from transport and routing).
EVENT_TARGETS: dict[str, str] = {
    "nachrichten_uuid": "str",
    "leistung": "str",
    "region": "str",
    "author": "authority",
    "reader": "authority",
}
APPLICANT_TARGETS: dict[str, str] = {
    "name": "str",
    "kind": "str",
    "address": "str",
    "postfach": "str",
}
APPLICANT_KINDS = frozenset({"person", "organisation", "unknown"})
FIELD_TYPES = frozenset({"str", "int", "float", "bool", "date", "datetime", "authority", "list"})
_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TOP_KEYS = frozenset(
    {
        "standard",
        "version",
        "message_type",
        "format",
        "namespaces",
        "include",
        "event",
        "fields",
        "attachments",
        "description",
    }
)
_ATTACHMENT_KEYS = frozenset(
    {"each", "kind", "name", "media_type", "content", "ref", "size", "sha256"}
)
# What an XPath expression yields can be told from its outermost function for the cases
# that matter: a number or boolean can never become a date, and so on.
_NUMBER_FUNCS = ("count(", "sum(", "number(", "floor(", "ceiling(", "round(", "string-length(")
_BOOLEAN_FUNCS = ("boolean(", "not(", "true(", "false(", "contains(", "starts-with(", "lang(")
_COMPATIBLE: dict[str, frozenset[str]] = {
    "number": frozenset({"str", "int", "float"}),
    "boolean": frozenset({"bool", "str"}),
}


_PROBE = etree.Element("probe")


class MappingError(ValueError):
    """A mapping file that cannot be used: ``file:line: reason``."""

    def __init__(self, file: str | Path, line: int | None, reason: str) -> None:
        super().__init__(f"{file}:{line or '?'}: {reason}")
        self.file = str(file)
        self.line = line
        self.reason = reason


class MappingFailed(ValueError):
    """A message the mapping cannot translate (required fact missing, value not of its type)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Attachment:
    """An attachment found in a message: bytes when inline, a reference otherwise.

    The routing core puts ``content`` into the object store (claim check) and keeps
    name, media type, size and sha256 in the CaseEvent.
    """

    name: str
    media_type: str
    kind: str  # "inline" or "reference"
    content: bytes | None = None
    ref: str | None = None
    size: int | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class MappedMessage:
    event: dict[str, Any]
    applicant: dict[str, Any] | None
    fields: dict[str, Any]
    attachments: tuple[Attachment, ...] = ()


# -- value conversion ---------------------------------------------------------------------


def _scalar(value: Any) -> Any:
    """Reduce an XPath/JSON result to a scalar (or None when nothing was found)."""
    if isinstance(value, list):
        if not value:
            return None
        value = value[0]
    if isinstance(value, etree._Element):
        value = value.text
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _as_list(value: Any) -> list[str] | None:
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        text = _scalar(item)
        if text is not None:
            out.append(str(text))
    return out or None


def _convert(value: Any, kind: str) -> Any:
    if kind == "list":
        return _as_list(value)
    value = _scalar(value)
    if value is None:
        return None
    if kind == "str":
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value) if not isinstance(value, bool) else ("true" if value else "false")
    if kind == "int":
        if isinstance(value, bool):
            raise ValueError("a boolean is not an integer")
        return int(value) if isinstance(value, int | float) else int(str(value))
    if kind == "float":
        return float(value)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).lower()
        if text in {"true", "1"}:
            return True
        if text in {"false", "0"}:
            return False
        raise ValueError(f"{value!r} is not a boolean")
    if kind == "date":
        # xs:date may carry a zone ("2026-03-10+01:00"); the calendar day is what counts.
        return date.fromisoformat(str(value)[:10])
    if kind == "datetime":
        return datetime.fromisoformat(str(value))
    if kind == "authority":
        text = str(value)
        prefix, sep, code = text.partition(":")
        return text if sep and prefix.strip() and code.strip() else None
    raise ValueError(f"unknown type {kind}")


# -- compilation ----------------------------------------------------------------------------


Selector = Callable[[Any], Any]


@dataclass(frozen=True)
class _Value:
    target: str
    kind: str
    select: Selector | None
    const: Any = None
    required: bool = False
    expression: str = ""

    def evaluate(self, context: Any) -> Any:
        if self.select is None:
            return self.const
        raw = self.select(context)
        # Hot paths, each giving exactly what _convert would: the text of one element or a
        # string function's result typed str, and a count() typed int.
        kind, cls = self.kind, raw.__class__
        if kind == "str":
            if cls is list and len(raw) == 1:
                node = raw[0]
                text = node.text if isinstance(node, etree._Element) else node
                if text.__class__ is str:
                    text = text.strip()
                    if text:
                        return text
            elif cls is str:
                text = raw.strip()
                if text:
                    return text
        elif kind == "int" and cls is float and raw == raw:  # not NaN
            return int(raw)
        try:
            value = _convert(raw, self.kind)
        except (ValueError, TypeError) as exc:
            raise MappingFailed(
                "bad-value", f"{self.target}: {_scalar(raw)!r} is not a {self.kind} ({exc})"
            ) from exc
        if value is None and self.required:
            raise MappingFailed("missing-field", f"{self.target}: nothing at {self.expression}")
        return value


@dataclass(frozen=True)
class _AttachmentRule:
    each: Selector
    kind: str
    parts: dict[str, _Value]


def _xpath_kind(expression: str) -> str:
    text = expression.strip()
    if text.startswith(_NUMBER_FUNCS) or re.fullmatch(r"-?\d+(\.\d+)?", text):
        return "number"
    if text.startswith(_BOOLEAN_FUNCS):
        return "boolean"
    return "any"


class _Compiler:
    def __init__(self, file: Path, fmt: str, namespaces: dict[str, str]) -> None:
        self.file = file
        self.fmt = fmt
        self.namespaces = namespaces

    def error(self, line: int | None, reason: str) -> MappingError:
        return MappingError(self.file, line, reason)

    def selector(self, expression: Any, line: int | None, *, nodes: bool = False) -> Selector:
        if not isinstance(expression, str) or not expression.strip():
            raise self.error(line, "an expression must be a non-empty string")
        if self.fmt == "json":
            try:
                return compile_json_path(expression)
            except JsonPathError as exc:
                raise self.error(line, f"bad JSON path: {exc}") from exc
        try:
            compiled = etree.XPath(expression, namespaces=self.namespaces, smart_strings=False)
        except etree.XPathSyntaxError as exc:
            raise self.error(line, f"bad XPath {expression!r}: {exc}") from exc
        try:
            # Compiling accepts undeclared prefixes and unknown functions; a dry run does not.
            compiled(_PROBE)
        except etree.XPathEvalError as exc:
            raise self.error(line, f"bad XPath {expression!r}: {exc}") from exc
        if nodes and _xpath_kind(expression) != "any":
            raise self.error(line, f"'each' must select nodes, {expression!r} does not")
        return compiled  # type: ignore[no-any-return]

    def _join(self, target: str, spec: dict[str, Any], line: int | None) -> _Value:
        """``join: [expr, ...]`` glues the non-empty parts; portals split what XÖV keeps whole."""
        parts = spec["join"]
        if not isinstance(parts, list) or not parts:
            raise self.error(line, f"{target}: join needs a list of expressions")
        separator = str(spec.get("separator", " "))
        selectors = [self.selector(part, line) for part in parts]
        kind = str(spec.get("type", "str"))
        if kind not in {"str", "authority"}:
            raise self.error(line, f"{target}: type mismatch, join yields a string, not {kind}")

        def select(context: Any) -> str:
            texts = (_scalar(selector(context)) for selector in selectors)
            return separator.join(str(t) for t in texts if t is not None)

        return _Value(
            target, kind, select, required=bool(spec.get("required")), expression=str(parts)
        )

    def value(self, target: str, spec: Any, line: int | None, default_kind: str) -> _Value:
        kind = default_kind
        required = False
        if isinstance(spec, dict):
            keys = set(spec)
            allowed = {"xpath", "path", "const", "join", "separator", "type", "required"}
            if keys - allowed:
                raise self.error(line, f"{target}: unknown key(s) {sorted(keys - allowed)}")
            sources = keys & {"xpath", "path", "const", "join"}
            if len(sources) != 1:
                raise self.error(line, f"{target}: give exactly one of xpath, path, const, join")
            if "join" in spec:
                return self._join(target, spec, line)
            kind = str(spec.get("type", default_kind))
            required = bool(spec.get("required", False))
            if default_kind != "str" and kind != default_kind and target in EVENT_TARGETS:
                raise self.error(line, f"{target}: type must be {default_kind}, not {kind}")
            if kind not in FIELD_TYPES:
                raise self.error(
                    line, f"{target}: unknown type {kind!r} (one of {sorted(FIELD_TYPES)})"
                )
            if "const" in spec:
                try:
                    const = _convert(spec["const"], kind)
                except (ValueError, TypeError) as exc:
                    raise self.error(
                        line, f"{target}: type mismatch, const {spec['const']!r} is not {kind}"
                    ) from exc
                return _Value(target, kind, None, const=const, expression="const")
            source = spec.get("xpath", spec.get("path"))
            wanted = "xpath" if self.fmt == "xml" else "path"
            if wanted not in spec:
                raise self.error(line, f"{target}: a {self.fmt} mapping uses '{wanted}'")
        else:
            source = spec
        selector = self.selector(source, line)
        if self.fmt == "xml":
            produced = _xpath_kind(str(source))
            if produced in _COMPATIBLE and kind not in _COMPATIBLE[produced]:
                raise self.error(
                    line, f"{target}: type mismatch, {source!r} yields a {produced}, not {kind}"
                )
        return _Value(target, kind, selector, required=required, expression=str(source))


# -- mapping --------------------------------------------------------------------------------


@dataclass
class Mapping:
    """One compiled mapping file."""

    file: Path
    standard: str
    version: str
    message_type: str
    format: str
    event: dict[str, _Value] = field(default_factory=dict)
    applicant: dict[str, _Value] = field(default_factory=dict)
    fields: dict[str, _Value] = field(default_factory=dict)
    attachments: list[_AttachmentRule] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.standard, self.version, self.message_type)

    def apply(self, document: Any) -> MappedMessage:
        """Run the mapping over a parsed message (lxml root element or JSON value)."""
        event = {name: value.evaluate(document) for name, value in self.event.items()}
        applicant = None
        if self.applicant:
            applicant = {name: v.evaluate(document) for name, v in self.applicant.items()}
            kind = applicant.get("kind")
            if kind is not None and kind not in APPLICANT_KINDS:
                applicant["kind"] = "unknown"
            if not any(v is not None for k, v in applicant.items() if k != "kind"):
                applicant = None
        fields = {}
        for name, value in self.fields.items():
            result = value.evaluate(document)
            if result is not None:
                fields[name] = result
        attachments = tuple(a for rule in self.attachments for a in _attachments(rule, document))
        return MappedMessage(event, applicant, fields, attachments)


def _attachments(rule: _AttachmentRule, document: Any) -> Iterable[Attachment]:
    found = rule.each(document)
    for item in found if isinstance(found, list) else [found]:
        parts = {name: value.evaluate(item) for name, value in rule.parts.items()}
        name = parts.get("name") or "attachment"
        media_type = parts.get("media_type") or "application/octet-stream"
        if rule.kind == "inline":
            text = parts.get("content")
            if text is None:
                continue
            try:
                content = base64.b64decode("".join(str(text).split()), validate=True)
            except (binascii.Error, ValueError) as exc:
                raise MappingFailed("bad-attachment", f"{name}: not base64 ({exc})") from exc
            yield Attachment(
                name=name,
                media_type=media_type,
                kind="inline",
                content=content,
                size=len(content),
                sha256=hashlib.sha256(content).hexdigest(),
            )
        else:
            ref = parts.get("ref")
            if ref is None:
                continue
            yield Attachment(
                name=name,
                media_type=media_type,
                kind="reference",
                ref=ref,
                size=parts.get("size"),
                sha256=_sha256_digest(parts.get("sha256")),
            )


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def _sha256_digest(value: object) -> str | None:
    """A message's own hash of a referenced file, if it is a SHA-256 hex digest. XBau's
    ``hashValue`` is any token (another algorithm, upper case, a typo); the CaseEvent takes
    only lower-case SHA-256, and anything else failed there as an unexpected error (found
    by python -m fuzz). The reference itself stays; only the unusable hash is left out."""
    if value is None:
        return None
    digest = str(value).strip().lower()
    return digest if _SHA256_HEX.fullmatch(digest) else None


def _read(file: Path) -> LineDict:
    try:
        data = load_with_lines(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(file, None, f"cannot read: {exc}") from exc
    except Exception as exc:  # yaml.YAMLError and its marks
        mark = getattr(exc, "problem_mark", None)
        raise MappingError(file, mark.line + 1 if mark else None, f"not valid YAML: {exc}") from exc
    if not isinstance(data, LineDict):
        raise MappingError(file, 1, "a mapping file must be a YAML mapping")
    return data


def _did_you_mean(value: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, sorted(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _check_known(file: Path, data: LineDict, known: KnownMessageTypes) -> None:
    """Refuse a mapping whose standard, version or message type the registry does not know."""
    lines = data.lines
    standard, version = str(data["standard"]), str(data["version"])
    message_type = str(data["message_type"])
    if standard not in known:
        raise MappingError(
            file,
            lines.get("standard"),
            f"standard {standard!r} is not registered{_did_you_mean(standard, known)}",
        )
    versions = known[standard]
    if version not in versions:
        raise MappingError(
            file,
            lines.get("version"),
            f"{standard} has no version {version!r} (registered: {', '.join(sorted(versions))})"
            f"{_did_you_mean(version, versions)}",
        )
    types = versions[version]
    if message_type not in types:
        raise MappingError(
            file,
            lines.get("message_type"),
            f"{standard} {version} has no message type {message_type!r}"
            f"{_did_you_mean(message_type, types)}",
        )


def load_mapping(
    file: Path,
    *,
    namespaces: dict[str, str] | None = None,
    header_only: bool = False,
    known: KnownMessageTypes | None = None,
    _depth: int = 0,
) -> Mapping:
    """Load and compile one mapping file; raise ``MappingError`` naming file and line.

    With ``known``, a mapping for a standard, version or message type not in it is refused."""
    file = Path(file)
    data = _read(file)
    lines = data.lines
    unknown = set(data) - _TOP_KEYS
    if unknown and not header_only:
        key = sorted(unknown)[0]
        raise MappingError(file, lines.get(key), f"unknown key {key!r}")
    if not header_only:
        for key in ("standard", "version", "message_type"):
            if not isinstance(data.get(key), str | int | float) or data.get(key) in ("", None):
                raise MappingError(file, lines.get(key, 1), f"'{key}' is required")
        if known is not None:
            _check_known(file, data, known)
    fmt = str(data.get("format", "xml"))
    if fmt not in {"xml", "json"}:
        raise MappingError(file, lines.get("format"), f"format must be xml or json, not {fmt!r}")
    # An including file (or the registry, for header-only mappings) binds the prefixes.
    ns = {**(data.get("namespaces") or {}), **(namespaces or {})}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in ns.items()):
        raise MappingError(file, lines.get("namespaces"), "namespaces map prefixes to URIs")
    compiler = _Compiler(file, fmt, ns)
    included = _includes(file, data, ns, _depth)
    mapping = Mapping(
        file=file,
        standard=str(data.get("standard", "")),
        version=str(data.get("version", "")),
        message_type=str(data.get("message_type", "")),
        format=fmt,
    )
    event = data.get("event") or {}
    if not isinstance(event, dict):
        raise MappingError(file, lines.get("event"), "'event' must be a mapping")
    event_lines = getattr(event, "lines", {})
    for target, spec in event.items():
        line = event_lines.get(target, lines.get("event"))
        if target == "applicant":
            if not isinstance(spec, dict):
                raise MappingError(file, line, "applicant must map name/kind/address/postfach")
            sub_lines = getattr(spec, "lines", {})
            for sub, sub_spec in spec.items():
                if sub not in APPLICANT_TARGETS:
                    raise MappingError(
                        file,
                        sub_lines.get(sub, line),
                        f"unknown target field applicant.{sub} "
                        f"(one of {sorted(APPLICANT_TARGETS)})",
                    )
                mapping.applicant[sub] = compiler.value(
                    f"applicant.{sub}", sub_spec, sub_lines.get(sub, line), "str"
                )
            continue
        if target not in EVENT_TARGETS:
            raise MappingError(
                file,
                line,
                f"unknown target field {target!r} (one of {sorted([*EVENT_TARGETS, 'applicant'])})",
            )
        mapping.event[target] = compiler.value(target, spec, line, EVENT_TARGETS[target])
    fields = data.get("fields") or {}
    if not isinstance(fields, dict):
        raise MappingError(file, lines.get("fields"), "'fields' must be a mapping")
    field_lines = getattr(fields, "lines", {})
    for name, spec in fields.items():
        line = field_lines.get(name, lines.get("fields"))
        if not _FIELD_NAME.match(name):
            raise MappingError(file, line, f"field name {name!r} must be snake_case")
        mapping.fields[name] = compiler.value(name, spec, line, "str")
    for index, rule in enumerate(data.get("attachments") or []):
        line = getattr(rule, "line", lines.get("attachments"))
        mapping.attachments.append(_compile_attachment(compiler, rule, line, index))
    for part in included:  # the including file's own entries win
        mapping.event = {**part.event, **mapping.event}
        mapping.applicant = {**part.applicant, **mapping.applicant}
        mapping.fields = {**part.fields, **mapping.fields}
        mapping.attachments = [*part.attachments, *mapping.attachments]
    return mapping


def _includes(file: Path, data: LineDict, namespaces: dict[str, str], depth: int) -> list[Mapping]:
    """Compile included parts on their own, so their errors name their own file and line."""
    includes = data.get("include") or []
    if isinstance(includes, str):
        includes = [includes]
    line = data.lines.get("include")
    if depth > 4:
        raise MappingError(file, line, "includes nested too deeply")
    parts = []
    for include in includes:
        path = (file.parent / include).resolve()
        if not path.is_file():
            path = (BUILTIN_MAPPINGS_DIR / include).resolve()
        if not path.is_file():
            raise MappingError(file, line, f"include {include!r} not found")
        parts.append(load_mapping(path, namespaces=namespaces, header_only=True, _depth=depth + 1))
    return parts


def _compile_attachment(
    compiler: _Compiler, rule: Any, line: int | None, index: int
) -> _AttachmentRule:
    if not isinstance(rule, dict):
        raise compiler.error(line, f"attachments[{index}] must be a mapping")
    rule_lines = getattr(rule, "lines", {})
    unknown = set(rule) - _ATTACHMENT_KEYS
    if unknown:
        raise compiler.error(line, f"attachments[{index}]: unknown key(s) {sorted(unknown)}")
    kind = rule.get("kind", "reference")
    if kind not in {"inline", "reference"}:
        raise compiler.error(rule_lines.get("kind", line), "kind must be inline or reference")
    needed = ("each", "name", "content") if kind == "inline" else ("each", "name", "ref")
    for key in needed:
        if key not in rule:
            raise compiler.error(line, f"attachments[{index}]: '{key}' is required for {kind}")
    types = {"size": "int", "sha256": "str"}
    parts = {
        key: compiler.value(
            f"attachments[{index}].{key}",
            rule[key],
            rule_lines.get(key, line),
            types.get(key, "str"),
        )
        for key in ("name", "media_type", "content", "ref", "size", "sha256")
        if key in rule
    }
    each = compiler.selector(rule["each"], rule_lines.get("each", line), nodes=True)
    return _AttachmentRule(each=each, kind=kind, parts=parts)


class MappingSet:
    """All mappings a hub knows, by (standard, version, message type)."""

    def __init__(self, mappings: Iterable[Mapping] = ()) -> None:
        self._by_key: dict[tuple[str, str, str], Mapping] = {}
        self._headers: dict[tuple[str, str], Mapping] = {}
        for mapping in mappings:
            self.add(mapping)

    def add(self, mapping: Mapping) -> None:
        existing = self._by_key.get(mapping.key)
        if existing is not None and existing.file != mapping.file:
            raise MappingError(
                mapping.file, 1, f"{'/'.join(mapping.key)} is already mapped by {existing.file}"
            )
        self._by_key[mapping.key] = mapping

    @classmethod
    def load(
        cls,
        directories: Sequence[Path] = (BUILTIN_MAPPINGS_DIR,),
        *,
        known: KnownMessageTypes | None = None,
    ) -> MappingSet:
        """Load every ``*.yaml`` below the directories (folders starting with '_' hold parts);
        with ``known``, refuse mappings for what the contract registry does not know."""
        found = cls()
        for directory in directories:
            if not directory.is_dir():
                continue
            for file in sorted(directory.rglob("*.yaml")):
                if any(part.startswith("_") for part in file.relative_to(directory).parts):
                    continue
                found.add(load_mapping(file, known=known))
        log.info("mappings loaded count=%d", len(found._by_key))
        return found

    def get(self, standard: str, version: str, message_type: str) -> Mapping | None:
        return self._by_key.get((standard, version, message_type))

    def header_mapping(self, style: str, namespace: str) -> Mapping | None:
        """The header facts alone, for message types that have no mapping of their own."""
        if style == "none":
            return None
        key = (style, namespace)
        if key not in self._headers:
            self._headers[key] = load_mapping(
                HEADERS_DIR / f"{style}.yaml", namespaces={"m": namespace}, header_only=True
            )
        return self._headers[key]

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self) -> Any:
        return iter(self._by_key.values())
