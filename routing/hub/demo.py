"""The demo layer: what ``make run`` adds to a hub (``poststelle run --demo``, the default
without a config file; with one it is off unless ``--demo`` is given).

Besides the demo route and file drop (``HubConfig.demo``), the demo reads a simulated XTA 2
mailbox, receives as a FIT-Connect destination from a simulated Zustelldienst, and validates
against the published schema sets — when it can find them. The project
ships no third-party schemas: they come from ``$POSTSTELLE_CORPUS`` or ``../shared/corpus``
(the conformance corpus beside a development checkout). Without them, the demo says so and
runs the portal path alone.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from poststelle.adapters.fitconnect.cli import SimulatedSetup, set_up
from poststelle.adapters.fitconnect.simulator import FitConnectSimulator
from poststelle.adapters.xta.simulator import XtaSimulator
from poststelle.contracts.registry import ContractError, ContractRegistry
from poststelle.routing.hub.config import HubConfig, InboundConfig

__all__ = [
    "DEMO_FITCONNECT_PORT",
    "DEMO_HUB_MAILBOX",
    "DEMO_SENDER_MAILBOX",
    "Demo",
    "find_corpus",
    "prepare_demo",
]

log = logging.getLogger(__name__)

DEMO_HUB_MAILBOX = "dvdv:poststelle-demo"
DEMO_SENDER_MAILBOX = "dvdv:bauportal-demo"
DEMO_XTA_PORT = 8470
DEMO_FITCONNECT_PORT = 8471


def find_corpus() -> Path | None:
    for candidate in (os.environ.get("POSTSTELLE_CORPUS"), "../shared/corpus"):
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    return None


@dataclass
class Demo:
    config: HubConfig
    simulator: XtaSimulator | None = None
    fitconnect: FitConnectSimulator | None = None
    notes: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.simulator is not None:
            self.simulator.stop()
        if self.fitconnect is not None:
            self.fitconnect.stop()

    def summary(self) -> list[str]:
        """What the demo layer turned on and off, for the start-up banner."""
        demo = HubConfig.demo(self.config.data_dir)
        backends = ", ".join(f"{b.tenant}/{b.name}" for b in demo.backends)
        routes = ", ".join(
            f"{r.standard} {r.message_type}" if r.message_type else f"every {r.standard} message"
            for r in demo.routes
        )
        xta = "on" if self.simulator is not None else "off"
        fitconnect = "on" if self.fitconnect is not None else "off"
        return [
            f"demo: on (--no-demo turns it off): back end {backends}, routes for {routes}, "
            f"XTA simulator {xta}, FIT-Connect simulator {fitconnect}",
            *self.notes,
        ]


def _register_schemas(config: HubConfig, corpus: Path, notes: list[str]) -> None:
    registry = ContractRegistry.for_data_dir(config.data_dir)
    for folder, standard, version in (
        (corpus / "xbau-2.6" / "xsd", "xbau", "2.6"),
        (corpus / "xdomea" / "schemes", "xdomea", "3.0.0"),
    ):
        contract = registry.contract(standard, version)
        if not folder.is_dir() or (contract and registry.schema_set_for(contract)):
            continue
        try:
            registry.add_schema_set(folder)
        except ContractError as exc:
            notes.append(f"schemas in {folder} not registered: {exc}")
            continue
        notes.append(f"validating against the schema set in {folder}")


def _fitconnect_inbound(setup: SimulatedSetup, schema: Path) -> InboundConfig:
    connection = {
        "submission_api_url": setup.url,
        "token_url": setup.token_url,
        "client_id": setup.subscriber_id,
        "client_secret": setup.subscriber_secret,
    }
    return InboundConfig(
        name="fitconnect-demo",
        kind="fitconnect",
        settings={
            "connection": connection,
            "destination_id": setup.destination_id,
            "decryption_key": setup.decryption_key,
            "signing_key": setup.signing_key,
            "metadata_schema": str(schema),
            "poll_interval": 1.0,
        },
    )


def _start_fitconnect(demo: Demo, corpus: Path, port: int) -> None:
    """The FIT-Connect simulator with one destination the hub receives for; its keys are
    kept in the data folder (``fitconnect-demo/``), so a restart does not make new ones."""
    schema = corpus / "fit-connect" / "metadata.schema.v1.0.0.json"
    if not schema.is_file():
        demo.notes.append(f"FIT-Connect simulator off: {schema} not found")
        return
    simulator = FitConnectSimulator(port=port)
    try:
        simulator.start()
    except (OSError, RuntimeError) as exc:
        demo.notes.append(f"FIT-Connect simulator not started on port {port}: {exc}")
        return
    setup = set_up(simulator, demo.config.data_dir / "fitconnect-demo")
    inbound = [*demo.config.inbound, _fitconnect_inbound(setup, schema)]
    demo.config = demo.config.model_copy(update={"inbound": inbound})
    demo.fitconnect = simulator
    demo.notes += [
        f"FIT-Connect simulator: {setup.url} (destination {setup.destination_id})",
        f"  send a submission: .venv/bin/poststelle fitconnect-sim send --url {setup.url} "
        f"--client-id {setup.sender_id} --client-secret {setup.sender_secret} "
        f"--destination {setup.destination_id} examples/xbau-antrag-0200.xml",
        f"  see it accepted:   .venv/bin/poststelle fitconnect-sim list --url {setup.url}",
    ]


def prepare_demo(
    config: HubConfig,
    *,
    xta_port: int = DEMO_XTA_PORT,
    fitconnect_port: int = DEMO_FITCONNECT_PORT,
) -> Demo:
    corpus = find_corpus()
    demo = Demo(config)
    if corpus is None:
        demo.notes.append(
            "no schema corpus found (set POSTSTELLE_CORPUS): messages are identified and "
            "mapped but not validated, and the XTA mailbox demo is off"
        )
        return demo
    _register_schemas(config, corpus, demo.notes)
    _start_fitconnect(demo, corpus, fitconnect_port)
    xta_xsd = corpus / "xta-2.1.1"
    if not xta_xsd.is_dir():
        return demo
    simulator = XtaSimulator(port=xta_port, xsd_dir=xta_xsd)
    try:
        simulator.start()
    except OSError as exc:
        demo.notes.append(f"XTA simulator not started on port {xta_port}: {exc.strerror}")
        return demo
    simulator.create_mailbox(DEMO_HUB_MAILBOX)
    simulator.create_mailbox(DEMO_SENDER_MAILBOX)
    mailbox = InboundConfig(
        name="xta-demo",
        kind="xta",
        settings={
            "connection": {"service_url": simulator.url, "xsd_dir": str(xta_xsd)},
            "readers": [{"identifier": DEMO_HUB_MAILBOX}],
            "poll_interval": 1.0,
        },
    )
    # model_copy, not a JSON dump: that would mask secrets such as the portals' API keys.
    demo.config = demo.config.model_copy(update={"inbound": [*demo.config.inbound, mailbox]})
    demo.simulator = simulator
    base = simulator.url.removesuffix("/xta")
    demo.notes += [
        f"XTA simulator: {simulator.url} (hub mailbox {DEMO_HUB_MAILBOX})",
        f"  drop a message:  .venv/bin/poststelle xta-sim put --url {base} "
        f"--reader {DEMO_HUB_MAILBOX} --author {DEMO_SENDER_MAILBOX} examples/xbau-antrag-0200.xml",
        f"  see the answers: .venv/bin/poststelle xta-sim list --url {base} "
        f"--reader {DEMO_SENDER_MAILBOX}",
    ]
    return demo
