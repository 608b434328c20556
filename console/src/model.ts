// The network as the console draws it, read from the ARM lists of each subscription the caller
// may read.

import { Api, ApiError, COMPUTE, NETWORK, SUBSCRIPTIONS, AUTHORIZATION } from "./api";

export interface Link {
  id: string;
  name: string;
  vnet: string;
  remote: string;
  state: string;
  sync: string;
  allowVirtualNetworkAccess: boolean;
  allowForwardedTraffic: boolean;
  allowGatewayTransit: boolean;
  useRemoteGateways: boolean;
}

export interface Nic {
  id: string;
  name: string;
  vm?: string;
  subnet: string;
  addresses: string[];
  forwarding: boolean;
}

export interface Subnet {
  id: string;
  name: string;
  prefixes: string[];
  nsg?: string;
  routeTable?: string;
}

export interface VNet {
  id: string;
  name: string;
  subscription: string;
  group: string;
  location: string;
  space: string[];
  subnets: Subnet[];
  links: Link[];
  nics: Nic[];
  gateways: { id: string; name: string; type: string }[];
  balancers: { id: string; name: string; sku: string; frontends: string[] }[];
  /** Whether the caller may write peerings of this VNet (its resource group's permissions). */
  canWrite: boolean;
}

export interface Subscription {
  id: string;
  name: string;
  /** Why its resources could not be listed, if they could not. */
  error?: string;
  /** Whether the caller may write at the subscription itself (e.g. make a network watcher). */
  canWrite: boolean;
  /** Read resource by resource: the caller may read only some resource groups of it. */
  partial?: boolean;
}

export interface Topology {
  subscriptions: Subscription[];
  vnets: Map<string, VNet>;
  vms: { id: string; name: string; nics: string[] }[];
  watchers: { id: string; location: string }[];
}

export const lower = (s: string | undefined) => (s ?? "").toLowerCase();
export const nameOf = (id: string) => id.split("/").pop() ?? id;
/** The VNet a subnet (or anything under a VNet) belongs to. */
export const vnetOf = (id: string) => lower(id).split("/subnets/")[0].split("/virtualnetworkpeerings/")[0];

function groupOf(id: string): string {
  const parts = id.split("/");
  const i = parts.findIndex((p) => lower(p) === "resourcegroups");
  return i >= 0 ? parts[i + 1] : "";
}

/** Whether an ARM action pattern (with `*`) covers an action. */
export function matches(pattern: string, action: string): boolean {
  const re = new RegExp(`^${pattern.split("*").map((p) => p.replace(/[.+?^${}()|[\]\\/]/g, "\\$&")).join(".*")}$`, "i");
  return re.test(action);
}

/** Whether the permissions ARM lists for the caller allow an action. */
export function allows(perms: { actions?: string[]; notActions?: string[] }[], action: string): boolean {
  return perms.some(
    (p) => (p.actions ?? []).some((a) => matches(a, action)) && !(p.notActions ?? []).some((a) => matches(a, action)),
  );
}

const PEERING_WRITE = "Microsoft.Network/virtualNetworks/virtualNetworkPeerings/write";

const TYPES: [string, string][] = [
  ["Microsoft.Network/virtualNetworks", NETWORK],
  ["Microsoft.Network/networkInterfaces", NETWORK],
  ["Microsoft.Compute/virtualMachines", COMPUTE],
  ["Microsoft.Network/loadBalancers", NETWORK],
  ["Microsoft.Network/virtualNetworkGateways", NETWORK],
  ["Microsoft.Network/networkWatchers", NETWORK],
];

/** The subscription's resources of each type in TYPES, from its lists. */
function lists(api: Api, sub: string): Promise<any[][]> {
  return Promise.all(TYPES.map(([type, version]) => api.list(`/subscriptions/${sub}/providers/${type}`, version)));
}

/** The same read one by one: what `…/resources` lists is only what the caller may read, for a
 * caller whose roles are on some resource groups (the lists need a role on the subscription). */
async function oneByOne(api: Api, sub: string): Promise<any[][]> {
  const all = await api.list(`/subscriptions/${sub}/resources`, "2021-04-01");
  return Promise.all(
    TYPES.map(([type, version]) =>
      Promise.all(all.filter((r: any) => lower(r.type) === lower(type)).map((r: any) => api.get(r.id, version))),
    ),
  );
}

/** The caller's permissions at a scope (none when they cannot be read). */
const permissionsAt = (api: Api, scope: string) =>
  api.list(`${scope}/providers/Microsoft.Authorization/permissions`, AUTHORIZATION).catch(() => []);

