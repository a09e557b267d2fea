"""The command line's shared manners: ``--json`` on every listing, progress on a terminal only."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path

import httpx

from poststelle.contracts.progress import step_progress
from poststelle.contracts.registry import ContractRegistry
from poststelle.routing.cli.main import build_parser
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.quarantine import list_quarantined
from tests.integration.conftest import eventually, run_cli

XML = {"Content-Type": "application/xml"}


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not groups:
        yield path, parser
        return
    for name, sub in groups[0].choices.items():
        yield from _commands(sub, (*path, name))


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def test_every_list_command_and_every_report_has_json() -> None:
    commands = dict(_commands(build_parser()))
    listings = [path for path in commands if path[-1] in {"list", "diff", "stats", "doctor"}]
    assert len(listings) >= 7, listings  # quarantine, dlq, routes, contracts, xta-sim, ...
    lacking = [" ".join(path) for path in listings if "--json" not in _options(commands[path])]
    assert lacking == []
    for replay in (("quarantine", "replay"), ("dlq", "replay")):
        assert "--json" in _options(commands[replay])


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_per_step() -> None:
    screen = _Terminal()
    with step_progress(stream=screen) as progress:
        progress.step("copying schema files")
        for done in range(1, 4):
            progress.update(done, 3)
        progress.report("compiling entry points", 2, 2)
    shown = screen.getvalue()
    assert "copying schema files" in shown
    assert "3/3" in shown
    assert "compiling entry points" in shown
    assert "2/2" in shown


def test_off_a_terminal_only_long_counts_are_reported_and_json_is_quiet() -> None:
    log = io.StringIO()
    with step_progress(stream=log) as progress:
        progress.step("replaying")
        progress.update(10, 10)  # short: finished before anyone looks
        progress.step("replaying many")
        progress.update(5000, 5000)
    assert log.getvalue() == "replaying many 5000/5000\n"

    announced = io.StringIO()
    with step_progress(stream=announced, announce=True) as progress:
        progress.step("publishing the snapshot")
    assert announced.getvalue() == "publishing the snapshot ...\n"

    quiet = _Terminal()
    with step_progress(quiet=True, stream=quiet) as progress:
        progress.step("replaying")
        progress.update(5000, 5000)
    assert quiet.getvalue() == ""


def test_contracts_add_reports_its_steps_to_a_callback(tmp_path: Path, corpus_dir: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    registry = ContractRegistry.for_data_dir(tmp_path)
    registry.add_schema_set(
        corpus_dir / "xbau-2.6" / "xsd", progress=lambda *step: seen.append(step)
    )
    copying = [s for s in seen if s[0] == "copying schema files"]
    compiling = [s for s in seen if s[0] == "compiling entry points"]
    assert copying and copying[-1][1] == copying[-1][2] > 10
    assert compiling and compiling[-1][1] == compiling[-1][2] >= 1


async def test_replay_with_json_prints_only_the_result(
    hub: Hub, http: httpx.AsyncClient, hub_config: HubConfig
) -> None:
    for index in range(3):
        body = b"<not-xml %d" % index
        assert (await http.post("/v1/submissions", content=body, headers=XML)).status_code == 202
    parked = await eventually(lambda: _three(hub))
    code, out, err = await asyncio.to_thread(
        run_cli, hub_config, "quarantine", "replay", "--reason", "not-well-formed", "--json"
    )
    assert code == 0, err
    assert json.loads(out) == {"replayed": sorted(parked), "skipped": []}
    assert err == ""


async def _three(hub: Hub) -> list[int] | None:
    items = await list_quarantined(hub.js)
    return [item.sequence for item in items] if len(items) >= 3 else None


async def test_errors_name_what_to_do_next(hub: Hub, hub_config: HubConfig, tmp_path: Path) -> None:
    code, _, err = await asyncio.to_thread(run_cli, hub_config, "trace", "no-such-case")
    assert code == 1
    assert "no audit trail for case no-such-case" in err
    assert "next: check the case id" in err

    bad = tmp_path / "bad.toml"
    bad.write_text("[http]\nport = 99999\n")
    code, _, err = await asyncio.to_thread(run_cli, hub_config, "stats", "--config", str(bad))
    assert code == 2
    assert "http.port" in err
    assert "next: fix the setting named above" in err

    code, _, err = await asyncio.to_thread(
        run_cli,
        hub_config.model_copy(
            update={"nats": hub_config.nats.model_copy(update={"url": "nats://127.0.0.1:1"})}
        ),
        "stats",
    )
    assert code == 2
    assert "next:" in err and "poststelle doctor" in err
