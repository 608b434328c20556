"""Property-based fuzzing of the virtual network, subnet and peering endpoints with schemathesis,
driven by Tessera's own OpenAPI document (docs/openapi.yaml). Positive and negative requests
(valid and invalid paths, queries and bodies) go to a live `tessera serve`; the run must find no
server error (5xx, or a connection the server drops without an answer), and afterwards the server
must still be up with its fixtures in place.

Knobs (environment): SCHEMATHESIS_MAX_EXAMPLES (default 50 per operation), SCHEMATHESIS_SEED
(default: random, printed on failure so that a run can be replayed), SCHEMATHESIS_WORKERS
(default 1; several workers hit a CPython 3.11 ast.parse thread-safety bug inside hypothesis),
SCHEMATHESIS_EXTRA_ARGS (more `schemathesis run` options, e.g. `--report har --continue-on-failure`)."""

import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from conftest import ROOT, Server, free_port

DOC = ROOT / "docs" / "openapi.yaml"
API = "api-version=2024-05-01"
GROUP = "schema-rg"
NSG = "schema-nsg"            # extra fixtures that subnets may reference
ROUTE_TABLE = "schema-rt"


def toml_string(s: str) -> str:
    """A TOML basic string (JSON escapes are valid TOML escapes for these values)."""
    return json.dumps(s)


def toml_list(values) -> str:
    return "[" + ", ".join(toml_string(v) for v in values) + "]"


