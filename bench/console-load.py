"""How long the web console takes to load a hub with N spokes (issue 19): from navigation to the
map drawn with every VNet and line, in Debian's Chromium (headless, Playwright), signed in
already (the token in sessionStorage, as after the login page). Prints each load and the median.

    cargo build --release -p tessera
    target/venv-sdk/bin/python bench/console-load.py [--spokes 1000] [--loads 7]
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sdk"))
from conftest import ROOT, Server, free_port  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402


def estate(spokes: int) -> str:
    """A hub and `spokes` spokes, each peered both ways with the hub (concise YAML); every other
    spoke in another region (global peering), as 1,000 VNets per region is Azure's limit."""
    lines = ["location: westeurope", "resourceGroup: console-bench", "vnets:",
             "  - { name: hub, addressSpace: [10.0.0.0/16], subnets: [{ name: default, prefix: 10.0.0.0/24 }] }"]
    for i in range(spokes):
        a, b = 1 + i // 250, i % 250
        region = "westeurope" if i % 2 == 0 else "northeurope"
        lines.append(f"  - {{ name: spoke{i}, location: {region}, addressSpace: [10.{a}.{b}.0/24], "
                     f"subnets: [{{ name: default, prefix: 10.{a}.{b}.0/24 }}] }}")
    lines.append("peerings:")
    for i in range(spokes):
        lines.append(f"  - {{ from: hub, to: spoke{i}, reverse: {{}} }}")
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--spokes", type=int, default=1000)
    p.add_argument("--loads", type=int, default=7)
    args = p.parse_args()
    binary = ROOT / "target" / "release" / "tessera"
    assert binary.exists(), "cargo build --release -p tessera first"
    with tempfile.TemporaryDirectory(prefix="tessera-console-bench-") as d:
        import os
        os.environ["TESSERA_BIN"] = str(binary)
        # A hub with more than 500 peerings: the limit Azure raises to 1,000 (with Virtual
        # Network Manager), raised here the same way.
        limits = Path(d) / "limits.json"
        limits.write_text(json.dumps({"peeringsPerVnet": 1000}))
        server = Server(Path(d), free_port(), "--limits", str(limits))
        try:
            topo = Path(d) / "estate.yaml"
            topo.write_text(estate(args.spokes))
            t = time.time()
            subprocess.run([str(binary), "apply", "-f", str(topo), "--credentials", str(Path(d) / "credentials.json")],
                           check=True, capture_output=True)
            print(f"estate: hub + {args.spokes} spokes, {2 * args.spokes} links, applied in {time.time() - t:.1f} s")
            c = server.creds
            token = server.token(scope=f"{server.endpoint}/.default")
            session = json.dumps({"token": token, "tenant": c["tenantId"], "clientId": c["clientId"],
                                  "expires": time.time() + 3000})
            want = args.spokes + 1
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-dev-shm-usage"])
                times = []
                for i in range(args.loads):
                    context = browser.new_context(ignore_https_errors=True, bypass_csp=True, viewport={"width": 1400, "height": 860})
                    context.add_init_script(f"sessionStorage.setItem('tessera-console-session', {json.dumps(session)})")
                    page = context.new_page()
                    page.goto(f"{server.endpoint}/console/")
                    page.wait_for_function(
                        f"document.querySelectorAll('g.vnet').length === {want} && "
                        f"document.querySelectorAll('g.edge').length === {args.spokes}", timeout=60000)
                    # Drawn: the next frame after the map's elements exist.
                    ms = page.evaluate("new Promise(r => requestAnimationFrame(() => r(performance.now())))")
                    requests = page.evaluate("performance.getEntriesByType('resource').length")
                    marks = page.evaluate("Object.fromEntries(performance.getEntriesByType('mark').map(m => [m.name, Math.round(m.startTime)]))")
                    times.append(ms)
                    print(f"load {i + 1}: {ms:.0f} ms from navigation to the map drawn ({requests} requests; "
                          f"read at {marks.get('tessera:loaded')} ms, rendered at {marks.get('tessera:drawn')} ms)")
                    if i == 0:
                        page.screenshot(path=str(ROOT / "target" / f"console-{args.spokes}-spokes.png"))
                    context.close()
                browser.close()
            print(f"median {statistics.median(times):.0f} ms over {len(times)} loads "
                  f"(min {min(times):.0f}, max {max(times):.0f})")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
