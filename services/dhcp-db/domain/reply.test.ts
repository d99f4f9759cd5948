import { describe, expect, it } from 'vitest';
import { ascii, IPXE_DISCOVER, MAC, opt, request } from '../../../test/helpers/dhcp-bytes.js';
import {
  BOOTFILE,
  CLIENT_ID,
  DNS,
  DOMAIN_NAME,
  DOMAIN_SEARCH,
  domainSearchOpt,
  END,
  HOSTNAME,
  ipOpt,
  ipsOpt,
  LEASE_TIME,
  MSG_TYPE,
  MTU,
  NTP,
  parseIpv4,
  RELAY_AGENT,
  ROUTER,
  SERVER_ID,
  SUBNET_MASK,
  strOpt,
  T1,
  T2,
  u8Opt,
  u16Opt,
  u32Opt,
  VENDOR_CLASS,
} from './options.js';
import {
  DhcpMessageType,
  type DhcpReply,
  echoedOptions,
  encodeReply,
  hostnameOption,
  orderByRequest,
  parsePacket,
  replyHeader,
  serverIdentifier,
} from './packet.js';

// ---- encoding ----

const SERVER = '198.18.0.2';
function offer(options: Array<[number, Uint8Array]>, extra: Partial<DhcpReply> = {}): DhcpReply {
  const p = parsePacket(IPXE_DISCOVER);
  return { ...replyHeader(p), ciaddr: '0.0.0.0', yiaddr: '198.18.0.50', siaddr: SERVER, options, ...extra };
}
/** Parses a reply with parsePacket by turning it into a request. */
function reparse(packet: Buffer) {
  const b = Buffer.from(packet);
  b[0] = 1;
  return parsePacket(b);
}
/** Codes in wire order up to and including END. */
function wireCodes(packet: Buffer): number[] {
  const codes: number[] = [];
  for (let i = 240; i < packet.length; ) {
    const code = packet[i]!;
    codes.push(code);
    if (code === END) break;
    i += code === 0 ? 1 : 2 + packet[i + 1]!;
  }
  return codes;
}
const base: Array<[number, Uint8Array]> = [
  [MSG_TYPE, u8Opt(DhcpMessageType.OFFER)],
  [SERVER_ID, ipOpt(SERVER)],
  [LEASE_TIME, u32Opt(3600)],
  [SUBNET_MASK, ipOpt('255.255.255.0')],
  [ROUTER, ipOpt('198.18.0.1')],
  [DNS, ipsOpt(['198.18.0.2', '198.18.0.3'])],
];

