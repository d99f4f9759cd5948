import { useMutation, useQueryClient } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { api, type Deployment } from '../api.js';
import { ErrorBox, Loading, link, MutationButton, Section, StateBadge, useApi, useCanWrite } from '../ui.js';

export function DeploymentActions({ d, onDeleted }: { d: Deployment; onDeleted?: () => void }) {
  const qc = useQueryClient();
  const act = useMutation({
    mutationFn: (a: 'propose' | 'delete') =>
      a === 'delete' ? api('DELETE', `/deployments/${d.id}`) : api('PUT', `/deployments/${d.id}/${a}`),
    onSuccess: (_r, a) => {
      void qc.invalidateQueries({ queryKey: ['deployments'] });
      void qc.invalidateQueries({ queryKey: ['deployment', d.id] });
      if (a === 'delete') onDeleted?.();
    },
  });
  return (
    <span className="actions">
      {d.state === 'committed' && (
        <MutationButton
          onClick={() => act.mutate('propose')}
          busy={act.isPending}
          label={`propose ${d.name}`}
        >
          Propose
        </MutationButton>
      )}
      {!d.system && (
        <MutationButton
          danger
          onClick={() => {
            if (confirm(`Delete deployment ${d.name}?`)) act.mutate('delete');
          }}
          busy={act.isPending}
          label={`delete ${d.name}`}
        >
          Delete
        </MutationButton>
      )}
      <ErrorBox error={act.error} />
    </span>
  );
}

function Tree({ all, parent }: { all: Deployment[]; parent: number | null }) {
  const children = all.filter((d) => d.parentId === parent);
  if (children.length === 0) return null;
  return (
    <ul className="tree">
      {children.map((d) => (
        <li key={d.id} data-deployment={d.name}>
          <a href={link(`/deployments/${d.id}`)}>{d.name}</a> <StateBadge state={d.state} />{' '}
          {d.description && <span className="muted">{d.description}</span>} <DeploymentActions d={d} />
          <Tree all={all} parent={d.id} />
        </li>
      ))}
    </ul>
  );
}

export function DeploymentsPage() {
  const qc = useQueryClient();
  const canWrite = useCanWrite();
  const deployments = useApi<{ deployments: Deployment[] }>(['deployments'], '/deployments');
  const [name, setName] = useState('');
  const [parent, setParent] = useState('');
  const create = useMutation({
    mutationFn: () =>
      api<Deployment>('POST', '/deployments', { name, ...(parent ? { parent: Number(parent) } : {}) }),
    onSuccess: (d) => {
      setName('');
      void qc.invalidateQueries({ queryKey: ['deployments'] });
      location.hash = `#/deployments/${d.id}`;
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    create.mutate();
  };
  const all = deployments.data?.deployments ?? [];
  return (
    <>
      <h1>Deployments</h1>
      <Section title="New deployment">
        <form className="inline" onSubmit={submit} aria-label="New deployment">
          <label>
            Name{' '}
            <input
              value={name}
              onChange={(e) => setName(e.target.value)}
              disabled={!canWrite}
              data-mutation=""
              required
            />
          </label>
          <label>
            Parent{' '}
            <select
              value={parent}
              onChange={(e) => setParent(e.target.value)}
              disabled={!canWrite}
              data-mutation=""
            >
              <option value="">system (default)</option>
              {all.map((d) => (
                <option key={d.id} value={d.id}>
                  {d.name}
                </option>
              ))}
            </select>
          </label>
          <MutationButton type="submit" onClick={() => undefined} busy={create.isPending}>
            Create
          </MutationButton>
        </form>
        <ErrorBox error={create.error} />
      </Section>
      <Section title="Tree">
        {deployments.isPending ? <Loading what="deployments" /> : <Tree all={all} parent={null} />}
        <ErrorBox error={deployments.error} />
      </Section>
    </>
  );
}