def schemathesis_config(sub: str, ca: str, token: str, max_examples: int, seed: int, workers: int) -> str:
    """The run's configuration: fixed scope, name dictionaries that hit the fixtures part of the
    time (names still vary), value dictionaries so that some bodies are valid enough to reach the
    engine's rules, and only the not_a_server_error check."""
    net = f"/subscriptions/{sub}/resourceGroups/{GROUP}/providers/Microsoft.Network"
    rg = f"{net}/virtualNetworks"
    vnet_ids = [f"{rg}/hub", f"{rg}/spoke", f"{rg}/gone",
                f"/subscriptions/{sub}/resourceGroups/other-rg/providers/Microsoft.Network/virtualNetworks/x",
                f"/subscriptions/{sub}/resourceGroups/{GROUP}/providers/Microsoft.Network/networkSecurityGroups/n",
                f"{rg}/hub/subnets/default", "/subscriptions/x", "not-an-id", ""]
    dictionaries = {
        # Existing networks first; `fz1`/`fz2` are created by the fuzzer itself.
        "vnets": ["hub", "spoke", "fz1", "fz2"],
        # The delete operation never gets `hub`, which the test checks afterwards.
        "deletable_vnets": ["spoke", "fz1", "fz2"],
        "subnets": ["default", "s1", "GatewaySubnet"],
        "peerings": ["hub-to-spoke", "spoke-to-hub", "p1"],
        # Boundary values for the list continuation token.
        "skip_tokens": ["0", "1", "2", "3", "-1", "4294967296", "9223372036854775807",
                        "18446744073709551614", "18446744073709551615", "18446744073709551616"],
        "locations": ["westeurope", "northeurope", "eastus", "WestEurope", "chinanorth", "nowhere", ""],
        "vnet_prefixes": ["10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/16", "10.1.0.0/24", "10.3.0.0/8",
                          "0.0.0.0/0", "10.2.0.1/16", "fd00::/48", "10.0.0.0/33", "10.0.0/16", ""],
        "subnet_prefixes": ["10.0.0.0/24", "10.0.1.0/24", "10.1.0.0/24", "10.1.1.0/29", "10.0.0.0/16",
                            "10.9.0.0/24", "10.0.0.0/32", "10.0.1.1/24", "fd00::/64", "bad"],
        "vnet_ids": vnet_ids,
        "reference_ids": [f"{net}/networkSecurityGroups/{NSG}", f"{net}/routeTables/{ROUTE_TABLE}",
                          f"{net}/networkSecurityGroups/missing", f"{rg}/hub", "not-an-id", ""],
        "subnet_names": ["default", "s1", "nope"],
    }
    parameters = {
        "path.virtualNetworkName": ("vnets", 0.7),
        "path.subnetName": ("subnets", 0.5),
        "path.virtualNetworkPeeringName": ("peerings", 0.5),
        "query.$skipToken": ("skip_tokens", 0.5),
        "body.location": ("locations", 0.8),
        "body.properties.addressSpace.addressPrefixes[*]": ("vnet_prefixes", 0.8),
        "body.properties.subnets[*].properties.addressPrefix": ("subnet_prefixes", 0.7),
        "body.properties.addressPrefix": ("subnet_prefixes", 0.7),
        "body.properties.addressPrefixes[*]": ("subnet_prefixes", 0.7),
        "body.properties.remoteVirtualNetwork.id": ("vnet_ids", 0.8),
        "body.properties.networkSecurityGroup.id": ("reference_ids", 0.8),
        "body.properties.routeTable.id": ("reference_ids", 0.8),
        "body.properties.subnets[*].properties.networkSecurityGroup.id": ("reference_ids", 0.8),
        "body.properties.subnets[*].properties.routeTable.id": ("reference_ids", 0.8),
        "body.properties.localSubnetNames[*]": ("subnet_names", 0.7),
        "body.properties.remoteSubnetNames[*]": ("subnet_names", 0.7),
    }
    lines = [
        f"seed = {seed}",
        f"workers = {workers}",
        f"tls-verify = {toml_string(ca)}",
        "",
        "[headers]",
        f"Authorization = {toml_string('Bearer ' + token)}",
        "",
        # Hide only the token: the default markers would also hide `$skipToken` values.
        "[output.sanitization]",
        "keys-to-sanitize = [\"authorization\"]",
        "sensitive-markers = [\"authorization\"]",   # an empty list means the defaults
        "",
        "[cache]",
        "enabled = false",
        "",
        "[generation]",
        "mode = \"all\"",
        f"max-examples = {max_examples}",
        "database = \"none\"",
        "",
        "[checks]",
        "enabled = false",
        "not_a_server_error.enabled = true",
        "",
        "[parameters]",
        f"\"path.subscriptionId\" = {toml_string(sub)}",
        f"\"path.resourceGroupName\" = {toml_string(GROUP)}",
    ]
    for key, (dictionary, probability) in parameters.items():
        lines.append(f"{toml_string(key)} = {{ dictionary = {toml_string(dictionary)}, probability = {probability} }}")
    lines.append("")
    for name, values in dictionaries.items():
        lines += [f"[dictionaries.{name}]", f"values = {toml_list(values)}", ""]
    lines += [
        # `hub` must survive: its delete draws names from `deletable_vnets` only, never from
        # names seen in responses, and stays out of the stateful chains.
        "[[operations]]",
        "include-operation-id = \"VirtualNetworks_Delete\"",
        "phases.examples.extra-data-sources.responses = false",
        "phases.coverage.extra-data-sources.responses = false",
        "phases.fuzzing.extra-data-sources.responses = false",
        "phases.stateful.enabled = false",
        "[operations.parameters]",
        "\"path.virtualNetworkName\" = { dictionary = \"deletable_vnets\", probability = 0.7 }",
        "",
    ]
    return "\n".join(lines)


def session_for(server: Server) -> requests.Session:
    s = requests.Session()
    s.trust_env = False   # else REQUESTS_CA_BUNDLE from the environment overrides verify
    s.verify = server.ca
    s.headers["Authorization"] = f"Bearer {server.token()}"
    return s


