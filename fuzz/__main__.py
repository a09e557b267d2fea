"""``python -m fuzz``: run the parser fuzz targets and print what became of every input.

    python -m fuzz                          # every target, the default count, seed 1
    python -m fuzz --inputs 20000 --seed 7  # inputs per target
    python -m fuzz --targets xml-intake,reply-json

Exit status 1 when any target crashed or hung. Crashing and hanging inputs are saved under
``--findings`` (default ``fuzz/findings``) to replay them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from fuzz.engine import HANG_SECONDS, TargetReport, run_target
from fuzz.targets import ROOT, TARGETS, build_targets

DEFAULT_INPUTS = 170_000


def _table(reports: list[TargetReport]) -> str:
    header = (
        f"{'target':<15} {'inputs':>9} {'inputs/s':>9} {'refused':>9} {'accepted':>9} "
        f"{'crashes':>7} {'hangs':>5} {'max ms':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in reports:
        lines.append(
            f"{r.name:<15} {r.inputs:>9,} {r.rate:>9,.0f} {r.refused:>9,} {r.accepted:>9,} "
            f"{r.crashes:>7} {r.hangs:>5} {r.max_seconds * 1000:>8.1f}"
        )
    total = sum(r.inputs for r in reports)
    seconds = sum(r.seconds for r in reports)
    lines.append("-" * len(header))
    lines.append(
        f"{'total':<15} {total:>9,} {total / seconds if seconds else 0:>9,.0f} "
        f"{sum(r.refused for r in reports):>9,} {sum(r.accepted for r in reports):>9,} "
        f"{sum(r.crashes for r in reports):>7} {sum(r.hangs for r in reports):>5} "
        f"{max((r.max_seconds for r in reports), default=0) * 1000:>8.1f}"
    )
    return "\n".join(lines)


def limit_memory(gigabytes: float) -> None:
    """Cap this process' address space (the machine is shared; an OOM kill hits neighbours)."""
    try:
        import resource
    except ImportError:  # not on POSIX: run unbounded
        return
    limit = int(gigabytes * 1024**3)
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=DEFAULT_INPUTS, help="inputs per target")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated names")
    parser.add_argument("--findings", type=Path, default=ROOT / "fuzz" / "findings")
    parser.add_argument(
        "--memory-gb",
        type=float,
        default=4.0,
        help="address-space limit: a memory bomb becomes a MemoryError (a crash), not an OOM kill",
    )
    parser.add_argument("--reasons", type=int, default=6, help="refusal reasons shown per target")
    args = parser.parse_args(argv)
    # Refusals are logged by the hub as they should be; a million of them would drown the table.
    logging.disable(logging.CRITICAL)
    limit_memory(args.memory_gb)
    print(
        f"fuzz: {args.inputs:,} inputs per target, seed {args.seed}, pid {os.getpid()}, "
        f"hang bound {HANG_SECONDS:.0f} s",
        flush=True,
    )
    started = time.perf_counter()
    reports = []
    for name in args.targets.split(","):
        (target,) = build_targets([name])
        report = run_target(target, args.inputs, seed=args.seed, findings_dir=args.findings)
        reports.append(report)
        print(
            f"  {report.name}: {report.inputs:,} inputs in {report.seconds:.1f} s, "
            f"{report.crashes} crashes, {report.hangs} hangs",
            flush=True,
        )
        top = ", ".join(
            f"{reason} {count:,}" for reason, count in report.reasons.most_common(args.reasons)
        )
        print(f"    refused as: {top}", flush=True)
        for finding in report.findings:
            print(
                f"    {finding.kind} #{finding.index} ({finding.seconds * 1000:.0f} ms): "
                f"{finding.summary} -> {finding.saved_as}",
                flush=True,
            )
    print(f"\nresults (wall {time.perf_counter() - started:.0f} s, setup included)")
    print(_table(reports))
    failed = any(r.crashes or r.hangs for r in reports)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
