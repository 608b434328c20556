// The map: VNets as boxes (address space, region, gateways, appliances, load balancers), one line
// per peered pair coloured by its state, dashed when global, with the links' flags and sync
// level beside it. Every box and line is focusable and opens its details with Enter.

import { useEffect, useMemo, useRef } from "preact/hooks";
import { select } from "d3-selection";
import { zoom, zoomIdentity, type ZoomBehavior } from "d3-zoom";
import { edges, edgeState, lower, nameOf, type Edge, type Link, type Topology } from "./model";
import { layout, NODE_H, NODE_W } from "./layout";

/** Lines with a visible label of state and flags (beyond, the label is in the details). */
const LABELS_UP_TO = 150;

export type Selection = { kind: "vnet"; id: string } | { kind: "edge"; key: string } | null;

interface Props {
  topology: Topology;
  selected: Selection;
  onSelect: (s: Selection) => void;
  /** VNets on a checked path, and the one where it was blocked. */
  path: Set<string>;
  blocked?: string;
}

function flags(l?: Link): string {
  if (!l) return "—";
  const f: string[] = [];
  if (!l.allowVirtualNetworkAccess) f.push("no-access");
  if (l.allowForwardedTraffic) f.push("fwd");
  if (l.allowGatewayTransit) f.push("gw-transit");
  if (l.useRemoteGateways) f.push("remote-gw");
  if (l.sync && l.sync !== "FullyInSync") f.push(l.sync);
  return f.join(" ");
}

/** The words on a line: its state, and each link's flags when either has any. */
function shownOn(e: Edge, state: string): string {
  const [a, b] = [flags(e.ab), flags(e.ba)];
  return a || b ? `${state} · ${a || "·"} / ${b || "·"}` : state;
}

export function describeEdge(e: Edge): string {
  const side = (l: Link | undefined, from: string, to: string) =>
    l ? `${nameOf(from)} to ${nameOf(to)} ${l.state}, ${l.sync || "sync unknown"}${flags(l) ? `, ${flags(l)}` : ""}` : `no link from ${nameOf(from)}`;
  return `Peering ${nameOf(e.a)} – ${nameOf(e.b)}: ${edgeState(e)}, ${e.global ? "global" : "regional"}; ${side(e.ab, e.a, e.b)}; ${side(e.ba, e.b, e.a)}`;
}

const activate = (f: () => void) => (ev: KeyboardEvent) => {
  if (ev.key === "Enter" || ev.key === " ") {
    ev.preventDefault();
    f();
  }
};

