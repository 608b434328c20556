// The side panel: what is selected on the map. A VNet shows its subnets, NICs and links (with
// live byte counters from the metrics API); a NIC its effective routes and security rules; a
// line both of its links. Write controls appear only where the caller may write.

import { useEffect, useState } from "preact/hooks";
import { Api, INSIGHTS } from "./api";
import { edges, lower, nameOf, type Link, type Nic, type Topology, type VNet } from "./model";
import type { Selection } from "./NetworkMap";

interface Props {
  api: Api;
  topology: Topology;
  selected: Selection;
  onSelect: (s: Selection) => void;
  notify: (message: string) => void;
}

function bytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

/** Bytes out and in per remote VNet (lowercased name) over the last hour, every 5 s. */
function usePeeringCounters(api: Api, vnet?: VNet) {
  const [counters, setCounters] = useState<Map<string, { out: number; in: number }>>(new Map());
  useEffect(() => {
    if (!vnet) return;
    let stop = false;
    const read = async () => {
      try {
        const m = await api.get(
          `${vnet.id}/providers/Microsoft.Insights/metrics?metricnames=PeeringBytesOut,PeeringBytesIn&aggregation=Total&$filter=${encodeURIComponent(
            "RemoteVirtualNetwork eq '*'",
          )}`,
          INSIGHTS,
        );
        const out = new Map<string, { out: number; in: number }>();
        for (const metric of m.value ?? []) {
          const dir = metric.name?.value === "PeeringBytesOut" ? "out" : "in";
          for (const ts of metric.timeseries ?? []) {
            const remote = lower(ts.metadatavalues?.[0]?.value);
            const total = (ts.data ?? []).reduce((s: number, d: any) => s + (d.total ?? 0), 0);
            const e = out.get(remote) ?? { out: 0, in: 0 };
            e[dir] += total;
            out.set(remote, e);
          }
        }
        if (!stop) setCounters(out);
      } catch {
        // counters are best effort: the map stays usable
      }
    };
    read();
    const timer = setInterval(read, 5000);
    return () => {
      stop = true;
      clearInterval(timer);
    };
  }, [api, vnet?.id]);
  return counters;
}

function LinkRow({ link, counters, write, api, notify }: { link: Link; counters?: { out: number; in: number }; write: boolean; api: Api; notify: (m: string) => void }) {
  const remove = async () => {
    if (!confirm(`Delete the link ${link.name}? The other side turns Disconnected.`)) return;
    try {
      await api.delete(link.id);
      notify(`Deleted ${link.name}`);
    } catch (e) {
      notify(`Could not delete ${link.name}: ${(e as Error).message}`);
    }
  };
  return (
    <tr data-link={link.name}>
      <td>{link.name}</td>
      <td>{nameOf(link.remote)}</td>
      <td class={`state ${lower(link.state)}`}>{link.state}</td>
      <td>{link.sync}</td>
      <td>
        {[
          link.allowVirtualNetworkAccess ? "access" : "no access",
          link.allowForwardedTraffic && "forwarded",
          link.allowGatewayTransit && "gateway transit",
          link.useRemoteGateways && "remote gateways",
        ]
          .filter(Boolean)
          .join(", ")}
      </td>
      <td class="counter" data-counter="out">{bytes(counters?.out ?? 0)}</td>
      <td class="counter" data-counter="in">{bytes(counters?.in ?? 0)}</td>
      {write && (
        <td>
          <button type="button" class="danger" onClick={remove}>
            Delete
          </button>
        </td>
      )}
    </tr>
  );
}

