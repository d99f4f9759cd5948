import { alivenessMessages } from './aliveness.js';
import { annealerMessages } from './annealer.js';
import type { MessageDef } from './define.js';
import { dhcpMessages } from './dhcp.js';
import { dnsMessages } from './dns.js';
import { inventoryAnnealRpcs, inventoryEvents, inventoryRpcs } from './inventory.js';
import { inventoryOpRpcs } from './inventory-ops.js';
import { ipamMessages, ipamRpcs } from './ipam.js';
import { provisionerMessages } from './provisioner.js';
import type { ServiceName } from './system.js';

/**
 * What each service may do on the bus, as data: the launcher's nats-server gives every service a user
 * whose permissions are derived from this (`shared/bus/access.ts`), and every service's bus refuses,
 * loudly, what is not declared here, so a missing line shows up in the tests before it shows up as a
 * permission error in production.
 *
 * A grant is a message definition or a subject pattern (NATS wildcards, relative to the installation
 * prefix). Every service may also, without saying so: answer its own RPCs (`rpc.<service>.>`, health and
 * role.run included), announce itself (`service.started`/`stopped`), and dead-letter what it reads.
 */
export type Grant = Pick<MessageDef, 'subject'> | string;

export interface ServiceAccess {
  /** Events and commands it publishes, directly or through its outbox. */
  sends: readonly Grant[];
  /** RPCs it asks. */
  asks: readonly Grant[];
  /** Streams it reads with consumers (names as declared in the catalogue, without the prefix). */
  reads: readonly string[];
}

const published = (group: Record<string, MessageDef>) => Object.values(group).filter((d) => d.kind !== 'rpc');

/** Any service's health question (the gateway and inventory ask them). */
const anyHealth = 'rpc.*.health.v1';

export const serviceAccess: Record<ServiceName, ServiceAccess> = {
  inventory: {
    sends: published(inventoryEvents),
    asks: [ipamRpcs.networkGet, anyHealth],
    reads: ['EVENTS'],
  },
  'network-ipam': {
    sends: published(ipamMessages),
    asks: [
      inventoryRpcs.getNode,
      inventoryRpcs.listNodes,
      inventoryRpcs.defineRole,
      inventoryRpcs.deleteRole,
      inventoryRpcs.bindRole,
    ],
    reads: ['EVENTS'],
  },
  annealer: {
    sends: [annealerMessages.jigRun, annealerMessages.runFinishedEvent],
    asks: [...Object.values(inventoryAnnealRpcs), inventoryOpRpcs['noderole.get']],
    reads: ['ANNEALER', 'EVENTS'],
  },
  'jig-runner': {
    sends: [annealerMessages.runFinished],
    // The script jig finds a node's SSH address through network-ipam (shared/ssh/target.ts).
    asks: [
      annealerMessages.beginRun,
      alivenessMessages.probe,
      ipamMessages.nodeAddresses,
      'rpc.*.role.run.v1',
    ],
    reads: ['JIG'],
  },
  'dhcp-db': {
    sends: published(dhcpMessages),
    asks: [
      ipamRpcs.networkList,
      ipamRpcs.networkGet,
      ipamMessages.listAllocations,
      inventoryRpcs.listNodes,
      dnsMessages.clientConfig,
      provisionerMessages.bootMapGet,
    ],
    reads: ['EVENTS'],
  },
  'dns-db': {
    sends: published(dnsMessages),
    asks: [ipamRpcs.networkList, ipamMessages.listAllocations, inventoryRpcs.listNodes],
    reads: ['EVENTS'],
  },
  'aliveness-probe': {
    sends: published(alivenessMessages),
    asks: [ipamMessages.listAllocations, inventoryRpcs.listNodes, inventoryRpcs.setAlive],
    reads: ['EVENTS'],
  },
  provisioner: {
    sends: published(provisionerMessages),
    asks: [
      inventoryRpcs.setAlive,
      inventoryRpcs.getNode,
      inventoryRpcs.listNodes,
      inventoryOpRpcs['node.get'],
      inventoryOpRpcs['node.update'],
      inventoryOpRpcs['attrib.get'],
      dhcpMessages.reservationList,
      ipamMessages.nodeAddresses,
    ],
    reads: ['EVENTS'],
  },
  gateway: {
    sends: [],
    // The gateway fronts every service's operator API.
    asks: [
      'rpc.inventory.>',
      'rpc.network-ipam.>',
      'rpc.dns-db.>',
      'rpc.dhcp-db.>',
      'rpc.provisioner.>',
      'rpc.aliveness-probe.>',
      annealerMessages.runs,
      anyHealth,
    ],
    reads: ['EVENTS'],
  },
};
