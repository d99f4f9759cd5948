/**
 * Mutation fuzzing of the parser from valid seeds with a seeded PRNG (reproducible: a failure prints the
 * iteration and the packet). Property: parsePacket returns or throws PacketError, and whatever parses
 * is read, classified and answered without throwing, the reply carrying the options back intact.
 */
import { describe, expect, it } from 'vitest';
import { prng, type Rng } from '../../../test/helpers/prng.js';
import { chooseBoot, classifyClient } from './boot.js';
import { OVERLOAD } from './options.js';
import {
  clientArch,
  clientId,
  type DhcpPacket,
  encodeReply,
  hostnameOption,
  leaseTimeRequested,
  MAX_PACKET,
  maxMessageSize,
  orderByRequest,
  PacketError,
  parameterList,
  parsePacket,
  relayAgentInfo,
  replyHeader,
  requestedAddress,
  serverIdentifier,
  userClass,
  vendorClass,
} from './packet.js';

const opt = (code: number, ...value: number[]) => [code, value.length, ...value];
const optS = (code: number, s: string) => opt(code, ...Buffer.from(s, 'latin1'));

function seed(head: { htype?: number; hlen?: number; sname?: number[]; file?: number[] }, options: number[]) {
  const b = Buffer.alloc(Math.max(300, 240 + options.length));
  b[0] = 1;
  b[1] = head.htype ?? 1;
  b[2] = head.hlen ?? 6;
  b.writeUInt32BE(0x01020304, 4);
  b.set([0x52, 0x54, 0x00, 0x12, 0x34, 0x56], 28);
  b.set(head.sname ?? [], 44);
  b.set(head.file ?? [], 108);
  b.set([99, 130, 83, 99], 236);
  b.set(options, 240);
  return b;
}

const SEEDS = [
  seed({}, [
    ...opt(53, 1),
    ...opt(57, 5, 0xc0),
    ...opt(93, 0, 0),
    ...opt(94, 1, 2, 1),
    ...opt(97, 0, ...Array.from({ length: 16 }, (_, i) => i)),
    ...optS(60, 'PXEClient:Arch:00000:UNDI:002001'),
    ...optS(77, 'iPXE'),
    ...opt(55, 1, 3, 6, 12, 15, 17, 26, 43, 60, 66, 67, 119, 175),
    ...opt(175, 177, 5, 1, 0x80, 0x86, 0x10, 0x0e),
    255,
  ]),
  seed({}, [
    ...opt(53, 3),
    ...opt(61, 1, 0x52, 0x54, 0, 0x12, 0x34, 0x56),
    ...opt(50, 198, 18, 0, 50),
    ...opt(54, 198, 18, 0, 2),
    ...optS(12, 'node-01'),
    ...opt(55, 1, 28, 2, 3, 15, 6, 119, 12),
    ...opt(82, 1, 4, 0x65, 0x74, 0x68, 0x30, 2, 2, 0, 7),
    255,
  ]),
  seed({ file: [...optS(77, 'cd'), 255], sname: [...optS(12, 'sn'), 255] }, [
    ...opt(53, 1),
    ...opt(52, 3),
    ...optS(77, 'ab'),
    ...opt(93, 0, 16),
    ...optS(60, 'HTTPClient:Arch:00016:UNDI:003001'),
    255,
  ]),
  seed({ htype: 6, hlen: 16 }, [...opt(53, 8), ...optS(60, 'PXEClient'), ...opt(57, 2, 64), 255]),
  seed({}, [...opt(53, 1), ...optS(60, 'a'.repeat(255)), ...optS(60, 'b'.repeat(100)), 0, 0, 255]),
];

const MAP = {
  tftp: { bios: 'undionly.kpxe', uefi32: null, uefi64: 'ipxe.efi', arm64: 'arm64.efi' },
  http: { uefi64: 'x64.efi', arm64: null },
  script: '/nodes/{mac}.ipxe',
  localBootenvs: ['local'],
};

