"""The fuzzing engine: seeded mutation, a per-input watchdog, and the bookkeeping of outcomes.

A target names the hub's real parsing entry point (``run``), the exceptions that count as a
*precise* refusal (``precise``: the documented error a caller turns into a quarantine reason
or an HTTP 4xx) and how to read a reason code off one (``reason``). Every other exception is a
crash; an input that takes longer than ``HANG_SECONDS`` is a hang. Inputs come from
``generate(rng)``: structure-aware mutation of real seeds, hostile templates and random bytes.

The generator is a plain seeded ``random.Random``: a fixed seed replays the exact same inputs,
and it generates far faster than a property-testing framework would (the million inputs the
issue asks for fit into minutes on one core).
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

__all__ = [
    "HANG_SECONDS",
    "ByteMutator",
    "Finding",
    "Target",
    "TargetReport",
    "json_mutate",
    "run_target",
    "xml_mutate",
]

# The bound: no input may take longer than one second.
HANG_SECONDS = 1.0
# A runaway input is interrupted after this long (Python code only: C code finishes first),
# so one hang cannot stall a whole campaign.
_ABORT_SECONDS = 10.0


class _Aborted(BaseException):
    """Raised by the watchdog alarm; a BaseException so no ``except Exception`` swallows it."""


@dataclass(frozen=True)
class Target:
    name: str
    # Build one input from the generator; the same rng state gives the same input.
    generate: Callable[[random.Random], Any]
    # Feed one input to the hub's parser; returns normally when the input is accepted.
    run: Callable[[Any], object]
    # Exceptions that are the documented refusal of this parser.
    precise: tuple[type[BaseException], ...]
    # Stable reason code of a precise refusal (quarantine reason, HTTP status and title).
    reason: Callable[[BaseException], str]
    # Hostile inputs every run starts with (limits, bombs, encodings).
    specials: Callable[[], Sequence[Any]] = lambda: ()
    # Bytes of an input, for saving a finding.
    dump: Callable[[Any], bytes] = lambda value: (
        value if isinstance(value, bytes) else repr(value).encode()
    )


@dataclass(frozen=True)
class Finding:
    kind: str  # "crash" or "hang"
    target: str
    index: int
    seconds: float
    summary: str
    saved_as: Path | None


@dataclass
class TargetReport:
    name: str
    inputs: int = 0
    accepted: int = 0
    refused: int = 0
    crashes: int = 0
    hangs: int = 0
    seconds: float = 0.0
    max_seconds: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.inputs / self.seconds if self.seconds else 0.0


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Aborted


def _save(directory: Path | None, target: Target, index: int, value: Any) -> Path | None:
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{target.name}-{index:08d}.bin"
    path.write_bytes(target.dump(value))
    return path


def _inputs(target: Target, rng: random.Random, count: int) -> Iterator[Any]:
    specials = list(target.specials())
    yield from specials[:count]
    for _ in range(count - len(specials)):
        yield target.generate(rng)


def _warm_up(target: Target, seed: int, count: int = 20) -> None:
    """Run a few uncounted inputs first: first calls build caches (compiled schemas, pydantic
    validators, event loop) and would otherwise count as the run's slowest inputs."""
    rng = random.Random(f"warm-up:{seed}:{target.name}")
    for _ in range(count):
        with contextlib.suppress(Exception):  # outcomes are counted in the run proper
            target.run(target.generate(rng))


