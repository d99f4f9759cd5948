import { END } from '../../services/dhcp-db/domain/options.js';

/** DHCPv4 requests built byte by byte, for the packet codec's unit tests. */

export const MAC = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
export const ascii = (s: string) => [...Buffer.from(s, 'latin1')];
export const opt = (code: number, ...value: number[]) => [code, value.length, ...value];
export const optS = (code: number, s: string) => opt(code, ...ascii(s));

export interface Head {
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
export function request(head: Head, options: number[], padTo = 300): Buffer {
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

export const UUID_BYTES = [0, ...Array.from({ length: 16 }, (_, i) => 0xa0 + i)];
export const IPXE_DISCOVER = request({ flags: 0x8000 }, [
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

export const DHCLIENT_REQUEST = request({ xid: 0xdeadbeef, ciaddr: [0, 0, 0, 0] }, [
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