export function NetworkMap({ topology, selected, onSelect, path, blocked }: Props) {
  const svg = useRef<SVGSVGElement>(null);
  const view = useRef<SVGGElement>(null);
  const behaviour = useRef<ZoomBehavior<SVGSVGElement, unknown> | null>(null);
  const all = useMemo(() => edges(topology), [topology]);
  const placed = useMemo(() => {
    const ids = new Set<string>(topology.vnets.keys());
    for (const e of all) {
      ids.add(e.a);
      ids.add(e.b);
    }
    return layout([...ids], all.map((e) => [e.a, e.b] as [string, string]));
  }, [topology, all]);

  const fit = () => {
    const s = svg.current;
    if (!s || !behaviour.current) return;
    const { width, height } = s.getBoundingClientRect();
    const k = Math.min(1.2, width / placed.width, height / placed.height);
    const t = zoomIdentity.translate((width - placed.width * k) / 2, (height - placed.height * k) / 2).scale(k);
    select(s).call(behaviour.current.transform, t);
  };

  useEffect(() => {
    const s = svg.current;
    if (!s) return;
    const z = zoom<SVGSVGElement, unknown>()
      .scaleExtent([0.02, 4])
      .on("zoom", (ev) => view.current?.setAttribute("transform", ev.transform.toString()));
    behaviour.current = z;
    select(s).call(z).on("dblclick.zoom", null);
    return () => select(s).on(".zoom", null);
  }, []);
  // A new layout (VNets came or went) is fitted to the screen; a change of state keeps the view.
  const shape = `${placed.width}x${placed.height}:${placed.at.size}`;
  useEffect(fit, [shape]);
  useEffect(() => {
    performance.mark("tessera:drawn");
  }, [topology]);
  // On a large map the lines' labels are too small to read at first: they are left to each
  // line's accessible name and details (and the tooltip of the selected one).
  const labels = all.length <= LABELS_UP_TO;
  const by = (k: number) => svg.current && behaviour.current && select(svg.current).call(behaviour.current.scaleBy, k);

  return (
    <div class="map-wrap">
      <div class="map-tools" role="toolbar" aria-label="Map view">
        <button type="button" onClick={() => by(1.4)} aria-label="Zoom in">+</button>
        <button type="button" onClick={() => by(1 / 1.4)} aria-label="Zoom out">−</button>
        <button type="button" onClick={fit}>Fit</button>
        <span class="legend" aria-hidden="true">
          <span class="swatch connected" /> Connected <span class="swatch initiated" /> Initiated{" "}
          <span class="swatch disconnected" /> Disconnected <span class="swatch global" /> global
        </span>
      </div>
      <svg ref={svg} class="map" role="group" aria-label="Network map">
        <g ref={view}>
          <g class="edges">
            {all.map((e) => {
              const a = placed.at.get(e.a)!;
              const b = placed.at.get(e.b)!;
              const state = edgeState(e);
              const on = selected?.kind === "edge" && selected.key === e.key;
              const shown = shownOn(e, state);
              // The accessible name starts with the words shown (WCAG 2.5.3, label in name).
              const name = labels || on ? `${shown}: ${describeEdge(e)}` : describeEdge(e);
              return (
                <g
                  key={e.key}
                  class={`edge ${state.toLowerCase()}${e.global ? " global" : ""}${on ? " selected" : ""}`}
                  data-a={nameOf(e.a)}
                  data-b={nameOf(e.b)}
                  data-state={state}
                  role="button"
                  tabindex={0}
                  aria-label={name}
                  onClick={() => onSelect({ kind: "edge", key: e.key })}
                  onKeyDown={activate(() => onSelect({ kind: "edge", key: e.key }))}
                >
                  {(labels || on) && <title>{describeEdge(e)}</title>}
                  {labels && <line class="hit" x1={a.x} y1={a.y} x2={b.x} y2={b.y} />}
                  <line class="stroke" x1={a.x} y1={a.y} x2={b.x} y2={b.y} />
                  {(labels || on) && (
                    <text x={(a.x + b.x) / 2} y={(a.y + b.y) / 2 - 4} class="flags">
                      {shown}
                    </text>
                  )}
                </g>
              );
            })}
          </g>
          <g class="nodes">
            {[...placed.at].map(([id, p]) => {
              const v = topology.vnets.get(id);
              const name = v?.name ?? nameOf(id);
              const appliances = v?.nics.filter((n) => n.forwarding).length ?? 0;
              const cls = `vnet${v ? "" : " unknown"}${path.has(id) ? " on-path" : ""}${blocked === id ? " blocked" : ""}${
                selected?.kind === "vnet" && selected.id === id ? " selected" : ""
              }`;
              const badges = `${v?.gateways.length ? " · GW" : ""}${appliances ? ` · NVA×${appliances}` : ""}${
                v?.balancers.length ? ` · LB×${v.balancers.length}` : ""
              }`;
              const space = v ? v.space.join(" ") : "—";
              const region = v ? lower(v.location) : "";
              // The accessible name starts with the words shown (WCAG 2.5.3), then says them out.
              const label = v
                ? `${name} ${space} ${region}${badges}: VNet${v.gateways.length ? " with a gateway" : ""}${
                    appliances ? `, ${appliances} appliance${appliances > 1 ? "s" : ""}` : ""
                  }${v.balancers.length ? `, ${v.balancers.length} load balancer(s)` : ""}`
                : `${name} —: VNet not on the map (you may not read it, or its subscription is not shown)`;
              return (
                <g
                  key={id}
                  class={cls}
                  data-name={name}
                  transform={`translate(${p.x - NODE_W / 2},${p.y - NODE_H / 2})`}
                  role="button"
                  tabindex={0}
                  aria-label={label}
                  onClick={() => v && onSelect({ kind: "vnet", id })}
                  onKeyDown={activate(() => v && onSelect({ kind: "vnet", id }))}
                >
                  <rect width={NODE_W} height={NODE_H} rx={8} />
                  <text x={8} y={18} class="name">{name}</text>{" "}
                  <text x={8} y={33} class="space">{space}</text>{" "}
                  <text x={8} y={47} class="region">
                    {region}
                    {badges}
                  </text>
                </g>
              );
            })}
          </g>
        </g>
      </svg>
    </div>
  );
}
