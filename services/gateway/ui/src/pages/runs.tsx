import { useState } from 'react';
import type { Run } from '../api.js';
import { ErrorBox, Loading, link, useApi, when } from '../ui.js';
import { RunLog } from './node.js';

export function RunsPage() {
  const runs = useApi<{ runs: Run[] }>(['runs', 'all'], '/runs?all=true&limit=1000');
  const [open, setOpen] = useState<number | null>(null);
  return (
    <>
      <h1>Runs</h1>
      {runs.isPending && <Loading what="runs" />}
      <ErrorBox error={runs.error} />
      {open !== null && <RunLog id={open} />}
      {runs.data && (
        <table>
          <thead>
            <tr>
              <th scope="col">run</th>
              <th scope="col">role</th>
              <th scope="col">node</th>
              <th scope="col">lane</th>
              <th scope="col">state</th>
              <th scope="col">reason</th>
              <th scope="col">started</th>
              <th scope="col">log</th>
            </tr>
          </thead>
          <tbody>
            {runs.data.runs.map((r) => (
              <tr key={r.id} data-run={r.id}>
                <td>{r.id}</td>
                <td>{r.role}</td>
                <td>
                  <a href={link(`/nodes/${r.nodeId}`)}>{r.nodeId}</a>
                </td>
                <td>{r.lane}</td>
                <td>{r.state}</td>
                <td>{r.reason}</td>
                <td>{when(r.createdAt)}</td>
                <td>
                  <button type="button" className="link" onClick={() => setOpen(r.noderoleId)}>
                    show
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </>
  );
}
