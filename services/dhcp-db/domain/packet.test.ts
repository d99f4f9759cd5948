import { describe, expect, it } from 'vitest';
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
  clientArch,
  clientId,
  DhcpMessageType,
  type DhcpReply,
  type DropReason,
  echoedOptions,
  encodeReply,
  hasOption,
  hostnameOption,
  leaseTimeRequested,
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

// ---- building requests byte by byte ----

const MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
const ascii = (s: string) => [...Buffer.from(s, 'latin1')];
const opt = (code: number, ...value: number[]) => [code, value.length, ...value];
const optS = (code: number, s: string) => opt(code, ...ascii(s));

interface Head {
  op?: number;
  htype?: number;
  hlen?: number;
  hops?: number;
  xid?: number;
  secs?: number;
  flags?: number;
  ciaddr?: number[];
  giaddr?: number[];
  chaddr?: number[];
  sname?: number[];
  file?: number[];
  cookie?: number[];
}

/** A BOOTREQUEST: 236-byte header, magic cookie, then `options` bytes as given (no END added). */
function request(head: Head, options: number[], padTo = 300): Buffer {
  const b = Buffer.alloc(Math.max(padTo, 240 + options.length));
  b[0] = head.op ?? 1;
  b[1] = head.htype ?? 1;
  b[2] = head.hlen ?? 6;
  b[3] = head.hops ?? 0;
  b.writeUInt32BE(head.xid ?? 0x2a5b3c4d, 4);
  b.writeUInt16BE(head.secs ?? 4, 8);
  b.writeUInt16BE(head.flags ?? 0, 10);
  b.set(head.ciaddr ?? [0, 0, 0, 0], 12);
  b.set(head.giaddr ?? [0, 0, 0, 0], 24);
  b.set(head.chaddr ?? MAC, 28);
  b.set(head.sname ?? [], 44);
  b.set(head.file ?? [], 108);
  b.set(head.cookie ?? [99, 130, 83, 99], 236);
  b.set(options, 240);
  return b;
}

const UUID_BYTES = [0, ...Array.from({ length: 16 }, (_, i) => 0xa0 + i)];
const IPXE_DISCOVER = request({ flags: 0x8000 }, [
  ...opt(53, 1),
  ...opt(57, 0x05, 0xc0),
  ...opt(93, 0, 0),
  ...opt(94, 1, 2, 1),
  ...opt(97, ...UUID_BYTES),
  ...optS(60, 'PXEClient:Arch:00000:UNDI:002001'),
  ...optS(77, 'iPXE'),
  ...opt(55, 1, 3, 6, 7, 12, 15, 17, 26, 43, 60, 66, 67, 119, 128, 129, 130, 175, 203),
  ...opt(175, 177, 5, 1, 0x80, 0x86, 0x10, 0x0e, 0xeb, 1, 1, 0x13, 1, 1, 0x11, 1, 1),
  ...opt(61, 1, ...MAC),
  END,
]);

const DHCLIENT_REQUEST = request({ xid: 0xdeadbeef, ciaddr: [0, 0, 0, 0] }, [
  ...opt(53, 3),
  ...opt(61, 0xff, 0, 0, 0, 1, 0, 1, 0, 1),
  ...opt(50, 198, 18, 0, 50),
  ...opt(54, 198, 18, 0, 2),
  ...opt(51, 0, 0, 0x0e, 0x10),
  ...optS(12, 'node-01\0'),
  ...opt(55, 1, 28, 2, 3, 15, 6, 119, 12, 44, 47, 26, 121, 42),
  ...opt(57, 0x02, 0x40),
  0,
  0,
  END,
]);

function reasonOf(buf: Uint8Array): DropReason | 'parsed' {
  try {
    parsePacket(buf);
    return 'parsed';
  } catch (e) {
    if (e instanceof PacketError) return e.reason;
    throw e;
  }
}

