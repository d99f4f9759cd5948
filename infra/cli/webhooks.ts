import type { Command } from 'commander';
import { CliError, type Client, exitCodes } from './client.js';

/** What the webhook commands need from the program (program.ts hands them over). */
export interface WebhookCommandDeps {
  client: (cmd: Command) => Client;
  /** Prints an answer in the chosen --format. */
  print: (cmd: Command, value: unknown, kind?: string) => void;
  /** The chosen --format. */
  format: (cmd: Command) => string;
  stderr: NodeJS.WritableStream;
}

/** The table shows what an operator looks at; --format json or yaml shows every field. */
const tableColumns = [
  'id',
  'url',
  'filter',
  'state',
  'failures',
  'deadLettered',
  'pending',
  'lastDeliveredSeq',
  'lastError',
];
const deliveryColumns = ['id', 'type', 'node', 'status', 'attempts', 'httpStatus', 'error', 'lastAttemptAt'];
const pick = (columns: string[]) => (row: Record<string, unknown>) =>
  Object.fromEntries(columns.filter((k) => k in row).map((k) => [k, row[k]]));
const project = pick(tableColumns);
const projectDelivery = pick(deliveryColumns);

const id = (raw: string) => {
  if (!/^\d+$/.test(raw)) throw new CliError(`a webhook id is a number, got "${raw}"`, exitCodes.usage);
  return raw;
};
const deliveryRef = (raw: string) => {
  if (!/^(\d+-)?\d+$/.test(raw))
    throw new CliError(
      `a delivery is its id <webhook>-<seq> (as in \`crowbar webhooks deliveries\`) or an event sequence, got "${raw}"`,
      exitCodes.usage,
    );
  return raw;
};

/**
 * `crowbar webhooks list|create <url> [--filter …]|show <id>|destroy <id>|resume <id>|deliveries <id>
 * [--status …]|redeliver <id> <delivery>|redeliver <id> --all-dead`.
 */
export function addWebhookCommands(program: Command, deps: WebhookCommandDeps): void {
  const g = program
    .command('webhooks')
    .description('webhooks: signed HTTP POSTs of the events an external tool registers for');
  const show = (cmd: Command, value: Record<string, unknown>) =>
    deps.print(cmd, deps.format(cmd) === 'table' ? project(value) : value);
  g.command('list')
    .description('list webhooks with their state, failures and events pending')
    .action(async (_o: unknown, cmd: Command) => {
      const r = await deps.client(cmd).call<{ webhooks: Record<string, unknown>[] }>('GET', '/webhooks');
      deps.print(cmd, deps.format(cmd) === 'table' ? { webhooks: r.webhooks.map(project) } : r, 'webhooks');
    });
  g.command('create <url>')
    .description('register a webhook (prints its signing secret once)')
    .option(
      '--filter <patterns>',
      'event types, comma-separated: noderole.*, node.changed, dhcp.> … (default: all)',
    )
    .option('--description <text>', 'what it is for')
    .action(async (url: string, o: { filter?: string; description?: string }, cmd: Command) => {
      const r = await deps.client(cmd).call<Record<string, unknown>>('POST', '/webhooks', {
        url,
        ...(o.filter !== undefined ? { filter: o.filter } : {}),
        ...(o.description !== undefined ? { description: o.description } : {}),
      });
      deps.print(cmd, deps.format(cmd) === 'table' ? { ...project(r), secret: r.secret } : r);
      if (deps.format(cmd) === 'table') deps.stderr.write('The secret is shown this once; keep it.\n');
    });
  g.command('show <id>')
    .description('show one: its state, last error, events pending and the last one delivered')
    .action(async (raw: string, _o: unknown, cmd: Command) =>
      deps.print(cmd, await deps.client(cmd).call('GET', `/webhooks/${id(raw)}`)),
    );
  g.command('destroy <id>')
    .description('delete a webhook (deliveries stop)')
    .action(async (raw: string, _o: unknown, cmd: Command) =>
      show(cmd, await deps.client(cmd).call('DELETE', `/webhooks/${id(raw)}`)),
    );
  g.command('resume <id>')
    .description('deliver again after its consumer was lost (failing)')
    .action(async (raw: string, _o: unknown, cmd: Command) =>
      show(cmd, await deps.client(cmd).call('PUT', `/webhooks/${id(raw)}/resume`)),
    );
  g.command('deliveries <id>')
    .description("a webhook's delivery log, newest event first: status, attempts, last HTTP status or error")
    .option('--status <status>', 'only delivered, failed or dead-lettered ones')
    .option('--limit <n>', 'at most this many', '50')
    .option('--cursor <next>', 'the `next` of the previous page (--format json shows it)')
    .action(async (raw: string, o: { status?: string; limit: string; cursor?: string }, cmd: Command) => {
      const q = new URLSearchParams({ limit: o.limit });
      if (o.status !== undefined) q.set('status', o.status);
      if (o.cursor !== undefined) q.set('cursor', o.cursor);
      const r = await deps
        .client(cmd)
        .call<{ deliveries: Record<string, unknown>[]; next: string | null }>(
          'GET',
          `/webhooks/${id(raw)}/deliveries?${q}`,
        );
      if (deps.format(cmd) !== 'table') return deps.print(cmd, r);
      deps.print(cmd, { deliveries: r.deliveries.map(projectDelivery) }, 'deliveries');
      if (r.next) deps.stderr.write(`More: --cursor ${r.next}\n`);
    });
  g.command('redeliver <id> [delivery]')
    .description(
      'send a logged event again with the same webhook-id (dead-lettered ones too); --all-dead: every dead-lettered one, in event order',
    )
    .option('--all-dead', "every dead-lettered event in the webhook's log, oldest first")
    .action(async (raw: string, delivery: string | undefined, o: { allDead?: boolean }, cmd: Command) => {
      if ((delivery === undefined) === !o.allDead)
        throw new CliError(
          delivery === undefined
            ? 'give the delivery to send again, or --all-dead for every dead-lettered one'
            : 'give a delivery or --all-dead, not both',
          exitCodes.usage,
        );
      const table = deps.format(cmd) === 'table';
      if (o.allDead) {
        const r = await deps
          .client(cmd)
          .call<{ queued: number; deliveries: string[]; missing: string[]; inFlight: string[] }>(
            'POST',
            `/webhooks/${id(raw)}/redeliver?status=dead-lettered`,
          );
        // The table lists the delivery ids in a cell each (cut at 100 characters; --format json has all).
        const list = (ids: string[]) => ids.join(', ');
        deps.print(
          cmd,
          table
            ? { ...r, deliveries: list(r.deliveries), missing: list(r.missing), inFlight: list(r.inFlight) }
            : r,
        );
        if (table)
          deps.stderr.write(
            `${r.queued} dead-lettered event(s) queued, sent one after the other; their attempts show in the log.\n`,
          );
        return;
      }
      const r = await deps
        .client(cmd)
        .call<Record<string, unknown>>(
          'POST',
          `/webhooks/${id(raw)}/deliveries/${encodeURIComponent(deliveryRef(delivery!))}/redeliver`,
        );
      deps.print(cmd, table ? projectDelivery(r) : r);
      if (table) deps.stderr.write('Redelivery accepted; its attempts show in the log.\n');
    });
}
