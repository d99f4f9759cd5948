import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { type FormEvent, StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { ApiError, api, session } from './api.js';
import { type LiveStatus, startLive } from './live.js';
import { DeploymentPage } from './pages/deployment.js';
import { DeploymentsPage } from './pages/deployments.js';
import { NetworksPage } from './pages/networks.js';
import { NodePage } from './pages/node.js';
import { NodesPage } from './pages/nodes.js';
import { OverviewPage } from './pages/overview.js';
import { RunsPage } from './pages/runs.js';
import { WizardPage } from './pages/wizard.js';
import './styles.css';
import { RoleContext, useApi } from './ui.js';

type Role = 'admin' | 'read-only';

const client = new QueryClient({
  defaultOptions: {
    // Fresh until an event says otherwise (live.ts): no refetch on focus, no polling.
    queries: { staleTime: Number.POSITIVE_INFINITY, refetchOnWindowFocus: false, retry: 1 },
  },
});

function useHash(): string {
  const [hash, setHash] = useState(() => location.hash.slice(1) || '/');
  useEffect(() => {
    const on = () => setHash(location.hash.slice(1) || '/');
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function SignIn({ onSignedIn }: { onSignedIn: (token: string, role: Role) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const who = await api<{ role: Role }>('GET', '/whoami', undefined, token.trim());
      onSignedIn(token.trim(), who.role);
    } catch (err) {
      setError(
        err instanceof ApiError && err.status === 401
          ? `That token was refused: ${err.message}.`
          : `Cannot sign in: ${err instanceof Error ? err.message : String(err)}`,
      );
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="signin">
      <h1>Crowbar</h1>
      <form onSubmit={(e) => void submit(e)} aria-label="Sign in">
        <label htmlFor="token">Operator token</label>
        <input
          id="token"
          type="password"
          autoComplete="current-password"
          value={token}
          onChange={(e) => setToken(e.target.value)}
          required
        />
        <p className="muted">
          The admin token is printed by <code>npm start</code> and kept in <code>.state/operator-token</code>.
          A read-only token gives a read-only view.
        </p>
        <button type="submit" disabled={busy || !token.trim()}>
          Sign in
        </button>
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
      </form>
    </main>
  );
}

const nav: [string, string][] = [
  ['/', 'Overview'],
  ['/nodes', 'Nodes'],
  ['/deployments', 'Deployments'],
  ['/networks', 'Networks'],
  ['/runs', 'Runs'],
];

function Page({ path }: { path: string }) {
  const parts = path.split('/').filter(Boolean);
  const [section, id] = parts;
  if (section === 'nodes' && id) return <NodePage id={id} />;
  if (section === 'nodes') return <NodesPage />;
  if (section === 'deployments' && id) return <DeploymentPage id={id} />;
  if (section === 'deployments') return <DeploymentsPage />;
  if (section === 'networks') return <NetworksPage />;
  if (section === 'runs') return <RunsPage />;
  if (section === 'wizard') return <WizardPage />;
  return <OverviewPage />;
}

function Shell({ role, token, onSignOut }: { role: Role; token: string; onSignOut: () => void }) {
  const path = useHash();
  const [live, setLive] = useState<LiveStatus>('connecting');
  useEffect(() => startLive({ client, token, onStatus: setLive }), [token]);
  const section = `/${path.split('/').filter(Boolean)[0] ?? ''}`;
  const admin = useApi<{ networks: unknown[] }>(['networks', 'admin'], '/networks?category=admin');
  const unset = role === 'admin' && admin.data?.networks.length === 0;
  // A fresh installation (`npm start -- --wizard`): the first sign-in leads to the wizard.
  const [led, setLed] = useState(false);
  useEffect(() => {
    if (unset && !led) {
      setLed(true);
      if (path === '/') location.hash = '#/wizard';
    }
  }, [unset, led, path]);
  return (
    <RoleContext.Provider value={{ canWrite: role === 'admin' }}>
      <header className="top">
        <span className="brand">Crowbar</span>
        <nav aria-label="Main">
          {nav.map(([href, label]) => (
            <a key={href} href={`#${href}`} aria-current={section === href ? 'page' : undefined}>
              {label}
            </a>
          ))}
        </nav>
        <span className={`live live-${live}`} data-live={live} role="status">
          {live === 'live' ? 'live' : live === 'connecting' ? 'connecting …' : 'offline, retrying'}
        </span>
        {role === 'read-only' && <span className="badge ro">read-only</span>}
        <button type="button" className="link" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      <main id="main">
        {unset && section !== '/wizard' && (
          <p className="banner" role="status">
            This installation has no admin network yet.{' '}
            <a href="#/wizard">Set it up with the install wizard</a>.
          </p>
        )}
        <Page path={path} />
      </main>
    </RoleContext.Provider>
  );
}

function App() {
  const [auth, setAuth] = useState<{ token: string; role: Role } | null>(null);
  const [checking, setChecking] = useState(() => session.token() !== null);
  useEffect(() => {
    const t = session.token();
    if (!t) return;
    api<{ role: Role }>('GET', '/whoami', undefined, t)
      .then((w) => setAuth({ token: t, role: w.role }))
      .catch(() => session.clear())
      .finally(() => setChecking(false));
  }, []);
  if (checking) return <p className="muted">Signing in …</p>;
  if (!auth)
    return (
      <SignIn
        onSignedIn={(token, role) => {
          session.set(token);
          setAuth({ token, role });
        }}
      />
    );
  return (
    <QueryClientProvider client={client}>
      <Shell
        role={auth.role}
        token={auth.token}
        onSignOut={() => {
          session.clear();
          client.clear();
          setAuth(null);
        }}
      />
    </QueryClientProvider>
  );
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
