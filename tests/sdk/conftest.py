"""Fixtures for the SDK and az tests: a `tessera serve` process on loopback with a fresh data
directory, its sign-in details, and clients of the unmodified Azure SDK pointed at it."""

import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import requests
from azure.core.credentials import AccessToken

ROOT = Path(__file__).resolve().parents[2]


def tessera_binary() -> str:
    explicit = os.environ.get("TESSERA_BIN")
    if explicit:
        return explicit
    for profile in ("debug", "release"):
        candidate = ROOT / "target" / profile / "tessera"
        if candidate.exists():
            return str(candidate)
    raise RuntimeError("build tessera first (cargo build -p tessera) or set TESSERA_BIN")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A `tessera serve` child process."""

    def __init__(self, data_dir: Path, port: int, *extra: str):
        self.data_dir = data_dir
        self.port = port
        self.extra = extra
        self.proc = None
        self.start()

    def start(self):
        args = [tessera_binary(), "serve", "--data-dir", str(self.data_dir),
                "--listen", f"127.0.0.1:{self.port}", "--retry-after", "0", *self.extra]
        self.log = open(self.data_dir / "serve.log", "ab")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        creds = self.data_dir / "credentials.json"
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tessera serve exited: {(self.data_dir / 'serve.log').read_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    pass
                if creds.exists():
                    break
            except OSError:
                time.sleep(0.05)
        self.creds = json.loads(creds.read_text())

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca(self) -> str:
        return str(self.data_dir / "ca.pem")

    def token(self, client_id=None, secret=None, scope="https://management.azure.com/.default") -> str:
        c = self.creds
        r = requests.post(
            f"{self.endpoint}/{c['tenantId']}/oauth2/v2.0/token",
            data={"grant_type": "client_credentials", "client_id": client_id or c["clientId"],
                  "client_secret": secret or c["clientSecret"], "scope": scope},
            verify=self.ca, timeout=10)
        r.raise_for_status()
        return r.json()["access_token"]


class ServerCredential:
    """An azure-core credential that signs in at Tessera's token endpoint (client credentials)."""

    def __init__(self, server: Server):
        self.server = server

    def get_token(self, *scopes, **kwargs):
        scope = scopes[0] if scopes else "https://management.azure.com/.default"
        return AccessToken(self.server.token(scope=scope), int(time.time()) + 3000)


@pytest.fixture(scope="session")
def server():
    with tempfile.TemporaryDirectory(prefix="tessera-sdk-") as d:
        s = Server(Path(d), free_port(), "--page-size", "2")
        try:
            yield s
        finally:
            s.stop()


@pytest.fixture(scope="session")
def clients(server):
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.resource.resources import ResourceManagementClient

    common = dict(credential=ServerCredential(server), subscription_id=server.creds["subscriptionId"],
                  base_url=server.endpoint, connection_verify=server.ca, polling_interval=0.01)
    return NetworkManagementClient(**common), ResourceManagementClient(**common)


@pytest.fixture
def group(clients, request):
    """A fresh resource group per test, named after it."""
    _, resources = clients
    name = "rg-" + request.node.name.replace("_", "-")[:60]
    resources.resource_groups.create_or_update(name, {"location": "westeurope"})
    return name
