import { type QueryKey, useQuery } from '@tanstack/react-query';
import { createContext, type ReactNode, useContext } from 'react';
import { ApiError, get, type NoderoleState } from './api.js';

/** What the signed-in token may do; the server refuses mutations of the read-only token anyway. */
export const RoleContext = createContext<{ canWrite: boolean }>({ canWrite: false });
export const useCanWrite = () => useContext(RoleContext).canWrite;

/** A GET through the query cache; live events keep it fresh (see live.ts). */
export function useApi<T>(key: QueryKey, path: string | null) {
  return useQuery<T, ApiError>({
    queryKey: key,
    queryFn: () => get<T>(path!),
    enabled: path !== null,
  });
}

export function StateBadge({ state }: { state: NoderoleState | string | undefined }) {
  const s = state ?? 'unknown';
  return <span className={`badge state-${s}`}>{s}</span>;
}

export function YesNo({ value, yes, no }: { value: boolean; yes: string; no: string }) {
  return <span className={`badge ${value ? 'ok' : 'bad'}`}>{value ? yes : no}</span>;
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="muted" aria-live="polite">
      Loading {what} …
    </p>
  );
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const msg = error instanceof Error ? error.message : String(error);
  const field = error instanceof ApiError && error.field ? ` (${error.field})` : '';
  return (
    <p className="error" role="alert">
      {msg}
      {field}
    </p>
  );
}

export function Section({
  title,
  children,
  actions,
}: {
  title: string;
  children: ReactNode;
  actions?: ReactNode;
}) {
  return (
    <section className="card" aria-label={title}>
      <div className="card-head">
        <h2>{title}</h2>
        {actions}
      </div>
      {children}
    </section>
  );
}

/** A button that changes something: disabled for the read-only token, and marked for the UI tests. */
export function MutationButton(props: {
  onClick: () => void;
  children: ReactNode;
  busy?: boolean;
  danger?: boolean;
  label?: string;
  type?: 'button' | 'submit';
}) {
  const canWrite = useCanWrite();
  return (
    <button
      type={props.type ?? 'button'}
      data-mutation=""
      className={props.danger ? 'danger' : undefined}
      disabled={!canWrite || props.busy}
      title={canWrite ? undefined : 'read-only token'}
      aria-label={props.label}
      onClick={props.onClick}
    >
      {props.children}
    </button>
  );
}

export const link = (path: string) => `#${path}`;

export function when(iso: string | null | undefined) {
  if (!iso) return '';
  const d = new Date(iso.replace(' ', 'T').replace(/\+00$/, 'Z'));
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}
