import { describe, expect, it } from 'vitest';
import { allMessages, byWireType, wireType } from '../shared/catalogue/index.js';

describe('catalogue', () => {
  it.each(allMessages.map((m) => [m.kind === 'rpc' ? m.subject : wireType(m), m] as const))(
    '%s example decodes',
    (_k, m) => {
      if (m.kind === 'rpc') {
        expect(m.request.safeParse(m.example).success).toBe(true);
        expect(m.response.safeParse(m.exampleResponse).success).toBe(true);
      } else {
        const r = m.schema.safeParse(m.example);
        expect(r.error?.issues ?? []).toEqual([]);
      }
    },
  );

  it('names every message uniquely with a versioned subject', () => {
    expect(byWireType.size).toBe(allMessages.length);
    for (const m of allMessages) expect(m.subject).toMatch(/\.v\d+$/);
  });

  it('rejects a payload missing a required field', () => {
    const ping = allMessages.find((m) => m.type === 'diag.ping');
    expect(ping?.kind).toBe('command');
    if (ping?.kind === 'command') expect(ping.schema.safeParse({ note: 'x' }).success).toBe(false);
  });
});

describe('filterFor', () => {
  it('names the family a consumer reads, from its handlers', async () => {
    const { filterFor, inventoryEvents, dhcpMessages } = await import('../shared/catalogue/index.js');
    expect(
      filterFor(inventoryEvents.nodeCreated, inventoryEvents.nodeChanged, inventoryEvents.nodeDeleted),
    ).toBe('evt.node.>');
    expect(filterFor(dhcpMessages.leaseAcked, dhcpMessages.leaseExpired)).toBe('evt.dhcp.lease.>');
    expect(filterFor(dhcpMessages.leaseAcked)).toBe('evt.dhcp.lease.>');
    expect(() => filterFor(inventoryEvents.nodeCreated, dhcpMessages.leaseAcked)).toThrow(
      /no common subject family/,
    );
  });
});