describe('encodeReply', () => {
  it('round-trips header and options, padded to 300 bytes', () => {
    const { packet, dropped } = encodeReply(
      offer([...base, [HOSTNAME, strOpt('node-01')]], { file: 'undionly.kpxe', sname: 'boot' }),
      576,
    );
    expect(dropped).toEqual([]);
    expect(packet.length).toBe(300);
    expect(packet[0]).toBe(2);
    const p = reparse(packet);
    expect(p).toMatchObject({
      xid: 0x2a5b3c4d,
      flags: 0x8000,
      yiaddr: '198.18.0.50',
      siaddr: SERVER,
      giaddr: '0.0.0.0',
      mac: '52:54:00:12:34:56',
      file: 'undionly.kpxe',
      sname: 'boot',
      messageType: DhcpMessageType.OFFER,
    });
    expect(hostnameOption(p)).toBe('node-01');
    expect(serverIdentifier(p)).toBe(SERVER);
    expect(wireCodes(packet)).toEqual([53, 54, 51, 1, 3, 6, 12, END]);
  });

  it('puts 53 and 54 first and the relay agent option last', () => {
    const relay = Buffer.from([1, 4, 0x65, 0x74, 0x68, 0x30]);
    const { packet } = encodeReply(
      offer([
        [RELAY_AGENT, relay],
        [MTU, u16Opt(9000)],
        [SERVER_ID, ipOpt(SERVER)],
        [MSG_TYPE, u8Opt(2)],
      ]),
      576,
    );
    expect(wireCodes(packet)).toEqual([53, 54, 26, 82, END]);
    expect(reparse(packet).options.get(RELAY_AGENT)).toEqual(relay);
  });

  it('splits options longer than 255 bytes (RFC 3396) and the parser joins them', () => {
    const names = Array.from({ length: 40 }, (_, i) => `rack${i}.site.example.com`);
    const search = domainSearchOpt(names);
    expect(search.length).toBeGreaterThan(510);
    const { packet, dropped } = encodeReply(offer([...base, [DOMAIN_SEARCH, search]]), 1500);
    expect(dropped).toEqual([]);
    expect(wireCodes(packet).filter((c) => c === DOMAIN_SEARCH)).toHaveLength(Math.ceil(search.length / 255));
    expect(reparse(packet).options.get(DOMAIN_SEARCH)).toEqual(search);
  });

  it('keeps required options and drops the others that do not fit in 576', () => {
    const big = (n: number) => Buffer.alloc(n, 0x41);
    const options: Array<[number, Uint8Array]> = [
      ...base,
      [DOMAIN_NAME, strOpt('lab.example.com')],
      [NTP, big(120)],
      [VENDOR_CLASS, big(200)],
      [T1, u32Opt(1800)],
      [43, big(150)],
      [T2, u32Opt(3150)],
      [RELAY_AGENT, big(40)],
    ];
    const { packet, dropped } = encodeReply(offer(options), 576);
    expect(packet.length).toBeLessThanOrEqual(576 - 28);
    expect(dropped).toEqual([VENDOR_CLASS, 43]);
    expect(wireCodes(packet)).toEqual([53, 54, 51, 1, 3, 6, 15, 42, 58, 59, 82, END]);
    const wide = encodeReply(offer(options), 1500);
    expect(wide.dropped).toEqual([]);
    expect(wide.packet.length).toBeLessThanOrEqual(1500 - 28);
    expect(wireCodes(wide.packet)).toEqual([53, 54, 51, 1, 3, 6, 15, 42, 60, 58, 43, 59, 82, END]);
  });

  it('keeps required options even when they alone exceed the limit', () => {
    const { packet, dropped } = encodeReply(
      offer([
        ...base,
        [RELAY_AGENT, Buffer.alloc(255, 1)],
        [HOSTNAME, strOpt('x')],
        [CLIENT_ID, Buffer.alloc(100, 2)],
      ]),
      576,
    );
    expect(dropped).toEqual([HOSTNAME]);
    expect(packet.length).toBeGreaterThan(548);
    expect(reparse(packet).options.get(CLIENT_ID)?.length).toBe(100);
  });

  it('treats a client max size below 576 as 576', () => {
    expect(encodeReply(offer([...base, [NTP, Buffer.alloc(200)]]), 300).dropped).toEqual([]);
    expect(encodeReply(offer([...base, [NTP, Buffer.alloc(200)]]), Number.NaN).dropped).toEqual([]);
  });

  it('drops PAD and END given as option codes', () => {
    const { packet, dropped } = encodeReply(offer([...base, [0, u8Opt(1)], [END, u8Opt(1)]]), 576);
    expect(dropped).toEqual([0, END]);
    expect(wireCodes(packet)).toEqual([53, 54, 51, 1, 3, 6, END]);
  });

  it('moves a file name too long for the header into option 67, replacing the one given', () => {
    const url = `http://198.18.0.2:8091/${'x'.repeat(140)}.ipxe`;
    const sname = 's'.repeat(65);
    const options: Array<[number, Uint8Array]> = [
      ...base,
      [BOOTFILE, strOpt('other')],
      [NTP, Buffer.alloc(300)],
    ];
    const { packet, dropped } = encodeReply(offer(options, { file: url, sname }), 576);
    expect(dropped).toEqual([NTP]);
    const p = reparse(packet);
    expect(p.file).toBe('');
    expect(p.options.get(BOOTFILE)?.toString()).toBe(url);
    expect(p.sname).toBe('');
    expect(p.options.get(66)?.toString()).toBe(sname);
  });

  it('encodes an empty option and a 128-byte file', () => {
    const file = 'f'.repeat(128);
    const p = reparse(encodeReply(offer([...base, [80, new Uint8Array(0)]], { file }), 576).packet);
    expect(p.options.get(80)?.length).toBe(0);
    expect(p.file).toBe(file);
  });

  it('rejects an address that is not a dotted quad', () => {
    expect(() => encodeReply(offer(base, { yiaddr: '198.18.0' }), 576)).toThrow(RangeError);
  });

  it('echoes client identifier and relay info from the request', () => {
    const req = parsePacket(request({}, [...opt(53, 1), ...opt(82, 1, 1, 7), ...opt(61, 1, ...MAC), END]));
    expect(echoedOptions(req).map(([c, v]) => [c, [...v]])).toEqual([
      [61, [1, ...MAC]],
      [82, [1, 1, 7]],
    ]);
    expect(echoedOptions(parsePacket(IPXE_DISCOVER)).map(([c]) => c)).toEqual([61]);
  });
});