def make_fixtures(server: Server, s: requests.Session) -> str:
    sub = f"/subscriptions/{server.creds['subscriptionId']}"
    r = s.put(f"{server.endpoint}{sub}/resourcegroups/{GROUP}?api-version=2022-12-01", json={"location": "westeurope"})
    assert r.status_code in (200, 201), r.text
    base = f"{server.endpoint}{sub}/resourceGroups/{GROUP}/providers/Microsoft.Network/virtualNetworks"
    for name, second_octet in (("hub", 0), ("spoke", 1)):
        r = s.put(f"{base}/{name}?{API}", json={
            "location": "westeurope",
            "properties": {"addressSpace": {"addressPrefixes": [f"10.{second_octet}.0.0/16"]},
                           "subnets": [{"name": "default",
                                        "properties": {"addressPrefix": f"10.{second_octet}.0.0/24"}}]}})
        assert r.status_code == 201, r.text
    net = base.rsplit("/", 1)[0]
    for kind, name in (("networkSecurityGroups", NSG), ("routeTables", ROUTE_TABLE)):
        r = s.put(f"{net}/{kind}/{name}?{API}", json={"location": "westeurope"})
        assert r.status_code == 201, r.text
    return base


# Two passes over one server: everything but the virtual network delete first (so that the
# fixtures stay in place while the other operations are fuzzed), then that delete alone.
PASSES = (("--exclude-operation-id", "VirtualNetworks_Delete"),
          ("--include-operation-id", "VirtualNetworks_Delete"))


def run_schemathesis(server: Server, scratch: Path, config: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, REQUESTS_CA_BUNDLE=server.ca, SSL_CERT_FILE=server.ca,
               NO_COLOR="1", PYTHONIOENCODING="utf-8")
    extra = shlex.split(os.environ.get("SCHEMATHESIS_EXTRA_ARGS", ""))
    cmd = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run", str(DOC),
           "--url", server.endpoint, "--no-color", "--output-truncate", "false", "--request-timeout", "10",
           *args, *extra]
    # cwd: a scratch directory, so that nothing schemathesis writes lands in the repository.
    return subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True, timeout=900)


def test_schemathesis_finds_no_server_errors():
    assert DOC.exists(), DOC
    max_examples = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "50"))
    seed = int(os.environ.get("SCHEMATHESIS_SEED") or random.randrange(2**31))
    workers = int(os.environ.get("SCHEMATHESIS_WORKERS", "1"))
    with tempfile.TemporaryDirectory(prefix="tessera-schemathesis-") as d:
        scratch = Path(d)
        data = scratch / "data"
        data.mkdir()
        server = Server(data, free_port())
        try:
            s = session_for(server)
            base = make_fixtures(server, s)
            token = s.headers["Authorization"].removeprefix("Bearer ")
            config = scratch / "schemathesis.toml"
            config.write_text(schemathesis_config(server.creds["subscriptionId"], server.ca, token,
                                                  max_examples, seed, workers))
            started = time.monotonic()
            runs = [run_schemathesis(server, scratch, config, *args) for args in PASSES]
            elapsed = time.monotonic() - started
            output = "\n".join(f"=== schemathesis run {' '.join(args)} (exit {run.returncode}) ===\n"
                               f"{run.stdout}{run.stderr}" for args, run in zip(PASSES, runs))
            log = (data / "serve.log").read_text(errors="replace")
            panics = sorted({line for line in log.splitlines() if "panicked at" in line})
            assert all(run.returncode == 0 for run in runs) and not panics, (
                f"schemathesis reported failures (seed {seed}, {elapsed:.0f}s)\n{output}\n"
                "--- server panics (serve.log) ---\n" + "\n".join(panics))
            print(f"schemathesis: seed {seed}, {elapsed:.0f}s")

            assert server.proc.poll() is None, "tessera serve exited during the run:\n" + log[-5000:]
            r = s.get(f"{base}/hub?{API}", timeout=10)
            assert r.status_code == 200, r.text
            assert r.json()["name"] == "hub"
            r = s.get(f"{base}?{API}", timeout=10)
            assert r.status_code == 200, r.text
        finally:
            server.stop()
