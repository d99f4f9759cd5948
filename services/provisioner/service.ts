import {
  copyFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { consume } from '../../shared/bus/consume.js';
import {
  type BootMap,
  consumers,
  dhcpMessages,
  inventoryEvents,
  type NodeSummary,
  provisionerMessages,
  roleRun,
} from '../../shared/catalogue/index.js';
import { ConfigError } from '../../shared/config.js';
import { startOutboxRelay } from '../../shared/db/outbox.js';
import { mintDiscoveryToken } from '../../shared/discovery-token.js';
import { NotFoundError, ValidationError } from '../../shared/errors.js';
import { normaliseMac } from '../../shared/mac.js';
import type { ServiceDef } from '../../shared/service/host.js';
import { bootEventLog } from './boot-events.js';
import { type ProvisionerConfig, provisionerConfig, tftpPort } from './config.js';
import { outbox } from './db/schema.js';
import { type Bootenv, BootenvError, loadBootenvs, type RenderContext } from './domain/bootenv.js';
import { startHttp } from './http.js';
import { createInstaller, osInstallRole } from './install.js';
import { createRegistry } from './registry.js';
import { startTftpServer } from './tftp/server.js';

const joinDir = fileURLToPath(new URL('./join/', import.meta.url));

/** Debian's iPXE binaries the boot map names, copied into the boot root (links would point outside it). */
const ipxeFiles = ['undionly.kpxe', 'ipxe.pxe', 'ipxe.efi', 'snponly.efi'];

/** Copies `from` to `to` unless an identical-looking copy (size and mtime) is already there. */
function place(from: string, to: string) {
  const s = statSync(from);
  if (existsSync(to)) {
    const t = statSync(to);
    if (t.size === s.size && t.mtimeMs >= s.mtimeMs) return false;
  }
  mkdirSync(join(to, '..'), { recursive: true });
  rmSync(to, { force: true });
  // A hard link where the cache and the boot root share a file system (OS images are hundreds of MB).
  try {
    linkSync(from, to);
  } catch {
    copyFileSync(from, to);
  }
  return true;
}

function prepareBootRoot(c: ProvisionerConfig) {
  mkdirSync(c.CROWBAR_BOOT_ROOT, { recursive: true });
  const placed: string[] = [];
  for (const f of ipxeFiles) {
    const from = join(c.CROWBAR_IPXE_DIR, f);
    if (!existsSync(from)) continue;
    if (place(from, join(c.CROWBAR_BOOT_ROOT, f))) placed.push(f);
    if (f === 'snponly.efi' && place(from, join(c.CROWBAR_BOOT_ROOT, 'ipxe', f))) placed.push(`ipxe/${f}`);
  }
  const image = c.CROWBAR_DISCOVERY_IMAGE;
  if (image)
    for (const f of ['vmlinuz', 'initrd.img']) {
      const from = join(image, f);
      if (!existsSync(from))
        throw new ConfigError([`CROWBAR_DISCOVERY_IMAGE: ${from} is missing (run npm run images)`]);
      if (place(from, join(c.CROWBAR_BOOT_ROOT, 'discovery', f))) placed.push(`discovery/${f}`);
    }
  const os = c.CROWBAR_OS_IMAGE_DIR;
  if (os)
    for (const f of readdirSync(os).filter((f) => f.endsWith('.tar.zst')))
      if (place(join(os, f), join(c.CROWBAR_BOOT_ROOT, 'os', f))) placed.push(`os/${f}`);
  return { rootReal: realpathSync(c.CROWBAR_BOOT_ROOT), placed };
}

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
    let bootenvs: Map<string, Bootenv>;
    try {
      bootenvs = loadBootenvs(config.CROWBAR_BOOTENVS);
    } catch (err) {
      if (err instanceof BootenvError) throw new ConfigError([`CROWBAR_BOOTENVS: ${err.message}`]);
      throw err;
    }
    const discoveryBootenv = 'sledgehammer';
    if (!bootenvs.has(discoveryBootenv))
      throw new ConfigError([`CROWBAR_BOOTENVS: no bootenv ${discoveryBootenv} (the discovery image)`]);
    const { rootReal, placed } = prepareBootRoot(config);
    if (placed.length) log.info({ files: placed, root: rootReal }, 'boot root files placed');
    if (!config.CROWBAR_DISCOVERY_IMAGE)
      log.warn(
        'CROWBAR_DISCOVERY_IMAGE is not set: discovery boots fail until the image is built (npm run images)',
      );
    const publicKey = config.CROWBAR_SSH_KEY ? `${config.CROWBAR_SSH_KEY}.pub` : null;

    const registry = createRegistry(database);
    await registry.load();
    let sshKey: string | null = null;
    const installer = createInstaller({
      bus,
      database,
      log,
      registry,
      bootenvs: () => bootenvs,
      sshKey: () => {
        if (!config.CROWBAR_SSH_KEY) return null;
        sshKey ??= readFileSync(config.CROWBAR_SSH_KEY, 'utf8');
        return sshKey;
      },
      convergeTimeoutMs: config.CROWBAR_INSTALL_CONVERGE_TIMEOUT_S * 1000,
      defaultOs: config.CROWBAR_TARGET_OS,
    });
    await installer.load();

    const bootEvents = bootEventLog({ database, bus, log, registry });
    const recorded = bootEvents.record;

    const context = (
      server: string,
      mac: string,
      node: { id: number; name: string } | null,
      bootenv: string,
    ): RenderContext => ({
      api: `http://${server}:${config.CROWBAR_HTTP_PORT}`,
      provisioner: `http://${server}:${http.port}`,
      server,
      token: config.CROWBAR_DISCOVERY_SECRET
        ? mintDiscoveryToken(config.CROWBAR_DISCOVERY_SECRET, {
            expires: Math.floor(clock.now().getTime() / 1000) + config.CROWBAR_DISCOVERY_TOKEN_TTL,
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
      image: bootenvs.get(bootenv)?.image
        ? `http://${server}:${http.port}/${bootenvs.get(bootenv)!.image}`
        : '',
      disk: (node && installer.of(node.id)?.disk) ?? '',
    });
    const http = await startHttp({
      rootReal,
      address: config.CROWBAR_PROVISIONER_HTTP_ADDRESS,
      port: config.CROWBAR_PROVISIONER_HTTP_PORT,
      log,
      registry,
      bootenvs: () => bootenvs,
      joinFiles: Object.fromEntries(
        ['join.sh', 'crowbar-join', 'crowbar-join.service'].map((f) => [
          f,
          readFileSync(join(joinDir, f), 'utf8'),
        ]),
      ),
      discoveryBootenv,
      context,
      authorizedKeys: () => (publicKey && existsSync(publicKey) ? readFileSync(publicKey, 'utf8') : null),
      recorded,
    });
    const tftp = await startTftpServer({
      root: rootReal,
      address: config.CROWBAR_TFTP_ADDRESS,
      port: tftpPort(config),
      log,
      onTransfer: (t) => {
        const mac = registry.macOfClient(t.client);
        const node = mac ? registry.byMac(mac) : undefined;
        recorded({
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

    const bootMap = (): BootMap => ({
      tftp: { bios: 'undionly.kpxe', uefi32: null, uefi64: 'snponly.efi', arm64: null },
      http: { uefi64: '/ipxe/snponly.efi', arm64: null },
      script: '/boot/{mac}.ipxe',
      localBootenvs: [...bootenvs.values()].filter((b) => b.local).map((b) => b.name),
      httpPort: http.port,
      tftpServer: null,
      version: mapVersion,
    });
    const mapVersion = clock.now().getTime();

    const relay = startOutboxRelay({ database, table: outbox, channel: 'provisioner_outbox', bus, log });
    const nodeEvent = (deleted: boolean) => async (d: { node: NodeSummary }, env: { time: string }) => {
      const applied = await registry.put(d.node, new Date(env.time), deleted);
      if (applied && !deleted) await installer.nodeSeen(d.node);
      log.debug({ node: d.node.id, bootenv: d.node.bootenv, applied, deleted }, 'provisioner node seen');
    };
    const nodes = await consume(bus, {
      decl: consumers.events('provisioner-nodes'),
      log,
      concurrency: 4,
      handlers: [
        [inventoryEvents.nodeCreated, nodeEvent(false)],
        [inventoryEvents.nodeChanged, nodeEvent(false)],
        [inventoryEvents.nodeDeleted, nodeEvent(true)],
      ],
    });
    const ignore = async () => undefined;
    const todos = await consume(bus, {
      decl: consumers.events('provisioner-noderoles'),
      log,
      concurrency: 4,
      handlers: [
        [
          inventoryEvents.noderoleTodo,
          async (d, env) => {
            await installer.onTodo(d.noderole, env.correlationId).catch((err: unknown) => {
              // A bad attrib or an unknown OS: the run fails with the same message; nothing to retry.
              if (!(err instanceof ValidationError)) throw err;
              log.warn({ node: d.noderole.nodeId, err: err.message }, 'os install not requested');
            });
          },
        ],
        // The rest of the noderole family reaches this consumer too (one filter per family).
        [inventoryEvents.noderoleProposed, ignore],
        [inventoryEvents.noderoleBlocked, ignore],
        [inventoryEvents.noderoleTransition, ignore],
        [inventoryEvents.noderoleActive, ignore],
        [inventoryEvents.noderoleError, ignore],
        [inventoryEvents.noderoleDeleted, ignore],
      ],
    });
    const sawLease = async (d: { lease: { address: string; mac: string } }) => {
      const mac = normaliseMac(d.lease.mac);
      if (mac) registry.sawClient(d.lease.address, mac);
    };
    const leases = await consume(bus, {
      decl: consumers.events('provisioner-leases', 5),
      log,
      concurrency: 1,
      handlers: [
        [dhcpMessages.leaseAcked, sawLease],
        [dhcpMessages.leaseReleased, async () => undefined],
        [dhcpMessages.leaseExpired, async () => undefined],
        [dhcpMessages.leaseDeclined, async () => undefined],
        [dhcpMessages.leaseOffered, async (d) => sawLease({ lease: d })],
      ],
    });

    const summary = (b: Bootenv) => ({
      name: b.name,
      description: b.description,
      local: b.local,
      kernel: b.kernel ?? null,
      initrds: b.initrds,
      next: b.next,
      templates: Object.keys(b.templates),
    });
    const subs = [
      bus.serve(provisionerMessages.bootMapGet, async () => bootMap()),
      bus.serve(provisionerMessages.bootenvList, async () => ({
        bootenvs: [...bootenvs.values()].map(summary),
      })),
      bus.serve(provisionerMessages.nodeBootstate, async (q) => ({
        nodeId: q.nodeId,
        bootenv: registry.byId(q.nodeId)?.bootenv ?? null,
      })),
      bus.serve(provisionerMessages.bootEventList, (q) => bootEvents.list(q)),
      // provisioner-server (and bootenv roles): the run hands nodes where the provisioner is.
      bus.serve(roleRun.provisioner, async (req, env) => {
        if (req.role === osInstallRole) return installer.run(req, env.correlationId);
        const node = registry.byId(req.nodeId);
        if (req.role !== 'provisioner-server' && !node)
          throw new NotFoundError(`the provisioner does not know node ${req.node} yet`, { field: 'node' });
        log.info({ role: req.role, node: req.nodeId, runId: req.runId }, 'provisioner role run answered');
        return {
          wall: {
            provisioner: { httpPort: http.port, tftpPort: tftp.port, bootenvs: [...bootenvs.keys()].sort() },
          },
          log: `provisioner: HTTP port ${http.port}, TFTP port ${tftp.port}, ${bootenvs.size} bootenvs\n`,
        };
      }),
    ];
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
