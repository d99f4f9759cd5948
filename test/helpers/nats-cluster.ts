import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { ensureNatsServer } from '../../infra/nats.js';
import { isListening, waitForExit } from '../../infra/ports.js';
import { until } from './inventory.js';

/**
 * A three-node NATS cluster with JetStream on loopback addresses of the test's own (the cluster block of
 * infra/deploy/nats-cluster.conf without its TLS and users, which test/deploy-config.test.ts covers).
 * Nodes can be killed with -9 and started again on their store.
 */
export interface NatsCluster {
  urls: string[];
  kill(i: number): Promise<void>;
  start(i: number): Promise<void>;
  /** Resolves once JetStream answers through node `i` (the cluster has a meta leader again). */
  ready(i: number, ms?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startNatsCluster(dir: string, hosts: string[], port: number): Promise<NatsCluster> {
  const bin = ensureNatsServer(() => undefined);
  const procs: (ChildProcess | null)[] = hosts.map(() => null);
  const routes = hosts.map((h) => `"nats-route://${h}:${port + 2000}"`).join(', ');
  const confOf = (i: number) => {
    const conf = `${dir}/nats-${i + 1}.conf`;
    mkdirSync(`${dir}/store-${i + 1}`, { recursive: true });
    writeFileSync(
      conf,
      [
        `server_name: "nats-${i + 1}"`,
        `host: "${hosts[i]}"`,
        `port: ${port}`,
        `jetstream { store_dir: "${dir}/store-${i + 1}" }`,
        `cluster { name: "crowbar-test", host: "${hosts[i]}", port: ${port + 2000}, routes: [${routes}] }`,
        '',
      ].join('\n'),
    );
    return conf;
  };
  const start = async (i: number) => {
    const p = spawn(bin, ['-c', confOf(i), '-l', `${dir}/nats-${i + 1}.log`], { stdio: 'ignore' });
    procs[i] = p;
    await until(`nats-${i + 1} listening`, () => isListening(hosts[i]!, port), 15_000);
  };
  const kill = async (i: number) => {
    const p = procs[i];
    procs[i] = null;
    if (!p?.pid) return;
    p.kill('SIGKILL');
    await waitForExit(p.pid, 10_000);
  };
  const ready = async (i: number, ms = 60_000) => {
    const nc = await connect({ servers: `nats://${hosts[i]}:${port}`, timeout: 3000 });
    try {
      await until(
        `JetStream answering through nats-${i + 1}`,
        async () => {
          try {
            await (await jetstreamManager(nc, { timeout: 2000 })).getAccountInfo();
            return true;
          } catch {
            return false;
          }
        },
        ms,
        250,
      );
    } finally {
      await nc.close();
    }
  };
  try {
    for (let i = 0; i < hosts.length; i++) await start(i);
    await ready(0);
  } catch (err) {
    for (let i = 0; i < hosts.length; i++) await kill(i);
    throw err;
  }
  return {
    urls: hosts.map((h) => `nats://${h}:${port}`),
    kill,
    start,
    ready,
    async stop() {
      for (let i = 0; i < hosts.length; i++) await kill(i);
    },
  };
}
