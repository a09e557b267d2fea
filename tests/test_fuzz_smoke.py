"""The short form of ``make fuzz``: a few hundred inputs per parser, no crash, no hang.

The measured run (``make fuzz``, figures in docs/hostile-input.md) holds every input to 1 s;
here, inside a full test run on a shared machine, an input counts as a hang only past 3 s, so
load from neighbours cannot fail the suite while a real hang (the alias bomb took minutes)
still does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
INPUTS = 250


@pytest.fixture(scope="module")
def fuzz(corpus_dir: Path) -> object:
    import sys

    sys.path.insert(0, str(ROOT))
    try:
        import fuzz.engine
        import fuzz.targets
    finally:
        sys.path.remove(str(ROOT))
    return fuzz


@pytest.mark.parametrize(
    "name",
    ["xml-intake", "ozg-multipart", "reply-json", "routing-yaml", "routing-csv", "xta-soap"],
)
def test_a_short_fuzz_run_finds_no_crash_and_no_hang(
    fuzz: object, name: str, tmp_path: Path
) -> None:
    from fuzz.engine import run_target
    from fuzz.targets import build_targets

    (target,) = build_targets([name])
    report = run_target(target, INPUTS, seed=12, findings_dir=tmp_path, hang_seconds=3.0)
    details = "\n".join(f"{f.kind} #{f.index}: {f.summary}" for f in report.findings)
    assert (report.crashes, report.hangs) == (0, 0), details
    assert report.inputs == INPUTS == report.accepted + report.refused
    # The generator reaches both sides of every parser: refusals and acceptances.
    assert report.refused > 0 and report.accepted > 0, report
