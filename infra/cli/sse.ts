import type { Client } from './client.js';

/** One server-sent event of `GET /api/v2/events`: `id` is the EVENTS stream sequence. */
export interface StreamEvent {
  id: number | undefined;
  event: string;
  data: string;
}

export interface EventStreamOptions {
  filter?: string | undefined;
  since?: number | undefined;
  signal: AbortSignal;
  /** Called once the gateway has its consumer in place (the stream's first comment). */
  onConnected?: () => void;
}

/**
 * Reads the gateway's event stream, yielding each event. Comments (`: heartbeat`) are swallowed; the
 * first one (`: connected`) is reported, so a caller can read state after it knows no event is missed.
 */
export async function* readEvents(client: Client, opts: EventStreamOptions): AsyncGenerator<StreamEvent> {
  const q = new URLSearchParams();
  if (opts.filter) q.set('filter', opts.filter);
  if (opts.since !== undefined) q.set('since', String(opts.since));
  const path = `/events${q.size ? `?${q}` : ''}`;
  const res = await client.open('GET', path, {
    headers: { accept: 'text/event-stream' },
    stream: true,
    signal: opts.signal,
  });
  if (!res.ok || !res.body) {
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    throw client.failure(res.status, body, `GET ${path}`);
  }
  const decoder = new TextDecoder();
  let buffer = '';
  let connected = false;
  let current: { id?: number; event?: string; data: string[] } = { data: [] };
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let nl = buffer.indexOf('\n');
      while (nl >= 0) {
        const line = buffer.slice(0, nl).replace(/\r$/, '');
        buffer = buffer.slice(nl + 1);
        nl = buffer.indexOf('\n');
        if (line === '') {
          if (current.data.length)
            yield { id: current.id, event: current.event ?? 'message', data: current.data.join('\n') };
          current = { data: [] };
        } else if (line.startsWith(':')) {
          if (!connected) {
            connected = true;
            opts.onConnected?.();
          }
        } else {
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'data') current.data.push(value);
          else if (field === 'id' && /^\d+$/.test(value)) current.id = Number(value);
          else if (field === 'event') current.event = value;
        }
      }
    }
  } catch (err) {
    if (!opts.signal.aborted) throw err;
  }
}