function AddPeering({ api, vnet, topology, notify }: { api: Api; vnet: VNet; topology: Topology; notify: (m: string) => void }) {
  const others = [...topology.vnets.values()].filter((v) => v.id !== vnet.id && !vnet.links.some((l) => lower(l.remote) === lower(v.id)));
  const [remote, setRemote] = useState("");
  const [forwarded, setForwarded] = useState(false);
  const submit = async (ev: Event) => {
    ev.preventDefault();
    const target = topology.vnets.get(lower(remote));
    if (!target) return;
    const name = `${vnet.name}-to-${target.name}`;
    try {
      await api.put(`${vnet.id}/virtualNetworkPeerings/${name}`, {
        properties: { remoteVirtualNetwork: { id: target.id }, allowVirtualNetworkAccess: true, allowForwardedTraffic: forwarded },
      });
      notify(`Created ${name}`);
    } catch (e) {
      notify(`Could not create ${name}: ${(e as Error).message}`);
    }
  };
  return (
    <form class="add-peering" onSubmit={submit} aria-label="Add a peering">
      <label>
        Peer with{" "}
        <select value={remote} onChange={(e) => setRemote((e.target as HTMLSelectElement).value)} required>
          <option value="">choose a VNet</option>
          {others.map((v) => (
            <option value={lower(v.id)}>{v.name}</option>
          ))}
        </select>
      </label>
      <label>
        <input type="checkbox" checked={forwarded} onChange={(e) => setForwarded((e.target as HTMLInputElement).checked)} /> allow
        forwarded traffic
      </label>
      <button type="submit">Add peering</button>
    </form>
  );
}

