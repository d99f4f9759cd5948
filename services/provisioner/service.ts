import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Bus } from '../../shared/bus/bus.js';
import { type BootMap, provisionerMessages } from '../../shared/catalogue/index.js';
import type { Clock } from '../../shared/clock.js';
import { ConfigError } from '../../shared/config.js';
import { startOutboxRelay } from '../../shared/db/outbox.js';
import { mintDiscoveryToken } from '../../shared/discovery-token.js';
import type { Logger } from '../../shared/log.js';
import type { ServiceDef } from '../../shared/service/host.js';
import { bootEventLog } from './boot-events.js';
import { prepareBootRoot } from './boot-root.js';
import { type ProvisionerConfig, provisionerConfig, tftpPort } from './config.js';
import { outbox } from './db/schema.js';
import { type Bootenv, BootenvError, loadBootenvs, type RenderContext } from './domain/bootenv.js';
import { startConsumers } from './handlers.js';
import { startHttp } from './http.js';
import { createInstaller, type Installer } from './install.js';
import { createRegistry, type NodeRegistry } from './registry.js';
import { serveRpcs } from './rpcs.js';
import { startTftpServer } from './tftp/server.js';

const joinDir = fileURLToPath(new URL('./join/', import.meta.url));

/** Bootenv of machines no node claims: the discovery image. */
const discoveryBootenv = 'sledgehammer';

/**
 * provisioner: bootenvs as data, the boot map dhcp-db serves from, per-node iPXE scripts, and the boot
 * root (iPXE loaders, the discovery image, OS images) over HTTP and TFTP; records what every machine
 * fetched. Registration and the node API stay on the gateway.
 */
export const provisionerService: ServiceDef<typeof provisionerConfig> = {
  name: 'provisioner',
  config: provisionerConfig,
  schema: {
    name: 'provisioner',
    migrationsFolder: fileURLToPath(new URL('./db/migrations', import.meta.url)),
  },
  async start({ database: maybeDb, bus, log, config, clock }) {
    const database = maybeDb!;
    const bootenvs = loadConfiguredBootenvs(config);
    const { rootReal, placed } = prepareBootRoot(config);
    if (placed.length) log.info({ files: placed, root: rootReal }, 'boot root files placed');
    if (!config.CROWBAR_DISCOVERY_IMAGE)
      log.warn(
        'CROWBAR_DISCOVERY_IMAGE is not set: discovery boots fail until the image is built (npm run images)',
      );

    const registry = createRegistry(database);
    await registry.load();
    const installer = createInstaller({
      bus,
      database,
      log,
      registry,
      bootenvs: () => bootenvs,
      sshKey: sshKeyReader(config),
      convergeTimeoutMs: config.CROWBAR_INSTALL_CONVERGE_TIMEOUT_S * 1000,
      defaultOs: config.CROWBAR_TARGET_OS,
    });
    await installer.load();
    const bootEvents = bootEventLog({ database, bus, log, registry });

    const ctx: ProvisionerCtx = {
      bus,
      log,
      config,
      clock,
      registry,
      installer,
      bootEvents,
      bootenvs: () => bootenvs,
    };
    const http = await startBootHttp(ctx, rootReal);
    const tftp = await startBootTftp(ctx, rootReal);
    const mapVersion = clock.now().getTime();
    const bootMap = () => bootMapOf(bootenvs, http.port, mapVersion);

    const relay = startOutboxRelay({ database, table: outbox, channel: 'provisioner_outbox', bus, log });
    const { nodes, todos, leases } = await startConsumers(ctx);
    const subs = serveRpcs({ ...ctx, bootMap, httpPort: http.port, tftpPort: tftp.port });
    // dhcp-db learns the boot map from this event (and asks by RPC when it starts after us).
    await bus.publish(provisionerMessages.bootMapChanged, { map: bootMap() }).catch((err: unknown) => {
      log.warn({ err }, 'boot map not announced; dhcp-db will ask for it');
    });
    log.info(
      { httpPort: http.port, tftpPort: tftp.port, root: rootReal, bootenvs: [...bootenvs.keys()] },
      'provisioner ready',
    );

    return {
      detail: () => ({
        httpPort: http.port,
        tftpPort: tftp.port,
        root: rootReal,
        nodes: registry.size(),
        http: http.stats,
        tftp: tftp.stats,
        consumers: { nodes: nodes.stats, noderoles: todos.stats, leases: leases.stats },
        installsWaiting: installer.waiting(),
      }),
      async stop() {
        for (const s of subs) s.unsubscribe();
        await nodes.stop();
        await todos.stop();
        await leases.stop();
        await http.stop();
        await tftp.stop();
        await relay.stop();
      },
    };
  },
};

/** What the provisioner's parts share once its registry and installer are loaded. */
interface ProvisionerCtx {
  bus: Bus;
  log: Logger;
  config: ProvisionerConfig;
  clock: Clock;
  registry: NodeRegistry;
  installer: Installer;
  bootEvents: ReturnType<typeof bootEventLog>;
  bootenvs: () => Map<string, Bootenv>;
}