def run_target(
    target: Target,
    count: int,
    *,
    seed: int,
    findings_dir: Path | None = None,
    max_findings: int = 20,
    hang_seconds: float = HANG_SECONDS,
) -> TargetReport:
    """Feed ``count`` inputs to ``target`` and count what became of them; an input that takes
    longer than ``hang_seconds`` counts as a hang."""
    rng = random.Random(f"{seed}:{target.name}")
    report = TargetReport(target.name)
    _warm_up(target, seed)
    use_alarm = hasattr(signal, "setitimer")
    previous = signal.signal(signal.SIGALRM, _alarm) if use_alarm else None
    clock = time.perf_counter
    started = clock()
    try:
        for index, value in enumerate(_inputs(target, rng, count)):
            if use_alarm:
                signal.setitimer(signal.ITIMER_REAL, _ABORT_SECONDS)
            began = clock()
            kind: str | None = None
            summary = ""
            try:
                target.run(value)
                report.accepted += 1
            except _Aborted:
                kind, summary = "hang", f"interrupted after {_ABORT_SECONDS:.0f} s"
            except target.precise as exc:
                report.refused += 1
                report.reasons[target.reason(exc)] += 1
            except Exception as exc:
                kind = "crash"
                where = traceback.extract_tb(exc.__traceback__)[-1]
                summary = (
                    f"{type(exc).__name__}: {str(exc)[:200]} "
                    f"at {Path(where.filename).name}:{where.lineno}"
                )
            finally:
                if use_alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            elapsed = clock() - began
            report.max_seconds = max(report.max_seconds, elapsed)
            if kind is None and elapsed > hang_seconds:
                kind, summary = "hang", f"took {elapsed:.2f} s"
            if kind is not None:
                if kind == "crash":
                    report.crashes += 1
                else:
                    report.hangs += 1
                if len(report.findings) < max_findings:
                    saved = _save(findings_dir, target, index, value)
                    report.findings.append(
                        Finding(kind, target.name, index, elapsed, summary, saved)
                    )
            report.inputs += 1
    finally:
        if use_alarm:
            signal.signal(signal.SIGALRM, previous)
    report.seconds = clock() - started
    return report


# -- mutation ---------------------------------------------------------------------------------

_INTERESTING_BYTES = b"\x00\x01\x7f\x80\xff<>&;\"'=/?![]{}:,\\\n\r\t "


