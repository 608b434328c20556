"""Crash test: `kill -9` the server during 1,000 concurrent writes. After a restart every write
that got a 2xx is there, every peering pair is consistent (P1, P2, O3) and the store opens
cleanly."""

import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from conftest import Server, free_port

API = "api-version=2024-05-01"
VNETS = 20            # 20 * 19 = 380 directed peering links
NSGS = 1000 - VNETS * (VNETS - 1)


def test_kill_during_concurrent_writes_loses_no_acknowledged_write():
    with tempfile.TemporaryDirectory(prefix="tessera-crash-") as d:
        server = Server(Path(d), free_port())
        try:
            run(server)
        finally:
            server.stop()


def run(server):
    sub = f"/subscriptions/{server.creds['subscriptionId']}"
    base = f"{server.endpoint}{sub}/resourceGroups/crash/providers/Microsoft.Network"
    session = requests.Session()
    session.trust_env = False   # else REQUESTS_CA_BUNDLE from the environment overrides verify
    session.verify = server.ca
    session.headers["Authorization"] = f"Bearer {server.token()}"
    r = session.put(f"{server.endpoint}{sub}/resourcegroups/crash?api-version=2022-12-01", json={"location": "westeurope"})
    assert r.status_code in (200, 201), r.text
    vnet_ids = []
    for i in range(VNETS):
        r = session.put(f"{base}/virtualNetworks/v{i}?{API}", json={
            "location": "westeurope", "properties": {"addressSpace": {"addressPrefixes": [f"10.{i}.0.0/16"]}}})
        assert r.status_code == 201, r.text
        vnet_ids.append(r.json()["id"])

    writes = [("nsg", f"{base}/networkSecurityGroups/n{i}", {"location": "westeurope"}) for i in range(NSGS)]
    for i in range(VNETS):
        for j in range(VNETS):
            if i != j:
                writes.append(("link", f"{base}/virtualNetworks/v{i}/virtualNetworkPeerings/to-v{j}",
                               {"properties": {"remoteVirtualNetwork": {"id": vnet_ids[j]},
                                               "allowVirtualNetworkAccess": True}}))
    # Interleave the two kinds so that the kill lands among both.
    writes.sort(key=lambda w: hash(w[1]))
    assert len(writes) == 1000

    acked, lock = [], threading.Lock()
    done = threading.Event()
    local = threading.local()

    def put(write):
        kind, url, body = write
        if not hasattr(local, "s"):
            local.s = requests.Session()
            local.s.trust_env = False
            local.s.verify = server.ca
            local.s.headers.update(session.headers)
        try:
            r = local.s.put(f"{url}?{API}", json=body, timeout=30)
        except requests.RequestException:
            return None
        with lock:
            if 200 <= r.status_code < 300:
                acked.append((kind, url))
            if len(acked) >= 300:
                done.set()
        return r.status_code

    with ThreadPoolExecutor(max_workers=32) as pool:
        futures = [pool.submit(put, w) for w in writes]
        done.wait(timeout=120)
        server.kill()
        statuses = [f.result() for f in futures]
    assert not any(s is not None and s >= 500 for s in statuses), "no write got a 5xx"
    with lock:
        acknowledged = list(acked)
    print(f"crash test: {len(acknowledged)} acknowledged, {sum(s is None for s in statuses)} cut by the kill")
    assert len(acknowledged) >= 300, "the kill came after at least 300 acknowledged writes"
    assert any(s is None for s in statuses), "the kill interrupted some writes"

    server.start()   # the store must open cleanly after kill -9
    session.headers["Authorization"] = f"Bearer {server.token()}"
    for kind, url in acknowledged:
        r = session.get(f"{url}?{API}")
        assert r.status_code == 200, f"acknowledged {kind} {url} is missing after the restart: {r.status_code}"

    # Every pair is consistent: both links present means both Connected and in sync; one
    # link alone is Initiated and waits for the other.
    links = {}
    for i in range(VNETS):
        r = session.get(f"{base}/virtualNetworks/v{i}/virtualNetworkPeerings?{API}")
        assert r.status_code == 200
        page = r.json()
        items = page["value"]
        while page.get("nextLink"):
            page = session.get(page["nextLink"]).json()
            items += page["value"]
        for link in items:
            links[(i, int(link["name"].removeprefix("to-v")))] = link["properties"]
    for (i, j), props in links.items():
        if (j, i) in links:
            assert props["peeringState"] == "Connected", (i, j, props["peeringState"])
            assert props["peeringSyncLevel"] == "FullyInSync", (i, j, props["peeringSyncLevel"])
        else:
            assert props["peeringState"] == "Initiated", (i, j, props["peeringState"])
            assert props["peeringSyncLevel"] == "RemoteNotInSync", (i, j, props["peeringSyncLevel"])
    # Writes keep working on the restored state.
    r = session.put(f"{base}/networkSecurityGroups/after-restart?{API}", json={"location": "westeurope"})
    assert r.status_code in (200, 201), r.text
