import { alivenessProbeService } from '../services/aliveness-probe/service.js';
import { annealerService } from '../services/annealer/service.js';
import { dhcpDbService } from '../services/dhcp-db/service.js';
import { dnsDbService } from '../services/dns-db/service.js';
import { gatewayService } from '../services/gateway/service.js';
import { inventoryService } from '../services/inventory/service.js';
import { jigRunnerService } from '../services/jig-runner/service.js';
import { networkIpamService } from '../services/network-ipam/service.js';
import { provisionerService } from '../services/provisioner/service.js';
import type { ServiceDef } from '../shared/service/host.js';

/** The composition root's list: every service, in start order (owners before the gateway). */
export const allServices: ServiceDef[] = [
  inventoryService,
  networkIpamService,
  annealerService,
  jigRunnerService,
  dhcpDbService,
  dnsDbService,
  alivenessProbeService,
  provisionerService,
  gatewayService,
] as ServiceDef[];
