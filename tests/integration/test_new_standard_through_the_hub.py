"""A standard the project does not ship, added with files only, routed end to end."""

from __future__ import annotations

from pathlib import Path

import httpx

from poststelle.contracts.events import CaseEvent
from poststelle.routing.cli.main import main as poststelle
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from tests.contracts.test_cli_and_new_standard import DESCRIPTOR, MAPPING, MESSAGE, XSD
from tests.integration.conftest import eventually


async def test_contracts_add_and_one_mapping_route_a_new_standard(
    hub_config: HubConfig, tmp_path: Path
) -> None:
    download = tmp_path / "xgewerbe-1.0"
    download.mkdir()
    (download / "xgewerbe.xsd").write_text(XSD)
    (download / "poststelle-contract.yaml").write_text(DESCRIPTOR)
    # Exactly what an operator does: the `poststelle` command, then one mapping file.
    command = ["contracts", "add", str(download), "--data-dir", str(hub_config.data_dir)]
    assert poststelle(command) == 0
    (hub_config.data_dir / "mappings").mkdir(parents=True, exist_ok=True)
    (hub_config.data_dir / "mappings" / "xgewerbe-anmeldung.yaml").write_text(MAPPING)
    document = hub_config.model_dump(mode="json")
    document["backends"] = [{"tenant": "gewerbeamt-kiel", "name": "akte"}]
    document["routes"] = [{"standard": "xgewerbe", "tenant": "gewerbeamt-kiel", "backend": "akte"}]
    config = HubConfig.model_validate(document)

    async with Hub(config) as hub, httpx.AsyncClient(base_url=hub.http_url) as http:
        response = await http.post(
            "/v1/submissions", content=MESSAGE, headers={"Content-Type": "application/xml"}
        )
        assert response.status_code == 202
        folder = hub.workers[0].backend.folder  # type: ignore[attr-defined]
        target = folder / f"{response.json()['case_id']}.json"
        await eventually(target.exists)

    event = CaseEvent.model_validate_json(target.read_bytes())
    assert (event.data.standard, event.data.version) == ("xgewerbe", "1.0")
    assert event.data.message_type == "gewerbe.anmeldung.0100"
    assert event.data.region == "01002000"
    assert event.data.fields == {"taetigkeit": "Bäckerei"}
    assert event.data.reader is not None and event.data.reader.id == "gwa:010020000000"
