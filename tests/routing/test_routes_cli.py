"""``poststelle routes ...`` end to end against a real nats-server."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from poststelle.routing.cli.routes import register
from poststelle.routing.hub.embedded import EmbeddedNatsServer
from tests import cli_runner

from .helpers import BAUGENEHMIGUNG, KIEL, LUEBECK

DATA = Path(__file__).with_name("data")


class Cli:
    def __init__(self, url: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.connection = ["--nats-url", url, "--bucket", f"routes-cli-{uuid.uuid4().hex[:8]}"]
        self.capsys = capsys

    def __call__(self, *argv: str, nats: bool = True) -> tuple[int, str, str]:
        code = cli_runner.run(register, [*argv, *(self.connection if nats else [])])
        captured = self.capsys.readouterr()
        return code, captured.out, captured.err


@pytest.fixture
def cli(nats_server: EmbeddedNatsServer, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(nats_server.client_url, capsys)


def test_import_list_resolve_export(cli: Cli, tmp_path: Path) -> None:
    code, out, _ = cli("routes", "import", str(DATA / "sh.yaml"))
    assert code == 0
    assert "rules: +4 ~0 -0; tenants: +3" in out

    code, out, _ = cli("routes", "list", "--json")
    listed = json.loads(out)
    assert code == 0 and len(listed["rules"]) == 4
    assert listed["tenants"]["kiel"]["backends"] == ["bauamt", "dms"]

    code, out, _ = cli("routes", "resolve", "--leistung", BAUGENEHMIGUNG, "--ars", KIEL, "--json")
    resolved = json.loads(out)
    assert code == 0
    assert (resolved["tenant"], resolved["backend"]) == ("kiel", "bauamt")
    assert resolved["decided_by"] == "Leistung: specific > any"
    assert [c["backend"] for c in resolved["candidates"]] == ["bauamt", "dms", "poststelle"]

    code, out, _ = cli("routes", "resolve", "--leistung", BAUGENEHMIGUNG, "--ars", KIEL)
    assert "routed to kiel/bauamt" in out and "decided by: Leistung: specific > any" in out

    exported = tmp_path / "export.csv"
    assert cli("routes", "export", "--format", "csv", "-o", str(exported))[0] == 0
    code, out, _ = cli("routes", "diff", str(exported), "--json")
    assert code == 0
    assert json.loads(out)["summary"] == "rules: +0 ~0 -0; tenants: +0 ~0 -0"


def test_validity_is_applied_at_the_requested_date(cli: Cli) -> None:
    cli("routes", "import", str(DATA / "sh.yaml"))
    argv = [
        "routes",
        "resolve",
        "--leistung",
        BAUGENEHMIGUNG,
        "--ars",
        LUEBECK,
        "--standard",
        "xbau",
        "--message-type",
        "baugenehmigung.antrag.0200",
        "--json",
    ]
    before = json.loads(cli(*argv, "--at", "2025-12-31")[1])
    after = json.loads(cli(*argv, "--at", "2026-01-01")[1])
    assert before["tenant"] == "land-sh"
    assert [c["tenant"] for c in before["excluded_by_validity"]] == ["luebeck"]
    assert after["tenant"] == "luebeck"


def test_conflicting_table_is_refused_and_nothing_stored(cli: Cli, tmp_path: Path) -> None:
    conflicting = tmp_path / "conflict.yaml"
    conflicting.write_text(
        "tenants:\n  kiel: {backends: [bauamt, dms]}\nrules:\n"
        f"  - {{ars: {KIEL}, tenant: kiel, backend: bauamt}}\n"
        f"  - {{ars: {KIEL}, tenant: kiel, backend: dms}}\n"
    )
    code, _, err = cli("routes", "import", str(conflicting))
    assert code == 1
    assert "rules tie" in err
    code, _, err = cli("routes", "list")
    assert code == 2 and "no routing table stored" in err


def test_out_of_territory_rules_are_refused(cli: Cli, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.yaml"
    foreign.write_text(
        "tenants:\n  muenchen: {backends: [bau]}\n  kiel: {backends: [bau]}\nrules:\n"
        f"  - {{ars: {KIEL}, tenant: kiel, backend: bau}}\n"
        "  - {ars: 091620000000, tenant: muenchen, backend: bau}\n"
    )
    code, _, err = cli("routes", "import", str(foreign), "--state", "sh")
    assert code == 1
    assert "rule 2" in err and "outside the territory of sh (ARS prefixes 01)" in err
    assert "rule 1" not in err
    assert cli("routes", "import", str(foreign), "--state", "xx")[0] == 1
    assert cli("routes", "import", str(foreign), "--state", "by")[0] == 1
    assert cli("routes", "import", str(foreign))[0] == 0


def test_diff_then_csv_import_with_stored_tenants(cli: Cli, tmp_path: Path) -> None:
    cli("routes", "import", str(DATA / "sh.yaml"))
    edited = tmp_path / "edited.csv"
    edited.write_text(
        "ars;leistung;tenant;backend\n"
        "01;;land-sh;poststelle\n"
        f"{KIEL};{BAUGENEHMIGUNG};kiel;dms\n"
        f"{LUEBECK};;luebeck;bauamt\n"
    )
    code, out, _ = cli("routes", "diff", str(edited))
    assert code == 0
    assert f"~ leistung={BAUGENEHMIGUNG} ars={KIEL}" in out and "backend: bauamt -> dms" in out
    assert f"+ leistung=* ars={LUEBECK}" in out
    assert "rules: +1 ~2 -2; tenants: +0 ~0 -0" in out
    assert cli("routes", "import", str(edited))[0] == 0
    code, out, _ = cli("routes", "resolve", "--leistung", BAUGENEHMIGUNG, "--ars", KIEL, "--json")
    assert json.loads(out)["backend"] == "dms"


def test_unroutable_message(cli: Cli) -> None:
    cli("routes", "import", str(DATA / "sh.yaml"))
    code, out, _ = cli("routes", "resolve", "--leistung", BAUGENEHMIGUNG, "--ars", "091620000000")
    assert code == 1
    assert out.startswith("unroutable at ") and "no rule matches" in out


def test_unreachable_nats_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_runner.run(register, ["routes", "list", "--nats-url", "nats://127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach NATS at nats://127.0.0.1:1" in err
    assert "poststelle doctor" in err  # and what to do next


def test_generate_then_resolve_from_file(cli: Cli, tmp_path: Path) -> None:
    code, out, _ = cli("routes", "generate", "-o", str(tmp_path), "--rules", "3000", nats=False)
    assert code == 0
    table = tmp_path / "national.yaml"
    assert str(table) in out
    code, out, _ = cli(
        "routes",
        "resolve",
        "--table",
        str(table),
        "--leistung",
        BAUGENEHMIGUNG,
        "--ars",
        KIEL,
        "--json",
        nats=False,
    )
    resolved = json.loads(out)
    # Baugenehmigung is a Kreis-level Leistung: Kiel (kreisfrei) is its own Kreis 01002.
    assert (resolved["tenant"], resolved["backend"]) == ("k-01002", "bauaufsicht")


def test_bad_date_is_a_usage_error(cli: Cli) -> None:
    with pytest.raises(SystemExit):
        cli("routes", "resolve", "--ars", KIEL, "--at", "31.12.2026")