describe('parsePacket', () => {
  it('reads an iPXE DISCOVER', () => {
    const p = parsePacket(IPXE_DISCOVER);
    expect(p).toMatchObject({
      op: 1,
      htype: 1,
      hlen: 6,
      hops: 0,
      xid: 0x2a5b3c4d,
      secs: 4,
      flags: 0x8000,
      broadcast: true,
      ciaddr: '0.0.0.0',
      giaddr: '0.0.0.0',
      mac: '52:54:00:12:34:56',
      sname: '',
      file: '',
      messageType: DhcpMessageType.DISCOVER,
    });
    expect([...p.chaddr]).toEqual(MAC);
    expect(vendorClass(p)).toBe('PXEClient:Arch:00000:UNDI:002001');
    expect(userClass(p)).toEqual(['iPXE']);
    expect(clientArch(p)).toBe(0);
    expect(maxMessageSize(p)).toBe(1472);
    expect(hasOption(p, 175)).toBe(true);
    expect(hasOption(p, 94)).toBe(true);
    expect([...p.options.get(97)!]).toEqual(UUID_BYTES);
    expect(parameterList(p).slice(0, 4)).toEqual([1, 3, 6, 7]);
    expect([...clientId(p)!]).toEqual([1, ...MAC]);
    expect(requestedAddress(p)).toBeNull();
    expect(relayAgentInfo(p)).toBeNull();
  });

  it('reads a dhclient REQUEST', () => {
    const p = parsePacket(DHCLIENT_REQUEST);
    expect(p.messageType).toBe(DhcpMessageType.REQUEST);
    expect(p.xid).toBe(0xdeadbeef);
    expect(p.broadcast).toBe(false);
    expect(requestedAddress(p)).toBe('198.18.0.50');
    expect(serverIdentifier(p)).toBe('198.18.0.2');
    expect(leaseTimeRequested(p)).toBe(3600);
    expect(hostnameOption(p)).toBe('node-01');
    expect(maxMessageSize(p)).toBe(576);
    expect(vendorClass(p)).toBeNull();
    expect(userClass(p)).toEqual([]);
    expect(clientArch(p)).toBeNull();
  });

  it('reads a relayed IEEE 802 request with sname and file', () => {
    const chaddr = Array.from({ length: 16 }, (_, i) => i);
    const p = parsePacket(
      request(
        {
          htype: 6,
          hlen: 16,
          hops: 1,
          giaddr: [10, 1, 2, 1],
          chaddr,
          sname: ascii('boot'),
          file: ascii('x.efi'),
        },
        [...opt(53, 8), ...opt(82, 1, 3, 0x65, 0x74, 0x68, 2, 1, 9), END],
      ),
    );
    expect(p).toMatchObject({ hops: 1, giaddr: '10.1.2.1', sname: 'boot', file: 'x.efi', messageType: 8 });
    expect(p.mac).toBe('000102030405060708090a0b0c0d0e0f');
    expect([...relayAgentInfo(p)!]).toEqual([1, 3, 0x65, 0x74, 0x68, 2, 1, 9]);
  });

  const mt = (t: number) => opt(53, t);
  it.each<[string, Uint8Array, DropReason]>([
    ['239 bytes', IPXE_DISCOVER.subarray(0, 239), 'truncated'],
    ['an empty datagram', new Uint8Array(0), 'truncated'],
    ['4097 bytes', request({}, [...mt(1), END], 4097), 'oversize'],
    ['a BOOTREPLY', request({ op: 2 }, [...mt(2), END]), 'bad_op'],
    ['op 0', request({ op: 0 }, [...mt(1), END]), 'bad_op'],
    ['InfiniBand htype 32', request({ htype: 32, hlen: 0 }, [...mt(1), END]), 'bad_htype'],
    ['Ethernet with hlen 16', request({ hlen: 16 }, [...mt(1), END]), 'bad_hlen'],
    ['IEEE 802 with hlen 0', request({ htype: 6, hlen: 0 }, [...mt(1), END]), 'bad_hlen'],
    ['IEEE 802 with hlen 17', request({ htype: 6, hlen: 17 }, [...mt(1), END]), 'bad_hlen'],
    ['a BOOTP packet without cookie', request({ cookie: [0, 0, 0, 0] }, [...mt(1), END]), 'bad_magic'],
    ['an option past the end', request({}, [...mt(1), 60, 200, 1, 2], 0), 'option_overflow'],
    ['a code without length byte', request({}, [...mt(1), 60], 0), 'option_overflow'],
    ['options without END', request({}, [...mt(1), ...optS(12, 'x')], 0), 'no_end'],
    ['only padding', request({}, []), 'no_end'],
    ['no option 53', request({}, [...opt(50, 1, 2, 3, 4), END]), 'no_message_type'],
    ['message type 0', request({}, [...mt(0), END]), 'bad_message_type'],
    ['message type 9', request({}, [...mt(9), END]), 'bad_message_type'],
    ['option 53 of two bytes', request({}, [...opt(53, 1, 1), END]), 'bad_option'],
    ['overload 4', request({}, [...mt(1), ...opt(52, 4), END]), 'bad_option'],
    ['empty overload', request({}, [...mt(1), ...opt(52), END]), 'bad_option'],
    ['a repeated overload', request({}, [...mt(1), ...opt(52, 1), ...opt(52, 1), END]), 'bad_option'],
    ['an overflow in file', request({ file: [12, 200] }, [...mt(1), ...opt(52, 1), END]), 'option_overflow'],
  ])('drops %s as %s', (_, buf, want) => expect(reasonOf(buf)).toBe(want));

  it('parses the smallest valid packet and the largest one', () => {
    expect(reasonOf(request({}, [...opt(53, 1), END], 240 + 3))).toBe('parsed');
    expect(reasonOf(request({}, [...opt(53, 1), END], 4096))).toBe('parsed');
  });

  it('ignores what follows END', () => {
    expect(reasonOf(request({}, [...opt(53, 1), END, 60, 200]))).toBe('parsed');
  });

  it.each([
    [1, 'file'],
    [2, 'sname'],
    [3, 'both'],
  ])('reads options from the header fields with overload %i (%s)', (overload) => {
    const sname = [...optS(12, 'sn'), END];
    const file = [...optS(15, 'lab'), END];
    const p = parsePacket(request({ sname, file }, [...opt(53, 1), ...opt(52, overload), END]));
    expect(hostnameOption(p)).toBe(overload & 2 ? 'sn' : null);
    expect(p.options.get(DOMAIN_NAME)?.toString()).toBe(overload & 1 ? 'lab' : undefined);
    expect(p.sname).toBe(overload & 2 ? '' : '\x0c\x02sn\xff');
    expect(p.file).toBe(overload & 1 ? '' : '\x0f\x03lab\xff');
  });

  it('joins split options in RFC 3396 order: options field, file, sname', () => {
    const p = parsePacket(
      request({ sname: optS(77, 'ef'), file: [...optS(77, 'cd'), ...opt(52, 2)] }, [
        ...optS(77, 'a'),
        ...opt(53, 1),
        ...optS(77, 'b'),
        ...opt(52, 3),
        END,
      ]),
    );
    expect(p.options.get(77)?.toString()).toBe('abcdef');
    expect([...p.options.get(52)!]).toEqual([3]);
  });

  it('joins a vendor class split in the options field', () => {
    const p = parsePacket(
      request({}, [...optS(60, 'PXEClient:Arch:'), ...opt(53, 1), ...optS(60, '00007'), END]),
    );
    expect(vendorClass(p)).toBe('PXEClient:Arch:00007');
  });

  it('takes a view of a Uint8Array without copying its options', () => {
    const u8 = new Uint8Array(IPXE_DISCOVER);
    expect(parsePacket(u8).mac).toBe('52:54:00:12:34:56');
  });
});

