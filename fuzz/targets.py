"""One fuzz target per parser the hub exposes, each calling the hub's real entry point.

========================  ==============================================  ======================
target                    entry point                                     precise refusal
========================  ==============================================  ======================
``xml-intake``            ``identify_message`` (never raises), then       ``MessageRejected``
                          ``MessageInspector.inspect`` (safe parse,       (quarantine step and
                          identify, XSD validation, mapping) with the     reason)
                          corpus XBau and xdomea schemas registered
``ozg-multipart``         ``adapters._ozg._read_submission`` on a real    ``_Refused`` with a
                          Starlette request, then the accepted formData   4xx status (problem
                          through ``inspect(content_type=json)``          document), or
                                                                          ``MessageRejected``
``reply-json``            ``adapters.portal._read_reply`` (the body of    ``RequestValidationError``
                          ``POST /v1/cases/{id}/events``)                 (422), body too large
                                                                          (413)
``routing-yaml``          ``load_table`` on a ``.yaml`` file, then        ``RouteTableError``
                          ``compile_table`` (``poststelle routes import``)
``routing-csv``           ``load_table`` on a ``.csv`` file, then         ``RouteTableError``
                          ``compile_table``
``xta-soap``              ``XtaClient`` operations answered by fuzzed     ``XtaError`` (transient
                          SOAP / MTOM replies (zeep parsing, MTOM         or permanent)
                          inlining, the client's own reading of them)
========================  ==============================================  ======================

Seeds are the project's real messages: ``tests/contracts/messages``, ``examples/``, the
corpus' xdomea messages, and XTA replies recorded from the XTA simulator at start-up.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import functools
import json
import random
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fuzz.engine import ByteMutator, Target, json_mutate, xml_mutate

__all__ = ["ROOT", "TARGETS", "build_targets"]

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
# Mutated inputs stay below this size: the limit checks get their own hostile specials.
_MAX_LEN = 256 * 1024


def _corpus() -> Path:
    import os

    return Path(os.environ.get("POSTSTELLE_CORPUS", CORPUS))


# -- shared fixtures (built once per process) -------------------------------------------------


@functools.cache
def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="poststelle-fuzz-"))


@functools.cache
def _inspector() -> Any:
    from poststelle.contracts.inspection import MessageInspector
    from poststelle.contracts.registry import ContractRegistry

    data_dir = _workdir() / "data"
    data_dir.mkdir(exist_ok=True)
    registry = ContractRegistry.for_data_dir(data_dir)
    registry.add_schema_set(_corpus() / "xbau-2.6" / "xsd")
    registry.add_schema_set(_corpus() / "xdomea" / "schemes")
    return MessageInspector(data_dir)


@functools.cache
def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.new_event_loop()


def _request(content_type: str, body: bytes, chunk: int, *, declare_length: bool = True) -> Any:
    """A Starlette request whose body arrives in ``chunk``-sized pieces, as from a socket."""
    from starlette.requests import Request

    headers = [(b"content-type", content_type.encode("latin-1", "replace"))]
    if declare_length:
        headers.append((b"content-length", str(len(body)).encode()))
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    messages = [
        {"type": "http.request", "body": piece, "more_body": n < len(pieces) - 1}
        for n, piece in enumerate(pieces)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": headers,
        "query_string": b"",
    }
    return Request(scope, receive)


def _as_event(inspected: Any) -> bytes:
    """What the routing core makes of an accepted message: its CaseEvent, serialised. An
    error here would reach the core's catch-all quarantine (``unexpected``): a crash too."""
    from poststelle.contracts.events import CaseEvent, Origin, deterministic_case_id
    from poststelle.contracts.inspection import attachment_refs

    case_id = deterministic_case_id("fuzz", "case")
    data = inspected.case_event_data(
        case_id=case_id,
        origin=Origin(channel="fuzz", adapter="fuzz", source_message_id="m-1"),
        tenant="kiel",
        backend="bauamt",
        attachments=attachment_refs(case_id, inspected.attachments),
    )
    return CaseEvent.received(data).model_dump_json().encode()


# -- XML intake --------------------------------------------------------------------------------

