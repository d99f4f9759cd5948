import type { QueryClient, QueryKey } from '@tanstack/react-query';
import type { Graph, Node, Noderole } from './api.js';

/**
 * Live updates from the gateway's event stream (`GET /api/v2/events`, server-sent events). EventSource
 * cannot send headers, so the token travels as `?token=` (accepted on that route only). The browser
 * resumes with `Last-Event-ID` after a dropped connection; when it gives up (the gateway restarted or
 * answered an error), we reconnect with `since=<last id>` after a pause. Events patch the query cache
 * where the event carries the new state (noderole and node changes) and mark the rest stale, batched,
 * so a burst of events costs one refetch per query, not one per event. No polling.
 */
export type LiveStatus = 'connecting' | 'live' | 'offline';

interface Envelope {
  type: string;
  data: Record<string, unknown>;
}

type NoderoleData = { noderole: Noderole; from: string | null };
type NodeData = { node: Node; changed?: string[] };

export function startLive(opts: {
  client: QueryClient;
  token: string;
  onStatus: (s: LiveStatus) => void;
  onEvent?: (type: string) => void;
}): () => void {
  const { client } = opts;
  let es: EventSource | null = null;
  let lastId: string | null = null;
  let retry: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  // Two batches: most queries refetch 150 ms after the first event of a burst; the big lists (all
  // nodes with their states, all runs) at most every 500 ms while events keep coming, still within the
  // second the UI promises, without refetching 1,000 nodes for every noderole of an anneal.
  const heavy = new Set(['nodes', 'runs']);
  const batches = [150, 500].map((ms) => ({
    ms,
    stale: new Map<string, QueryKey>(),
    timer: undefined as ReturnType<typeof setTimeout> | undefined,
  }));
  const invalidate = (key: QueryKey) => {
    const b = batches[heavy.has(String(key[0])) && key.length === 1 ? 1 : 0]!;
    b.stale.set(JSON.stringify(key), key);
    b.timer ??= setTimeout(() => {
      b.timer = undefined;
      const keys = [...b.stale.values()];
      b.stale.clear();
      for (const k of keys) void client.invalidateQueries({ queryKey: k });
    }, b.ms);
  };

  const patchNoderole = (nr: Noderole) => {
    let found = false;
    client.setQueriesData<{ noderoles: Noderole[] }>({ queryKey: ['noderoles'] }, (old) => {
      if (!old) return old;
      const i = old.noderoles.findIndex((x) => x.id === nr.id);
      if (i < 0) return old;
      found = true;
      const next = old.noderoles.slice();
      next[i] = { ...old.noderoles[i]!, ...nr };
      return { noderoles: next };
    });
    client.setQueriesData<Graph>({ queryKey: ['graph'] }, (old) => {
      if (!old) return old;
      const i = old.vertices.findIndex((v) => v.id === nr.id);
      if (i < 0) return old;
      const vertices = old.vertices.slice();
      vertices[i] = { ...vertices[i]!, state: nr.state };
      return { ...old, vertices };
    });
    if (!found) invalidate(['noderoles']);
    invalidate(['noderole', nr.id]);
    invalidate(['nodes']);
    invalidate(['node', nr.nodeId]);
  };
  const patchNode = (n: Node) => {
    client.setQueryData<{ nodes: Node[] }>(['nodes'], (old) => {
      if (!old) return old;
      const i = old.nodes.findIndex((x) => x.id === n.id);
      if (i < 0) return old;
      const next = old.nodes.slice();
      next[i] = { ...old.nodes[i]!, ...n };
      return { nodes: next };
    });
    invalidate(['node', n.id]);
  };

  const handle = (env: Envelope) => {
    const type = env.type.replace(/\.v\d+$/, '');
    const [family, what] = type.split('.');
    opts.onEvent?.(type);
    if (family === 'noderole') {
      const d = env.data as NoderoleData;
      if (what === 'deleted' || what === 'proposed') {
        invalidate(['noderoles']);
        invalidate(['graph']);
        invalidate(['nodes']);
      }
      if (what !== 'deleted') patchNoderole(d.noderole);
      if (what === 'transition' || what === 'active' || what === 'error') invalidate(['runs']);
      invalidate(['anneal']);
    } else if (family === 'node') {
      const d = env.data as NodeData;
      if (what === 'changed') patchNode(d.node);
      else invalidate(['nodes']);
    } else if (family === 'deployment') {
      invalidate(['deployments']);
      invalidate(['deployment']);
      invalidate(['deployment_roles']);
      invalidate(['preview']);
    } else if (family === 'run') {
      invalidate(['runs']);
    } else if (family === 'service') {
      invalidate(['health']);
    } else if (family === 'boot') {
      invalidate(['boot_events']);
    } else if (family === 'dhcp') {
      invalidate(['dhcp']);
    } else if (family === 'network' || family === 'allocation' || family === 'range' || family === 'router') {
      invalidate(['networks']);
      invalidate(['allocations']);
    }
  };

  const connect = () => {
    if (closed) return;
    opts.onStatus('connecting');
    const q = new URLSearchParams({ token: opts.token });
    if (lastId) q.set('since', lastId);
    es = new EventSource(`/api/v2/events?${q}`);
    es.onopen = () => {
      opts.onStatus('live');
      // Resuming from an id is exact. Without one (the first connection, or no event seen yet), what
      // was fetched before the stream started may have missed an event: fetch what is shown once more.
      if (lastId === null) void client.invalidateQueries(undefined, { cancelRefetch: false });
    };
    es.onmessage = (m) => {
      if (m.lastEventId) lastId = m.lastEventId;
      try {
        handle(JSON.parse(m.data) as Envelope);
      } catch {
        // an event we cannot read changes nothing shown
      }
    };
    es.onerror = () => {
      if (es?.readyState === EventSource.CLOSED) {
        opts.onStatus('offline');
        es = null;
        retry = setTimeout(connect, 2000);
      } else opts.onStatus('connecting');
    };
  };
  connect();
  return () => {
    closed = true;
    clearTimeout(retry);
    for (const b of batches) clearTimeout(b.timer);
    es?.close();
  };
}
