import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../shared/log.js';
import { type Bootenv, ipxeScript, type RenderContext, render } from './domain/bootenv.js';
import { resolveBootPath, sendFile } from './files.js';
import type { NodeRegistry } from './registry.js';

export interface HttpDeps {
  rootReal: string;
  address: string;
  port: number;
  log: Logger;
  registry: NodeRegistry;
  bootenvs: () => Map<string, Bootenv>;
  /** join.sh, crowbar-join and its unit, rendered with the api and provisioner URLs. */
  joinFiles: Record<string, string>;
  /** Bootenv of machines no node claims. */
  discoveryBootenv: string;
  /** The context every template gets; `server` is the host the client reached us at. */
  context: (
    server: string,
    mac: string,
    node: { id: number; name: string } | null,
    bootenv: string,
  ) => RenderContext;
  authorizedKeys: () => string | null;
  recorded: (e: {
    mac: string | null;
    nodeId: number | null;
    client: string;
    file: string;
    bootenv: string | null;
    bytes: number;
    ok: boolean;
    error: string | null;
  }) => void;
}

const macPath = /^\/boot\/([0-9a-f]{2}(?:-[0-9a-f]{2}){5})\.ipxe$/;
const nodePath = /^\/nodes\/([a-z0-9._-]{1,255})\/([a-zA-Z0-9._-]{1,64})$/;

/**
 * The provisioner's HTTP side (CROWBAR_PROVISIONER_HTTP_PORT): per-node iPXE scripts at
 * `/boot/<mac>.ipxe` (the URL dhcp-db hands iPXE), `/nodes/<name>/bootstate` and install templates,
 * the cluster's public key at `/keys/authorized_keys`, and every other path as a file of the boot root
 * (range requests answered). Only files inside the boot root are ever served.
 */
export async function startHttp(deps: HttpDeps) {
  const { log, registry } = deps;
  const stats = { requests: 0, scripts: 0, files: 0, refused: {} as Record<string, number> };
  const refuse = (res: ServerResponse, status: number, reason: string, message: string) => {
    stats.refused[reason] = (stats.refused[reason] ?? 0) + 1;
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
    res.end(`${message}\n`);
  };
  const text = (res: ServerResponse, body: string, type = 'text/plain; charset=utf-8') => {
    res.writeHead(200, {
      'Content-Type': type,
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
    });
    res.end(body);
  };
  const serverOf = (req: IncomingMessage) => {
    const local = req.socket.localAddress ?? '127.0.0.1';
    return local.replace(/^::ffff:/, '');
  };
  const clientOf = (req: IncomingMessage) => (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');

  async function handle(req: IncomingMessage, res: ServerResponse) {
    stats.requests++;
    if (req.method !== 'GET' && req.method !== 'HEAD') return refuse(res, 405, 'method', 'only GET and HEAD');
    const url = (req.url ?? '/').split('?')[0]!;
    const client = clientOf(req);

    const script = macPath.exec(url);
    if (script) {
      const mac = script[1]!.replaceAll('-', ':');
      registry.sawClient(client, mac);
      const node = registry.byMac(mac);
      const name = node?.bootenv ?? deps.discoveryBootenv;
      const b = deps.bootenvs().get(name) ?? deps.bootenvs().get(deps.discoveryBootenv);
      if (!b) return refuse(res, 404, 'no_bootenv', `no bootenv ${name}`);
      const body = ipxeScript(
        b,
        deps.context(serverOf(req), mac, node ? { id: node.id, name: node.name } : null, b.name),
      );
      stats.scripts++;
      text(res, body);
      deps.recorded({
        mac,
        nodeId: node?.id ?? null,
        client,
        file: url,
        bootenv: b.name,
        bytes: body.length,
        ok: true,
        error: null,
      });
      log.info({ mac, node: node?.id ?? null, bootenv: b.name, client }, 'boot script served');
      return;
    }
    // Joining a machine that did not come through discovery: the script, and what it installs.
    if (url === '/join.sh' || url === '/join/crowbar-join' || url === '/join/crowbar-join.service') {
      const name = url === '/join.sh' ? 'join.sh' : url.slice('/join/'.length);
      const ctx = deps.context(serverOf(req), '', null, deps.discoveryBootenv);
      return text(res, render(deps.joinFiles[name]!, { ...ctx, token: '' }));
    }
    if (url === '/keys/authorized_keys') {
      const keys = deps.authorizedKeys();
      if (keys === null) return refuse(res, 404, 'no_key', 'no cluster key configured');
      return text(res, keys);
    }
    const nodeFile = nodePath.exec(url);
    if (nodeFile) {
      const node = registry.byName(nodeFile[1]!);
      if (!node) return refuse(res, 404, 'unknown_node', `no node ${nodeFile[1]}`);
      if (nodeFile[2] === 'bootstate') return text(res, `${node.bootenv}\n`);
      const b = deps.bootenvs().get(node.bootenv);
      const t = b?.templates[nodeFile[2]!];
      if (t === undefined)
        return refuse(res, 404, 'no_template', `bootenv ${node.bootenv} has no template ${nodeFile[2]}`);
      const mac = node.macs[0] ?? '';
      return text(res, render(t, deps.context(serverOf(req), mac, node, node.bootenv)));
    }

    const found = await resolveBootPath(deps.rootReal, url);
    if (!found.ok) {
      const status = found.reason === 'not_found' || found.reason === 'not_a_file' ? 404 : 403;
      log.debug({ url, client, reason: found.reason }, 'boot file refused');
      return refuse(res, status, found.reason, status === 404 ? 'not found' : 'forbidden');
    }
    stats.files++;
    const bytes = await sendFile(res, found, req.headers.range, req.method === 'HEAD');
    if (req.method === 'GET') {
      const mac = registry.macOfClient(client);
      const node = mac ? registry.byMac(mac) : undefined;
      deps.recorded({
        mac,
        nodeId: node?.id ?? null,
        client,
        file: url,
        bootenv: node?.bootenv ?? null,
        bytes,
        ok: true,
        error: null,
      });
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      log.warn({ err, url: req.url }, 'provisioner http request failed');
      if (!res.headersSent) refuse(res, 500, 'internal', 'internal error');
      else res.destroy();
    });
  });
  // Boot clients may close their sending side after the request (see the gateway): answer them anyway.
  (server as unknown as { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(deps.port, deps.address, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    stats,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
