"""Where a hub's CPU time goes, per stage of the hot path, from a py-spy speedscope profile.

    .venv/bin/python bench/profile_stages.py docs/performance/core-5kb-w1-hub1.speedscope.json

``bench_hub.py --profile DIR`` writes the profiles (on-CPU samples only). Each sample is
given to one stage: the deepest frame of the stack that names one wins, so time inside
``validate`` is validation even though it runs inside ``_handle``. ``publish_async`` and
``ack`` are told apart by who called them (the CASES event, the KV registry put, the AUDIT
record). What no stage claims is shown as the nats-py read loop, the event loop or other.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Frame", "classify", "stage_shares"]

ROOT = Path(__file__).resolve().parents[1]
POOL = "other threads (to_thread: file drop write + fsync)"


@dataclass(frozen=True)
class Frame:
    name: str
    file: str
    line: int

    @property
    def method(self) -> str:
        """py-spy qualifies names (``RoutingCore._handle``): the last part."""
        return self.name.rsplit(".", 1)[-1]


def _core_lines() -> tuple[int, int]:
    """Lines in ``RoutingCore._steps`` where the KV put and the AUDIT record start: calls
    to ``publish_async`` before the first are the CASES event. Since the ``routed`` hop is
    kept in the KV record there is no AUDIT record on that path: its line is past the end."""
    text = (ROOT / "routing" / "hub" / "core.py").read_text().splitlines()
    kv = next(n for n, line in enumerate(text, 1) if "$KV." in line and "publish_async" in line)
    audit = next(
        (n for n, line in enumerate(text, 1) if n > kv and "append_async" in line),
        len(text) + 1,
    )
    return kv, audit


def _in(file: str, *parts: str) -> bool:
    return any(part in file for part in parts)


Rule = Callable[[Frame, Frame | None], str | None]


def _rules() -> list[Rule]:
    kv_line, audit_line = _core_lines()

    def published(frame: Frame, caller: Frame | None) -> str | None:
        if frame.method != "publish_async" or caller is None:
            return None
        if caller.method == "append_async":
            return "AUDIT publish"
        if caller.method in ("_handle", "_steps") and _in(caller.file, "routing/hub/core.py"):
            if caller.line >= audit_line:
                return "AUDIT publish"
            return "KV registry put" if caller.line >= kv_line else "CASES publish"
        return "other publish"

    by_name: dict[tuple[str, str], str] = {
        ("fetch", "nats/js/client.py"): "fetch",
        ("parse_xml", "contracts/"): "parse",
        ("identify", "contracts/registry.py"): "identify",
        ("validate", "contracts/registry.py"): "validate",
        ("apply", "mappings/engine.py"): "map",
        ("resolve", "routing/"): "route",
        ("encode", "routing/hub/core.py"): "KV registry put",
        ("_encode", "routing/ops/audit.py"): "AUDIT publish",
        ("append_async", "routing/ops/audit.py"): "AUDIT publish",
        ("model_dump_json", "pydantic/"): "CaseEvent JSON",
        ("_case_event", "routing/hub/core.py"): "CaseEvent build",
        ("ack", "nats/aio/msg.py"): "acks",
        ("ack_sync", "nats/aio/msg.py"): "acks",
        ("source_message_id_of", "routing/hub/intake.py"): "intake: source id scan",
        ("accept", "routing/hub/intake.py"): "intake: INBOX publish + AUDIT",
        ("deliver", "adapters/filedrop.py"): "delivery: file drop",
        ("deliver", "adapters/webhook.py"): "delivery: webhook",
        ("_process", "routing/hub/delivery.py"): "delivery: consumer",
        ("deliver_stored", "adapters/filedrop.py"): "delivery: file drop",
        ("deliver_stored", "adapters/webhook.py"): "delivery: webhook",
        ("_process_batch", "routing/hub/delivery.py"): "delivery: consumer",
        ("_read_loop", "nats/aio/client.py"): "nats-py read loop",
        ("_flusher", "nats/aio/client.py"): "nats-py flusher",
    }

    def named(frame: Frame, caller: Frame | None) -> str | None:
        for (name, where), stage in by_name.items():
            if frame.method == name and where in frame.file:
                return stage
        if _in(frame.file, "routing/hub/core.py"):
            return "core glue (headers, metadata, subjects)"
        return None

    def http(frame: Frame, caller: Frame | None) -> str | None:
        if _in(frame.file, "uvicorn/", "starlette/", "fastapi/", "h11/", "httptools"):
            return "HTTP server (uvicorn/FastAPI)"
        if _in(frame.file, "adapters/portal.py"):
            return "HTTP intake handler"
        return None

    return [published, named, http]


def classify(stack: Sequence[Frame], rules: Sequence[Rule]) -> str:
    """The stage of the deepest frame any rule names; the event loop or other otherwise.
    HTTP frames are only a fallback: the hub's own code below them is more telling."""
    http_stage = None
    for depth in range(len(stack) - 1, -1, -1):
        caller = stack[depth - 1] if depth else None
        for rule in rules:
            stage = rule(stack[depth], caller)
            if stage is None:
                continue
            if stage.startswith("HTTP"):
                http_stage = http_stage or stage
                break
            return stage
    if http_stage:
        return http_stage
    if any(_in(frame.file, "asyncio/") for frame in stack):
        return "event loop"
    return "other"


def stage_shares(path: Path) -> tuple[Counter[str], float]:
    """Seconds of CPU per stage (all threads of the profile) and the total."""
    document = json.loads(path.read_text())
    frames = [
        Frame(item.get("name", "?"), item.get("file", "") or "", int(item.get("line") or 0))
        for item in document["shared"]["frames"]
    ]
    rules = _rules()
    seconds: Counter[str] = Counter()
    for profile in document["profiles"]:
        # py-spy's weights are in the profile's unit: seconds per sample at the chosen rate.
        unit = 1e-6 if profile.get("unit") == "microseconds" else 1.0
        # Off the event loop only the file drop's to_thread writes run (and their fsync
        # waits, which py-spy cannot tell from CPU): shown apart, they bound nothing.
        pooled = "MainThread" not in str(profile.get("name", "MainThread"))
        for sample, weight in zip(profile["samples"], profile["weights"], strict=True):
            stack = [frames[index] for index in sample]
            stage = POOL if pooled else classify(stack, rules)
            seconds[stage] += weight * unit
    return seconds, sum(seconds.values())


def _label(path: Path) -> str:
    return re.sub(r"\.speedscope\.json$", "", path.name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profiles", nargs="+", type=Path)
    arguments = parser.parse_args(argv)
    for path in arguments.profiles:
        seconds, total = stage_shares(path)
        pool = seconds.pop(POOL, 0.0)
        loop = total - pool
        print(f"\n{_label(path)}: {loop:.2f} s on the event loop thread (= 100 %)")
        for stage, value in seconds.most_common():
            print(f"  {stage:<40} {value:7.2f} s  {100 * value / loop:5.1f} %")
        if pool:
            print(f"  + {POOL}: {pool:.2f} s")


if __name__ == "__main__":
    main()
