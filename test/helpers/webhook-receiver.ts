import { createHmac } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request a receiver got, and what it answered (0: it cut the connection). */
export interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  status: number;
  seq: number;
  type: string;
}

/**
 * A webhook receiver on 127.0.0.1: records every request and answers what `respond` says (a status, or
 * `'cut'` to destroy the connection without an answer). It can be closed and listen again on its port,
 * as a receiver that goes down and comes back.
 */
export class WebhookReceiver {
  readonly got: Received[] = [];
  respond: (n: number, body: string) => number | 'cut' = () => 200;
  /** How long it takes to answer each request, at most (each takes a random part of it). */
  delayMs = 0;
  private server: http.Server | null = null;
  port = 0;

  static async start(port = 0): Promise<WebhookReceiver> {
    const r = new WebhookReceiver();
    await r.listen(port);
    return r;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  async listen(port = this.port): Promise<void> {
    const server = http.createServer((req, res) => {
      let body = '';
      req.on('data', (b: Buffer) => {
        body += b;
      });
      req.on('end', async () => {
        if (this.delayMs) await new Promise((r) => setTimeout(r, Math.random() * this.delayMs));
        const answer = this.respond(this.got.length + 1, body);
        this.got.push({
          headers: req.headers,
          body,
          status: answer === 'cut' ? 0 : answer,
          seq: Number(req.headers['x-crowbar-event-seq']),
          type: String(req.headers['x-crowbar-event-type']),
        });
        if (answer === 'cut') req.socket.destroy();
        else res.writeHead(answer, { 'content-type': 'text/plain' }).end(answer >= 300 ? 'not now' : 'ok');
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** The deliveries it accepted (2xx), in the order they came. */
  accepted(): Received[] {
    return this.got.filter((r) => r.status >= 200 && r.status < 300);
  }
}

/** Checks both signatures of a delivery with the secret, as a receiver would; the reason when wrong. */
export function signatureProblem(secret: string, r: Received): string | null {
  const hex = createHmac('sha256', secret).update(r.body).digest('hex');
  if (r.headers['x-crowbar-signature'] !== `sha256=${hex}`) return 'X-Crowbar-Signature does not verify';
  // Standard Webhooks: HMAC-SHA256 over "<webhook-id>.<webhook-timestamp>.<body>", keyed with the
  // base64-decoded part of the secret after `whsec_`; the header lists `v1,<base64>` signatures.
  const id = String(r.headers['webhook-id']);
  const ts = String(r.headers['webhook-timestamp']);
  const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${ts}.${r.body}`).digest('base64');
  const listed = String(r.headers['webhook-signature']).split(' ');
  if (!listed.includes(`v1,${expected}`)) return 'webhook-signature does not verify';
  if (Math.abs(Date.now() / 1000 - Number(ts)) > 300) return 'webhook-timestamp is more than 5 minutes off';
  return null;
}
