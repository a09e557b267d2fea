"""``poststelle xta-sim put`` / ``list`` / ``fault`` against a running simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poststelle.adapters.xta.cli import register
from poststelle.adapters.xta.client import XtaClient
from poststelle.adapters.xta.simulator import XtaSimulator
from tests import cli_runner

from .conftest import HUB


def _run(argv: list[str]) -> int:
    return cli_runner.run(register, argv)


def test_put_then_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    antrag = tmp_path / "antrag.xml"
    antrag.write_bytes(b'<a:antrag.0200 xmlns:a="http://www.xleitstelle.de/xbau/2/6"/>')
    with XtaSimulator() as sim:
        base = sim.url.removesuffix("/xta")
        assert _run(["xta-sim", "put", "--url", base, "--reader", "dvdv:amt 1", str(antrag)]) == 0
        message_id = capsys.readouterr().out.strip()
        assert [m.metadata.message_id for m in sim.mailbox("dvdv:amt 1")] == [message_id]

        listing = ["xta-sim", "list", "--url", sim.url, "--reader", "dvdv:amt 1"]
        assert _run([*listing, "--json"]) == 0
        [entry] = json.loads(capsys.readouterr().out)
        assert entry["message_id"] == message_id
        assert entry["filename"] == "antrag.xml"
        assert entry["message_type"]["code"] == "antrag.0200"
        assert _run(listing) == 0
        assert capsys.readouterr().out.strip() == f"{message_id}  antrag.0200  antrag.xml"


def test_put_reports_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = _run(
        ["xta-sim", "put", "--url", "http://127.0.0.1:9", "--reader", "r", str(tmp_path / "no")]
    )
    assert code == 2
    assert "cannot read" in capsys.readouterr().err


def test_list_reports_an_unreachable_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["xta-sim", "list", "--url", "http://127.0.0.1:9", "--reader", "r"]) == 1
    assert "xta-sim list" in capsys.readouterr().err


def test_bare_xta_sim_serves() -> None:
    args = cli_runner.parse(
        register, ["xta-sim", "--port", "0", "--mailbox", "a", "--mailbox", "b"]
    )
    assert args.func.__name__ == "_serve"
    assert args.mailbox == ["a", "b"] and args.port == 0


def test_fault_injects_and_clears(
    simulator: XtaSimulator, client: XtaClient, capsys: pytest.CaptureFixture[str]
) -> None:
    message_id = simulator.put(HUB.value, b"<x/>")
    argv = ["xta-sim", "fault", "--url", simulator.url, "--kind", "duplicate"]
    assert _run([*argv, "--operation", "getStatusList", "--times", "2"]) == 0
    assert "fault injected" in capsys.readouterr().out
    listed = [e.message_id for e in client.get_status_list(HUB).entries]
    assert listed == [message_id, message_id]

    assert _run(["xta-sim", "fault", "--url", simulator.url, "--clear"]) == 0
    assert "faults cleared" in capsys.readouterr().out
    assert [e.message_id for e in client.get_status_list(HUB).entries] == [message_id]

    assert _run(["xta-sim", "fault", "--url", simulator.url, "--kind", "vanish"]) == 1
    assert "getMessage" in capsys.readouterr().err
    assert _run(["xta-sim", "fault", "--url", simulator.url]) == 2