function mutate(r: Rng, src: Buffer): Buffer {
  let b: Buffer = Buffer.from(src);
  const rounds = 1 + r.int(4);
  for (let k = 0; k < rounds; k++) {
    switch (r.int(7)) {
      case 0: // bit flips anywhere
        for (let n = 1 + r.int(4); n > 0; n--) {
          const at = r.int(b.length || 1);
          if (at < b.length) b[at]! ^= 1 << r.int(8);
        }
        break;
      case 1: // truncation
        b = b.subarray(0, r.int(b.length + 1));
        break;
      case 2: // extension with random bytes
        b = Buffer.concat([b, r.bytes(r.int(8) === 0 ? 3700 + r.int(400) : r.int(600))]);
        break;
      case 3: // a random option length in the options area (often a real one)
        if (b.length > 241) b[241 + r.int(b.length - 241)] = r.int(256);
        break;
      case 4: // random bytes over the options area, sometimes an option 52 or 53
        if (b.length > 240) {
          const at = 240 + r.int(b.length - 240);
          const pick = r.int(3);
          const chunk =
            pick === 0 ? [52, 1, r.int(5)] : pick === 1 ? [53, 1, r.int(10)] : [r.int(256), r.int(256)];
          b.set(chunk.slice(0, b.length - at), at);
        }
        break;
      case 5: // an inserted random option before the rest
        if (b.length > 240) {
          const len = r.int(300);
          const value = r.bytes(len);
          b = Buffer.concat([
            b.subarray(0, 240),
            Buffer.from([r.int(256), len & 0xff]),
            value,
            b.subarray(240),
          ]);
        }
        break;
      default: // random bytes in the header fields, cookie kept
        b[r.int(236)] = r.int(256);
        break;
    }
  }
  return b;
}

function answer(p: DhcpPacket) {
  requestedAddress(p);
  serverIdentifier(p);
  leaseTimeRequested(p);
  hostnameOption(p);
  vendorClass(p);
  userClass(p);
  clientArch(p);
  clientId(p);
  relayAgentInfo(p);
  const boot = chooseBoot(classifyClient(p), 'sledgehammer', MAP, {
    server: '198.18.0.2',
    httpBase: 'http://198.18.0.2:8091',
    mac: p.mac,
  });
  // Echo every option back: the worst case for sizes, and a check that values survive the trip.
  const echoed = [...p.options].filter(([code]) => code !== OVERLOAD);
  const reply = {
    ...replyHeader(p),
    ciaddr: p.ciaddr,
    yiaddr: '198.18.0.50',
    siaddr: boot.siaddr,
    sname: p.sname,
    file: boot.file ?? p.file,
    options: orderByRequest(echoed, parameterList(p)),
  };
  return encodeReply(reply, maxMessageSize(p));
}

describe('parsePacket under mutation', () => {
  it('never throws anything but PacketError, and answers whatever it accepts', () => {
    const r = prng(0xc0ffee);
    const outcomes = new Map<string, number>();
    const iterations = 120_000;
    for (let i = 0; i < iterations; i++) {
      const input = r.int(50) === 0 ? r.bytes(r.int(700)) : mutate(r, SEEDS[r.int(SEEDS.length)]!);
      let p: DhcpPacket;
      try {
        p = parsePacket(input);
      } catch (e) {
        if (!(e instanceof PacketError))
          throw new Error(`iteration ${i}: ${String(e)} on ${input.toString('hex')}`);
        outcomes.set(e.reason, (outcomes.get(e.reason) ?? 0) + 1);
        continue;
      }
      outcomes.set('parsed', (outcomes.get('parsed') ?? 0) + 1);
      const { packet, dropped } = answer(p);
      if (packet.length < 300) throw new Error(`iteration ${i}: reply of ${packet.length} bytes`);
      if (packet.length <= MAX_PACKET) {
        const back = Buffer.from(packet);
        back[0] = 1;
        const q = parsePacket(back);
        for (const [code, value] of p.options) {
          if (code === OVERLOAD || dropped.includes(code) || q.options.get(code)?.equals(value)) continue;
          throw new Error(`iteration ${i}: option ${code} changed on ${input.toString('hex')}`);
        }
      }
    }
    // The mutations must reach deep: a fair share parses, and every kind of drop is seen.
    expect(outcomes.get('parsed')!).toBeGreaterThan(iterations / 10);
    for (const reason of [
      'truncated',
      'oversize',
      'bad_op',
      'bad_htype',
      'bad_hlen',
      'bad_magic',
      'option_overflow',
      'no_end',
      'no_message_type',
      'bad_message_type',
      'bad_option',
    ]) {
      expect(outcomes.get(reason) ?? 0, reason).toBeGreaterThan(0);
    }
  });
});