_XML_TOKENS = (
    b"<!DOCTYPE r [<!ENTITY e 'x'>]>",
    b"&e;",
    b"<![CDATA[",
    b"]]>",
    b"<?xml version='1.0' encoding='utf-16'?>",
    b"<?xml version='1.0' encoding='ebcdic-cp-us'?>",
    b'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/passwd"/>',
    b"xmlns=''",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"<nachrichtenUUID>",
    b"</nachrichtenUUID>",
    b"&#0;",
    b"&#x110000;",
    b"<a:b:c/>",
)


def _xml_seeds() -> list[bytes]:
    files = [
        p
        for p in sorted((ROOT / "tests" / "contracts" / "messages").glob("*.xml"))
        # 50 KB of valid XBau costs ~70 ms a run; the 5 KB sibling covers the same structure.
        if "50k" not in p.name
    ]
    files.append(ROOT / "examples" / "xbau-antrag-0200.xml")
    files += sorted((_corpus() / "xdomea" / "messages").glob("*/*.xml"))
    return [p.read_bytes() for p in files]


def _billion_laughs() -> bytes:
    lines = ['<?xml version="1.0"?>', "<!DOCTYPE lolz [", ' <!ENTITY lol "lol">']
    for level in range(1, 10):
        refs = f"&lol{level - 1 if level > 1 else ''};" * 10
        lines.append(f' <!ENTITY lol{level} "{refs}">')
    lines += ["]>", "<lolz>&lol9;</lolz>"]
    return "\n".join(lines).encode()


