"""The soak bench still runs and still balances: ``bench/bench_soak.py --quick`` offers more
than the hub takes, is refused with 429/503 + Retry-After, and loses nothing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "bench_soak.py"


@pytest.mark.slow
@pytest.mark.serial
def test_quick_soak_is_refused_under_overload_and_loses_nothing() -> None:
    finished = subprocess.run(
        # Short and small: a smoke run on a shared machine, not a measurement.
        [
            sys.executable,
            str(BENCH),
            "--quick",
            "--seconds",
            "8",
            "--max-in-flight",
            "8",
            "--max-backlog",
            "50",
            "--clients",
            "48",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-3000:]
    out = finished.stdout
    rows = re.findall(r"^\s*\d+\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(-?\d+)\s+([\d.]+)$", out, re.M)
    assert rows, out
    totals = re.search(r"accepted (\d+), duplicate \d+, 429 (\d+), 503 (\d+)", out)
    assert totals, out
    accepted, too_many, unavailable = (int(value) for value in totals.groups())
    assert accepted > 0
    # Overload was refused, not queued.
    assert too_many + unavailable > 0, out
    balance = re.search(
        r"balance: accepted (\d+) = delivered (\d+) \+ quarantined (\d+) \+ DLQ (\d+); "
        r"lost (-?\d+)",
        out,
    )
    assert balance, out
    balanced, delivered, quarantined, dead, lost = (int(value) for value in balance.groups())
    assert balanced == accepted == delivered + quarantined + dead
    assert lost == 0
    assert re.search(r"peak RSS hub: [\d.]+ MB", out)
