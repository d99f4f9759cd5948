import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { type DragEvent, type FormEvent, useState } from 'react';
import {
  type ApiError,
  api,
  type Deployment,
  type DeploymentRole,
  type Graph,
  get,
  type Node,
  type Noderole,
  type Preview,
  type Role,
} from '../api.js';
import { NoderoleGraph } from '../graph.js';
import { JsonEditor } from '../json-editor.js';
import { ErrorBox, Loading, link, MutationButton, Section, StateBadge, useApi, useCanWrite } from '../ui.js';
import { DeploymentActions } from './deployments.js';
import { RunLog } from './node.js';

const dragType = 'application/x-crowbar-node';

function CommitDialog({ d, onClose }: { d: Deployment; onClose: () => void }) {
  const qc = useQueryClient();
  const [sure, setSure] = useState(false);
  const preview = useQuery<Preview, ApiError>({
    queryKey: ['preview', d.id],
    queryFn: () => get<Preview>(`/deployments/${d.id}/preview`),
    retry: false,
    staleTime: 0,
  });
  const commit = useMutation({
    mutationFn: () => api('PUT', `/deployments/${d.id}/commit`),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ['deployments'] });
      void qc.invalidateQueries({ queryKey: ['deployment', d.id] });
      onClose();
    },
  });
  const destructive = preview.data?.noderoles.filter((n) => n.destructive) ?? [];
  const noPreview = preview.error?.status === 404;
  return (
    <div className="backdrop">
      <div className="dialog" role="dialog" aria-modal="true" aria-labelledby="commit-title">
        <h2 id="commit-title">Commit {d.name}?</h2>
        {preview.isPending && <Loading what="what the commit starts" />}
        {noPreview && (
          <p className="muted">
            This gateway cannot preview a commit yet; committing starts every proposed noderole.
          </p>
        )}
        {preview.error && !noPreview && <ErrorBox error={preview.error} />}
        {preview.data && (
          <>
            <p>
              The commit starts <strong>{preview.data.noderoles.length}</strong> noderole
              {preview.data.noderoles.length === 1 ? '' : 's'} on {preview.data.nodes.length} node
              {preview.data.nodes.length === 1 ? '' : 's'}.
            </p>
            <table data-preview="">
              <thead>
                <tr>
                  <th scope="col">node</th>
                  <th scope="col">role</th>
                  <th scope="col">change</th>
                  <th scope="col">note</th>
                </tr>
              </thead>
              <tbody>
                {preview.data.noderoles.map((n) => (
                  <tr key={n.id} className={n.destructive ? 'destructive' : undefined}>
                    <td>{n.node}</td>
                    <td>{n.role}</td>
                    <td>
                      {n.from} → {n.to}
                    </td>
                    <td>{n.destructive && <strong className="bad-text">destructive</strong>}</td>
                  </tr>
                ))}
              </tbody>
            </table>
            {preview.data.bootenvChanges.length > 0 && (
              <>
                <h3>Bootenv changes (these nodes reboot)</h3>
                <ul>
                  {preview.data.bootenvChanges.map((b) => (
                    <li key={b.nodeId}>
                      {b.node}: {b.from} → {b.to}
                    </li>
                  ))}
                </ul>
              </>
            )}
            {destructive.length > 0 && (
              <label className="confirm">
                <input type="checkbox" checked={sure} onChange={(e) => setSure(e.target.checked)} /> I
                understand that {destructive.map((n) => `${n.role} on ${n.node}`).join(', ')} will run and may
                destroy data.
              </label>
            )}
          </>
        )}
        <ErrorBox error={commit.error} />
        <div className="actions">
          <MutationButton
            onClick={() => commit.mutate()}
            busy={commit.isPending || preview.isPending || (destructive.length > 0 && !sure)}
            label="confirm commit"
          >
            Commit
          </MutationButton>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
        </div>
      </div>
    </div>
  );
}

