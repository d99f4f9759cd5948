import { describe, expect, it } from 'vitest';
import {
  ascii,
  DHCLIENT_REQUEST,
  IPXE_DISCOVER,
  MAC,
  opt,
  optS,
  request,
  UUID_BYTES,
} from '../../../test/helpers/dhcp-bytes.js';
import { DOMAIN_NAME, END } from './options.js';
import {
  clientArch,
  clientId,
  DhcpMessageType,
  type DropReason,
  hasOption,
  hostnameOption,
  leaseTimeRequested,
  maxMessageSize,
  PacketError,
  parameterList,
  parsePacket,
  relayAgentInfo,
  requestedAddress,
  serverIdentifier,
  userClass,
  vendorClass,
} from './packet.js';

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
