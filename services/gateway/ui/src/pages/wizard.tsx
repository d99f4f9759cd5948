import { useQueryClient } from '@tanstack/react-query';
import { type FormEvent, type ReactNode, useState } from 'react';
import { ApiError, api, type Network, type Node } from '../api.js';
import { ErrorBox, link, MutationButton, Section, useApi } from '../ui.js';

/**
 * The install wizard (`npm start -- --wizard` leaves the admin network and admin node to it): the admin
 * network (CIDR, IPv6 prefix, ranges, router), the admin node (name, address), the DNS domain as the
 * services were configured with it; then a review of what will be created, then the calls. Each call is
 * skipped when what it creates is already there, so a wizard interrupted half-way can be run again.
 * The API checks every value; its messages are shown at the field they name.
 */

const ipv4 = (s: string): number | null => {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s);
  if (!m) return null;
  const parts = m.slice(1).map(Number);
  if (parts.some((p) => p > 255)) return null;
  return ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
};
const dotted = (n: number) => [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');

/** The shipped layout over a subnet, as network-ipam's bootstrap lays it (admin .10–.11, dhcp .21–.80, host .81–). */
export function defaultsFor(cidr: string) {
  const [addr, bits] = cidr.split('/');
  const a = ipv4(addr ?? '');
  const p = Number(bits);
  if (a === null || !Number.isInteger(p) || p < 8 || p > 24) return null;
  const mask = p === 0 ? 0 : (0xffffffff << (32 - p)) >>> 0;
  const base = (a & mask) >>> 0;
  const top = (base | (~mask >>> 0)) >>> 0;
  const at = (o: number) => `${dotted(base + o)}/${p}`;
  return {
    ranges: [
      { name: 'admin', first: at(10), last: at(11) },
      { name: 'dhcp', first: at(21), last: at(80) },
      { name: 'host', first: at(81), last: `${dotted(top - 1)}/${p}` },
    ],
    router: at(1),
    adminAddress: dotted(base + 10),
  };
}

type Step = 'network' | 'node' | 'review';
interface Problem {
  step: Step;
  field: string;
  message: string;
}

function Field(props: { id: string; label: string; children: ReactNode; problem: Problem | null }) {
  const mine = props.problem && props.problem.field === props.id;
  return (
    <div className={`field${mine ? ' invalid' : ''}`}>
      <label htmlFor={props.id}>{props.label}</label>
      {props.children}
      {mine && (
        <p className="error" role="alert" id={`${props.id}-error`}>
          {props.problem!.message}
        </p>
      )}
    </div>
  );
}

export function WizardPage() {
  const qc = useQueryClient();
  const dns = useApi<{ domain: string; servers: string[] }>(['dns', 'client'], '/dns/client');
  const domain = dns.data?.domain ?? 'crowbar.internal';
  const [step, setStep] = useState<Step>('network');
  const [cidr, setCidr] = useState('198.18.0.0/24');
  const [v6mode, setV6mode] = useState<'auto' | 'none' | 'value'>('auto');
  const [v6value, setV6value] = useState('');
  const [conduit, setConduit] = useState('1g0');
  const [ranges, setRanges] = useState(defaultsFor('198.18.0.0/24')!.ranges);
  const [router, setRouter] = useState(defaultsFor('198.18.0.0/24')!.router);
  const [nodeName, setNodeName] = useState('');
  const [address, setAddress] = useState('198.18.0.10');
  const [problem, setProblem] = useState<Problem | null>(null);
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState<string[]>([]);
  const name = nodeName || `admin.${domain}`;
  const v6prefix = v6mode === 'auto' ? 'auto' : v6mode === 'none' ? null : v6value;

  const onCidr = (v: string) => {
    setCidr(v);
    const d = defaultsFor(v);
    if (d) {
      setRanges(d.ranges);
      setRouter(d.router);
      setAddress(d.adminAddress);
    }
  };
  const setRange = (i: number, key: 'first' | 'last', v: string) =>
    setRanges(ranges.map((r, j) => (j === i ? { ...r, [key]: v } : r)));

  const networkBody = () => ({
    name: 'admin',
    description: 'Admin network (install wizard)',
    category: 'admin',
    group: 'internal',
    conduit,
    v6prefix,
    ranges,
    router: { address: router, pref: 10 },
  });

  /** The API's field (`ranges.1.first`, `v6prefix`, `name`) → the wizard's step and input. */
  const place = (err: unknown, where: 'network' | 'node'): Problem => {
    const message = err instanceof Error ? err.message : String(err);
    const f = err instanceof ApiError ? (err.field ?? '') : '';
    if (where === 'network') {
      const m = /^ranges\.(\d+)\.(first|last)/.exec(f);
      if (m) return { step: 'network', field: `range-${m[1]}-${m[2]}`, message };
      if (f.startsWith('router')) return { step: 'network', field: 'router', message };
      if (f === 'v6prefix') return { step: 'network', field: 'v6value', message };
      if (f === 'conduit') return { step: 'network', field: 'conduit', message };
      return { step: 'network', field: 'cidr', message };
    }
    if (f === 'name') return { step: 'node', field: 'node-name', message };
    return { step: 'node', field: 'node-address', message };
  };

  const create = async () => {
    setBusy(true);
    setProblem(null);
    const log: string[] = [];
    let stage: 'network' | 'node' = 'network';
    try {
      const nets = await api<{ networks: Network[] }>('GET', '/networks?category=admin');
      if (nets.networks.length === 0) {
        if (!defaultsFor(cidr))
          throw new ApiError(
            422,
            'the CIDR must be an IPv4 subnet from /8 to /24, such as 198.18.0.0/24',
            'cidr',
          );
        await api('POST', '/networks', networkBody());
        log.push('created the admin network');
      } else log.push(`the admin network ${nets.networks[0]!.name} was there already`);
      setDone([...log]);
      stage = 'node';
      const nodes = await api<{ nodes: Node[] }>('GET', '/nodes');
      let admin = nodes.nodes.find((n) => n.admin);
      if (!admin) {
        if (ipv4(address) === null)
          throw new ApiError(
            422,
            `the address must be an IPv4 address such as 198.18.0.10, not "${address}"`,
            'address',
          );
        admin = await api<Node>('POST', '/nodes', {
          name,
          admin: true,
          alive: true,
          available: true,
          bootenv: 'local',
          description: 'The Crowbar admin node (install wizard)',
          hint: { 'admin-v4addr': address },
        });
        log.push(`created the admin node ${admin.name}`);
      } else log.push(`the admin node ${admin.name} was there already`);
      const bound = await api<{ noderoles: { role: string }[] }>('GET', `/nodes/${admin.id}/node_roles`);
      const have = new Set(bound.noderoles.map((n) => n.role));
      for (const role of ['crowbar-admin-node', 'network-admin']) {
        if (have.has(role)) continue;
        await api('POST', '/node_roles', { node: admin.id, role, deployment: 'system' });
        log.push(`bound ${role} to ${admin.name}`);
      }
      // Committing the admin node applies inventory's admin-node rules; then the system deployment.
      await api('PUT', `/nodes/${admin.id}/commit`);
      await api('PUT', '/deployments/system/commit');
      log.push('committed the system deployment');
      setDone([...log]);
      await qc.invalidateQueries();
    } catch (err) {
      setDone([...log]);
      const p = place(err, stage);
      setProblem(p);
      setStep(p.step);
    } finally {
      setBusy(false);
    }
  };

  const next = (to: Step) => (e: FormEvent) => {
    e.preventDefault();
    setProblem(null);
    if (to === 'node' && !defaultsFor(cidr)) {
      setProblem({
        step: 'network',
        field: 'cidr',
        message: 'must be an IPv4 subnet from /8 to /24, such as 198.18.0.0/24',
      });
      return;
    }
    setStep(to);
  };
  const finished = done.includes('committed the system deployment');

  return (
    <>
      <h1>Install wizard</h1>
      <ol className="steps" aria-label="Steps">
        {(['network', 'node', 'review'] as Step[]).map((s) => (
          <li key={s} aria-current={step === s ? 'step' : undefined}>
            {s === 'network'
              ? '1. Admin network'
              : s === 'node'
                ? '2. Admin node and DNS'
                : '3. Review and create'}
          </li>
        ))}
      </ol>
      {step === 'network' && (
        <Section title="Admin network">
          <form onSubmit={next('node')} aria-label="Admin network" className="wizard">
            <Field id="cidr" label="IPv4 subnet (CIDR)" problem={problem}>
              <input id="cidr" value={cidr} onChange={(e) => onCidr(e.target.value)} required />
            </Field>
            <fieldset>
              <legend>IPv6 prefix</legend>
              {(['auto', 'none', 'value'] as const).map((m) => (
                <label key={m} className="radio">
                  <input type="radio" name="v6" checked={v6mode === m} onChange={() => setV6mode(m)} />{' '}
                  {m === 'auto' ? 'automatic (ULA)' : m === 'none' ? 'no IPv6' : 'this /64:'}
                </label>
              ))}
              <Field id="v6value" label="IPv6 prefix (four hextets)" problem={problem}>
                <input
                  id="v6value"
                  value={v6value}
                  onChange={(e) => setV6value(e.target.value)}
                  disabled={v6mode !== 'value'}
                  placeholder="fd12:3456:789a:1"
                />
              </Field>
            </fieldset>
            <Field id="conduit" label="Conduit" problem={problem}>
              <input id="conduit" value={conduit} onChange={(e) => setConduit(e.target.value)} required />
            </Field>
            <fieldset>
              <legend>Ranges</legend>
              {ranges.map((r, i) => (
                <div key={r.name} className="range">
                  <strong>{r.name}</strong>
                  <Field id={`range-${i}-first`} label={`${r.name} first`} problem={problem}>
                    <input
                      id={`range-${i}-first`}
                      value={r.first}
                      onChange={(e) => setRange(i, 'first', e.target.value)}
                    />
                  </Field>
                  <Field id={`range-${i}-last`} label={`${r.name} last`} problem={problem}>
                    <input
                      id={`range-${i}-last`}
                      value={r.last}
                      onChange={(e) => setRange(i, 'last', e.target.value)}
                    />
                  </Field>
                </div>
              ))}
            </fieldset>
            <Field id="router" label="Router" problem={problem}>
              <input id="router" value={router} onChange={(e) => setRouter(e.target.value)} />
            </Field>
            <button type="submit">Next</button>
          </form>
        </Section>
      )}
      {step === 'node' && (
        <Section title="Admin node and DNS">
          <form onSubmit={next('review')} aria-label="Admin node" className="wizard">
            <Field id="node-name" label="Admin node name (FQDN)" problem={problem}>
              <input id="node-name" value={name} onChange={(e) => setNodeName(e.target.value)} required />
            </Field>
            <Field id="node-address" label="Admin node address (IPv4, in the admin range)" problem={problem}>
              <input
                id="node-address"
                value={address}
                onChange={(e) => setAddress(e.target.value)}
                required
              />
            </Field>
            <p>
              DNS domain: <strong data-domain="">{domain}</strong>{' '}
              <span className="muted">
                (the services' <code>CROWBAR_DNS_DOMAIN</code>; new machines are named{' '}
                <code>d&lt;mac&gt;.{domain}</code>)
              </span>
            </p>
            <button type="button" onClick={() => setStep('network')}>
              Back
            </button>
            <button type="submit">Next</button>
          </form>
        </Section>
      )}
      {step === 'review' && (
        <Section title="Review and create">
          <p>Creating:</p>
          <ul data-review="">
            <li>
              the admin network <code>admin</code>: {cidr}, IPv6{' '}
              {v6mode === 'auto' ? 'automatic (ULA)' : v6mode === 'none' ? 'none' : v6value}, conduit{' '}
              {conduit}, router {router}
            </li>
            {ranges.map((r) => (
              <li key={r.name}>
                range {r.name}: {r.first} – {r.last}
              </li>
            ))}
            <li>
              the admin node <code>{name}</code> at {address}, with the roles crowbar-admin-node and
              network-admin
            </li>
            <li>then the system deployment is committed</li>
          </ul>
          <button type="button" onClick={() => setStep('node')}>
            Back
          </button>
          <MutationButton onClick={() => void create()} busy={busy || finished}>
            Create
          </MutationButton>
        </Section>
      )}
      {problem && problem.step !== step && <ErrorBox error={new Error(problem.message)} />}
      {done.length > 0 && (
        <Section title="Progress">
          <ul data-progress="">
            {done.map((d) => (
              <li key={d}>{d}</li>
            ))}
          </ul>
          {finished && (
            <p>
              Done. <a href={link('/deployments/1')}>See the system deployment</a> or{' '}
              <a href={link('/')}>the overview</a>.
            </p>
          )}
        </Section>
      )}
    </>
  );
}
