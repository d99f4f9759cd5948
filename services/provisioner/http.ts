import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../../shared/log.js';
import {
  type Bootenv,
  firstKeyLine,
  ipxeScript,
  type RenderContext,
  RenderError,
  render,
  renderTemplate,
} from './domain/bootenv.js';
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
  const { log } = deps;
  const ctx: HttpCtx = { deps, stats: { requests: 0, scripts: 0, files: 0, refused: {} } };
  const server = createServer((req, res) => {
    handle(ctx, req, res).catch((err: unknown) => {
      log.warn({ err, url: req.url }, 'provisioner http request failed');
      if (!res.headersSent) refuseWith(ctx, res, 500, 'internal', 'internal error');
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
    stats: ctx.stats,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** What the request handlers share: the server's dependencies and its counters. */
interface HttpCtx {
  deps: HttpDeps;
  stats: { requests: number; scripts: number; files: number; refused: Record<string, number> };
}

function refuseWith(ctx: HttpCtx, res: ServerResponse, status: number, reason: string, message: string) {
  ctx.stats.refused[reason] = (ctx.stats.refused[reason] ?? 0) + 1;
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(`${message}\n`);
}

function text(res: ServerResponse, body: string, type = 'text/plain; charset=utf-8') {
  res.writeHead(200, {
    'Content-Type': type,
    'Content-Length': Buffer.byteLength(body),
    'Cache-Control': 'no-store',
  });
  res.end(body);
}

function serverOf(req: IncomingMessage) {
  const local = req.socket.localAddress ?? '127.0.0.1';
  return local.replace(/^::ffff:/, '');
}

function clientOf(req: IncomingMessage) {
  return (req.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
}

async function handle(ctx: HttpCtx, req: IncomingMessage, res: ServerResponse) {
  const { deps } = ctx;
  ctx.stats.requests++;
  if (req.method !== 'GET' && req.method !== 'HEAD')
    return refuseWith(ctx, res, 405, 'method', 'only GET and HEAD');
  const url = (req.url ?? '/').split('?')[0]!;
  const script = macPath.exec(url);
  if (script) return serveScript(ctx, req, res, url, script[1]!.replaceAll('-', ':'));
  // Joining a machine that did not come through discovery: the script, and what it installs.
  if (url === '/join.sh' || url === '/join/crowbar-join' || url === '/join/crowbar-join.service') {
    const name = url === '/join.sh' ? 'join.sh' : url.slice('/join/'.length);
    const context = deps.context(serverOf(req), '', null, deps.discoveryBootenv);
    return text(res, render(deps.joinFiles[name]!, { ...context, token: '' }));
  }
  if (url === '/keys/authorized_keys') {
    const keys = deps.authorizedKeys();
    if (keys === null) return refuseWith(ctx, res, 404, 'no_key', 'no cluster key configured');
    return text(res, keys);
  }
  const nodeFile = nodePath.exec(url);
  if (nodeFile) return serveNodeFile(ctx, req, res, nodeFile[1]!, nodeFile[2]!);
  return serveBootFile(ctx, req, res, url);
}

/** A MAC's iPXE script: its node's bootenv, or the discovery bootenv for a MAC no node claims. */
function serveScript(ctx: HttpCtx, req: IncomingMessage, res: ServerResponse, url: string, mac: string) {
  const { deps } = ctx;
  const { registry } = deps;
  const client = clientOf(req);
  registry.sawClient(client, mac);
  const node = registry.byMac(mac);
  const name = node?.bootenv ?? deps.discoveryBootenv;
  const b = deps.bootenvs().get(name) ?? deps.bootenvs().get(deps.discoveryBootenv);
  if (!b) return refuseWith(ctx, res, 404, 'no_bootenv', `no bootenv ${name}`);
  let body: string;
  try {
    body = ipxeScript(
      b,
      deps.context(serverOf(req), mac, node ? { id: node.id, name: node.name } : null, b.name),
    );
  } catch (err) {
    if (err instanceof RenderError) return refuseRender(ctx, res, err, node?.id ?? null);
    throw err;
  }
  ctx.stats.scripts++;
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
  deps.log.info({ mac, node: node?.id ?? null, bootenv: b.name, client }, 'boot script served');
}

/** `/nodes/<name>/bootstate`, or a template of the node's bootenv rendered for it. */
function serveNodeFile(
  ctx: HttpCtx,
  req: IncomingMessage,
  res: ServerResponse,
  nodeName: string,
  file: string,
) {
  const { deps } = ctx;
  const node = deps.registry.byName(nodeName);
  if (!node) return refuseWith(ctx, res, 404, 'unknown_node', `no node ${nodeName}`);
  if (file === 'bootstate') return text(res, `${node.bootenv}\n`);
  const b = deps.bootenvs().get(node.bootenv);
  if (b?.templates[file] === undefined)
    return refuseWith(ctx, res, 404, 'no_template', `bootenv ${node.bootenv} has no template ${file}`);
  const mac = node.macs[0] ?? '';
  const context = deps.context(serverOf(req), mac, node, node.bootenv);
  try {
    return text(res, renderTemplate(b, file, { ...context, ssh_key: firstKeyLine(deps.authorizedKeys()) }));
  } catch (err) {
    if (err instanceof RenderError) return refuseRender(ctx, res, err, node.id);
    throw err;
  }
}

/** A template whose node data would not stay data in it (see renderChecked): 500 naming the value. */
function refuseRender(ctx: HttpCtx, res: ServerResponse, err: RenderError, nodeId: number | null) {
  ctx.deps.log.warn({ node: nodeId, placeholder: err.placeholder, err: err.message }, 'template refused');
  return refuseWith(ctx, res, 500, 'render_refused', err.message);
}

/** A file of the boot root (range requests answered); a GET is recorded against the client's node. */
async function serveBootFile(ctx: HttpCtx, req: IncomingMessage, res: ServerResponse, url: string) {
  const { deps } = ctx;
  const { registry } = deps;
  const client = clientOf(req);
  const found = await resolveBootPath(deps.rootReal, url);
  if (!found.ok) {
    const status = found.reason === 'not_found' || found.reason === 'not_a_file' ? 404 : 403;
    deps.log.debug({ url, client, reason: found.reason }, 'boot file refused');
    return refuseWith(ctx, res, status, found.reason, status === 404 ? 'not found' : 'forbidden');
  }
  ctx.stats.files++;
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
