"""Destination discovery: the hub serves the Routing API's ``/routes`` for the FIT-Connect
destinations it runs, answered from its routing table, in the shape ``routing-api.yaml`` gives
(validated against the corpus' schema); each route's signature verifies with the destination's
published key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import yaml
from jsonschema import Draft202012Validator

from poststelle.adapters.fitconnect import load_key
from poststelle.adapters.fitconnect._crypto import verify
from poststelle.adapters.fitconnect.simulator import FitConnectSimulator, SimulatedDestination
from poststelle.routing.cli.main import main as poststelle
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from tests.fitconnect.conftest import DestinationKeys, adapter_settings
from tests.integration.conftest import eventually

LEIKA_KEY = "99010003001006"
TABLE = f"""\
tenants:
  kiel: {{name: Landeshauptstadt Kiel, backends: [bauakte]}}
  luebeck: {{name: Hansestadt Lübeck, backends: [bauakte]}}
rules:
  - {{ars: "01002", leistung: "{LEIKA_KEY}", tenant: kiel, backend: bauakte}}
  - {{ars: "01003", leistung: "{LEIKA_KEY}", tenant: luebeck, backend: bauakte}}
"""


def _route_result_schema(corpus_dir: Path) -> Draft202012Validator:
    document = yaml.safe_load((corpus_dir / "fit-connect" / "routing-api.yaml").read_text())
    schema = {"$ref": "#/components/schemas/route-result", "components": document["components"]}
    return Draft202012Validator(schema)


def _config(
    config: HubConfig,
    sim: FitConnectSimulator,
    destination: SimulatedDestination,
    keys: DestinationKeys,
    metadata_schema: Path,
) -> HubConfig:
    settings = adapter_settings(sim, destination, keys, config.data_dir / "keys", metadata_schema)
    settings.update(tenants=["kiel"], destination_name="Bauaufsicht Kiel")
    document: dict[str, Any] = config.model_dump(mode="json")
    document["backends"] = [
        {"tenant": "kiel", "name": "bauakte"},
        {"tenant": "luebeck", "name": "bauakte"},
    ]
    document["routes"] = []
    document["inbound"] = [{"name": "fitconnect-kiel", "kind": "fitconnect", "settings": settings}]
    return HubConfig.model_validate(document)


async def test_routes_name_the_destination_the_table_gives_the_region(
    hub_config: HubConfig,
    tmp_path: Path,
    corpus_dir: Path,
    fc_sim: FitConnectSimulator,
    destination: SimulatedDestination,
    destination_keys: DestinationKeys,
    metadata_schema: Path,
) -> None:
    config = _config(hub_config, fc_sim, destination, destination_keys, metadata_schema)
    table = tmp_path / "routes.yaml"
    table.write_text(TABLE)
    common = ["--nats-url", str(config.nats.url), "--data-dir", str(config.data_dir)]
    validator = _route_result_schema(corpus_dir)
    async with Hub(config) as hub, httpx.AsyncClient(base_url=hub.http_url) as http:
        assert await asyncio.to_thread(poststelle, ["routes", "import", str(table), *common]) == 0

        async def kiel() -> Any:
            query = {"leikaKey": LEIKA_KEY, "ars": "010020000000"}
            answer = (await http.get("/fitconnect/v1/routes", params=query)).json()
            return answer if answer["totalCount"] else None

        found = await eventually(kiel)
        luebeck = await http.get(
            "/fitconnect/v1/routes", params={"leikaKey": LEIKA_KEY, "ars": "010030000000"}
        )
        other = await http.get(
            "/fitconnect/v1/routes", params={"leikaKey": "99000000000000", "ars": "01002"}
        )
        refused = [
            await http.get("/fitconnect/v1/routes", params=params)
            for params in (
                {"ars": "01002"},
                {"leikaKey": LEIKA_KEY},
                {"leikaKey": LEIKA_KEY, "ars": "01002", "ags": "01002000"},
                {"leikaKey": LEIKA_KEY, "ags": "01002000"},
                {"leikaKey": LEIKA_KEY, "ars": "0100"},
                {"leikaKey": LEIKA_KEY, "ars": "01002", "limit": "501"},
            )
        ]
        info = (await http.get("/fitconnect/v1/info")).json()

    assert list(validator.iter_errors(found)) == []
    [route] = found["routes"]
    assert route["destinationId"] == destination.destination_id
    assert route["destinationName"] == "Bauaufsicht Kiel"
    key = load_key(destination_keys.signature.public, private=False, purpose="sig")
    _, claims = verify(route["destinationSignature"], {destination_keys.signature.kid: key})
    assert claims["destinationId"] == destination.destination_id
    assert claims["services"] == [
        {
            "gebietIDs": ["urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:rs:010020000000"],
            "leistungIDs": [f"urn:de:fim:leika:leistung:{LEIKA_KEY}"],
        }
    ]
    assert claims["submissionHost"] == fc_sim.url.removeprefix("http://")
    # Lübeck's cases go to another tenant, which this destination does not serve.
    assert luebeck.json() == {"count": 0, "offset": 0, "totalCount": 0, "routes": []}
    assert other.json()["totalCount"] == 0
    for response in refused:
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert json.loads(response.text)["status"] == 400
    assert info == {"version": {"major": 2, "minor": 0, "patch": 0}}