class ByteMutator:
    """Havoc-style byte mutation (flips, inserts, deletions, repeats, splices, tokens)."""

    def __init__(self, seeds: Sequence[bytes], tokens: Sequence[bytes], max_len: int) -> None:
        if not seeds:
            raise ValueError("a mutator needs at least one seed")
        self.seeds = list(seeds)
        self.tokens = list(tokens) or [b"\x00"]
        self.max_len = max_len

    def random_bytes(self, rng: random.Random) -> bytes:
        return rng.randbytes(rng.choice((0, 1, 4, 16, 64, 512, 4096)))

    def mutate(self, rng: random.Random, data: bytes, rounds: int | None = None) -> bytes:
        buf = bytearray(data)
        for _ in range(rounds or rng.choice((1, 1, 2, 3, 4, 8))):
            self._once(rng, buf)
            if len(buf) > self.max_len:
                del buf[self.max_len :]
        return bytes(buf)

    def _once(self, rng: random.Random, buf: bytearray) -> None:
        size = len(buf)
        pos = rng.randrange(size + 1)
        op = rng.randrange(10)
        if op == 0 and size:
            buf[min(pos, size - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and size:
            buf[min(pos, size - 1)] = rng.choice(_INTERESTING_BYTES)
        elif op == 2:
            buf[pos:pos] = rng.choice(self.tokens)
        elif op == 3 and size:
            end = min(size, pos + rng.choice((1, 4, 32, 256, 4096)))
            del buf[pos:end]
        elif op == 4 and size:
            end = min(size, pos + rng.choice((1, 8, 64, 512)))
            buf[pos:pos] = buf[pos:end] * rng.choice((2, 3, 16, 128))
        elif op == 5:
            other = rng.choice(self.seeds)
            start = rng.randrange(len(other) + 1)
            buf[pos:pos] = other[start : start + rng.choice((8, 64, 512, 4096))]
        elif op == 6:
            del buf[pos:]
        elif op == 7 and size:
            token = rng.choice(self.tokens)
            buf[pos : pos + len(token)] = token
        elif op == 8:
            buf[pos:pos] = rng.randbytes(rng.choice((1, 2, 4, 16)))
        elif op == 9 and size:
            # Swap two ranges: reorders elements, headers and parts.
            a, b = sorted((pos, rng.randrange(size + 1)))
            length = min(rng.choice((4, 32, 256)), b - a)
            first, second = bytes(buf[a : a + length]), bytes(buf[b - length : b])
            buf[b - length : b] = first
            buf[a : a + length] = second


_XML_TOKEN = rb"(<[^<>]*>)"
_XML_TEXTS = (
    b"",
    b"&amp;",
    b"&unknown;",
    b"&#0;",
    b"&#x1F600;",
    b"]]>",
    b"<![CDATA[x]]>",
    b"<!-- c -->",
    b"<?pi x?>",
    "Grüße äöü ß €".encode(),
    b"\xff\xfe",
    b"9" * 40,
    b"-1",
    b"2026-13-45T25:61:00",
    b"x" * 5000,
)


def xml_mutate(rng: random.Random, data: bytes, namespaces: Sequence[bytes]) -> bytes:
    """One structure-aware edit: on tags and text nodes instead of raw bytes."""
    import re

    tokens = [t for t in re.split(_XML_TOKEN, data) if t]
    if len(tokens) < 2:
        return data
    index = rng.randrange(len(tokens))
    token = tokens[index]
    op = rng.randrange(8)
    if op == 0 and not token.startswith(b"<"):
        tokens[index] = rng.choice(_XML_TEXTS)
    elif op == 1:
        end = min(len(tokens), index + rng.choice((1, 2, 6, 20)))
        tokens[index:index] = tokens[index:end] * rng.choice((1, 2, 10, 100))
    elif op == 2:
        del tokens[index : index + rng.choice((1, 2, 6))]
    elif op == 3 and token.startswith(b"<") and not token.startswith((b"</", b"<?", b"<!")):
        extra = b"".join(b' a%d="%d"' % (n, n) for n in range(rng.choice((1, 5, 50, 500, 5000))))
        tokens[index] = (
            token[:-2] + extra + token[-2:]
            if token.endswith(b"/>")
            else (token[:-1] + extra + b">")
        )
    elif op == 4 and namespaces:
        tokens[index] = re.sub(
            rb'xmlns(:\w+)?="[^"]*"',
            lambda m: m.group(0).split(b"=")[0] + b'="' + rng.choice(namespaces) + b'"',
            token,
            count=1,
        )
    elif op == 5:
        other = rng.randrange(len(tokens))
        tokens[index], tokens[other] = tokens[other], tokens[index]
    elif op == 6:
        depth = rng.choice((10, 100, 300, 3000))
        tokens[index:index] = [b"<d>" * depth + b"</d>" * depth]
    else:
        tokens[index] = token.replace(b">", b">" + rng.choice(_XML_TEXTS), 1)
    return b"".join(tokens)


_JSON_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    10**40,
    1.5e308,
    "",
    "x" * 10000,
    "ä€😀\u0000\ud800",
    [],
    {},
    [[[[[[[[]]]]]]]],
    {"kind": "status"},
    "2026-02-30",
    "../../etc/passwd",
)


def json_mutate(rng: random.Random, document: Any) -> Any:
    """Replace, drop or add one node somewhere in a parsed JSON document (a copy)."""
    document = json.loads(json.dumps(document))
    if not isinstance(document, dict | list) or rng.random() < 0.05:
        return rng.choice(_JSON_VALUES)
    node: Any = document
    for _ in range(rng.randrange(6)):
        children = list(node.values()) if isinstance(node, dict) else list(node)
        containers = [c for c in children if isinstance(c, dict | list)]
        if not containers:
            break
        node = rng.choice(containers)
    keys: list[Any] = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
    op = rng.randrange(4)
    if op == 0 and keys:
        key = rng.choice(keys)
        node[key] = rng.choice(_JSON_VALUES)
    elif op == 1 and keys:
        del node[rng.choice(keys)]
    elif op == 2:
        value = rng.choice(_JSON_VALUES)
        if isinstance(node, dict):
            node[rng.choice(("extra", "kind", "control", "decision", "anlagen", "x" * 300))] = value
        else:
            node.append(value)
    elif keys:
        key = rng.choice(keys)
        node[key] = [node[key]] if rng.random() < 0.5 else {"wrapped": node[key]}
    return document
