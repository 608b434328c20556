"""The published example requests of the OpenAPI documents, for every resource type Tessera
serves (issue 15, point 2): each is PUT as published and read back, and every property sent must
come back as sent. Examples that ask for what Tessera does not offer (a gateway load balancer, a
service endpoint policy, an IPAM pool, ...) must be refused with the ARM error listed below, and
leave nothing behind.

The examples are unmodified copies from Azure/azure-rest-api-specs (tests/fixtures/arm-examples,
provenance in its SOURCES.md). Each runs in resource groups of its own: the example's group names
are prefixed, its subscription is the server's, and the resources it references (its parent, the
subnets, public IPs and VNets it names) are created first, as a user would have them."""

import json
import re
from pathlib import Path

import pytest
import requests

EXAMPLES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "arm-examples"
API = "2024-05-01"
LOCATION = "eastus"  # of the prerequisites of an example that names no location

# Examples Tessera refuses, with the ARM error code it answers and why.
REFUSED = {
    # A gateway load balancer (SKU Gateway, tunnel interfaces to NVAs) or a frontend chained to
    # another load balancer's.
    "LoadBalancerCreateGatewayLoadBalancerProviderWithOneBackendPool.json": "LoadBalancerSkuNotSupported",
    "LoadBalancerCreateGatewayLoadBalancerProviderWithTwoBackendPool.json": "LoadBalancerSkuNotSupported",
    "NetworkInterfaceCreateGatewayLoadBalancerConsumer.json": "UnsupportedReference",
    # A cross-region (Global tier) load balancer, whose backends are other load balancers.
    "LoadBalancerCreateGlobalTier.json": "LoadBalancerSkuNotSupported",
    # Public load balancers (a frontend with a public IP) are not offered.
    "LoadBalancerCreateWithOutboundRules.json": "PublicLoadBalancerNotSupported",
    # IP-based backend pools (members named by address and VNet, not by NIC).
    "LBBackendAddressPoolWithBackendAddressesPut.json": "UnsupportedReference",
    "LoadBalancerCreateWithSyncModePropertyOnPool.json": "UnsupportedReference",
    # An IP prefix on a NIC (privateIPAddressPrefixLength).
    "NetworkInterfaceCreate.json": "PrivateIPAddressPrefixNotSupported",
    # References to what Tessera does not serve: service endpoint policies, IPAM pools, a
    # service endpoint's network identifier, a gateway's NAT rules.
    "VirtualNetworkCreateServiceEndpointPolicy.json": "UnsupportedReference",
    "VirtualNetworkCreateWithIpamPool.json": "UnsupportedReference",
    "SubnetCreateServiceEndpointNetworkIdentifier.json": "UnsupportedReference",
    "VirtualNetworkGatewayConnectionCreate.json": "UnsupportedReference",
}


def examples():
    return sorted(EXAMPLES.glob("*/*.json"), key=lambda p: p.name)


def resource_id_of(example: dict) -> str:
    for code in ("201", "200"):
        body = example["responses"].get(code, {}).get("body")
        if isinstance(body, dict) and "id" in body:
            return body["id"]
    raise AssertionError("the example has no response id")


