"""Peering through the real Azure CLI (azure-cli from PyPI) against `tessera serve`, following the
recipe of arm-api.md §10: a local cloud registered from /metadata/endpoints, a service-principal
login at Tessera's token endpoint, then the peering lifecycle (P1-P3), an address-space change
and `az network vnet peering sync` (S2, S4), and a NIC's effective routes (VNetPeering).

The CLI lives in its own environment: `AZ` names the executable; otherwise `az` is looked up on
PATH and next to this Python. A missing CLI fails the test (it is never skipped)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

GROUP = "rg-az-cli"
LOCATION = "westeurope"
CLOUD = "TesseraLocal"
TIMEOUT = 300  # seconds for one az command (its start-up alone takes a few seconds)


def find_az() -> str:
    explicit = os.environ.get("AZ")
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            pytest.fail(f"AZ={explicit!r} is not an executable file")
        return explicit
    on_path = shutil.which("az")
    if on_path:
        return on_path
    beside = Path(sys.executable).parent / "az"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    pytest.fail("the Azure CLI was not found: set AZ to the az executable, put az on PATH, or "
                "install azure-cli next to this Python (pip install -r tests/sdk/requirements-az.txt)")


class Az:
    """Runs `az` with a scratch configuration directory that trusts Tessera's CA."""

    def __init__(self, executable: str, config_dir: Path, ca: str):
        self.executable = executable
        self.env = dict(os.environ)
        for name in list(self.env):
            # Nothing from the caller's own Azure set-up may leak in (identity, cloud, defaults).
            if name.startswith(("AZURE_", "AZ_")) or name in ("ARM_CLIENT_ID", "ARM_CLIENT_SECRET"):
                del self.env[name]
        self.env.update({
            "AZURE_CONFIG_DIR": str(config_dir),
            "REQUESTS_CA_BUNDLE": ca,
            "AZURE_CORE_COLLECT_TELEMETRY": "false",
            "AZURE_CORE_NO_COLOR": "true",
            "AZURE_CORE_SURVEY_MESSAGE": "false",
            "AZURE_CORE_CHECK_UPGRADE": "false",
        })
        # Loopback must never go through a proxy.
        no_proxy = ",".join(filter(None, [self.env.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
        self.env["NO_PROXY"] = self.env["no_proxy"] = no_proxy

    def raw(self, *args: str) -> subprocess.CompletedProcess:
        # --debug puts every HTTP request and response on stderr; it is shown when a command fails.
        command = [self.executable, *args, "--debug"]
        try:
            return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=TIMEOUT)
        except subprocess.TimeoutExpired as e:
            stderr = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
            print(stderr, file=sys.stderr)
            pytest.fail(f"`az {' '.join(args)}` timed out after {TIMEOUT}s (its --debug log is above)")

    def __call__(self, *args: str):
        """Runs a command that must succeed; returns its parsed JSON output (None when empty)."""
        done = self.raw(*args, "-o", "json")
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
            pytest.fail(f"`az {' '.join(args)}` exited with {done.returncode}: "
                        f"{' | '.join(errors) or done.stderr[-2000:]} (full --debug log on stderr above)")
        return json.loads(done.stdout) if done.stdout.strip() else None

    def fails(self, *args: str) -> str:
        """Runs a command that must fail; returns its stderr."""
        done = self.raw(*args, "-o", "json")
        assert done.returncode != 0, f"`az {' '.join(args)}` succeeded unexpectedly: {done.stdout}"
        return done.stderr


@pytest.fixture(scope="module")
def az(server):
    executable = find_az()
    with tempfile.TemporaryDirectory(prefix="tessera-az-") as config_dir:
        yield Az(executable, Path(config_dir), server.ca)


def peering(az, vnet, name):
    return az("network", "vnet", "peering", "show", "-g", GROUP, "--vnet-name", vnet, "-n", name)


def test_az_cli_peering_lifecycle(server, az):
    creds = server.creds
    sub, tenant = creds["subscriptionId"], creds["tenantId"]

    # The local cloud, from Tessera's /metadata/endpoints.
    az("cloud", "register", "-n", CLOUD, "--endpoint-resource-manager", server.endpoint + "/")
    az("cloud", "set", "-n", CLOUD)
    cloud = az("cloud", "show")
    assert cloud["name"] == CLOUD
    assert cloud["isActive"] is True
    assert cloud["endpoints"]["resourceManager"].rstrip("/") == server.endpoint
    az("config", "set", "core.instance_discovery=false")

    # Service-principal login at Tessera's token endpoint; the subscription list comes from ARM.
    logged_in = az("login", "--service-principal", "-u", creds["clientId"],
                   f"--password={creds['clientSecret']}", "--tenant", tenant)
    assert sub in [s["id"] for s in logged_in]
    account = az("account", "show")
    assert account["id"] == sub
    assert account["tenantId"] == tenant
    assert account["environmentName"] == CLOUD
    assert account["user"] == {"name": creds["clientId"], "type": "servicePrincipal"}

    group = az("group", "create", "-n", GROUP, "-l", LOCATION)
    assert group["name"] == GROUP
    assert group["location"] == LOCATION
    assert group["properties"]["provisioningState"] == "Succeeded"

    # Two VNets, each with a subnet.
    for name, space in (("vnet1", "10.1"), ("vnet2", "10.2")):
        created = az("network", "vnet", "create", "-g", GROUP, "-n", name, "-l", LOCATION,
                     "--address-prefixes", f"{space}.0.0/16",
                     "--subnet-name", "default", "--subnet-prefixes", f"{space}.0.0/24")["newVNet"]
        assert created["name"] == name
        assert created["provisioningState"] == "Succeeded"
        assert created["addressSpace"]["addressPrefixes"] == [f"{space}.0.0/16"]
        assert [(s["name"], s["addressPrefix"]) for s in created["subnets"]] == [("default", f"{space}.0.0/24")]
    vnet2_id = f"/subscriptions/{sub}/resourceGroups/{GROUP}/providers/Microsoft.Network/virtualNetworks/vnet2"

    # P1: the first link is Initiated.
    first = az("network", "vnet", "peering", "create", "-g", GROUP, "-n", "vnet1-to-vnet2",
               "--vnet-name", "vnet1", "--remote-vnet", "vnet2", "--allow-vnet-access")
    assert first["name"] == "vnet1-to-vnet2"
    assert first["peeringState"] == "Initiated"
    assert first["allowVirtualNetworkAccess"] is True
    assert first["remoteVirtualNetwork"]["id"].lower() == vnet2_id.lower()
    assert first["remoteAddressSpace"]["addressPrefixes"] == ["10.2.0.0/16"]
    assert peering(az, "vnet1", "vnet1-to-vnet2")["peeringState"] == "Initiated"

    # P2: the second link connects both.
    second = az("network", "vnet", "peering", "create", "-g", GROUP, "-n", "vnet2-to-vnet1",
                "--vnet-name", "vnet2", "--remote-vnet", "vnet1", "--allow-vnet-access")
    assert second["peeringState"] == "Connected"
    for vnet, name in (("vnet1", "vnet1-to-vnet2"), ("vnet2", "vnet2-to-vnet1")):
        shown = peering(az, vnet, name)
        assert shown["peeringState"] == "Connected", (vnet, name, shown)
        assert shown["peeringSyncLevel"] == "FullyInSync", (vnet, name, shown)
        assert shown["provisioningState"] == "Succeeded"

    # The per-VNet lists.
    for vnet, name in (("vnet1", "vnet1-to-vnet2"), ("vnet2", "vnet2-to-vnet1")):
        listed = az("network", "vnet", "peering", "list", "-g", GROUP, "--vnet-name", vnet)
        assert [p["name"] for p in listed] == [name]
        assert listed[0]["peeringState"] == "Connected"

    # S2: vnet2 grows while peered; the link pointing at it is LocalNotInSync, its own RemoteNotInSync.
    grown = az("network", "vnet", "update", "-g", GROUP, "-n", "vnet2",
               "--address-prefixes", "10.2.0.0/16", "10.20.0.0/16")
    assert sorted(grown["addressSpace"]["addressPrefixes"]) == ["10.2.0.0/16", "10.20.0.0/16"]
    stale = peering(az, "vnet1", "vnet1-to-vnet2")
    assert stale["peeringSyncLevel"] == "LocalNotInSync"
    assert stale["peeringState"] == "Connected"
    assert stale["remoteAddressSpace"]["addressPrefixes"] == ["10.2.0.0/16"]
    assert sorted(stale["remoteVirtualNetworkAddressSpace"]["addressPrefixes"]) == ["10.2.0.0/16", "10.20.0.0/16"]
    assert peering(az, "vnet2", "vnet2-to-vnet1")["peeringSyncLevel"] == "RemoteNotInSync"

    # S4: one sync on the LocalNotInSync side brings both links to FullyInSync.
    synced = az("network", "vnet", "peering", "sync", "-g", GROUP, "--vnet-name", "vnet1", "-n", "vnet1-to-vnet2")
    assert synced["peeringSyncLevel"] == "FullyInSync"
    assert sorted(synced["remoteAddressSpace"]["addressPrefixes"]) == ["10.2.0.0/16", "10.20.0.0/16"]
    assert peering(az, "vnet1", "vnet1-to-vnet2")["peeringSyncLevel"] == "FullyInSync"
    assert peering(az, "vnet2", "vnet2-to-vnet1")["peeringSyncLevel"] == "FullyInSync"

    # A NIC in vnet1 routes the peered prefixes over the peering.
    nic = az("network", "nic", "create", "-g", GROUP, "-n", "nic1", "-l", LOCATION,
             "--vnet-name", "vnet1", "--subnet", "default")["NewNIC"]
    assert nic["name"] == "nic1"
    ip = nic["ipConfigurations"][0]
    assert ip["subnet"]["id"].lower().endswith("/virtualnetworks/vnet1/subnets/default")
    assert ip["privateIPAddress"].startswith("10.1.0.")
    table = az("network", "nic", "show-effective-route-table", "-g", GROUP, "-n", "nic1")
    routes = table["value"] if isinstance(table, dict) else table
    by_type = {}
    for route in routes:
        by_type.setdefault(route["nextHopType"], []).extend(route["addressPrefix"])
    assert sorted(by_type.get("VNetPeering", [])) == ["10.2.0.0/16", "10.20.0.0/16"], routes
    assert "10.1.0.0/16" in by_type.get("VnetLocal", []), routes
    peering_route = next(r for r in routes if r["nextHopType"] == "VNetPeering")
    assert peering_route["source"] == "Default"
    assert peering_route["state"] == "Active"

    # P3: deleting one link leaves the other Disconnected.
    az("network", "vnet", "peering", "delete", "-g", GROUP, "--vnet-name", "vnet2", "-n", "vnet2-to-vnet1")
    assert peering(az, "vnet1", "vnet1-to-vnet2")["peeringState"] == "Disconnected"
    assert az("network", "vnet", "peering", "list", "-g", GROUP, "--vnet-name", "vnet2") == []
    missing = az.fails("network", "vnet", "peering", "show", "-g", GROUP, "--vnet-name", "vnet2", "-n", "vnet2-to-vnet1")
    assert "NotFound" in missing

    # Issue 15: a public IP (the first step of every gateway-transit scenario), an address
    # check in a VNet, and the group's resources as `az resource list` reads them.
    created = az("network", "public-ip", "create", "-g", GROUP, "-n", "pip1", "-l", LOCATION,
                 "--sku", "Standard", "--allocation-method", "Static")
    pip = created.get("publicIp", created)
    assert pip["sku"]["name"] == "Standard"
    assert pip["publicIPAllocationMethod"] == "Static"
    assert pip["ipAddress"], pip
    shown = az("network", "public-ip", "show", "-g", GROUP, "-n", "pip1")
    assert shown["ipAddress"] == pip["ipAddress"]
    taken = az("network", "vnet", "check-ip-address", "-g", GROUP, "-n", "vnet1", "--ip-address", ip["privateIPAddress"])
    assert taken["available"] is False
    assert taken["availableIPAddresses"], taken
    free = az("network", "vnet", "check-ip-address", "-g", GROUP, "-n", "vnet1", "--ip-address", "10.1.0.200")
    assert free["available"] is True
    listed = {r["name"] for r in az("resource", "list", "-g", GROUP)}
    assert {"vnet1", "vnet2", "nic1", "pip1"} <= listed, listed

    # An application security group, and an NSG rule that takes it as its source.
    asg = az("network", "asg", "create", "-g", GROUP, "-n", "web-asg", "-l", LOCATION)
    assert asg["name"] == "web-asg"
    az("network", "nsg", "create", "-g", GROUP, "-n", "asg-nsg", "-l", LOCATION)
    rule = az("network", "nsg", "rule", "create", "-g", GROUP, "--nsg-name", "asg-nsg", "-n", "from-web",
              "--priority", "100", "--source-asgs", "web-asg", "--destination-port-ranges", "443",
              "--protocol", "Tcp", "--access", "Allow")
    assert rule["sourceApplicationSecurityGroups"][0]["id"].lower().endswith("/applicationsecuritygroups/web-asg"), rule

    # A VM on nic1 (PUT as the Compute API takes it; `az vm create` wants images), read back by
    # `az vm show` at the Compute api-version the CLI sends, and the Network Watcher commands
    # that take `--vm`: IP flow verify (N6), next hop (NW1) and the security group view (N10).
    nic_id = nic["id"]
    az("rest", "--method", "put",
       "--url", f"{server.endpoint}/subscriptions/{sub}/resourceGroups/{GROUP}/providers/"
                "Microsoft.Compute/virtualMachines/vm1?api-version=2024-07-01",
       "--body", json.dumps({"location": LOCATION, "properties": {
           "hardwareProfile": {"vmSize": "Standard_B1s"},
           "networkProfile": {"networkInterfaces": [{"id": nic_id}]}}}))
    vm = az("vm", "show", "-g", GROUP, "-n", "vm1")
    assert vm["networkProfile"]["networkInterfaces"][0]["id"].lower() == nic_id.lower(), vm
    az("network", "nsg", "create", "-g", GROUP, "-n", "vm-nsg", "-l", LOCATION)
    az("network", "nsg", "rule", "create", "-g", GROUP, "--nsg-name", "vm-nsg", "-n", "deny-ssh",
       "--priority", "100", "--destination-port-ranges", "22", "--protocol", "Tcp", "--access", "Deny")
    az("network", "nic", "update", "-g", GROUP, "-n", "nic1", "--network-security-group", "vm-nsg")
    az("network", "watcher", "configure", "-g", GROUP, "-l", LOCATION, "--enabled", "true")
    address = ip["privateIPAddress"]
    flow = az("network", "watcher", "test-ip-flow", "-g", GROUP, "--vm", "vm1", "--direction", "Inbound",
              "--protocol", "TCP", "--local", f"{address}:22", "--remote", "10.2.0.9:40000")
    assert flow == {"access": "Deny", "ruleName": "securityRules/deny-ssh"}, flow
    flow = az("network", "watcher", "test-ip-flow", "-g", GROUP, "--vm", "vm1", "--direction", "Inbound",
              "--protocol", "TCP", "--local", f"{address}:443", "--remote", "10.1.0.9:40000")
    assert flow == {"access": "Allow", "ruleName": "defaultSecurityRules/AllowVnetInBound"}, flow
    # vnet2 is no longer peered (P3 above): its addresses are outside VirtualNetwork.
    flow = az("network", "watcher", "test-ip-flow", "-g", GROUP, "--vm", "vm1", "--direction", "Inbound",
              "--protocol", "TCP", "--local", f"{address}:443", "--remote", "10.2.0.9:40000")
    assert flow == {"access": "Deny", "ruleName": "defaultSecurityRules/DenyAllInBound"}, flow
    hop = az("network", "watcher", "show-next-hop", "-g", GROUP, "--vm", "vm1",
             "--source-ip", address, "--dest-ip", "10.1.0.200")
    # Recorded Azure traffic (azure-observed.md): `VirtualNetwork` here, `VnetLocal` in effective routes.
    assert hop == {"nextHopType": "VirtualNetwork", "routeTableId": "System Route"}, hop
    view = az("network", "watcher", "show-security-group-view", "-g", GROUP, "--vm", "vm1")
    [interface] = view["networkInterfaces"]
    assert interface["id"].lower() == nic_id.lower()
    rules = interface["securityRuleAssociations"]
    assert [r["name"] for r in rules["networkInterfaceAssociation"]["securityRules"]] == ["deny-ssh"], rules
    assert "AllowVnetInBound" in [r["name"] for r in rules["defaultSecurityRules"]], rules
    assert rules["effectiveSecurityRules"][0]["name"] == "securityRules/deny-ssh", rules


def test_az_cli_cross_tenant_peering_with_two_logins(server):
    """A5 through az: one principal, a guest in a second tenant, logged in to both tenants; `az
    network vnet peering create` to a VNet of the other tenant sends the other tenant's token as
    the auxiliary one. Without the second login the same command fails with
    LinkedAuthorizationFailed."""
    import uuid

    import requests

    c = server.creds
    t1, s1 = c["tenantId"], c["subscriptionId"]
    t2, s2 = str(uuid.uuid4()), str(uuid.uuid4())
    admin = server.token()

    def call(token, method, path, body, api):
        r = requests.request(method, f"{server.endpoint}{path}?api-version={api}", json=body, verify=server.ca,
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert r.status_code < 300, r.text

    def tenant_token(client, secret, tenant):
        r = requests.post(f"{server.endpoint}/{tenant}/oauth2/v2.0/token", verify=server.ca, timeout=10,
                          data={"grant_type": "client_credentials", "client_id": client, "client_secret": secret,
                                "scope": "https://management.azure.com/.default"})
        r.raise_for_status()
        return r.json()["access_token"]

    def assign(token, scope, principal):
        call(token, "PUT", f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
             {"properties": {"roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/"
                             "4d97b98b-1d4f-4787-a291-c67834d212e7", "principalId": principal}}, "2022-04-01")

    call(admin, "PUT", f"/subscriptions/{s2}", {"tenantId": t2, "displayName": "az tenant two"}, "2022-12-01")
    call(admin, "PUT", f"/tessera/principals/{c['clientId']}", {"tenantId": t1, "guestTenants": [t2]}, "2024-05-01")
    admin2 = tenant_token(c["clientId"], c["clientSecret"], t2)
    for token, sub, rg, vnet, prefix in ((admin, s1, "az-local", "va", "10.71.0.0/16"),
                                          (admin2, s2, "az-remote", "vb", "10.72.0.0/16")):
        call(token, "PUT", f"/subscriptions/{sub}/resourceGroups/{rg}", {"location": LOCATION}, "2022-12-01")
        call(token, "PUT", f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/{vnet}",
             {"location": LOCATION, "properties": {"addressSpace": {"addressPrefixes": [prefix]}}}, "2024-05-01")
    x, secret = str(uuid.uuid4()), "az-x-" + uuid.uuid4().hex
    call(admin, "PUT", f"/tessera/principals/{x}", {"tenantId": t1, "guestTenants": [t2], "secret": secret},
         "2024-05-01")
    assign(admin, f"/subscriptions/{s1}/resourceGroups/az-local", x)
    assign(admin2, f"/subscriptions/{s2}/resourceGroups/az-remote", x)
    vb = f"/subscriptions/{s2}/resourceGroups/az-remote/providers/Microsoft.Network/virtualNetworks/vb"

    with tempfile.TemporaryDirectory(prefix="tessera-az2-") as config_dir:
        az = Az(find_az(), Path(config_dir), server.ca)
        az("cloud", "register", "-n", CLOUD, "--endpoint-resource-manager", server.endpoint + "/")
        az("cloud", "set", "-n", CLOUD)
        az("config", "set", "core.instance_discovery=false")
        az("login", "--service-principal", "-u", x, f"--password={secret}", "--tenant", t1)
        az("account", "set", "--subscription", s1)
        create = ("network", "vnet", "peering", "create", "-g", "az-local", "--vnet-name", "va", "-n", "va-to-vb",
                  "--remote-vnet", vb, "--allow-vnet-access")
        # Logged in to tenant 1 only: no token of tenant 2 to send.
        refused = az.fails(*create)
        assert "LinkedAuthorizationFailed" in refused or s2 in refused, refused[-3000:]
        # The second login (tenant 2): az sends its token as the auxiliary one.
        az("login", "--service-principal", "-u", x, f"--password={secret}", "--tenant", t2)
        subscriptions = {s["id"] for s in az("account", "list")}
        assert {s1, s2} <= subscriptions, subscriptions
        az("account", "set", "--subscription", s1)
        made = az(*create)
        assert made["peeringState"] == "Initiated"
        assert made["remoteVirtualNetwork"]["id"].lower() == vb.lower()
