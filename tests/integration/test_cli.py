"""The command line against real hubs: ``trace``, ``quarantine list``, ``run``."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from poststelle.routing.hub.runtime import Hub
from tests.integration.conftest import eventually
from tests.messages import xbau_antrag

XML = {"Content-Type": "application/xml"}
POSTSTELLE = [sys.executable, "-m", "poststelle.routing.cli"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*POSTSTELLE, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


async def test_trace_and_quarantine_list(hub: Hub, http: httpx.AsyncClient) -> None:
    body, _ = xbau_antrag()
    case_id = (await http.post("/v1/submissions", content=body, headers=XML)).json()["case_id"]
    bad = (await http.post("/v1/submissions", content=b"\x00\x01binary", headers=XML)).json()
    await eventually(lambda: hub.counters.get("delivery.delivered") == 1)
    await eventually(lambda: hub.counters.get("core.quarantined") == 1)
    common = ["--nats-url", hub.nats_url, "--data-dir", str(hub.config.data_dir)]

    traced = cli("trace", case_id, *common)
    assert traced.returncode == 0, traced.stderr
    hops = re.findall(r"^\s+\S+\s+(\w+)", traced.stdout, re.MULTILINE)
    assert hops == ["received", "routed", "delivered"]
    timestamps = re.findall(r"^\s+(\S+)", traced.stdout, re.MULTILINE)
    assert timestamps == sorted(timestamps)

    listed = cli("quarantine", "list", "--json", *common)
    assert listed.returncode == 0, listed.stderr
    # Closing its own connection is no disconnect worth a warning.
    assert "disconnected" not in traced.stderr + listed.stderr
    assert "WARNING" not in traced.stderr + listed.stderr
    items = json.loads(listed.stdout)
    assert [(i["case_id"], i["step"], i["reason"]) for i in items] == [
        (bad["case_id"], "parse", "not-xml")
    ]
    assert items[0]["time"]

    unknown = cli("trace", "no-such-case", *common)
    assert unknown.returncode == 1
    assert "no audit trail" in unknown.stderr


def test_invalid_config_stops_start_up(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text("[http]\nport = 'eighty'\n")
    result = cli("run", "--config", str(config), "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "http.port" in result.stderr


def test_run_starts_embedded_hub_and_cli_joins_it(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*POSTSTELLE, "run", "--data-dir", str(tmp_path), "--http-port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            match = re.search(r"POST (http://\S+)/v1/submissions", line)
            url = match.group(1) if match else None
        assert url, "poststelle run did not print where to submit"
        banner = []
        while not banner or banner[-1] not in ("", "Press Ctrl+C to stop.\n"):
            banner.append(process.stdout.readline())
        assert any(line.startswith("  demo: on") for line in banner), banner
        body, _ = xbau_antrag()
        answer = httpx.post(f"{url}/v1/submissions", content=body, headers=XML).json()
        target = tmp_path / "outbox" / "bauaufsicht-demo" / "filedrop" / f"{answer['case_id']}.json"
        deadline = time.monotonic() + 15
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert target.exists()
        traced = cli("trace", answer["case_id"], "--data-dir", str(tmp_path), "--json")
        assert traced.returncode == 0, traced.stderr
        assert [hop["hop"] for hop in json.loads(traced.stdout)][:2] == ["received", "routed"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0


def _startup_banner(*args: str) -> str:
    """What ``poststelle run`` prints before it waits, then a clean stop."""
    process = subprocess.Popen(
        [*POSTSTELLE, "run", "--http-port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if not line or line.startswith("Press Ctrl+C"):
                break
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    return "".join(lines)


def test_run_says_whether_the_demo_is_on(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text(
        "[[backends]]\ntenant = 'stadt-kiel'\nname = 'akte'\n"
        "[[routes]]\nstandard = 'xdomea'\ntenant = 'stadt-kiel'\nbackend = 'akte'\n"
    )
    common = ["--config", str(config), "--data-dir", str(tmp_path / "data")]

    plain = _startup_banner(*common)
    assert "demo: off (a config file is in use)" in plain
    assert "deliveries for stadt-kiel/akte" in plain
    assert "bauaufsicht-demo" not in plain

    layered = _startup_banner(*common, "--demo")
    assert "demo: on" in layered
    assert "deliveries for stadt-kiel/akte" in layered
    assert "deliveries for bauaufsicht-demo/filedrop" in layered


async def test_second_hub_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    from poststelle.routing.hub.config import load_config
    from poststelle.routing.hub.runtime import HubAlreadyRunningError

    config = load_config(environ={}, overrides={"data_dir": tmp_path, "http.port": 0})
    async with Hub(config):
        with pytest.raises(HubAlreadyRunningError, match=str(tmp_path)):
            await Hub(config).start()