function Effective({ api, nic }: { api: Api; nic: Nic }) {
  const [routes, setRoutes] = useState<any[] | null>(null);
  const [rules, setRules] = useState<any[] | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    setRoutes(null);
    setRules(null);
    setError("");
    api.action(`${nic.id}/effectiveRouteTable`, {}).then((r) => setRoutes(r.value ?? []), (e) => setError(e.message));
    api.action(`${nic.id}/effectiveNetworkSecurityGroups`, {}).then(
      (r) => setRules((r.value ?? []).flatMap((g: any) => (g.effectiveSecurityRules ?? []).map((x: any) => ({ ...x, nsg: nameOf(g.networkSecurityGroup?.id ?? "") })))),
      (e) => setError(e.message),
    );
  }, [api, nic.id]);
  return (
    <section aria-label={`Effective routes and rules of ${nic.name}`}>
      <h3>{nic.name} — effective routes</h3>
      {error && <p role="alert">{error}</p>}
      {routes === null ? (
        <p>Loading…</p>
      ) : (
        <table class="effective-routes">
          <thead>
            <tr><th>Source</th><th>State</th><th>Prefix</th><th>Next hop</th><th>Next hop IP</th></tr>
          </thead>
          <tbody>
            {routes.map((r) => (
              <tr class={lower(r.state)}>
                <td>{r.source}</td>
                <td>{r.state}</td>
                <td>{(r.addressPrefix ?? []).join(", ")}</td>
                <td>{r.nextHopType}</td>
                <td>{(r.nextHopIpAddress ?? []).join(", ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h3>{nic.name} — effective security rules</h3>
      {rules === null ? (
        <p>Loading…</p>
      ) : rules.length === 0 ? (
        <p>No network security group applies.</p>
      ) : (
        <table class="effective-rules">
          <thead>
            <tr><th>NSG</th><th>Rule</th><th>Direction</th><th>Priority</th><th>Access</th><th>Protocol</th><th>Destination ports</th></tr>
          </thead>
          <tbody>
            {rules.map((r) => (
              <tr class={lower(r.access)}>
                <td>{r.nsg}</td>
                <td>{r.name}</td>
                <td>{r.direction}</td>
                <td>{r.priority}</td>
                <td>{r.access}</td>
                <td>{r.protocol}</td>
                <td>{(r.destinationPortRanges ?? [r.destinationPortRange]).filter(Boolean).join(", ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function Details({ api, topology, selected, onSelect, notify }: Props) {
  const vnet = selected?.kind === "vnet" ? topology.vnets.get(selected.id) : undefined;
  const counters = usePeeringCounters(api, vnet);
  const [nic, setNic] = useState<Nic | null>(null);
  useEffect(() => setNic(null), [selected]);
  if (!selected) {
    return (
      <aside class="details" aria-label="Details">
        <p>Select a VNet or a peering on the map (Tab to move, Enter to open).</p>
      </aside>
    );
  }
  if (selected.kind === "edge") {
    const e = edges(topology).find((x) => x.key === selected.key);
    if (!e) return <aside class="details" aria-label="Details"><p>This peering is gone.</p></aside>;
    return (
      <aside class="details" aria-label="Details">
        <h2>Peering {nameOf(e.a)} – {nameOf(e.b)}</h2>
        <p>{e.global ? "Global (across regions)" : "Regional"}</p>
        <table class="links">
          <thead><tr><th>Link</th><th>To</th><th>State</th><th>Sync</th><th>Flags</th></tr></thead>
          <tbody>
            {[e.ab, e.ba].map((l) =>
              l ? (
                <tr data-link={l.name}>
                  <td>{l.name}</td><td>{nameOf(l.remote)}</td><td class={`state ${lower(l.state)}`}>{l.state}</td><td>{l.sync}</td>
                  <td>{[l.allowForwardedTraffic && "forwarded", l.allowGatewayTransit && "gateway transit", l.useRemoteGateways && "remote gateways", !l.allowVirtualNetworkAccess && "no access"].filter(Boolean).join(", ")}</td>
                </tr>
              ) : (
                <tr><td colSpan={5}>one side has no link</td></tr>
              ),
            )}
          </tbody>
        </table>
        <p>
          <button type="button" onClick={() => onSelect({ kind: "vnet", id: e.a })}>Open {nameOf(e.a)}</button>{" "}
          <button type="button" onClick={() => onSelect({ kind: "vnet", id: e.b })}>Open {nameOf(e.b)}</button>
        </p>
      </aside>
    );
  }
  if (!vnet) return <aside class="details" aria-label="Details"><p>This VNet is gone.</p></aside>;
  const write = vnet.canWrite;
  return (
    <aside class="details" aria-label="Details">
      <h2>{vnet.name}</h2>
      <p>
        {vnet.space.join(", ")} · {vnet.location} · {vnet.group}
      </p>
      <h3>Subnets</h3>
      <ul class="subnets">
        {vnet.subnets.map((s) => (
          <li>
            <strong>{s.name}</strong> {s.prefixes.join(", ")}
            {s.nsg && <span> · NSG {nameOf(s.nsg)}</span>}
            {s.routeTable && <span> · routes {nameOf(s.routeTable)}</span>}
            <ul>
              {vnet.nics
                .filter((n) => lower(n.subnet) === lower(s.id))
                .map((n) => (
                  <li>
                    <button type="button" class="nic" data-nic={n.name} onClick={() => setNic(n)} aria-pressed={nic?.id === n.id}>
                      {n.name} {n.addresses.join(", ")}
                      {n.forwarding ? " (appliance)" : ""}
                    </button>
                  </li>
                ))}
            </ul>
          </li>
        ))}
      </ul>
      {vnet.gateways.length > 0 && <p>Gateways: {vnet.gateways.map((g) => `${g.name} (${g.type})`).join(", ")}</p>}
      {vnet.balancers.length > 0 && (
        <p>Load balancers: {vnet.balancers.map((b) => `${b.name} (${b.sku}, ${b.frontends.join(", ")})`).join("; ")}</p>
      )}
      <h3>Peerings</h3>
      <table class="links">
        <thead>
          <tr>
            <th>Link</th><th>Remote</th><th>State</th><th>Sync</th><th>Flags</th><th>Out (1 h)</th><th>In (1 h)</th>
            {write && <th><span class="sr-only">Actions</span></th>}
          </tr>
        </thead>
        <tbody>
          {vnet.links.map((l) => (
            <LinkRow link={l} counters={counters.get(lower(nameOf(l.remote)))} write={write} api={api} notify={notify} />
          ))}
        </tbody>
      </table>
      {write && <AddPeering api={api} vnet={vnet} topology={topology} notify={notify} />}
      {nic && <Effective api={api} nic={nic} />}
    </aside>
  );
}
