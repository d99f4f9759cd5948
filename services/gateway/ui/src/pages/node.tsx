import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { type Allocation, api, type NodeDetail, type Noderole, type Run } from '../api.js';
import { JsonEditor } from '../json-editor.js';
import { ErrorBox, Loading, link, MutationButton, Section, StateBadge, useApi, when, YesNo } from '../ui.js';

interface BootEvent {
  id: number;
  at: string;
  file: string;
  transport: 'http' | 'tftp';
  client: string;
  bootenv: string | null;
  ok: boolean;
  error: string | null;
}
interface Lease {
  address: string;
  mac: string;
  state: string;
  expiresAt?: string;
  hostname?: string | null;
}
interface ProbeHealth {
  verdict: string;
  reason: string;
  lastProbeAt: string | null;
  history: {
    at: string;
    ok: boolean;
    stage: string;
    reason: string;
    trigger: string;
    address: string | null;
  }[];
}

/** PostgreSQL's text timestamps and ISO ones, as milliseconds, so the timeline sorts them together. */
const stamp = (t: string) => Date.parse(t.replace(' ', 'T').replace(/\+00$/, 'Z')) || 0;

export function NodePage({ id }: { id: string }) {
  const qc = useQueryClient();
  const node = useApi<NodeDetail>(['node', Number(id)], `/nodes/${id}`);
  const noderoles = useApi<{ noderoles: Noderole[] }>(['noderoles', 'node', id], `/nodes/${id}/node_roles`);
  const addresses = useApi<{ allocations: Allocation[] }>(
    ['allocations', 'node', id],
    `/nodes/${id}/addresses`,
  );
  const leases = useApi<{ leases: Lease[] }>(['dhcp', 'leases', id], `/dhcp/leases?node=${id}`);
  const boot = useApi<BootEvent[]>(['boot_events', id], `/nodes/${id}/boot_events`);
  const probe = useApi<ProbeHealth>(['probe', id], `/nodes/${id}/health`);
  const runs = useApi<{ runs: Run[] }>(['runs', 'all'], '/runs?all=true&limit=1000');
  const [open, setOpen] = useState<number | null>(null);
  const setAvailable = useMutation({
    mutationFn: (available: boolean) => api('PUT', `/nodes/${id}`, { available }),
    onSuccess: () => qc.invalidateQueries({ queryKey: ['node', Number(id)] }),
  });
  const retry = useMutation({
    mutationFn: (nr: number) => api('PUT', `/node_roles/${nr}/retry`),
  });
  if (node.isPending) return <Loading what="node" />;
  if (!node.data) return <ErrorBox error={node.error} />;
  const n = node.data;
  const nodeRuns = (runs.data?.runs ?? []).filter((r) => r.nodeId === n.id);
  const timeline = [
    ...(boot.data ?? []).map((b) => ({
      at: b.at,
      what: `boot: ${b.transport} ${b.file}${b.bootenv ? ` (${b.bootenv})` : ''} from ${b.client}${b.ok ? '' : `: ${b.error ?? 'failed'}`}`,
    })),
    ...nodeRuns.map((r) => ({ at: r.createdAt, what: `run ${r.id}: ${r.role} ${r.state} (${r.reason})` })),
    ...(probe.data?.history ?? []).map((p) => ({
      at: p.at,
      what: `probe (${p.trigger}): ${p.ok ? 'ok' : `${p.stage} failed: ${p.reason}`}`,
    })),
    { at: n.createdAt, what: 'node created' },
  ].sort((a, b) => stamp(b.at) - stamp(a.at));
  return (
    <>
      <h1>{n.name}</h1>
      <p>
        <StateBadge state={n.state} /> <YesNo value={n.alive} yes="alive" no="dead" />{' '}
        <YesNo value={n.available} yes="available" no="unavailable" /> bootenv <strong>{n.bootenv}</strong>,
        deployment <a href={link(`/deployments/${n.deploymentId}`)}>{n.deployment}</a>
        {n.aliveReason && <span className="muted"> — {n.aliveReason}</span>}
      </p>
      <p>
        <MutationButton onClick={() => setAvailable.mutate(!n.available)} busy={setAvailable.isPending}>
          {n.available ? 'Make unavailable' : 'Make available'}
        </MutationButton>
      </p>
      <ErrorBox error={setAvailable.error ?? retry.error} />
      <div className="grid">
        <Section title="Noderoles">
          {noderoles.data && (
            <table>
              <thead>
                <tr>
                  <th scope="col">role</th>
                  <th scope="col">deployment</th>
                  <th scope="col">state</th>
                  <th scope="col">runs</th>
                  <th scope="col">run log</th>
                </tr>
              </thead>
              <tbody>
                {noderoles.data.noderoles.map((nr) => (
                  <tr key={nr.id} data-noderole={nr.role}>
                    <td>{nr.role}</td>
                    <td>{nr.deployment}</td>
                    <td data-state={nr.state}>
                      <StateBadge state={nr.state} />
                      {nr.state === 'error' && (
                        <MutationButton onClick={() => retry.mutate(nr.id)} label={`retry ${nr.role}`}>
                          retry
                        </MutationButton>
                      )}
                    </td>
                    <td>{nr.runCount}</td>
                    <td>
                      <button
                        type="button"
                        className="link"
                        onClick={() => setOpen(open === nr.id ? null : nr.id)}
                      >
                        {open === nr.id ? 'hide' : 'show'}
                      </button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {open !== null && <RunLog id={open} />}
        </Section>
        <Section title="Addresses">
          <ul>
            {addresses.data?.allocations.map((a) => (
              <li key={a.id}>
                <code>{a.address}</code>{' '}
                <span className="muted">
                  {a.network} / {a.range}
                </span>
              </li>
            ))}
          </ul>
          {addresses.data?.allocations.length === 0 && <p className="muted">No addresses.</p>}
          {addresses.error && <p className="muted">Addresses: {addresses.error.message}</p>}
          <h3>DHCP lease</h3>
          {leases.data?.leases.length ? (
            <ul>
              {leases.data.leases.map((l) => (
                <li key={`${l.address}-${l.mac}`}>
                  <code>{l.address}</code> {l.mac} {l.state} {l.expiresAt ? `until ${when(l.expiresAt)}` : ''}
                </li>
              ))}
            </ul>
          ) : (
            <p className="muted">{leases.error ? leases.error.message : 'No lease.'}</p>
          )}
        </Section>
        <Section title="Pinned host key">
          {n.sshHostKey ? <pre className="wrap">{n.sshHostKey}</pre> : <p className="muted">None pinned.</p>}
          <h3>Probes</h3>
          <p>{probe.data ? `${probe.data.verdict}: ${probe.data.reason}` : probe.error?.message}</p>
          {probe.data && probe.data.history.length > 0 && (
            <ul className="probes">
              {probe.data.history.slice(0, 10).map((p) => (
                <li key={p.at}>
                  <time>{when(p.at)}</time> {p.ok ? 'ok' : `${p.stage}: ${p.reason}`}
                  {p.address ? ` (${p.address})` : ''}
                </li>
              ))}
            </ul>
          )}
        </Section>
        <Section title="Facts">
          {Object.keys(n.discovery ?? {}).length ? (
            <pre>{JSON.stringify(n.discovery, null, 2)}</pre>
          ) : (
            <p className="muted">No discovery data.</p>
          )}
        </Section>
        <Section title="Timeline">
          <ol className="timeline">
            {timeline.map((t) => (
              <li key={`${t.at}-${t.what}`}>
                <time>{when(t.at)}</time> {t.what}
              </li>
            ))}
          </ol>
        </Section>
      </div>
    </>
  );
}

export function RunLog({ id }: { id: number }) {
  const qc = useQueryClient();
  const nr = useApi<Noderole>(['noderole', id], `/node_roles/${id}`);
  const propose = useMutation({
    mutationFn: () => api('PUT', `/node_roles/${id}/propose`),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['noderole', id] }),
  });
  if (!nr.data) return <Loading what="run log" />;
  return (
    <section className="runlog" aria-label={`run log of ${nr.data.role} on ${nr.data.node}`}>
      <h3>
        Run log: {nr.data.role} on {nr.data.node} <StateBadge state={nr.data.state} />
      </h3>
      <pre>{nr.data.runlog || '(empty)'}</pre>
      <JsonEditor
        label={`data of ${nr.data.role} on ${nr.data.node}`}
        value={nr.data.proposedData ?? {}}
        path={`/node_roles/${id}`}
        invalidate={['noderole', id]}
        locked={nr.data.state === 'proposed' ? undefined : 'Data is editable while the noderole is proposed.'}
      />
      {nr.data.state !== 'proposed' && (
        <MutationButton
          onClick={() => propose.mutate()}
          busy={propose.isPending}
          label={`propose ${nr.data.role}`}
        >
          Propose
        </MutationButton>
      )}
      <ErrorBox error={propose.error} />
    </section>
  );
}
