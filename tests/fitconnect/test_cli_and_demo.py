"""``poststelle fitconnect-sim`` and the demo of ``make run``: the simulator beside the hub, a
submission sent with the CLI arrives as a CaseEvent and is accepted."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from poststelle.adapters.fitconnect.cli import register, set_up
from poststelle.adapters.fitconnect.simulator import FitConnectSimulator
from poststelle.contracts.events import CaseEvent
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.demo import prepare_demo
from poststelle.routing.hub.runtime import Hub
from tests import cli_runner
from tests.integration.conftest import eventually

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "xbau-antrag-0200.xml"


def _run(argv: list[str]) -> int:
    return cli_runner.run(register, argv)


def test_send_list_and_fault(
    tmp_path: Path, fc_sim: FitConnectSimulator, capsys: pytest.CaptureFixture[str]
) -> None:
    setup = set_up(fc_sim, tmp_path / "keys")
    stored = json.loads((tmp_path / "keys" / "destination.json").read_text())
    assert stored["destination_id"] == setup.destination_id
    assert (tmp_path / "keys" / "decryption.jwk").stat().st_mode & 0o077 == 0
    send = [
        "fitconnect-sim", "send", "--url", fc_sim.url, "--client-id", setup.sender_id,
        "--client-secret", setup.sender_secret, "--destination", setup.destination_id,
    ]  # fmt: skip
    assert _run([*send, str(EXAMPLE)]) == 0
    sent = json.loads(capsys.readouterr().out)
    assert fc_sim.state_of(sent["submissionId"]) == "submitted"

    assert _run(["fitconnect-sim", "list", "--url", fc_sim.url, "--json"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["submissionId"], listed["state"]) == (sent["submissionId"], "submitted")
    assert _run(["fitconnect-sim", "list", "--url", fc_sim.url]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.startswith(f"{sent['submissionId']}  submitted")
    assert _run(["fitconnect-sim", "list", "--url", fc_sim.url, "--replies"]) == 0
    assert capsys.readouterr().out == "no replies\n"  # no destination answered yet

    fault = ["fitconnect-sim", "fault", "--url", fc_sim.url, "--kind", "status"]
    assert _run([*fault, "--operation", "announce", "--status", "400"]) == 0
    capsys.readouterr()
    assert _run([*send, str(EXAMPLE)]) == 1
    assert "HTTP 400" in capsys.readouterr().err
    assert _run(["fitconnect-sim", "fault", "--url", fc_sim.url, "--clear"]) == 0
    assert _run([*send, "--attach", str(EXAMPLE), str(tmp_path / "missing.xml")]) == 2


def test_the_keys_of_a_destination_survive_a_restart(
    tmp_path: Path, fc_sim: FitConnectSimulator
) -> None:
    first = set_up(fc_sim, tmp_path)
    key = Path(first.decryption_key).read_text()
    second = set_up(fc_sim, tmp_path)
    assert Path(second.decryption_key).read_text() == key
    assert second.destination_id != first.destination_id


async def test_demo_receives_a_fitconnect_submission_sent_with_the_cli(
    hub_config: HubConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = prepare_demo(hub_config, xta_port=0, fitconnect_port=0)
    try:
        assert demo.fitconnect is not None
        assert "FIT-Connect simulator on" in demo.summary()[0]
        [entry] = [i for i in demo.config.inbound if i.kind == "fitconnect"]
        setup = json.loads(
            (demo.config.data_dir / "fitconnect-demo" / "destination.json").read_text()
        )
        async with Hub(demo.config) as hub:
            argv = [
                "fitconnect-sim", "send", "--url", setup["url"], "--client-id",
                setup["sender_id"], "--client-secret", setup["sender_secret"],
                "--destination", setup["destination_id"], str(EXAMPLE),
            ]  # fmt: skip
            assert await asyncio.to_thread(_run, argv) == 0
            sent = json.loads(capsys.readouterr().out)
            folder = hub.workers[0].backend.folder  # type: ignore[attr-defined]

            def delivered() -> list[CaseEvent]:
                files = folder.glob("*.json")
                return [CaseEvent.model_validate_json(p.read_bytes()) for p in files]

            [event] = await eventually(delivered)
            simulator = demo.fitconnect
            await eventually(lambda: simulator.state_of(sent["submissionId"]) == "accepted")
    finally:
        demo.stop()
    assert event.data.origin.channel == "fitconnect"
    assert event.data.origin.adapter == entry.name
    assert event.data.origin.reply_route["fitconnect_case_id"] == sent["caseId"]
