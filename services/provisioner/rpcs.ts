import type { Bus } from '../../shared/bus/bus.js';
import { type BootMap, provisionerMessages, roleRun } from '../../shared/catalogue/index.js';
import { NotFoundError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import type { bootEventLog } from './boot-events.js';
import type { Bootenv } from './domain/bootenv.js';
import { type Installer, osInstallRole } from './install.js';
import type { NodeRegistry } from './registry.js';

export interface RpcDeps {
  bus: Bus;
  log: Logger;
  registry: NodeRegistry;
  installer: Installer;
  bootEvents: ReturnType<typeof bootEventLog>;
  bootenvs: () => Map<string, Bootenv>;
  bootMap: () => BootMap;
  httpPort: number;
  tftpPort: number;
}

/** The provisioner's answers: the boot map, bootenvs, a node's bootstate, boot events, and its role runs. */
export function serveRpcs(deps: RpcDeps) {
  const { bus, registry, bootEvents, bootenvs } = deps;
  return [
    bus.serve(provisionerMessages.bootMapGet, async () => deps.bootMap()),
    bus.serve(provisionerMessages.bootenvList, async () => ({
      bootenvs: [...bootenvs().values()].map(summary),
    })),
    bus.serve(provisionerMessages.nodeBootstate, async (q) => ({
      nodeId: q.nodeId,
      bootenv: registry.byId(q.nodeId)?.bootenv ?? null,
    })),
    bus.serve(provisionerMessages.bootEventList, (q) => bootEvents.list(q)),
    // provisioner-server (and bootenv roles): the run hands nodes where the provisioner is.
    bus.serve(roleRun.provisioner, async (req, env) => {
      if (req.role === osInstallRole) return deps.installer.run(req, env.correlationId);
      const node = registry.byId(req.nodeId);
      if (req.role !== 'provisioner-server' && !node)
        throw new NotFoundError(`the provisioner does not know node ${req.node} yet`, { field: 'node' });
      deps.log.info({ role: req.role, node: req.nodeId, runId: req.runId }, 'provisioner role run answered');
      const { httpPort, tftpPort } = deps;
      const names = bootenvs();
      return {
        wall: { provisioner: { httpPort, tftpPort, bootenvs: [...names.keys()].sort() } },
        log: `provisioner: HTTP port ${httpPort}, TFTP port ${tftpPort}, ${names.size} bootenvs\n`,
      };
    }),
  ];
}

function summary(b: Bootenv) {
  return {
    name: b.name,
    description: b.description,
    local: b.local,
    kernel: b.kernel ?? null,
    initrds: b.initrds,
    next: b.next,
    templates: Object.keys(b.templates),
  };
}