function Board({ d, droles, noderoles }: { d: Deployment; droles: DeploymentRole[]; noderoles: Noderole[] }) {
  const qc = useQueryClient();
  const canWrite = useCanWrite();
  const nodes = useApi<{ nodes: Node[] }>(['nodes'], '/nodes');
  const [over, setOver] = useState<string | null>(null);
  const [pickNode, setPickNode] = useState('');
  const [pickRole, setPickRole] = useState('');
  const [open, setOpen] = useState<number | null>(null);
  const bind = useMutation({
    mutationFn: (v: { node: number; role: string }) =>
      api<Noderole>('POST', '/node_roles', { node: v.node, role: v.role, deployment: d.id }),
    onSuccess: () => {
      void qc.invalidateQueries({ queryKey: ['noderoles'] });
      void qc.invalidateQueries({ queryKey: ['graph', d.id] });
    },
  });
  const remove = useMutation({
    mutationFn: (id: number) => api('DELETE', `/node_roles/${id}`),
    onSuccess: () => void qc.invalidateQueries({ queryKey: ['noderoles'] }),
  });
  const candidates = (nodes.data?.nodes ?? []).filter((n) => !n.system);
  const drop = (role: string) => (e: DragEvent) => {
    e.preventDefault();
    setOver(null);
    const id = Number(e.dataTransfer.getData(dragType));
    if (canWrite && id) bind.mutate({ node: id, role });
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (pickNode && pickRole) bind.mutate({ node: Number(pickNode), role: pickRole });
  };
  return (
    <>
      <Section title="Nodes">
        <p className="muted">Drag a node onto a role to propose a noderole, or use the form below.</p>
        <ul className="palette" aria-label="nodes to bind">
          {candidates.map((n) => (
            <li
              key={n.id}
              className="chip"
              draggable={canWrite}
              data-drag-node={n.name}
              aria-roledescription="draggable node"
              onDragStart={(e) => {
                e.dataTransfer.setData(dragType, String(n.id));
                e.dataTransfer.effectAllowed = 'copy';
              }}
            >
              {n.name} <StateBadge state={n.state} />
            </li>
          ))}
        </ul>
        <form className="inline" onSubmit={submit} aria-label="Bind a node to a role">
          <label>
            Node{' '}
            <select
              value={pickNode}
              onChange={(e) => setPickNode(e.target.value)}
              disabled={!canWrite}
              data-mutation=""
            >
              <option value="">choose…</option>
              {candidates.map((n) => (
                <option key={n.id} value={n.id}>
                  {n.name}
                </option>
              ))}
            </select>
          </label>
          <label>
            Role{' '}
            <select
              value={pickRole}
              onChange={(e) => setPickRole(e.target.value)}
              disabled={!canWrite}
              data-mutation=""
            >
              <option value="">choose…</option>
              {droles.map((r) => (
                <option key={r.id}>{r.role}</option>
              ))}
            </select>
          </label>
          <MutationButton
            type="submit"
            onClick={() => undefined}
            busy={bind.isPending || !pickNode || !pickRole}
          >
            Bind
          </MutationButton>
        </form>
        <ErrorBox error={bind.error ?? remove.error} />
      </Section>
      <Section title="Roles × nodes">
        {droles.length === 0 && <p className="muted">Add a role to this deployment first.</p>}
        <div className="board">
          {droles.map((r) => (
            <fieldset
              key={r.id}
              className={`column${over === r.role ? ' over' : ''}`}
              data-drop-role={r.role}
              onDragOver={(e) => {
                if (!canWrite) return;
                e.preventDefault();
                setOver(r.role);
              }}
              onDragLeave={() => setOver(null)}
              onDrop={drop(r.role)}
            >
              <legend>{r.role}</legend>
              <ul>
                {noderoles
                  .filter((nr) => nr.role === r.role)
                  .map((nr) => (
                    <li
                      key={nr.id}
                      className="card-nr"
                      data-noderole={`${nr.role}@${nr.node}`}
                      data-state={nr.state}
                    >
                      <a href={link(`/nodes/${nr.nodeId}`)}>{nr.node.split('.')[0]}</a>{' '}
                      <StateBadge state={nr.state} />{' '}
                      <button
                        type="button"
                        className="link"
                        onClick={() => setOpen(open === nr.id ? null : nr.id)}
                      >
                        log
                      </button>
                      {nr.state === 'proposed' && (
                        <MutationButton
                          onClick={() => remove.mutate(nr.id)}
                          label={`remove ${nr.role} from ${nr.node}`}
                        >
                          ×
                        </MutationButton>
                      )}
                    </li>
                  ))}
              </ul>
            </fieldset>
          ))}
        </div>
        {open !== null && <RunLog id={open} />}
      </Section>
      <Section title="Deployment-role data">
        {droles.map((r) => (
          <details key={r.id}>
            <summary>{r.role}</summary>
            <JsonEditor
              label={`data of ${r.role} in ${d.name}`}
              value={r.proposedData}
              path={`/deployment_roles/${r.id}`}
              invalidate={['deployment_roles', d.id]}
            />
          </details>
        ))}
      </Section>
    </>
  );
}

