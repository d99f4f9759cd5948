import type { Bus } from '../../shared/bus/bus.js';
import { consume } from '../../shared/bus/consume.js';
import { consumers, dhcpMessages, inventoryEvents, type NodeSummary } from '../../shared/catalogue/index.js';
import { ValidationError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { normaliseMac } from '../../shared/mac.js';
import type { Installer } from './install.js';
import type { NodeRegistry } from './registry.js';

export interface HandlerDeps {
  bus: Bus;
  log: Logger;
  registry: NodeRegistry;
  installer: Installer;
}

/** The provisioner's three consumers: nodes (the registry), noderole todos (OS installs) and leases (client addresses). */
export async function startConsumers(deps: HandlerDeps) {
  const nodes = await consumeNodes(deps);
  const todos = await consumeNoderoles(deps);
  const leases = await consumeLeases(deps);
  return { nodes, todos, leases };
}

function consumeNodes({ bus, log, registry, installer }: HandlerDeps) {
  const nodeEvent = (deleted: boolean) => async (d: { node: NodeSummary }, env: { time: string }) => {
    const applied = await registry.put(d.node, new Date(env.time), deleted);
    if (applied && !deleted) await installer.nodeSeen(d.node);
    log.debug({ node: d.node.id, bootenv: d.node.bootenv, applied, deleted }, 'provisioner node seen');
  };
  return consume(bus, {
    decl: consumers.events('provisioner-nodes'),
    log,
    concurrency: 4,
    handlers: [
      [inventoryEvents.nodeCreated, nodeEvent(false)],
      [inventoryEvents.nodeChanged, nodeEvent(false)],
      [inventoryEvents.nodeDeleted, nodeEvent(true)],
    ],
  });
}

function consumeNoderoles({ bus, log, installer }: HandlerDeps) {
  const ignore = async () => undefined;
  return consume(bus, {
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
}

function consumeLeases({ bus, log, registry }: HandlerDeps) {
  const sawLease = async (d: { lease: { address: string; mac: string } }) => {
    const mac = normaliseMac(d.lease.mac);
    if (mac) registry.sawClient(d.lease.address, mac);
  };
  return consume(bus, {
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
}
