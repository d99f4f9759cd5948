import { useDeferredValue, useMemo, useState } from 'react';
import type { Node } from '../api.js';
import { states } from '../api.js';
import { ErrorBox, Loading, link, StateBadge, useApi, YesNo } from '../ui.js';

const pageSize = 100;

export function NodesPage() {
  const nodes = useApi<{ nodes: Node[] }>(['nodes'], '/nodes');
  const [search, setSearch] = useState('');
  const [state, setState] = useState('');
  const [alive, setAlive] = useState('');
  const [shown, setShown] = useState(pageSize);
  const q = useDeferredValue(search.trim().toLowerCase());
  const rows = useMemo(
    () =>
      (nodes.data?.nodes ?? []).filter(
        (n) =>
          (!q || n.name.includes(q) || n.bootenv.includes(q) || n.deployment.includes(q)) &&
          (!state || n.state === state) &&
          (!alive || String(n.alive) === alive),
      ),
    [nodes.data, q, state, alive],
  );
  return (
    <>
      <h1>Nodes</h1>
      <div className="filters">
        <label>
          Search{' '}
          <input
            type="search"
            value={search}
            onChange={(e) => setSearch(e.target.value)}
            placeholder="name, bootenv, deployment"
          />
        </label>
        <label>
          State{' '}
          <select value={state} onChange={(e) => setState(e.target.value)}>
            <option value="">any</option>
            {states.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label>
          Alive{' '}
          <select value={alive} onChange={(e) => setAlive(e.target.value)}>
            <option value="">any</option>
            <option value="true">alive</option>
            <option value="false">dead</option>
          </select>
        </label>
        <span className="muted" aria-live="polite">
          {rows.length} of {nodes.data?.nodes.length ?? 0}
        </span>
      </div>
      {nodes.isPending && <Loading what="nodes" />}
      <ErrorBox error={nodes.error} />
      {nodes.data && (
        <table className="nodes">
          <thead>
            <tr>
              <th scope="col">name</th>
              <th scope="col">state</th>
              <th scope="col">alive</th>
              <th scope="col">available</th>
              <th scope="col">bootenv</th>
              <th scope="col">deployment</th>
            </tr>
          </thead>
          <tbody>
            {rows.slice(0, shown).map((n) => (
              <tr
                key={n.id}
                data-node={n.name}
                data-available={String(n.available)}
                data-alive={String(n.alive)}
              >
                <td>
                  <a href={link(`/nodes/${n.id}`)}>{n.name}</a>
                  {n.admin && <span className="badge">admin</span>}
                  {n.system && <span className="badge">system</span>}
                </td>
                <td data-state={n.state}>
                  <StateBadge state={n.state} />
                </td>
                <td>
                  <YesNo value={n.alive} yes="alive" no="dead" />
                </td>
                <td>
                  <YesNo value={n.available} yes="available" no="unavailable" />
                </td>
                <td>{n.bootenv}</td>
                <td>{n.deployment}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {rows.length > shown && (
        <button type="button" onClick={() => setShown(shown + pageSize)}>
          Show {Math.min(pageSize, rows.length - shown)} more
        </button>
      )}
    </>
  );
}