/** CROWBAR_BOOTENVS loaded; a bad bootenv or a missing discovery bootenv is a configuration error. */
function loadConfiguredBootenvs(config: ProvisionerConfig): Map<string, Bootenv> {
  let bootenvs: Map<string, Bootenv>;
  try {
    bootenvs = loadBootenvs(config.CROWBAR_BOOTENVS);
  } catch (err) {
    if (err instanceof BootenvError) throw new ConfigError([`CROWBAR_BOOTENVS: ${err.message}`]);
    throw err;
  }
  if (!bootenvs.has(discoveryBootenv))
    throw new ConfigError([`CROWBAR_BOOTENVS: no bootenv ${discoveryBootenv} (the discovery image)`]);
  return bootenvs;
}

/** The cluster's private key (CROWBAR_SSH_KEY), read on first use; null when none is configured. */
function sshKeyReader(config: ProvisionerConfig): () => string | null {
  let sshKey: string | null = null;
  return () => {
    if (!config.CROWBAR_SSH_KEY) return null;
    sshKey ??= readFileSync(config.CROWBAR_SSH_KEY, 'utf8');
    return sshKey;
  };
}

type BootHttp = Awaited<ReturnType<typeof startHttp>>;

function startBootHttp(ctx: ProvisionerCtx, rootReal: string): Promise<BootHttp> {
  const { config } = ctx;
  const publicKey = config.CROWBAR_SSH_KEY ? `${config.CROWBAR_SSH_KEY}.pub` : null;
  // The render context names this server's own port, known once it listens (templates render after that).
  let port = 0;
  return startHttp({
    rootReal,
    address: config.CROWBAR_PROVISIONER_HTTP_ADDRESS,
    port: config.CROWBAR_PROVISIONER_HTTP_PORT,
    log: ctx.log,
    registry: ctx.registry,
    bootenvs: ctx.bootenvs,
    joinFiles: Object.fromEntries(
      ['join.sh', 'crowbar-join', 'crowbar-join.service'].map((f) => [
        f,
        readFileSync(join(joinDir, f), 'utf8'),
      ]),
    ),
    discoveryBootenv,
    context: (server, mac, node, bootenv) => renderContext(ctx, port, server, mac, node, bootenv),
    authorizedKeys: () => (publicKey && existsSync(publicKey) ? readFileSync(publicKey, 'utf8') : null),
    recorded: ctx.bootEvents.record,
  }).then((http) => {
    port = http.port;
    return http;
  });
}

/** The context every template gets; `server` is the host the client reached us at. */
function renderContext(
  ctx: ProvisionerCtx,
  httpPort: number,
  server: string,
  mac: string,
  node: { id: number; name: string } | null,
  bootenv: string,
): RenderContext {
  const { config } = ctx;
  const image = ctx.bootenvs().get(bootenv)?.image;
  return {
    api: `http://${server}:${config.CROWBAR_HTTP_PORT}`,
    provisioner: `http://${server}:${httpPort}`,
    server,
    token: config.CROWBAR_DISCOVERY_SECRET
      ? mintDiscoveryToken(config.CROWBAR_DISCOVERY_SECRET, {
          expires: Math.floor(ctx.clock.now().getTime() / 1000) + config.CROWBAR_DISCOVERY_TOKEN_TTL,
          nodeId: node?.id ?? null,
        })
      : '',
    mac,
    bootenv,
    'node.name': node?.name ?? '',
    'node.hostname': node?.name.split('.')[0] ?? '',
    'node.domain': node?.name.split('.').slice(1).join('.') ?? '',
    'node.id': node ? String(node.id) : '',
    node_arg: node ? ` crowbar.node=${node.name}` : '',
    image: image ? `http://${server}:${httpPort}/${image}` : '',
    disk: (node && ctx.installer.of(node.id)?.disk) ?? '',
  };
}

/** TFTP from the boot root; each transfer is recorded against the node whose lease holds the client address. */
function startBootTftp(ctx: ProvisionerCtx, rootReal: string) {
  const { registry } = ctx;
  return startTftpServer({
    root: rootReal,
    address: ctx.config.CROWBAR_TFTP_ADDRESS,
    port: tftpPort(ctx.config),
    log: ctx.log,
    ...(ctx.config.CROWBAR_TFTP_THREADS === undefined ? {} : { threads: ctx.config.CROWBAR_TFTP_THREADS }),
    onTransfer: (t) => {
      const mac = registry.macOfClient(t.client);
      const node = mac ? registry.byMac(mac) : undefined;
      ctx.bootEvents.record({
        mac,
        nodeId: node?.id ?? null,
        client: t.client,
        file: t.file,
        bootenv: node?.bootenv ?? null,
        bytes: t.bytes,
        ok: t.ok,
        error: t.error,
        transport: 'tftp',
      });
    },
  });
}

function bootMapOf(bootenvs: Map<string, Bootenv>, httpPort: number, version: number): BootMap {
  return {
    tftp: { bios: 'undionly.kpxe', uefi32: null, uefi64: 'snponly.efi', arm64: null },
    http: { uefi64: '/ipxe/snponly.efi', arm64: null },
    script: '/boot/{mac}.ipxe',
    localBootenvs: [...bootenvs.values()].filter((b) => b.local).map((b) => b.name),
    httpPort,
    tftpServer: null,
    version,
  };
}
