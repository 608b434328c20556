// The peering lifecycle and a NIC's effective routes through the Azure SDK for JavaScript,
// unmodified, against `tessera serve` (issue 15). Signs in with @azure/identity's
// ClientSecretCredential (msal-node underneath) at Tessera's own authority. Every step checks what
// Tessera answered; the first failed check ends the process with a non-zero status.
//
// Environment: TESSERA_ENDPOINT (https://127.0.0.1:PORT), TESSERA_CREDENTIALS (credentials.json of
// the server), NODE_EXTRA_CA_CERTS (the server's CA), TESSERA_RG (the resource group to use).
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";
import { ClientSecretCredential } from "@azure/identity";
import { NetworkManagementClient } from "@azure/arm-network";
import { ResourceManagementClient } from "@azure/arm-resources";

const endpoint = process.env.TESSERA_ENDPOINT;
const creds = JSON.parse(readFileSync(process.env.TESSERA_CREDENTIALS, "utf8"));
const group = process.env.TESSERA_RG;
const location = "westeurope";

const credential = new ClientSecretCredential(creds.tenantId, creds.clientId, creds.clientSecret, {
  authorityHost: endpoint,
  disableInstanceDiscovery: true,
});
// The server's own endpoint as the scope, as clients of a private cloud ask for it.
const options = { endpoint, credentialScopes: [`${endpoint}/.default`] };
const network = new NetworkManagementClient(credential, creds.subscriptionId, options);
const resources = new ResourceManagementClient(credential, creds.subscriptionId, options);

function step(name) {
  console.log(`-- ${name}`);
}

step("resource group");
await resources.resourceGroups.createOrUpdate(group, { location });

step("two VNets with a subnet each");
const hub = await network.virtualNetworks.beginCreateOrUpdateAndWait(group, "hub", {
  location,
  addressSpace: { addressPrefixes: ["10.30.0.0/16"] },
  subnets: [{ name: "default", addressPrefix: "10.30.0.0/24" }],
});
const spoke = await network.virtualNetworks.beginCreateOrUpdateAndWait(group, "spoke", {
  location,
  addressSpace: { addressPrefixes: ["10.40.0.0/16"] },
  subnets: [{ name: "default", addressPrefix: "10.40.0.0/24" }],
});
assert.equal(hub.provisioningState, "Succeeded");
assert.equal(spoke.subnets[0].addressPrefix, "10.40.0.0/24");

step("hub to spoke alone is Initiated (P1)");
const link = (remote, extra = {}) => ({
  remoteVirtualNetwork: { id: remote.id },
  allowVirtualNetworkAccess: true,
  allowForwardedTraffic: false,
  allowGatewayTransit: false,
  useRemoteGateways: false,
  ...extra,
});
let hubLink = await network.virtualNetworkPeerings.beginCreateOrUpdateAndWait(
  group, "hub", "hub-to-spoke", link(spoke));
assert.equal(hubLink.peeringState, "Initiated");

step("spoke to hub makes both Connected (P2)");
const spokeLink = await network.virtualNetworkPeerings.beginCreateOrUpdateAndWait(
  group, "spoke", "spoke-to-hub", link(hub));
assert.equal(spokeLink.peeringState, "Connected");
hubLink = await network.virtualNetworkPeerings.get(group, "hub", "hub-to-spoke");
assert.equal(hubLink.peeringState, "Connected");
assert.deepEqual(hubLink.remoteAddressSpace.addressPrefixes, ["10.40.0.0/16"]);

step("a flag update keeps the link Connected");
hubLink = await network.virtualNetworkPeerings.beginCreateOrUpdateAndWait(
  group, "hub", "hub-to-spoke", link(spoke, { allowForwardedTraffic: true }));
assert.equal(hubLink.allowForwardedTraffic, true);
assert.equal(hubLink.peeringState, "Connected");

step("the links listed");
const listed = [];
for await (const p of network.virtualNetworkPeerings.list(group, "hub")) listed.push(p.name);
assert.deepEqual(listed, ["hub-to-spoke"]);

step("a NIC in the hub and its effective routes (VNetPeering)");
const nic = await network.networkInterfaces.beginCreateOrUpdateAndWait(group, "hub-nic", {
  location,
  ipConfigurations: [{
    name: "ipconfig1",
    subnet: { id: hub.subnets[0].id },
    privateIPAllocationMethod: "Static",
    privateIPAddress: "10.30.0.10",
  }],
});
assert.equal(nic.ipConfigurations[0].privateIPAddress, "10.30.0.10");
assert.ok(nic.dnsSettings, "a NIC always carries dnsSettings");
const routes = await network.networkInterfaces.beginGetEffectiveRouteTableAndWait(group, "hub-nic");
const peered = routes.value.filter((r) => r.nextHopType === "VNetPeering");
assert.deepEqual(peered.map((r) => r.addressPrefix), [["10.40.0.0/16"]]);
assert.ok(routes.value.some((r) => r.nextHopType === "VnetLocal"
  && r.addressPrefix.includes("10.30.0.0/16")));

step("the spoke grows; the hub's link is LocalNotInSync until synced (S2)");
spoke.addressSpace.addressPrefixes.push("10.41.0.0/16");
await network.virtualNetworks.beginCreateOrUpdateAndWait(group, "spoke", spoke);
hubLink = await network.virtualNetworkPeerings.get(group, "hub", "hub-to-spoke");
assert.equal(hubLink.peeringSyncLevel, "LocalNotInSync");
hubLink = await network.virtualNetworkPeerings.beginCreateOrUpdateAndWait(
  group, "hub", "hub-to-spoke", link(spoke, { allowForwardedTraffic: true }),
  { syncRemoteAddressSpace: "true" });
assert.equal(hubLink.peeringSyncLevel, "FullyInSync");
assert.deepEqual([...hubLink.remoteAddressSpace.addressPrefixes].sort(),
  ["10.40.0.0/16", "10.41.0.0/16"]);

step("deleting the spoke's link leaves the hub's Disconnected (P3)");
await network.virtualNetworkPeerings.beginDeleteAndWait(group, "spoke", "spoke-to-hub");
hubLink = await network.virtualNetworkPeerings.get(group, "hub", "hub-to-spoke");
assert.equal(hubLink.peeringState, "Disconnected");

step("a read of what is gone is a 404 with an ARM error");
await assert.rejects(network.virtualNetworkPeerings.get(group, "spoke", "spoke-to-hub"),
  (e) => e.statusCode === 404 && e.code === "NotFound");

step("the group deleted with all it holds");
await resources.resourceGroups.beginDeleteAndWait(group);
assert.equal((await resources.resourceGroups.checkExistence(group)).body, false);
console.log("OK");
