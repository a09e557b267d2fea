"""With the XBau 2.6 release (XSDs and Schematron) registered, the hub checks the shipped
business rules: a message that breaks one is quarantined with the rule's id, and an XTA
sender gets an 1100 Rückweisung listing the failures."""

from __future__ import annotations

from pathlib import Path

import httpx
from lxml import etree

from poststelle.adapters.xta.simulator import XtaSimulator
from poststelle.contracts.registry import ContractRegistry
from poststelle.routing.hub.config import HubConfig
from poststelle.routing.hub.runtime import Hub
from poststelle.routing.ops.quarantine import list_quarantined
from tests.integration.conftest import eventually
from tests.integration.test_rejection_answers import (
    _answers,
    _config,
    _rejected_message,
    kernmodul_schema,  # noqa: F401  (fixture)
)
from tests.messages import xbau_antrag
from tests.xta.conftest import AMT, HUB

XML = {"Content-Type": "application/xml"}
LESER_KENNUNG = b"<kennung>bau:010020000000</kennung>"


def _breaks_sch_xbau_001(body: bytes) -> bytes:
    """The leser's DVDV kennung (the first kennung: the header comes first) made XSD-valid
    but against XBau 2.6 rule sch-xbau-001 (digits after the colon), still readable as
    prefix:code so the hub can address the answer."""
    assert body.index(LESER_KENNUNG) < body.index(b"</leser>")
    return body.replace(LESER_KENNUNG, b"<kennung>bau:01002000000X</kennung>", 1)


def _register_release(hub_config: HubConfig, corpus_dir: Path) -> None:
    ContractRegistry.for_data_dir(hub_config.data_dir).add_schema_set(corpus_dir / "xbau-2.6")


async def test_schematron_failure_is_quarantined_with_the_rule_id(
    hub_config: HubConfig, corpus_dir: Path
) -> None:
    _register_release(hub_config, corpus_dir)
    valid, _ = xbau_antrag()
    invalid = _breaks_sch_xbau_001(xbau_antrag()[0])

    async with Hub(hub_config) as hub, httpx.AsyncClient(base_url=hub.http_url) as http:
        good = (await http.post("/v1/submissions", content=valid, headers=XML)).json()
        bad = (await http.post("/v1/submissions", content=invalid, headers=XML)).json()
        [parked] = await eventually(lambda: list_quarantined(hub.js))
        folder = hub.workers[0].backend.folder  # type: ignore[attr-defined]
        await eventually(lambda: (folder / f"{good['case_id']}.json").exists())

    assert (parked.case_id, parked.step, parked.reason) == (
        bad["case_id"],
        "validate",
        "schematron-invalid",
    )
    assert "[sch-xbau-001]" in parked.detail and "line 4" in parked.detail
    assert "nachrichtenkopf.g2g" in parked.detail
    assert not (folder / f"{bad['case_id']}.json").exists()


async def test_schematron_failure_from_xta_is_answered_with_an_1100(
    hub_config: HubConfig,
    corpus_dir: Path,
    kernmodul_schema: etree.XMLSchema,  # noqa: F811
) -> None:
    _register_release(hub_config, corpus_dir)
    body, nachrichten_uuid = xbau_antrag()
    invalid = _breaks_sch_xbau_001(body)
    with XtaSimulator(xsd_dir=corpus_dir / "xta-2.1.1") as sim:
        sim.create_mailbox(HUB.value)
        sim.create_mailbox(AMT.value)
        sim.put(HUB.value, invalid, author=AMT)
        async with Hub(_config(hub_config, sim, corpus_dir)) as hub:
            [answer] = await eventually(lambda: _answers(sim, 1), within=30)
            [parked] = await list_quarantined(hub.js)

    root = etree.fromstring(answer.content)
    assert kernmodul_schema.validate(root), kernmodul_schema.error_log
    assert answer.metadata.reader.value == AMT.value
    uuid, message = _rejected_message(answer)
    assert (uuid, message) == (nachrichten_uuid, invalid)
    [reason] = root.findall("rueckweisungDaten/rueckweisungsgrund")
    # S999: "Nicht spezifikationskonform aus anderen Gründen" (xbau-fehlerkennzahlen 2.2).
    assert reason.findtext("grund/code") == "S999"
    text = reason.findtext("fehlertext") or ""
    assert text.startswith("line 4: /xbau:baugenehmigung.antrag.0200/nachrichtenkopf.g2g: ")
    assert "[sch-xbau-001]" in text and 'Elements "leser"' in text
    assert parked.reason == "schematron-invalid"