export function DeploymentPage({ id }: { id: string }) {
  const qc = useQueryClient();
  const canWrite = useCanWrite();
  const d = useApi<Deployment>(['deployment', Number(id)], `/deployments/${id}`);
  const droles = useApi<{ deployment_roles: DeploymentRole[] }>(
    ['deployment_roles', Number(id)],
    `/deployments/${id}/deployment_roles`,
  );
  const noderoles = useApi<{ noderoles: Noderole[] }>(
    ['noderoles', 'deployment', id],
    `/deployments/${id}/node_roles`,
  );
  const graph = useApi<Graph>(['graph', Number(id)], `/deployments/${id}/graph`);
  const roles = useApi<{ roles: Role[] }>(['roles'], '/roles');
  const [committing, setCommitting] = useState(false);
  const [role, setRole] = useState('');
  const addRole = useMutation({
    mutationFn: () => api('POST', '/deployment_roles', { deployment: Number(id), role }),
    onSuccess: () => {
      setRole('');
      void qc.invalidateQueries({ queryKey: ['deployment_roles', Number(id)] });
    },
  });
  if (d.isPending) return <Loading what="deployment" />;
  if (!d.data) return <ErrorBox error={d.error} />;
  const dep = d.data;
  const have = new Set((droles.data?.deployment_roles ?? []).map((r) => r.role));
  return (
    <>
      <h1>
        Deployment {dep.name} <StateBadge state={dep.state} />
      </h1>
      <p className="actions">
        <MutationButton onClick={() => setCommitting(true)}>Commit…</MutationButton>
        <DeploymentActions d={dep} onDeleted={() => (location.hash = '#/deployments')} />
        <a href={link('/deployments')}>all deployments</a>
      </p>
      {committing && <CommitDialog d={dep} onClose={() => setCommitting(false)} />}
      <Section title="Add a role">
        <form
          className="inline"
          aria-label="Add a role"
          onSubmit={(e) => {
            e.preventDefault();
            if (role) addRole.mutate();
          }}
        >
          <label>
            Role{' '}
            <select
              value={role}
              onChange={(e) => setRole(e.target.value)}
              disabled={!canWrite}
              data-mutation=""
            >
              <option value="">choose…</option>
              {(roles.data?.roles ?? [])
                .filter((r) => !have.has(r.name))
                .map((r) => (
                  <option key={r.id} value={r.name}>
                    {r.name} ({r.barclamp}
                    {r.flags.includes('destructive') ? ', destructive' : ''})
                  </option>
                ))}
            </select>
          </label>
          <MutationButton type="submit" onClick={() => undefined} busy={addRole.isPending || !role}>
            Add role
          </MutationButton>
        </form>
        <ErrorBox error={addRole.error} />
      </Section>
      {droles.data && noderoles.data && (
        <Board d={dep} droles={droles.data.deployment_roles} noderoles={noderoles.data.noderoles} />
      )}
      <Section title="Noderole graph">
        {graph.data ? <NoderoleGraph graph={graph.data} /> : <Loading what="graph" />}
      </Section>
    </>
  );
}
