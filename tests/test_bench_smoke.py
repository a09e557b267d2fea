"""The hub bench still runs: ``bench/bench_hub.py --quick`` prints its full table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_hub.py"

# Every figure the issue asks for, for both sizes and both worker counts.
EXPECTED_FIGURES = [
    f"{figure} {size}, {workers}"
    for figure in ("raw loop", "routing core", "end to end", "202 → CASES")
    for size in ("5 KB", "50 KB")
    for workers in ("1 worker", "2 workers")
]


@pytest.mark.slow
@pytest.mark.serial
def test_quick_bench_prints_the_table() -> None:
    finished = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    table = finished.stdout.split("\nresults (", 1)[1]
    rows = {
        cells[0]: cells[1:]
        for line in table.splitlines()
        if len(cells := [cell.strip() for cell in line.split(" | ")]) >= 4
    }
    assert rows["figure"] == ["value", "ratio/raw", "target", "met"]
    for figure in EXPECTED_FIGURES:
        assert any(row.startswith(figure) for row in rows), (
            f"{figure!r} missing from the table:\n{table}"
        )
    for figure, (value, ratio, *_) in rows.items():
        if figure.startswith(("raw loop", "routing core", "end to end")):
            assert re.fullmatch(r"[\d,]+ msg/s", value), (figure, value)
            assert int(value.split()[0].replace(",", "")) > 0, (figure, value)
            # Two decimals: on a loaded machine a slow stage's ratio may round to 0.00.
            assert re.fullmatch(r"\d+\.\d\d", ratio), (figure, ratio)
        if figure.startswith("202 → CASES"):
            assert re.fullmatch(r"p50 [\d.]+ p99 [\d.]+ p99\.9 [\d.]+ ms", value), value
    rss = [figure for figure in rows if figure.startswith("RSS hub")]
    # One per hub process: 1 + 2 for the routing core stage, 1 + 2 for end to end.
    assert len(rss) == 6, rss
    # Lübeck's half of the cases reached the webhook receiver over real HTTP.
    received = re.search(r"webhook receiver: received (\d+)", finished.stdout)
    assert received and int(received.group(1)) > 0, finished.stdout[-2000:]
