import { useQuery } from '@tanstack/react-query';
import type { Health, Node, Run } from '../api.js';
import { states } from '../api.js';
import { ErrorBox, Loading, link, Section, StateBadge, useApi, when } from '../ui.js';

/** Health and anneal answer 503 / 409 / 202 with a body worth showing: read it whatever the status. */
async function anyStatus<T>(path: string): Promise<T> {
  const r = await fetch(`/api/v2${path}`, {
    headers: { authorization: `Bearer ${sessionStorage.getItem('crowbar.token') ?? ''}` },
  });
  return (await r.json()) as T;
}

export function OverviewPage() {
  const health = useQuery({ queryKey: ['health'], queryFn: () => anyStatus<Health>('/health') });
  const anneal = useQuery({
    queryKey: ['anneal'],
    queryFn: () => anyStatus<{ message: string; counts: Record<string, number> }>('/anneal'),
  });
  const nodes = useApi<{ nodes: Node[] }>(['nodes'], '/nodes');
  const runs = useApi<{ runs: Run[] }>(['runs', 'active'], '/runs');
  const perState = new Map<string, number>();
  for (const n of nodes.data?.nodes ?? [])
    perState.set(n.state ?? 'unknown', (perState.get(n.state ?? 'unknown') ?? 0) + 1);
  return (
    <>
      <h1>Overview</h1>
      <div className="grid">
        <Section title="Services">
          {health.isPending ? (
            <Loading what="health" />
          ) : (
            <>
              <p>
                <strong>
                  {health.data?.up ?? 0} of {health.data?.total ?? 0}
                </strong>{' '}
                services up
              </p>
              <table>
                <thead>
                  <tr>
                    <th scope="col">service</th>
                    <th scope="col">status</th>
                    <th scope="col">version</th>
                  </tr>
                </thead>
                <tbody>
                  {health.data?.services.map((s) => (
                    <tr key={s.service}>
                      <td>{s.service}</td>
                      <td>
                        <span className={`badge ${s.status === 'up' ? 'ok' : 'bad'}`}>{s.status}</span>
                        {s.error && <span className="muted"> {s.error}</span>}
                      </td>
                      <td>{s.version ?? ''}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </>
          )}
          <ErrorBox error={health.error} />
        </Section>
        <Section title="Nodes per state">
          {nodes.isPending ? (
            <Loading what="nodes" />
          ) : (
            <ul className="counts">
              {[...states, 'unknown'].map((s) =>
                perState.get(s) ? (
                  <li key={s}>
                    <StateBadge state={s} /> {perState.get(s)}
                  </li>
                ) : null,
              )}
              <li>
                <a href={link('/nodes')}>{nodes.data?.nodes.length ?? 0} nodes in all</a>
              </li>
            </ul>
          )}
          <ErrorBox error={nodes.error} />
        </Section>
        <Section title="Anneal">
          {anneal.data ? (
            <>
              <p>
                Status: <strong data-anneal={anneal.data.message}>{anneal.data.message}</strong>
              </p>
              <ul className="counts">
                {Object.entries(anneal.data.counts).map(([s, n]) => (
                  <li key={s}>
                    <StateBadge state={s} /> {n}
                  </li>
                ))}
              </ul>
            </>
          ) : (
            <Loading what="anneal status" />
          )}
        </Section>
        <Section title="Runs in flight">
          {runs.data && runs.data.runs.length === 0 && <p className="muted">Nothing running.</p>}
          {runs.data && runs.data.runs.length > 0 && (
            <table>
              <thead>
                <tr>
                  <th scope="col">run</th>
                  <th scope="col">role</th>
                  <th scope="col">node</th>
                  <th scope="col">state</th>
                  <th scope="col">since</th>
                </tr>
              </thead>
              <tbody>
                {runs.data.runs.map((r) => (
                  <tr key={r.id}>
                    <td>{r.id}</td>
                    <td>{r.role}</td>
                    <td>
                      <a href={link(`/nodes/${r.nodeId}`)}>{r.nodeId}</a>
                    </td>
                    <td>{r.state}</td>
                    <td>{when(r.createdAt)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          <ErrorBox error={runs.error} />
        </Section>
      </div>
    </>
  );
}