describe('typed readers', () => {
  const with_ = (...options: number[]) => parsePacket(request({}, [...opt(53, 1), ...options, END]));
  it.each<[string, () => unknown, unknown]>([
    ['requested address of 3 bytes', () => requestedAddress(with_(...opt(50, 1, 2, 3))), null],
    ['server id', () => serverIdentifier(with_(...opt(54, 10, 0, 0, 1))), '10.0.0.1'],
    ['lease time of 2 bytes', () => leaseTimeRequested(with_(...opt(51, 1, 2))), null],
    ['empty parameter list', () => parameterList(with_(...opt(55))), []],
    ['absent parameter list', () => parameterList(with_()), []],
    ['max size 100', () => maxMessageSize(with_(...opt(57, 0, 100))), 576],
    ['max size 1000', () => maxMessageSize(with_(...opt(57, 0x03, 0xe8))), 1000],
    ['max size 9000', () => maxMessageSize(with_(...opt(57, 0x23, 0x28))), 1500],
    ['max size of one byte', () => maxMessageSize(with_(...opt(57, 9))), 576],
    ['client id of one byte', () => clientId(with_(...opt(61, 1))), null],
    ['empty hostname', () => hostnameOption(with_(...opt(12))), null],
    ['hostname of NULs', () => hostnameOption(with_(...opt(12, 0, 0))), null],
    ['vendor class', () => vendorClass(with_(...optS(60, 'HTTPClient'))), 'HTTPClient'],
    [
      'RFC 3004 user classes',
      () => userClass(with_(...opt(77, 4, ...ascii('iPXE'), 3, ...ascii('foo')))),
      ['iPXE', 'foo'],
    ],
    ['plain user class', () => userClass(with_(...optS(77, 'iPXE'))), ['iPXE']],
    ['plain user class with NUL', () => userClass(with_(...optS(77, 'iPXE\0'))), ['iPXE']],
    ['user class with a zero instance length', () => userClass(with_(...opt(77, 0, 65))), ['\0A']],
    ['empty user class', () => userClass(with_(...opt(77))), []],
    ['two architectures', () => clientArch(with_(...opt(93, 0, 7, 0, 16))), 7],
    ['arch of odd length', () => clientArch(with_(...opt(93, 0, 7, 0))), null],
    ['arch of one byte', () => clientArch(with_(...opt(93, 7))), null],
    ['empty relay info', () => relayAgentInfo(with_(...opt(82)))?.length, 0],
  ])('%s', (_, read, want) => expect(read()).toEqual(want));
});

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
