import { Graph as DagreGraph, layout } from '@dagrejs/dagre';
import { useMemo } from 'react';
import type { Graph } from './api.js';
import { states } from './api.js';

const W = 170;
const H = 44;

/** The noderole DAG laid out by dagre, coloured by state; states change live, the layout only with the shape. */
export function NoderoleGraph({ graph }: { graph: Graph }) {
  const shape = `${graph.vertices.map((v) => v.id).join(',')}|${graph.edges.map((e) => `${e.parent}-${e.child}`).join(',')}`;
  // biome-ignore lint/correctness/useExhaustiveDependencies: laid out again only when the shape changes
  const laid = useMemo(() => {
    const g = new DagreGraph();
    g.setGraph({ rankdir: 'LR', nodesep: 14, ranksep: 50, marginx: 10, marginy: 10 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const v of graph.vertices) g.setNode(String(v.id), { width: W, height: H });
    for (const e of graph.edges) g.setEdge(String(e.parent), String(e.child));
    layout(g);
    const pos = new Map<number, { x: number; y: number }>();
    for (const v of graph.vertices) {
      const n = g.node(String(v.id));
      pos.set(v.id, { x: n.x, y: n.y });
    }
    const label = g.graph();
    return { pos, width: label.width ?? 0, height: label.height ?? 0 };
  }, [shape]);
  if (graph.vertices.length === 0) return <p className="muted">No noderoles yet.</p>;
  return (
    <figure className="graph">
      <svg
        width={laid.width}
        height={laid.height}
        viewBox={`0 0 ${laid.width} ${laid.height}`}
        role="img"
        aria-label={`noderole graph: ${graph.vertices.length} noderoles`}
      >
        <defs>
          <marker
            id="arrow"
            viewBox="0 0 10 10"
            refX="10"
            refY="5"
            markerWidth="6"
            markerHeight="6"
            orient="auto"
          >
            <path d="M0,0 L10,5 L0,10 z" fill="#667" />
          </marker>
        </defs>
        {graph.edges.map((e) => {
          const a = laid.pos.get(e.parent);
          const b = laid.pos.get(e.child);
          if (!a || !b) return null;
          return (
            <line
              key={`${e.parent}-${e.child}`}
              x1={a.x + W / 2}
              y1={a.y}
              x2={b.x - W / 2}
              y2={b.y}
              stroke="#667"
              markerEnd="url(#arrow)"
            />
          );
        })}
        {graph.vertices.map((v) => {
          const p = laid.pos.get(v.id);
          if (!p) return null;
          return (
            <g key={v.id} className={`vertex state-${v.state}`} data-vertex={v.id} data-state={v.state}>
              <title>{`${v.role} on ${v.node}: ${v.state}`}</title>
              <rect x={p.x - W / 2} y={p.y - H / 2} width={W} height={H} rx="6" />
              <text x={p.x} y={p.y - 4} textAnchor="middle">
                {v.role}
              </text>
              <text x={p.x} y={p.y + 12} textAnchor="middle" className="sub">
                {v.node.split('.')[0]} · {v.state}
              </text>
            </g>
          );
        })}
      </svg>
      <figcaption className="legend">
        {states.map((s) => (
          <span key={s} className={`badge state-${s}`}>
            {s}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}
