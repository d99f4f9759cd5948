/** A server-sent events client over fetch, for tests: every message and comment as it arrives. */
export interface SseMessage {
  id?: string;
  event?: string;
  data: string;
}

export interface SseClient {
  status: number;
  messages: SseMessage[];
  comments: string[];
  /** Resolves once `n` messages (not comments) have arrived; rejects after `ms`. */
  waitFor(n: number, ms?: number): Promise<SseMessage[]>;
  /** Resolves when a comment matching `re` arrives; rejects after `ms`. */
  waitForComment(re: RegExp, ms?: number): Promise<string>;
  /** Resolves when the server ends the stream. */
  ended: Promise<void>;
  close(): void;
}

export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  const abort = new AbortController();
  const res = await fetch(url, { headers, signal: abort.signal });
  const messages: SseMessage[] = [];
  const comments: string[] = [];
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  let ended: Promise<void> = Promise.resolve();
  if (res.ok && res.body) {
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    ended = (async () => {
      let buf = '';
      let cur: SseMessage = { data: '' };
      let hasData = false;
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buf += value;
          let nl = buf.indexOf('\n');
          while (nl >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line === '') {
              if (hasData) messages.push(cur);
              cur = { data: '' };
              hasData = false;
            } else if (line.startsWith(':')) comments.push(line.slice(1).trim());
            else {
              const i = line.indexOf(':');
              const field = i < 0 ? line : line.slice(0, i);
              const v = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
              if (field === 'data') {
                cur.data = hasData ? `${cur.data}\n${v}` : v;
                hasData = true;
              } else if (field === 'id') cur.id = v;
              else if (field === 'event') cur.event = v;
            }
            nl = buf.indexOf('\n');
          }
          wake();
        }
      } catch {
        // aborted by close()
      } finally {
        wake();
      }
    })();
  }
  const wait = <T>(ready: () => T | undefined, what: string, ms: number) =>
    new Promise<T>((resolve, reject) => {
      const check = () => {
        const v = ready();
        if (v !== undefined) {
          waiters.delete(check);
          clearTimeout(timer);
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out after ${ms} ms waiting for ${what} (have ${messages.length} messages)`));
      }, ms);
      waiters.add(check);
      check();
    });
  return {
    status: res.status,
    messages,
    comments,
    ended,
    waitFor: (n, ms = 10_000) =>
      wait(() => (messages.length >= n ? messages.slice(0, n) : undefined), `${n} messages`, ms),
    waitForComment: (re, ms = 10_000) => wait(() => comments.find((c) => re.test(c)), `comment ${re}`, ms),
    close: () => abort.abort(),
  };
}
