// Where each VNet goes: every group of VNets peered together is laid out around its most
// connected VNet (rings by hops from it: a hub and its spokes make a wheel), and the groups
// side by side. Linear in VNets and links, so a hub with a thousand spokes is placed at once.

export interface Point {
  x: number;
  y: number;
}

export const NODE_W = 150;
export const NODE_H = 54;
const GAP = 60;

export function layout(nodes: string[], pairs: [string, string][]): { at: Map<string, Point>; width: number; height: number } {
  const next = new Map<string, string[]>(nodes.map((n) => [n, []]));
  for (const [a, b] of pairs) {
    next.get(a)?.push(b);
    next.get(b)?.push(a);
  }
  const at = new Map<string, Point>();
  const seen = new Set<string>();
  const order = [...nodes].sort((a, b) => (next.get(b)?.length ?? 0) - (next.get(a)?.length ?? 0) || a.localeCompare(b));
  let x0 = 0;
  let rowY = 0;
  let rowH = 0;
  let width = 0;
  const maxRow = 2400;
  for (const start of order) {
    if (seen.has(start)) continue;
    // Rings by breadth-first distance from the group's most connected VNet.
    const rings: string[][] = [[start]];
    seen.add(start);
    for (;;) {
      const ring: string[] = [];
      for (const n of rings[rings.length - 1]) {
        for (const m of (next.get(n) ?? []).slice().sort()) {
          if (!seen.has(m)) {
            seen.add(m);
            ring.push(m);
          }
        }
      }
      if (!ring.length) break;
      rings.push(ring);
    }
    const place = new Map<string, Point>();
    let radius = 0;
    rings.forEach((ring, r) => {
      if (r === 0) {
        place.set(ring[0], { x: 0, y: 0 });
        return;
      }
      // A ring too long for one circle goes on as circles further out, as many VNets on each
      // as fit side by side.
      let i = 0;
      radius += Math.max(NODE_H * 2.6, NODE_W * 1.3);
      for (let turn = 0; i < ring.length; turn++) {
        const fit = Math.max(6, Math.floor((2 * Math.PI * radius) / (NODE_W * 0.8)));
        const here = ring.slice(i, i + fit);
        here.forEach((n, k) => {
          const angle = (2 * Math.PI * (k + (turn % 2) * 0.5)) / here.length - Math.PI / 2;
          place.set(n, { x: radius * Math.cos(angle), y: radius * Math.sin(angle) });
        });
        i += here.length;
        if (i < ring.length) radius += NODE_H * 1.5;
      }
    });
    const size = 2 * radius + NODE_W + GAP;
    if (x0 > 0 && x0 + size > maxRow) {
      x0 = 0;
      rowY += rowH;
      rowH = 0;
    }
    const cx = x0 + size / 2;
    const cy = rowY + size / 2;
    for (const [n, p] of place) at.set(n, { x: cx + p.x, y: cy + p.y });
    x0 += size;
    rowH = Math.max(rowH, size);
    width = Math.max(width, x0);
  }
  return { at, width: Math.max(width, NODE_W + GAP), height: Math.max(rowY + rowH, NODE_H + GAP) };
}
