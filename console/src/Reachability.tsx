// The reachability matrix as a heat map: a row per source VM, a column per destination, green
// where the flow arrives and red where it does not. A cell opens the connectivity check of its
// pair, which says why.

import { useEffect, useState } from "preact/hooks";
import { Api } from "./api";

interface Matrix {
  protocol: string;
  port: number;
  vms: { id: string; name: string }[];
  cells: { from: number; to: number; reachable: boolean }[];
}

interface Props {
  api: Api;
  /** Bumped on every change the caller may read. */
  revision: number;
  onExplain: (source: string, destination: string, protocol: string, port: number) => void;
}

export function Reachability({ api, revision, onExplain }: Props) {
  const [protocol, setProtocol] = useState("Tcp");
  const [port, setPort] = useState(22);
  const [m, setM] = useState<Matrix | null>(null);
  const [error, setError] = useState("");
  useEffect(() => {
    let stop = false;
    api
      .get<Matrix>(`/tessera/reachability?protocol=${protocol}&port=${port}`)
      .then((r) => !stop && (setM(r), setError("")), (e) => !stop && setError(e.message));
    return () => {
      stop = true;
    };
  }, [api, protocol, port, revision]);
  const reach = new Map<string, boolean>();
  for (const c of m?.cells ?? []) reach.set(`${c.from}:${c.to}`, c.reachable);
  return (
    <section class="reachability" aria-label="Reachability matrix">
      <form onSubmit={(e) => e.preventDefault()}>
        <label>
          Protocol{" "}
          <select value={protocol} onChange={(e) => setProtocol((e.target as HTMLSelectElement).value)}>
            <option>Tcp</option>
            <option>Udp</option>
            <option>Icmp</option>
          </select>
        </label>
        {protocol !== "Icmp" && (
          <label>
            Port{" "}
            <input type="number" min={1} max={65535} value={port} onChange={(e) => setPort(Number((e.target as HTMLInputElement).value) || 22)} />
          </label>
        )}
      </form>
      {error && <p role="alert">{error}</p>}
      {m && m.vms.length === 0 && <p>No virtual machines you may read.</p>}
      {m && m.vms.length > 0 && (
        <table class="heat">
          <caption>
            {m.protocol}
            {m.protocol === "Icmp" ? "" : ` port ${m.port}`}: rows reach columns (✓ arrives, ✗ does not)
          </caption>
          <thead>
            <tr>
              <th scope="col">from \ to</th>
              {m.vms.map((v) => (
                <th scope="col">{v.name}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {m.vms.map((from, i) => (
              <tr>
                <th scope="row">{from.name}</th>
                {m.vms.map((to, j) => {
                  if (i === j) return <td class="self" aria-label="itself">·</td>;
                  const ok = reach.get(`${i}:${j}`);
                  // Network Watcher's connectivity check has no UDP: such a cell only says.
                  if (m.protocol === "Udp")
                    return (
                      <td class={ok ? "yes" : "no"} data-from={from.name} data-to={to.name} aria-label={`${from.name} to ${to.name}: ${ok ? "reachable" : "unreachable"}`}>
                        {ok ? "✓" : "✗"}
                      </td>
                    );
                  return (
                    <td class={ok ? "yes" : "no"} data-from={from.name} data-to={to.name}>
                      <button
                        type="button"
                        aria-label={`${from.name} to ${to.name}: ${ok ? "reachable" : "unreachable"}; explain`}
                        onClick={() => onExplain(from.id, to.id, m.protocol, m.port)}
                      >
                        {ok ? "✓" : "✗"}
                      </button>
                    </td>
                  );
                })}
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
