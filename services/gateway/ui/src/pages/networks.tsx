import { useState } from 'react';
import type { Allocation, Network } from '../api.js';
import { ErrorBox, Loading, link, Section, useApi } from '../ui.js';

function Allocations({ network }: { network: string }) {
  const a = useApi<{ allocations: Allocation[] }>(
    ['allocations', network],
    `/networks/${encodeURIComponent(network)}/allocations`,
  );
  if (!a.data) return <Loading what="allocations" />;
  if (a.data.allocations.length === 0) return <p className="muted">No allocations.</p>;
  return (
    <table>
      <thead>
        <tr>
          <th scope="col">address</th>
          <th scope="col">node</th>
          <th scope="col">range</th>
        </tr>
      </thead>
      <tbody>
        {a.data.allocations.map((x) => (
          <tr key={x.id}>
            <td>
              <code>{x.address}</code>
            </td>
            <td>
              <a href={link(`/nodes/${x.nodeId}`)}>{x.node}</a>
            </td>
            <td>{x.range}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function NetworksPage() {
  const nets = useApi<{ networks: Network[] }>(['networks'], '/networks');
  const routers = useApi<{ routers: { id: number; network: string; address: string; pref: number }[] }>(
    ['networks', 'routers'],
    '/network_routers',
  );
  const [open, setOpen] = useState<string | null>(null);
  return (
    <>
      <h1>Networks</h1>
      {nets.isPending && <Loading what="networks" />}
      <ErrorBox error={nets.error} />
      {nets.data?.networks.length === 0 && <p className="muted">No networks yet.</p>}
      {nets.data?.networks.map((n) => (
        <Section key={n.id} title={`${n.name} (${n.category})`}>
          <p>
            {n.subnets.map((s) => (
              <code key={s}>{s} </code>
            ))}
            <span className="muted">
              {' '}
              conduit {n.conduit}, vlan {n.vlan}
              {n.description ? ` — ${n.description}` : ''}
            </span>
          </p>
          <h3>Ranges</h3>
          <table>
            <thead>
              <tr>
                <th scope="col">name</th>
                <th scope="col">family</th>
                <th scope="col">first</th>
                <th scope="col">last</th>
              </tr>
            </thead>
            <tbody>
              {n.ranges.map((r) => (
                <tr key={r.id}>
                  <td>{r.name}</td>
                  <td>{r.family}</td>
                  <td>
                    <code>{r.first}</code>
                  </td>
                  <td>
                    <code>{r.last}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <h3>Routers</h3>
          <ul>
            {(routers.data?.routers ?? [])
              .filter((r) => r.network === n.name)
              .map((r) => (
                <li key={r.id}>
                  <code>{r.address}</code> pref {r.pref}
                </li>
              ))}
          </ul>
          <button
            type="button"
            onClick={() => setOpen(open === n.name ? null : n.name)}
            aria-expanded={open === n.name}
          >
            {open === n.name ? 'Hide allocations' : 'Show allocations'}
          </button>
          {open === n.name && <Allocations network={n.name} />}
        </Section>
      ))}
    </>
  );
}
