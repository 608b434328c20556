"""The Azure SDK for JavaScript, unmodified (@azure/arm-network, @azure/arm-resources and
@azure/identity's ClientSecretCredential, msal-node underneath), against `tessera serve`
(issue 15): tests/sdk/js/peering.mjs runs the peering lifecycle (P1-P3, S2) and reads a NIC's
effective routes (VNetPeering). Its checks are Node's assertions; the first that fails ends it.

The packages are installed from tests/sdk/js/package-lock.json into `JS_SDK_DIR` (scripts/test
does it). Missing Node or packages fail the test (it is never skipped)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TIMEOUT = 300


def sdk_dir() -> Path:
    explicit = os.environ.get("JS_SDK_DIR")
    if not explicit:
        pytest.fail("set JS_SDK_DIR to a directory where `npm ci` ran on tests/sdk/js's package "
                    "files (scripts/test makes target/js-sdk)")
    directory = Path(explicit)
    if not (directory / "node_modules" / "@azure" / "arm-network").is_dir():
        pytest.fail(f"JS_SDK_DIR={explicit!r} has no node_modules/@azure/arm-network")
    return directory


def test_peering_lifecycle_with_the_javascript_sdk(server):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not on PATH (Node.js 20 or newer)")
    directory = sdk_dir()
    # The script resolves its imports from where it lies: beside the installed packages.
    script = directory / "peering.mjs"
    shutil.copyfile(HERE / "js" / "peering.mjs", script)
    env = {name: value for name, value in os.environ.items() if not name.startswith("AZURE_")}
    env.update({
        "TESSERA_ENDPOINT": server.endpoint,
        "TESSERA_CREDENTIALS": str(server.data_dir / "credentials.json"),
        "NODE_EXTRA_CA_CERTS": server.ca,
        "NO_PROXY": "127.0.0.1,localhost",
        "TESSERA_RG": "rg-js-sdk",
    })
    run = subprocess.run([node, str(script)], cwd=directory, env=env, capture_output=True,
                         text=True, timeout=TIMEOUT)
    assert run.returncode == 0, f"the script failed:\n{run.stdout[-6000:]}\n{run.stderr[-6000:]}"
    assert run.stdout.rstrip().endswith("OK"), run.stdout