describe('orderByRequest', () => {
  const o = (...codes: number[]) => codes.map((c): [number, Uint8Array] => [c, u8Opt(c)]);
  it.each([
    [
      [1, 3, 6, 15, 51, 54, 53],
      [6, 3],
      [53, 54, 6, 3, 1, 15, 51],
    ],
    [
      [82, 12, 1, 53],
      [82, 12],
      [53, 12, 1, 82],
    ],
    [[1, 3, 6], [], [1, 3, 6]],
    [
      [1, 3, 6],
      [119, 6, 6, 1],
      [6, 1, 3],
    ],
    [
      [66, 67, 66],
      [67, 66],
      [67, 66, 66],
    ],
    [[], [1, 2, 3], []],
  ])('%j by %j → %j', (codes, prl, want) =>
    expect(orderByRequest(o(...codes), prl).map(([c]) => c)).toEqual(want),
  );
});

describe('option builders', () => {
  it.each([
    ['198.18.0.1', 0xc6120001],
    ['0.0.0.0', 0],
    ['255.255.255.255', 0xffffffff],
    ['1.2.3', -1],
    ['1.2.3.4.5', -1],
    ['1.2.3.256', -1],
    ['01.2.3.4', -1],
    ['1..3.4', -1],
    ['1.2.3.', -1],
    [' 1.2.3.4', -1],
    ['', -1],
  ])('parseIpv4(%j) = %d', (s, want) => expect(parseIpv4(s)).toBe(want));

  it('builds values', () => {
    expect([...ipOpt('10.0.0.1')]).toEqual([10, 0, 0, 1]);
    expect([...ipsOpt(['10.0.0.1', '10.0.0.2'])]).toEqual([10, 0, 0, 1, 10, 0, 0, 2]);
    expect([...ipsOpt([])]).toEqual([]);
    expect([...u32Opt(3600)]).toEqual([0, 0, 14, 16]);
    expect([...u16Opt(1500)]).toEqual([5, 220]);
    expect([...u8Opt(5)]).toEqual([5]);
    expect(strOpt('lab').toString()).toBe('lab');
    expect(() => ipOpt('nope')).toThrow(RangeError);
  });

  it('encodes a domain search list per RFC 3397', () => {
    expect([...domainSearchOpt(['eng.apple.com', 'marketing.apple.com.'])]).toEqual([
      3,
      ...ascii('eng'),
      5,
      ...ascii('apple'),
      3,
      ...ascii('com'),
      0,
      9,
      ...ascii('marketing'),
      5,
      ...ascii('apple'),
      3,
      ...ascii('com'),
      0,
    ]);
    expect(() => domainSearchOpt([`${'a'.repeat(64)}.com`])).toThrow(RangeError);
  });
});