class Rewriter:
    """Puts an example in the server's subscription and in resource groups of its own."""

    def __init__(self, subscription: str, prefix: str):
        self.subscription = subscription
        self.prefix = prefix

    def text(self, value: str) -> str:
        value = re.sub(r"(?i)/subscriptions/[^/]+", f"/subscriptions/{self.subscription}", value)
        return re.sub(r"(?i)/resourceGroups/([^/]+)", lambda m: f"/resourceGroups/{self.prefix}{m.group(1)}", value)

    def body(self, value):
        if isinstance(value, dict):
            return {k: self.body(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.body(v) for v in value]
        if isinstance(value, str) and "/subscriptions/" in value.lower():
            return self.text(value)
        return value


def referenced_ids(value, own: str) -> set:
    """The resource ids a body names that are not the resource itself or its parts."""
    out = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "id" and isinstance(v, str) and v.lower().startswith("/subscriptions/"):
                if not v.lower().startswith(own.lower() + "/") and v.lower() != own.lower():
                    out.add(v)
            else:
                out |= referenced_ids(v, own)
    elif isinstance(value, list):
        for v in value:
            out |= referenced_ids(v, own)
    return out


def missing(sent, got, path="") -> list:
    """Where `got` does not return what `sent` holds (ids compare case-insensitively)."""
    if isinstance(sent, dict):
        if not isinstance(got, dict):
            return [f"{path}: sent an object, got {json.dumps(got)[:120]}"]
        out = []
        for k, v in sent.items():
            if v is None:
                continue  # null is "not set": nothing to return
            match = next((g for g in got if g.lower() == k.lower()), None)
            if match is None:
                out.append(f"{path}/{k}: not returned")
            else:
                out += missing(v, got[match], f"{path}/{k}")
        return out
    if isinstance(sent, list):
        if not isinstance(got, list) or len(got) < len(sent):
            return [f"{path}: sent {json.dumps(sent)[:120]}, got {json.dumps(got)[:120]}"]
        out = []
        for i, v in enumerate(sent):
            counterpart = got[i]
            if isinstance(v, dict) and "name" in v:
                counterpart = next((g for g in got if isinstance(g, dict) and g.get("name") == v["name"]), None)
            out += missing(v, counterpart, f"{path}[{i}]")
        return out
    if isinstance(sent, str) and isinstance(got, str) and sent.lower().startswith("/subscriptions/"):
        return [] if sent.lower() == got.lower() else [f"{path}: sent {sent}, got {got}"]
    if path == "/location" and isinstance(sent, str) and isinstance(got, str):
        # Azure answers with the region's ARM name ("Central US" comes back as "centralus").
        return [] if sent.replace(" ", "").lower() == got else [f"{path}: sent {sent}, got {got}"]
    return [] if sent == got else [f"{path}: sent {json.dumps(sent)}, got {json.dumps(got)}"]


class Arm:
    def __init__(self, server):
        self.endpoint = server.endpoint
        self.ca = server.ca
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {server.token()}"

    def put(self, rid: str, body: dict, api: str = API, extra=None) -> requests.Response:
        return self.session.put(f"{self.endpoint}{rid}", params={"api-version": api, **(extra or {})}, json=body,
                                verify=self.ca, timeout=30)

    def must_put(self, rid: str, body: dict, api: str = API):
        r = self.put(rid, body, api)
        assert r.status_code in (200, 201), f"setting up {rid}: {r.status_code} {r.text[:600]}"

    def get(self, rid: str, api: str = API) -> requests.Response:
        return self.session.get(f"{self.endpoint}{rid}?api-version={api}", verify=self.ca, timeout=30)


def subnets_named(ids, vnet: str) -> set:
    names = set()
    for i in ids:
        m = re.search(r"(?i)/virtualNetworks/([^/]+)/subnets/([^/]+)", i)
        if m and m.group(1).lower() == vnet.lower():
            names.add(m.group(2))
    return names


def make_vnet(arm: Arm, vnet_id: str, index: int, subnet_names: set, location: str):
    """A dual-stack VNet holding the named subnets (and Subnet1..4 for the subnet-peering examples)."""
    names = sorted(subnet_names | {"Subnet1", "Subnet2", "Subnet3", "Subnet4"})
    subnets = [{"name": n, "properties": {"addressPrefixes": [f"10.{index}.{i}.0/24", f"fd00:{index}:0:{i}::/64"]}}
               for i, n in enumerate(names)]
    arm.must_put(vnet_id, {"location": location, "properties": {
        "addressSpace": {"addressPrefixes": [f"10.{index}.0.0/16", f"fd00:{index}::/48"]}, "subnets": subnets}})


def set_up(arm: Arm, rid: str, body: dict, existing: dict):
    """Creates the groups, the parent and the references an example needs (in its region), and
    the resource itself first when the example updates one (`existing`, from its response)."""
    location = body.get("location", LOCATION)
    group = re.search(r"(?i)(/subscriptions/[^/]+/resourceGroups/[^/]+)", rid).group(1)
    refs = referenced_ids(body, rid)
    groups = {group} | {re.search(r"(?i)(/subscriptions/[^/]+/resourceGroups/[^/]+)", r).group(1) for r in refs}
    for g in groups:
        arm.must_put(g, {"location": location}, api="2021-04-01")
    # The VNets named (as themselves or through a subnet), the parent VNet of a subnet or a link.
    vnets = {}
    for r in refs | {rid}:
        m = re.search(r"(?i)^(.*/virtualNetworks/[^/]+)", r)
        if m and "/providers/Microsoft.Network/" in r:
            vnets.setdefault(m.group(1), set())
    own_vnet = re.search(r"(?i)^(.*/virtualNetworks/[^/]+)/", rid)
    for index, vnet in enumerate(sorted(vnets, key=str.lower), start=1):
        if own_vnet is None and vnet.lower() == rid.lower():
            continue  # the example creates this VNet itself
        if own_vnet and vnet.lower() == own_vnet.group(1).lower() and "/subnets/" in rid:
            arm.must_put(vnet, {"location": location, "properties": {
                "addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}}})
            continue
        make_vnet(arm, vnet, index, subnets_named(refs, vnet.rsplit("/", 1)[1]), location)
    for r in refs:
        if re.search(r"(?i)/publicIPAddresses/[^/]+$", r):
            arm.must_put(r, {"location": location, "sku": {"name": "Standard"},
                             "properties": {"publicIPAllocationMethod": "Static"}})
    parents = {
        "securityRules": {"location": location},
        "routes": {"location": location},
        "backendAddressPools": None,
    }
    m = re.search(r"(?i)^(.*)/(securityRules|routes|backendAddressPools)/[^/]+$", rid)
    if m:
        kind = next(k for k in parents if k.lower() == m.group(2).lower())
        parent_body = parents[kind]
        if kind == "backendAddressPools":
            make_vnet(arm, re.sub(r"(?i)/loadBalancers/.*", "/virtualNetworks/lbvnet", m.group(1)), 90, {"fe"},
                      location)
            subnet = re.sub(r"(?i)/loadBalancers/.*", "/virtualNetworks/lbvnet/subnets/fe", m.group(1))
            parent_body = {"location": location, "sku": {"name": "Standard"}, "properties": {
                "frontendIPConfigurations": [{"name": "fe", "properties": {"subnet": {"id": subnet}}}]}}
        arm.must_put(m.group(1), parent_body)
    if existing:
        arm.must_put(rid, existing)


@pytest.mark.parametrize("path", examples(), ids=lambda p: p.name)
def test_published_example_round_trips(server, path):
    example = json.loads(path.read_text())
    index = examples().index(path)
    rewrite = Rewriter(server.creds["subscriptionId"], f"ex{index}-")
    body = rewrite.body(next(v for v in example["parameters"].values() if isinstance(v, dict)))
    rid = rewrite.text(resource_id_of(example))
    arm = Arm(server)
    query = {k: v for k, v in example["parameters"].items() if k == "syncRemoteAddressSpace"}
    existing = {}
    if query:
        # A sync updates a link that exists: made first with the subnet names the response shows.
        shown = rewrite.body(example["responses"]["200"]["body"]["properties"])
        existing = {"properties": {**body["properties"], **{k: shown[k] for k in
                    ("localSubnetNames", "remoteSubnetNames") if k in shown}}}
    set_up(arm, rid, body, existing)
    r = arm.put(rid, body, extra=query)
    if path.name in REFUSED:
        assert 400 <= r.status_code < 500, f"{path.name} should be refused: {r.status_code} {r.text[:400]}"
        assert r.json()["error"]["code"] == REFUSED[path.name], r.text
        assert arm.get(rid).status_code == 404, "a refused PUT leaves nothing behind"
        return
    assert r.status_code in (200, 201), f"{path.name}: {r.status_code} {r.text[:800]}"
    got = arm.get(rid)
    assert got.status_code == 200, got.text
    lost = missing(body, got.json())
    assert not lost, f"{path.name} lost what it sent:\n" + "\n".join(lost)


def test_regional_bgp_community_is_the_regions(server):
    """`bgpCommunities.regionalCommunity` is Azure's, read-only: the region's published value
    (West Europe 12076:50002, North Europe 12076:50003), whatever the client sent, and a peering
    link shows its remote VNet's in `remoteBgpCommunities`."""
    arm = Arm(server)
    group = f"/subscriptions/{server.creds['subscriptionId']}/resourceGroups/rg-bgp-communities"
    arm.must_put(group, {"location": "westeurope"}, api="2021-04-01")
    vnets = {}
    for name, location, space, community in (("we", "westeurope", "10.61.0.0/16", "12076:20061"),
                                             ("ne", "northeurope", "10.62.0.0/16", "12076:20062")):
        vid = f"{group}/providers/Microsoft.Network/virtualNetworks/{name}"
        arm.must_put(vid, {"location": location, "properties": {
            "addressSpace": {"addressPrefixes": [space]},
            "bgpCommunities": {"virtualNetworkCommunity": community, "regionalCommunity": "12076:1"}}})
        vnets[name] = (vid, arm.get(vid).json())
    assert vnets["we"][1]["properties"]["bgpCommunities"] == {
        "virtualNetworkCommunity": "12076:20061", "regionalCommunity": "12076:50002"}
    assert vnets["ne"][1]["properties"]["bgpCommunities"]["regionalCommunity"] == "12076:50003"
    link = f"{vnets['we'][0]}/virtualNetworkPeerings/we-to-ne"
    arm.must_put(link, {"properties": {"remoteVirtualNetwork": {"id": vnets["ne"][0]}}})
    assert arm.get(link).json()["properties"]["remoteBgpCommunities"] == {
        "virtualNetworkCommunity": "12076:20062", "regionalCommunity": "12076:50003"}
