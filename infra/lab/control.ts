import { rm } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import { z } from 'zod';
import type { Lab } from './fleet.js';

/**
 * The running lab's control socket (`<state>/lab/control.sock`), so `npm run lab -- fault …` in another
 * shell reaches the lab that owns the nodes: one request per fault, answered with what was done.
 */
export const faultRequest = z.discriminatedUnion('fault', [
  z.object({ node: z.string().min(1), fault: z.literal('link-down') }),
  z.object({ node: z.string().min(1), fault: z.literal('loss'), percent: z.number().min(0).max(100) }),
  z.object({ node: z.string().min(1), fault: z.literal('sshd-stop') }),
  z.object({ node: z.string().min(1), fault: z.literal('reboot') }),
  z.object({ node: z.string().min(1), fault: z.literal('power-off') }),
  z.object({ node: z.string().min(1), fault: z.literal('power-on') }),
  z.object({ node: z.string().min(1), fault: z.literal('clear') }),
]);
export type FaultRequest = z.infer<typeof faultRequest>;

export async function applyFault(lab: Lab, f: FaultRequest): Promise<string> {
  const node = lab.node(f.node);
  if (!node) throw new Error(`no lab node ${f.node} (labels n1…n${lab.nodes.length}, MACs or node names)`);
  const label = `${node.spec.label} (${node.spec.mac})`;
  switch (f.fault) {
    case 'link-down':
    case 'sshd-stop':
      await node.fault({ kind: f.fault });
      return `${label}: ${f.fault}`;
    case 'loss':
      await node.fault({ kind: 'loss', percent: f.percent });
      return `${label}: ${f.percent}% packet loss`;
    case 'reboot':
      node.reboot();
      return `${label}: rebooting`;
    case 'power-off':
      await node.powerOff();
      return `${label}: powered off`;
    case 'power-on':
      await node.powerOn();
      return `${label}: powered on`;
    case 'clear':
      await node.clear();
      return `${label}: faults cleared (link up, no loss, sshd running, powered on)`;
  }
}

export async function serveControl(path: string, lab: Lab, log: (l: string) => void) {
  await rm(path, { force: true });
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (b: Buffer) => {
      body += b.toString();
    });
    req.on('end', () => {
      const answer = (status: number, text: string) => {
        res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(`${text}\n`);
      };
      if (req.method !== 'POST' || req.url !== '/fault') return answer(404, 'POST /fault only');
      let parsed: FaultRequest;
      try {
        parsed = faultRequest.parse(JSON.parse(body));
      } catch (e) {
        return answer(422, `bad fault request: ${e instanceof Error ? e.message : String(e)}`);
      }
      applyFault(lab, parsed).then(
        (done) => {
          log(`fault: ${done}`);
          answer(200, done);
        },
        (e: unknown) => answer(409, e instanceof Error ? e.message : String(e)),
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }).then(() => rm(path, { force: true })),
  };
}

/** Sends one fault to the lab listening on `path`; resolves with its answer, rejects with its refusal. */
export function sendFault(path: string, f: FaultRequest): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: path, method: 'POST', path: '/fault', timeout: 30_000 }, (res) => {
      let text = '';
      res.on('data', (b: Buffer) => {
        text += b.toString();
      });
      res.on('end', () => (res.statusCode === 200 ? resolve(text.trim()) : reject(new Error(text.trim()))));
    });
    req.once('error', (e) => reject(new Error(`no running lab answers on ${path} (${e.message})`)));
    req.end(JSON.stringify(f));
  });
}