def _xml_specials(seeds: Sequence[bytes]) -> list[bytes]:
    from poststelle.contracts._safexml import DEFAULT_MAX_BYTES

    seed = seeds[0]
    return [
        b"",
        b"   \n",
        b"\x00" * 64,
        _billion_laughs(),
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
        b'<!DOCTYPE r SYSTEM "http://example.invalid/evil.dtd"><r/>',
        b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://example.invalid/p">%p;]><r/>',
        b"<!-- c --><!DOCTYPE r><r/>",
        b"<r>" * 300 + b"</r>" * 300,
        b"<r>" * 100_000,
        b"<r " + b"".join(b'a%d="1" ' % n for n in range(300_000)) + b"/>",
        b"<r>" + b"<a/>" * 600_000 + b"</r>",
        b'<r a="' + b"x" * 11_000_000 + b'"/>',
        b"<r>" + b"x" * (DEFAULT_MAX_BYTES - 7) + b"</r>",
        b"<r>" + b"x" * DEFAULT_MAX_BYTES + b"</r>",
        codecs.BOM_UTF32_LE + "<r/>".encode("utf-32-le"),
        codecs.BOM_UTF16_LE + seed.decode("utf-8").encode("utf-16-le"),
        codecs.BOM_UTF8 + b'<?xml version="1.0" encoding="iso-8859-1"?><r/>',
        b'<?xml version="1.0" encoding="x-unknown"?><r/>',
        b'<?xml version="1.0" encoding="shift_jis"?><r/>',
        seed[: len(seed) // 2],
        seed.replace(b"<nachrichtenUUID>", b"<nachrichtenUUID>" + b"9" * 100_000),
    ]


def _xml_target() -> Target:
    from poststelle.contracts.inspection import MessageRejected
    from poststelle.contracts.message_identity import identify_message

    seeds = _xml_seeds()
    namespaces = sorted(
        {m.group(1) for s in seeds for m in re.finditer(rb'xmlns(?::\w+)?="([^"]*)"', s)}
    )
    mutator = ByteMutator(seeds, _XML_TOKENS, _MAX_LEN)

    def generate(rng: random.Random) -> bytes:
        roll = rng.random()
        if roll < 0.03:
            return mutator.random_bytes(rng)
        data = rng.choice(seeds)
        if roll < 0.25:
            return mutator.mutate(rng, data)
        for _ in range(rng.choice((1, 1, 2, 3))):
            data = xml_mutate(rng, data, namespaces)
        return mutator.mutate(rng, data) if rng.random() < 0.3 else data[:_MAX_LEN]

    # Compile every schema the seeds use now: the first message of a type pays for it.
    for seed in seeds:
        with contextlib.suppress(MessageRejected):
            _inspector().inspect(seed)

    def run(raw: bytes) -> object:
        identify_message(raw)  # the channels' identity scan: must never raise
        return _as_event(_inspector().inspect(raw))

    return Target(
        name="xml-intake",
        generate=generate,
        run=run,
        precise=(MessageRejected,),
        reason=lambda exc: f"{exc.step}/{exc.reason}",  # type: ignore[attr-defined]
        specials=lambda: _xml_specials(seeds),
    )


# -- OZG multipart -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Upload:
    content_type: str
    body: bytes
    chunk: int

    def dump(self) -> bytes:
        return (
            b"Content-Type: "
            + self.content_type.encode("latin-1", "replace")
            + b"\r\n\r\n"
            + (self.body)
        )


_DISPOSITIONS = (
    b'form-data; name="{name}"; filename="{file}"',
    b'form-data; name="{name}"',
    b'form-data; name="{name}"; filename=""',
    b'form-data; name="{name}"; filename="../../{file}"',
    b"form-data; name={name}; filename*=UTF-8''%C3%A4{file}",
    b"attachment",
    b"",
)


def _multipart(
    rng: random.Random, boundary: bytes, parts: list[tuple[bytes, bytes, bytes]]
) -> bytes:
    chunks = []
    for disposition, media_type, content in parts:
        head = b"Content-Disposition: " + disposition
        if media_type:
            head += b"\r\nContent-Type: " + media_type
        chunks.append(b"--" + boundary + b"\r\n" + head + b"\r\n\r\n" + content + b"\r\n")
    tail = b"--" + boundary + b"--\r\n" if rng.random() < 0.95 else b""
    return b"".join(chunks) + tail


def _ozg_target() -> Target:
    from poststelle.adapters._ozg import ATTACHMENT, FORM_DATA, REPRESENTATION, _read_submission
    from poststelle.adapters._ozg import _Refused as Refused
    from poststelle.contracts.inspection import MessageRejected
    from poststelle.contracts.intake import DEFAULT_MAX_ATTACHMENTS

    # A small body limit keeps oversized inputs cheap; the 413 path is the same at any size.
    limit = 512 * 1024
    max_files = 8
    example = json.loads((ROOT / "examples" / "ozg-portal-submission.json").read_bytes())
    json_seeds = [example, example["formData"]]
    files = [b"%PDF-1.7\n%\xe4\xfc\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", b"", b"\r\n--x\r\n"]
    mutator = ByteMutator(
        [json.dumps(s).encode() for s in json_seeds] + files,
        (b"--", b"\r\n", b"\r\n\r\n", b'"', b"Content-Disposition: form-data; name=", b"{", b"["),
        _MAX_LEN,
    )

    def form_json(rng: random.Random) -> bytes:
        document: Any = rng.choice(json_seeds)
        for _ in range(rng.choice((0, 0, 1, 2, 4))):
            document = json_mutate(rng, document)
        text = json.dumps(document, ensure_ascii=rng.random() < 0.5)
        data = text.encode("utf-8", "surrogatepass")
        return mutator.mutate(rng, data) if rng.random() < 0.15 else data

    def generate(rng: random.Random) -> _Upload:
        boundary = rng.choice((b"b0undary", b"----WebKitFormBoundary7MA4YWxk", b"x" * 70, b"a"))
        parts: list[tuple[bytes, bytes, bytes]] = []
        names = [FORM_DATA] * rng.choice((0, 1, 1, 1, 1, 2))
        names += [REPRESENTATION] * rng.choice((0, 1, 1, 2))
        names += [ATTACHMENT] * rng.choice((0, 1, 2, 3, max_files + 1))
        if rng.random() < 0.05:
            names.append(rng.choice(("other", "", "formdata", "ä")))
        rng.shuffle(names)
        for name in names:
            disposition = (
                rng.choice(_DISPOSITIONS)
                if rng.random() < 0.2
                else _DISPOSITIONS[1 if name == FORM_DATA else 0]
            )
            disposition = disposition.replace(b"{name}", name.encode()).replace(
                b"{file}", rng.choice((b"antrag.pdf", b"a\x00b", b"x" * 300, b"..", b"C:\\x"))
            )
            if name == FORM_DATA:
                content = form_json(rng)
                media = rng.choice((b"", b"", b"application/json"))
            else:
                content = rng.choice(files) * rng.choice((1, 1, 10, 1000))
                media = rng.choice((b"application/pdf", b"", b"image/png", b"x/\xff"))
            parts.append((disposition, media, content))
        body = _multipart(rng, boundary, parts)
        if rng.random() < 0.3:
            body = mutator.mutate(rng, body)
        content_type = "multipart/form-data; boundary=" + boundary.decode()
        roll = rng.random()
        if roll < 0.03:
            content_type = rng.choice(("application/json", "", "multipart/mixed", "text/plain"))
        elif roll < 0.06:
            content_type = "multipart/form-data"
        elif roll < 0.08:
            content_type = 'multipart/form-data; boundary="' + boundary.decode() + '"; x=\xff'
        return _Upload(content_type, body, rng.choice((1 << 16, 1 << 16, 1 << 16, 4096, 1024, 61)))

    def specials() -> list[_Upload]:
        form = json.dumps(example).encode()
        ok = [(b'form-data; name="formData"', b"application/json", form)]
        many = ok + [
            (b'form-data; name="attachment"; filename="a.pdf"', b"application/pdf", b"x")
        ] * (DEFAULT_MAX_ATTACHMENTS + 50)
        fields = [(b'form-data; name="formData"', b"", form)] * 5000
        deep = b'{"control":{"transactionId":"t"},"x":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
        ct = "multipart/form-data; boundary=b"
        rng = random.Random(0)
        return [
            _Upload(ct, _multipart(rng, b"b", ok), 1 << 16),
            _Upload(ct, _multipart(rng, b"b", many), 1 << 16),
            _Upload(ct, _multipart(rng, b"b", fields), 1 << 16),
            _Upload(ct, b"x" * (limit + 1), 1 << 16),
            _Upload(ct, _multipart(rng, b"b", [(ok[0][0], b"", deep)]), 1 << 16),
            _Upload(ct, _multipart(rng, b"b", [(ok[0][0], b"", b"{" * (limit - 200))]), 1 << 16),
            _Upload(ct, b"--b\r\n" * 100_000, 1 << 16),
            _Upload(ct, b"", 1 << 16),
            _Upload("multipart/form-data; boundary=" + "b" * 10_000, b"--b", 1 << 16),
        ]

    # The inspector's JSON path and the CaseEvent build, compiled before the clock runs.
    _as_event(_inspector().inspect(json.dumps(example).encode(), content_type="application/json"))

    def run(upload: _Upload) -> object:
        request = _request(upload.content_type, upload.body, upload.chunk)
        try:
            submission = _loop().run_until_complete(_read_submission(request, limit, max_files))
        except Refused as refused:
            if not 400 <= refused.status < 500:
                raise AssertionError(f"refusal with status {refused.status}") from refused
            raise
        # The routing core inspects the accepted formData as JSON.
        return _as_event(_inspector().inspect(submission.document, content_type="application/json"))

    def reason(exc: BaseException) -> str:
        if isinstance(exc, Refused):
            return f"{exc.status} {exc.title}"
        return f"{exc.step}/{exc.reason}"  # type: ignore[attr-defined]

    return Target(
        name="ozg-multipart",
        generate=generate,
        run=run,
        precise=(Refused, MessageRejected),
        reason=reason,
        specials=specials,
        dump=lambda upload: upload.dump(),
    )


# -- reply JSON --------------------------------------------------------------------------------


def _reply_target() -> Target:
    from fastapi.exceptions import RequestValidationError

    from poststelle.adapters.portal import MAX_REPLY_BYTES, _BodyTooLarge, _read_reply

    documents = [
        json.loads(p.read_bytes()) for p in sorted((ROOT / "examples" / "replies").glob("*.json"))
    ]
    seeds = [json.dumps(d).encode() for d in documents]
    mutator = ByteMutator(
        seeds, (b"{", b"}", b"[", b'"', b"\\u0000", b"\\ud800", b"1e999", b"null"), _MAX_LEN
    )

    def generate(rng: random.Random) -> bytes:
        roll = rng.random()
        if roll < 0.03:
            return mutator.random_bytes(rng)
        if roll < 0.3:
            return mutator.mutate(rng, rng.choice(seeds))
        document: Any = rng.choice(documents)
        for _ in range(rng.choice((1, 1, 2, 4))):
            document = json_mutate(rng, document)
        data = json.dumps(document, ensure_ascii=rng.random() < 0.5).encode(
            "utf-8", "surrogatepass"
        )
        return mutator.mutate(rng, data) if rng.random() < 0.2 else data

    def specials() -> list[bytes]:
        return [
            b"",
            b"null",
            b"[" * 200_000 + b"]" * 200_000,
            b'{"kind":"status","note":"' + b"x" * MAX_REPLY_BYTES + b'"}',
            b'{"kind":"status","reply_id":' + b"9" * 100_000 + b"}",
            b"\xef\xbb\xbf" + seeds[0],
            b'{"kind":"status","kind":"decision"}',
        ]

    def run(raw: bytes) -> object:
        request = _request("application/json", raw, 1 << 16, declare_length=len(raw) % 2 == 0)
        return _loop().run_until_complete(_read_reply(request))

    def reason(exc: BaseException) -> str:
        if isinstance(exc, _BodyTooLarge):
            return "413 body too large"
        errors = exc.errors()  # type: ignore[attr-defined]
        return f"422 {errors[0]['type'] if errors else 'invalid'}"

    return Target(
        name="reply-json",
        generate=generate,
        run=run,
        precise=(RequestValidationError, _BodyTooLarge),
        reason=reason,
        specials=specials,
    )


# -- routing tables ----------------------------------------------------------------------------

_YAML_SEED = b"""\
tenants:
  kiel:
    name: Landeshauptstadt Kiel
    backends: &kiel [bauamt, dms]
  land-sh:
    backends: [poststelle]
  luebeck:
    backends: *kiel
rules:
  - ars: 01
    tenant: land-sh
    backend: poststelle
  - ars: 010020000002
    leistung: 99066005001000
    standard: xbau
    message_type: baugenehmigung.antrag.0200
    reader: bau:010020000000
    channel: xta
    tenant: kiel
    backend: bauamt
    priority: 0
    valid_from: 2027-01-01
    valid_until: 2030-01-01
    note: free text
  - {ars: "0100300", tenant: luebeck, backend: dms, standard: xbau}
rules_csv: rules.csv
"""

_CSV_SEED = b"""\
# Kreis Pinneberg and Kiel
ars;leistung;standard;message_type;reader;channel;tenant;backend;priority;valid_from;valid_until;note
0105;*;xbau;;;;land-sh;poststelle;0;;;Kreis
010020000002;99066005001000;xbau;baugenehmigung.antrag.0200;bau:010020000000;xta;kiel;dms;1;\
2027-01-01;2030-01-01;"quoted; note"
"""

_CSV_SEED_COMMA = b"""\
tenant,backend,ars
kiel,bauamt,01002
land-sh,poststelle,01
"""


def _yaml_bomb(levels: int) -> bytes:
    lines = ["rules:", " - &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f" - &a{n} [{', '.join(f'*a{n - 1}' for _ in range(9))}]" for n in range(1, levels)]
    return ("\n".join(lines) + "\n").encode()


def _table_target(kind: str) -> Target:
    from poststelle.routing.table.files import load_table, load_tenants
    from poststelle.routing.table.resolver import compile_table
    from poststelle.routing.table.rules import RouteTableError

    folder = _workdir() / f"table-{kind}"
    folder.mkdir(exist_ok=True)
    (folder / "rules.csv").write_bytes(_CSV_SEED)
    (folder / "tenants.yaml").write_bytes(_YAML_SEED.split(b"rules:")[0])
    tenants = load_tenants(folder / "tenants.yaml")
    path = folder / ("table.yaml" if kind == "yaml" else "table.csv")
    seeds = [_YAML_SEED] if kind == "yaml" else [_CSV_SEED, _CSV_SEED_COMMA]
    tokens: tuple[bytes, ...] = (
        (
            b"&a ",
            b"*a",
            b"<<: *a",
            b"!!python/object:os.system",
            b"? ",
            b"- ",
            b": ",
            b"{",
            b"[",
            b"\t",
            b"%YAML 1.1\n",
            b"---\n",
            b"...\n",
            b"'",
            b'"',
            b"|\n",
            b"~",
            b"*",
            b"\xef\xbb\xbf",
        )
        if kind == "yaml"
        else (b";", b",", b'"', b"\n", b"#", b"*", b"\r", b"\x00", b"tenant", b"backend")
    )
    mutator = ByteMutator(seeds, tokens, 64 * 1024)

    def generate(rng: random.Random) -> bytes:
        if rng.random() < 0.03:
            return mutator.random_bytes(rng)
        data = rng.choice(seeds)
        if rng.random() < 0.3:
            # Structure-aware: repeat or drop whole lines (rules, tenants, rows).
            lines = data.splitlines(keepends=True)
            index = rng.randrange(len(lines))
            if rng.random() < 0.5:
                lines[index:index] = lines[index : index + rng.choice((1, 3, 8))] * rng.choice(
                    (2, 10, 200)
                )
            else:
                del lines[index]
            data = b"".join(lines)
        return mutator.mutate(rng, data)

    def specials() -> list[bytes]:
        if kind == "yaml":
            return [
                b"",
                b"[" * 100_000,
                b"rules:\n" + b"".join(b" " * n + b"- \n" for n in range(0, 20_000, 2)),
                _yaml_bomb(9),
                b"a: &a [" + b",".join([b"*a"] * 10) + b"]\n",
                b"tenants: !!python/object/apply:os.system [echo pwned]\n",
                b"rules_csv: /dev/zero\n",
                b"\xff\xfe\x00",
            ]
        return [
            b"",
            b"tenant;backend\n" + b"kiel;bauamt\n" * 100_000,
            b"tenant;backend;note\nkiel;bauamt;" + b'"' + b"x" * 200_000 + b"\n",
            b"\x00" * 1000,
        ]

    def run(raw: bytes) -> object:
        path.write_bytes(raw)
        return compile_table(load_table(path, tenants=tenants))

    return Target(
        name=f"routing-{kind}",
        generate=generate,
        run=run,
        precise=(RouteTableError,),
        reason=lambda exc: "RouteTableError: " + _problem_class(exc),
        specials=specials,
    )


def _problem_class(exc: BaseException) -> str:
    problems = getattr(exc, "problems", None) or [str(exc)]
    first = str(problems[0])
    for word in (
        "not valid YAML",
        "unknown",
        "missing",
        "expected",
        "must",
        "not UTF-8",
        "rules_csv",
    ):
        if word in first:
            return word
    return "rule problem"


# -- XTA SOAP replies --------------------------------------------------------------------------


@dataclass(frozen=True)
class _SoapReply:
    operation: str
    status: int
    content_type: str
    body: bytes

    def dump(self) -> bytes:
        head = f"{self.operation} {self.status} {self.content_type}\r\n\r\n"
        return head.encode("latin-1", "replace") + self.body


def _xta_seed_replies() -> list[_SoapReply]:
    """Real replies of the XTA simulator to every client operation, plain SOAP and MTOM."""
    from poststelle.adapters.xta._config import XtaConnectionSettings
    from poststelle.adapters.xta._errors import XtaError
    from poststelle.adapters.xta._model import (
        MessageType,
        PartyId,
        ServiceParameter,
        XtaMessage,
        XtaMetadata,
    )
    from poststelle.adapters.xta.client import XtaClient
    from poststelle.adapters.xta.simulator import FaultRule, XtaSimulator

    xsd_dir = _corpus() / "xta-2.1.1"
    hub, amt = PartyId("dvdv:poststelle-hub"), PartyId("dvdv:bauamt", name="Bauamt")
    replies: list[_SoapReply] = []
    for mtom in (False, True):
        with XtaSimulator(xsd_dir=xsd_dir, mtom=mtom) as sim:
            sim.create_mailbox(hub.value)
            sim.create_mailbox(amt.value)
            settings = XtaConnectionSettings.model_validate(
                {"service_url": sim.url, "xsd_dir": xsd_dir, "retry_attempts": 1}
            )
            client = XtaClient(settings)
            try:
                first = sim.put(hub, _xml_seeds()[0], filename="antrag.xml")
                sim.put(hub, b"\r\nline breaks at both edges\r\n")
                client.check_account_active(hub)
                client.check_account_active(PartyId("dvdv:unknown"))
                listing = client.get_status_list(hub)
                fetched = client.get_message(hub, first)
                client.get_next_message(hub, fetched.request_id, [fetched.message_id])
                client.get_next_message(hub, listing.request_id, [])
                client.close(hub, fetched.request_id, [])
                message_id = client.create_message_id(hub)
                metadata = XtaMetadata(
                    message_id=message_id,
                    author=hub,
                    reader=amt,
                    service="urn:poststelle:test",
                    message_type=MessageType(
                        code="0201",
                        payload_schema="http://www.xleitstelle.de/xbau/2/6",
                        list_uri="urn:xoev-de:xbau:codeliste:nachrichten",
                        list_version="2.6",
                    ),
                    business_scenario="XBAU",
                )
                message = XtaMessage(metadata, b"<x/>", "application/xml", "x.xml")
                client.send_message(message)
                client.send_message(message)  # fault 9024
                client.get_transport_report(hub, message_id)
                sim.put(hub, b"<a/>")
                page = client.get_status_list(hub, max_items=1)
                client.get_next_status_list(hub, page.request_id)
                with contextlib.suppress(XtaError):
                    client.get_next_status_list(hub, "urn:uuid:unknown")
                sim.offer(amt.value, "urn:poststelle:test", (ServiceParameter("cert", b"\r\n"),))
                client.lookup_service(
                    hub, [(amt, "urn:poststelle:test"), (amt, "urn:x"), (hub, "urn:x")]
                )
                later = datetime.now(UTC) + timedelta(hours=1)
                held_id = client.create_message_id(hub)
                client.send_message(
                    replace(
                        message, metadata=replace(metadata, message_id=held_id, not_before=later)
                    )
                )
                client.cancel_message(hub, held_id)
                with contextlib.suppress(XtaError):
                    client.cancel_message(hub, message_id)  # CancelDeniedException
                sim.respond_sync(amt.value, lambda request: b"<antwort/>")
                sync_id = client.create_message_id(hub)
                client.send_message_sync(
                    replace(message, metadata=replace(metadata, message_id=sync_id))
                )
                sim.inject(FaultRule("fault", "getStatusList", code="9001", reason="down"))
                sim.inject(FaultRule("fault", "getMessage", exception="PermissionDeniedException"))
                with contextlib.suppress(XtaError):
                    client.get_status_list(hub)
                with contextlib.suppress(XtaError):
                    client.get_message(hub, first)
            finally:
                client.close_session()
            for exchange in sim.exchanges:
                if exchange.response is None:
                    continue
                body = exchange.response
                if body.startswith(b"--"):
                    boundary = body[2 : body.index(b"\r\n")].decode()
                    content_type = (
                        'multipart/related; type="application/xop+xml"; '
                        f'boundary="{boundary}"; start="<root>"'
                    )
                else:
                    content_type = "application/soap+xml; charset=utf-8"
                replies.append(_SoapReply(exchange.operation, exchange.status, content_type, body))
    return replies


class _CannedSession:
    """A ``requests.Session`` stand-in that answers every POST with the reply set last."""

    def __init__(self) -> None:
        import requests

        self._session = requests.Session()
        self.reply: _SoapReply | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)

    def post(self, url: str, data: Any = None, headers: Any = None, timeout: Any = None) -> Any:
        import requests
        from requests.structures import CaseInsensitiveDict

        assert self.reply is not None
        response = requests.Response()
        response.status_code = self.reply.status
        response._content = self.reply.body
        response.headers = CaseInsensitiveDict({"Content-Type": self.reply.content_type})
        response.url = url
        return response


def _xta_target() -> Target:
    from poststelle.adapters.xta._config import XtaConnectionSettings
    from poststelle.adapters.xta._errors import XtaError
    from poststelle.adapters.xta._model import MessageType, PartyId, XtaMessage, XtaMetadata
    from poststelle.adapters.xta.client import XtaClient

    seeds = _xta_seed_replies()
    by_operation: dict[str, list[_SoapReply]] = {}
    for reply in seeds:
        by_operation.setdefault(reply.operation, []).append(reply)
    session = _CannedSession()
    settings = XtaConnectionSettings.model_validate(
        {
            "service_url": "http://xta.invalid/",
            "xsd_dir": _corpus() / "xta-2.1.1",
            "retry_attempts": 1,
        }
    )
    client = XtaClient(settings, session=session)  # type: ignore[arg-type]
    hub = PartyId("dvdv:poststelle-hub")
    sync_message = XtaMessage(
        XtaMetadata(
            message_id="urn:de:xta:messageid:1",
            author=hub,
            reader=PartyId("dvdv:bauamt"),
            service="urn:s",
            message_type=MessageType("anfrage", "urn:x"),
            business_scenario="XTA",
        ),
        b"<anfrage/>",
    )
    calls: dict[str, Callable[[], object]] = {
        "checkAccountActive": lambda: client.check_account_active(hub),
        "createMessageId": lambda: client.create_message_id(hub),
        "getTransportReport": lambda: client.get_transport_report(hub, "urn:de:xta:messageid:1"),
        "getStatusList": lambda: client.get_status_list(hub),
        "getMessage": lambda: client.get_message(hub, "urn:de:xta:messageid:1"),
        "getNextMessage": lambda: client.get_next_message(hub, "req-1", ["m-1"]),
        "close": lambda: client.close(hub, "req-1", ["m-1"]),
        "getNextStatusList": lambda: client.get_next_status_list(hub, "req-1"),
        "lookupService": lambda: client.lookup_service(hub, [(hub, "urn:s")]),
        "cancelMessage": lambda: client.cancel_message(hub, "urn:de:xta:messageid:1"),
        "sendMessageSync": lambda: client.send_message_sync(sync_message),
    }
    usable = [op for op in calls if op in by_operation]
    bodies = [reply.body for reply in seeds]
    namespaces = sorted(
        {m.group(1) for b in bodies for m in re.finditer(rb'xmlns(?::\w+)?="([^"]*)"', b)}
    )
    mutator = ByteMutator(
        bodies,
        (*_XML_TOKENS, b"\r\n--", b"Content-Transfer-Encoding: base64\r\n", b"cid:"),
        _MAX_LEN,
    )

    def generate(rng: random.Random) -> _SoapReply:
        operation = rng.choice(usable)
        seed = rng.choice(by_operation[operation])
        body = seed.body
        roll = rng.random()
        if roll < 0.03:
            body = mutator.random_bytes(rng)
        elif roll < 0.35:
            body = mutator.mutate(rng, body)
        else:
            for _ in range(rng.choice((1, 1, 2))):
                body = xml_mutate(rng, body, namespaces)
        status = seed.status if rng.random() < 0.9 else rng.choice((200, 202, 400, 404, 500, 503))
        content_type = seed.content_type
        if rng.random() < 0.05:
            content_type = rng.choice(
                (
                    "text/xml",
                    "",
                    "multipart/related",
                    "multipart/related; boundary=x",
                    "application/json",
                )
            )
        return _SoapReply(operation, status, content_type, body)

    def run(reply: _SoapReply) -> object:
        session.reply = reply
        return calls[reply.operation]()

    return Target(
        name="xta-soap",
        generate=generate,
        run=run,
        precise=(XtaError,),
        reason=lambda exc: " ".join(
            part for part in (type(exc).__name__, getattr(exc, "exception", None)) if part
        ),
        dump=lambda reply: reply.dump(),
    )


TARGETS: dict[str, Callable[[], Target]] = {
    "xml-intake": _xml_target,
    "ozg-multipart": _ozg_target,
    "reply-json": _reply_target,
    "routing-yaml": lambda: _table_target("yaml"),
    "routing-csv": lambda: _table_target("csv"),
    "xta-soap": _xta_target,
}


def build_targets(names: Sequence[str] | None = None) -> list[Target]:
    """The named targets (all by default), their fixtures built."""
    chosen = list(names or TARGETS)
    unknown = [name for name in chosen if name not in TARGETS]
    if unknown:
        raise SystemExit(
            f"unknown fuzz target(s): {', '.join(unknown)} (known: {', '.join(TARGETS)})"
        )
    return [TARGETS[name]() for name in chosen]