async function loadSubscription(api: Api, s: Subscription, t: Topology) {
  let found: any[][];
  try {
    found = await lists(api, s.id);
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 403) throw e;
    found = await oneByOne(api, s.id);
    s.partial = true;
  }
  const [vnets, nics, vms, lbs, gws, watchers] = found;
  const groups = [...new Set(vnets.map((v: any) => lower(`/subscriptions/${s.id}/resourceGroups/${groupOf(v.id)}`)))];
  const [subPerms, ...groupPerms] = await Promise.all([
    permissionsAt(api, `/subscriptions/${s.id}`),
    ...groups.map((g) => permissionsAt(api, g)),
  ]);
  s.canWrite = allows(subPerms, "Microsoft.Resources/subscriptions/resourceGroups/write");
  const writable = new Set(groups.filter((_, i) => allows(groupPerms[i], PEERING_WRITE)));
  for (const v of vnets) {
    const p = v.properties ?? {};
    t.vnets.set(lower(v.id), {
      id: v.id,
      name: v.name,
      subscription: s.id,
      group: groupOf(v.id),
      location: v.location,
      space: p.addressSpace?.addressPrefixes ?? [],
      subnets: (p.subnets ?? []).map((sn: any) => ({
        id: sn.id,
        name: sn.name,
        prefixes: sn.properties?.addressPrefixes ?? (sn.properties?.addressPrefix ? [sn.properties.addressPrefix] : []),
        nsg: sn.properties?.networkSecurityGroup?.id,
        routeTable: sn.properties?.routeTable?.id,
      })),
      links: (p.virtualNetworkPeerings ?? []).map((l: any) => ({
        id: l.id,
        name: l.name,
        vnet: v.id,
        remote: l.properties?.remoteVirtualNetwork?.id ?? "",
        state: l.properties?.peeringState ?? "",
        sync: l.properties?.peeringSyncLevel ?? "",
        allowVirtualNetworkAccess: l.properties?.allowVirtualNetworkAccess !== false,
        allowForwardedTraffic: !!l.properties?.allowForwardedTraffic,
        allowGatewayTransit: !!l.properties?.allowGatewayTransit,
        useRemoteGateways: !!l.properties?.useRemoteGateways,
      })),
      nics: [],
      gateways: [],
      balancers: [],
      canWrite: writable.has(lower(`/subscriptions/${s.id}/resourceGroups/${groupOf(v.id)}`)),
    });
  }
  for (const n of nics) {
    const configs = n.properties?.ipConfigurations ?? [];
    const subnet = configs[0]?.properties?.subnet?.id;
    const vnet = subnet && t.vnets.get(vnetOf(subnet));
    if (!vnet) continue;
    vnet.nics.push({
      id: n.id,
      name: n.name,
      vm: n.properties?.virtualMachine?.id,
      subnet,
      addresses: configs.map((c: any) => c.properties?.privateIPAddress).filter(Boolean),
      forwarding: !!n.properties?.enableIPForwarding,
    });
  }
  for (const g of gws) {
    const subnet = g.properties?.ipConfigurations?.[0]?.properties?.subnet?.id;
    const vnet = subnet && t.vnets.get(vnetOf(subnet));
    if (vnet) vnet.gateways.push({ id: g.id, name: g.name, type: g.properties?.gatewayType ?? "Vpn" });
  }
  for (const lb of lbs) {
    const fronts = lb.properties?.frontendIPConfigurations ?? [];
    const subnet = fronts[0]?.properties?.subnet?.id;
    const vnet = subnet && t.vnets.get(vnetOf(subnet));
    if (vnet)
      vnet.balancers.push({
        id: lb.id,
        name: lb.name,
        sku: lb.sku?.name ?? "Basic",
        frontends: fronts.map((f: any) => f.properties?.privateIPAddress).filter(Boolean),
      });
  }
  for (const vm of vms) {
    t.vms.push({
      id: vm.id,
      name: vm.name,
      nics: (vm.properties?.networkProfile?.networkInterfaces ?? []).map((n: any) => n.id),
    });
  }
  for (const w of watchers) t.watchers.push({ id: w.id, location: w.location });
}

/** Everything the caller may read, subscription by subscription. */
export async function loadTopology(api: Api): Promise<Topology> {
  const subs = await api.list(`/subscriptions`, SUBSCRIPTIONS);
  const t: Topology = { subscriptions: [], vnets: new Map(), vms: [], watchers: [] };
  await Promise.all(
    subs.map(async (raw: any) => {
      const s: Subscription = { id: raw.subscriptionId, name: raw.displayName ?? raw.subscriptionId, canWrite: false };
      t.subscriptions.push(s);
      try {
        await loadSubscription(api, s, t);
      } catch (e) {
        s.error = e instanceof Error ? e.message : String(e);
      }
    }),
  );
  t.subscriptions.sort((a, b) => a.name.localeCompare(b.name));
  t.vms.sort((a, b) => a.name.localeCompare(b.name));
  return t;
}

/** One line between two VNets: the link each way (either may be missing). */
export interface Edge {
  key: string;
  a: string;
  b: string;
  ab?: Link;
  ba?: Link;
  global: boolean;
}

/** The state an edge is drawn in: Connected only when both links are. */
export function edgeState(e: Edge): string {
  const states = [e.ab?.state, e.ba?.state].filter(Boolean) as string[];
  if (states.includes("Disconnected")) return "Disconnected";
  if (states.length === 2 && states.every((s) => s === "Connected")) return "Connected";
  return "Initiated";
}

export function edges(t: Topology): Edge[] {
  const out = new Map<string, Edge>();
  for (const v of t.vnets.values()) {
    for (const l of v.links) {
      const a = lower(v.id);
      const b = lower(l.remote);
      const [x, y] = a < b ? [a, b] : [b, a];
      const key = `${x}|${y}`;
      let e = out.get(key);
      if (!e) {
        const other = t.vnets.get(b);
        e = { key, a: x, b: y, global: !!other && lower(other.location) !== lower(v.location) };
        out.set(key, e);
      }
      if (a === x) e.ab = l;
      else e.ba = l;
    }
  }
  return [...out.values()];
}
