// The connectivity form: Network Watcher's connectivityCheck between two VMs (or a VM and an
// address), its hops drawn in order, the hop that stops the traffic in red with the rule or
// route that did it; the VNets it crossed are lit on the map.

import { useEffect, useState } from "preact/hooks";
import { Api } from "./api";
import { lower, nameOf, vnetOf, type Topology } from "./model";

interface Props {
  api: Api;
  topology: Topology;
  canWrite: (subscription: string) => boolean;
  onPath: (vnets: Set<string>, blocked?: string) => void;
  /** A pair to check at once (from the reachability matrix). */
  preset?: { source: string; destination: string; protocol: string; port: number };
}

interface Hop {
  type: string;
  address?: string;
  resourceId?: string;
  issues?: { origin: string; severity: string; type: string; context?: Record<string, string>[] }[];
}

/** The context of an issue as one "key: value" list (ARM gives a list of one-key maps). */
function context(issue: NonNullable<Hop["issues"]>[number]): [string, string][] {
  return (issue.context ?? []).flatMap((c) =>
    "key" in c && "value" in c ? [[String(c.key), String(c.value)] as [string, string]] : Object.entries(c),
  );
}

/** A network watcher in the subscription: one listed, or one made where the caller may. */
async function watcher(api: Api, topology: Topology, subscription: string, location: string, write: boolean): Promise<string> {
  // Network Watcher works in the source VM's region: the subscription's watcher there.
  const found = topology.watchers.find(
    (w) => lower(w.id).startsWith(`/subscriptions/${lower(subscription)}/`) && lower(w.location) === lower(location),
  );
  if (found) return found.id;
  if (!write) throw new Error(`No network watcher in ${location} in this subscription, and you may not create one.`);
  await api.put(`/subscriptions/${subscription}/resourcegroups/NetworkWatcherRG`, { location }, "2021-04-01");
  const w = await api.put(
    `/subscriptions/${subscription}/resourceGroups/NetworkWatcherRG/providers/Microsoft.Network/networkWatchers/NetworkWatcher_${location}`,
    { location },
  );
  topology.watchers.push({ id: w.id, location });
  return w.id;
}

export function Connectivity({ api, topology, canWrite, onPath, preset }: Props) {
  const [source, setSource] = useState("");
  const [dest, setDest] = useState("");
  const [address, setAddress] = useState("");
  const [protocol, setProtocol] = useState("Tcp");
  const [port, setPort] = useState("22");
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState<{ status: string; hops: Hop[]; probes?: string } | null>(null);
  const [error, setError] = useState("");
  const vmVnet = new Map<string, string>();
  for (const v of topology.vnets.values()) for (const n of v.nics) if (n.vm) vmVnet.set(lower(n.vm), lower(v.id));

  const run = (ev: Event) => {
    ev.preventDefault();
    check(source, dest, address, protocol, port);
  };
  useEffect(() => {
    if (!preset) return;
    const p = preset.protocol === "Icmp" ? "Icmp" : "Tcp";
    setSource(preset.source);
    setDest(preset.destination);
    setProtocol(p);
    setPort(String(preset.port));
    check(preset.source, preset.destination, "", p, String(preset.port));
  }, [preset]);
  const check = async (source: string, dest: string, address: string, protocol: string, port: string) => {
    setBusy(true);
    setError("");
    setResult(null);
    try {
      const sub = source.split("/")[2];
      const vnet = topology.vnets.get(vmVnet.get(lower(source)) ?? "");
      const w = await watcher(api, topology, sub, vnet?.location ?? "westeurope", canWrite(sub));
      const destination: Record<string, unknown> = dest ? { resourceId: dest } : { address };
      if (protocol !== "Icmp") destination.port = Number(port);
      const r = await api.action(`${w}/connectivityCheck`, { source: { resourceId: source }, destination, protocol });
      const hops: Hop[] = r.hops ?? [];
      // With live probes (when the source VM's agent runs them), what they measured.
      const probes =
        r.probesSent > 0
          ? `${r.probesSent} probes sent, ${r.probesFailed ?? 0} failed${r.avgLatencyInMs !== undefined ? `, ${r.avgLatencyInMs} ms on average` : ""}`
          : undefined;
      setResult({ status: r.connectionStatus, hops, probes });
      const crossed = new Set<string>();
      let blocked: string | undefined;
      for (const h of hops) {
        const id = lower(h.resourceId);
        const v = vmVnet.get(id) ?? (id.includes("/virtualnetworks/") ? vnetOf(id) : undefined) ??
          [...topology.vnets.values()].find((x) => x.nics.some((n) => lower(n.id) === id))?.id;
        if (v) {
          crossed.add(lower(v));
          if (h.issues?.length) blocked = lower(v);
        }
      }
      onPath(crossed, blocked);
    } catch (e) {
      setError((e as Error).message);
      onPath(new Set());
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="connectivity" aria-label="Connectivity check">
      <form onSubmit={run}>
        <label>
          From VM{" "}
          <select name="source" value={source} onChange={(e) => setSource((e.target as HTMLSelectElement).value)} required>
            <option value="">choose</option>
            {topology.vms.map((vm) => (
              <option value={vm.id}>{vm.name}</option>
            ))}
          </select>
        </label>
        <label>
          To VM{" "}
          <select name="destination" value={dest} onChange={(e) => setDest((e.target as HTMLSelectElement).value)}>
            <option value="">(an address)</option>
            {topology.vms.map((vm) => (
              <option value={vm.id}>{vm.name}</option>
            ))}
          </select>
        </label>
        {!dest && (
          <label>
            or address <input name="address" value={address} onInput={(e) => setAddress((e.target as HTMLInputElement).value)} required={!dest} />
          </label>
        )}
        <label>
          Protocol{" "}
          <select name="protocol" value={protocol} onChange={(e) => setProtocol((e.target as HTMLSelectElement).value)}>
            <option>Tcp</option>
            <option>Icmp</option>
          </select>
        </label>
        {protocol !== "Icmp" && (
          <label>
            Port <input name="port" type="number" min={1} max={65535} value={port} onInput={(e) => setPort((e.target as HTMLInputElement).value)} />
          </label>
        )}
        <button type="submit" disabled={busy}>
          {busy ? "Checking…" : "Check"}
        </button>
      </form>
      {error && <p role="alert">{error}</p>}
      {result && (
        <div class="hops" aria-live="polite">
          <p class={`status ${lower(result.status)}`} data-status={result.status}>
            {result.status}
          </p>
          {result.probes && <p class="probes">Live probe: {result.probes}</p>}
          <ol class="hop-path">
            {result.hops.map((h) => (
              <li class={`hop${h.issues?.length ? " blocking" : ""}`} data-type={h.type}>
                <strong>{h.type}</strong> {h.address} {h.resourceId ? <span class="resource">{nameOf(h.resourceId)}</span> : null}
                {(h.issues ?? []).map((i) => (
                  <div class="issue" role="note">
                    {i.severity} · {i.type} ({i.origin})
                    <dl>
                      {context(i).map(([k, v]) => (
                        <>
                          <dt>{k}</dt>
                          <dd class={k === "RuleName" || k === "RouteName" ? "culprit" : undefined}>{k === "NetworkSecurityGroup" ? nameOf(v) : v}</dd>
                        </>
                      ))}
                    </dl>
                  </div>
                ))}
              </li>
            ))}
          </ol>
        </div>
      )}
    </section>
  );
}
