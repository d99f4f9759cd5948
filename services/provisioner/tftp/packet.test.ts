import { describe, expect, it } from 'vitest';
import {
  type DropReason,
  ErrorCode,
  encodeAck,
  encodeData,
  encodeError,
  encodeOack,
  encodeRequest,
  fromNetascii,
  MAX_REQUEST,
  negotiate,
  PacketError,
  parsePacket,
  toNetascii,
  writeDataHeader,
} from './packet.js';

const bytes = (...parts: (string | number[] | Buffer)[]) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
const rrq = (...fields: string[]) => bytes([0, 1], ...fields.map((f) => `${f}\0`));

describe('parsePacket: requests', () => {
  const cases: [string, Buffer, { op: string; file: string; mode: string; options: [string, string][] }][] = [
    ['plain RRQ', rrq('pxelinux.0', 'octet'), { op: 'rrq', file: 'pxelinux.0', mode: 'octet', options: [] }],
    ['mode is case-insensitive', rrq('a', 'OcTeT'), { op: 'rrq', file: 'a', mode: 'octet', options: [] }],
    ['netascii', rrq('a.txt', 'netascii'), { op: 'rrq', file: 'a.txt', mode: 'netascii', options: [] }],
    ['WRQ', bytes([0, 2], 'up.bin\0octet\0'), { op: 'wrq', file: 'up.bin', mode: 'octet', options: [] }],
    [
      'options, names lower-cased, in order',
      rrq('k', 'octet', 'BLKSIZE', '1468', 'tsize', '0', 'windowsize', '16', 'Timeout', '3'),
      {
        op: 'rrq',
        file: 'k',
        mode: 'octet',
        options: [
          ['blksize', '1468'],
          ['tsize', '0'],
          ['windowsize', '16'],
          ['timeout', '3'],
        ],
      },
    ],
    [
      'unknown options are kept for negotiate to ignore',
      rrq('k', 'octet', 'multicast', ''),
      { op: 'rrq', file: 'k', mode: 'octet', options: [['multicast', '']] },
    ],
    [
      'NUL padding after the last field (some PXE ROMs)',
      bytes(rrq('k', 'octet', 'tsize', '0'), [0, 0, 0, 0]),
      { op: 'rrq', file: 'k', mode: 'octet', options: [['tsize', '0']] },
    ],
    [
      'leading slash and UTF-8 are kept as sent',
      bytes([0, 1], Buffer.from('/bööt/x\0octet\0', 'utf8').toString('latin1')),
      { op: 'rrq', file: '/bööt/x', mode: 'octet', options: [] },
    ],
  ];
  it.each(cases)('%s', (_name, packet, want) => {
    const p = parsePacket(packet);
    expect(p.op).toBe(want.op);
    if (p.op !== 'rrq' && p.op !== 'wrq') throw new Error('not a request');
    expect({ file: p.file, mode: p.mode, options: [...p.options] }).toEqual({
      file: want.file,
      mode: want.mode,
      options: want.options,
    });
  });

  const bad: [string, Buffer, DropReason, number | null][] = [
    ['empty', Buffer.alloc(0), 'truncated', null],
    ['three bytes', bytes([0, 1, 97]), 'truncated', null],
    ['unknown opcode 0', bytes([0, 0], 'a\0octet\0'), 'bad_opcode', null],
    ['unknown opcode 7', bytes([0, 7], 'a\0octet\0'), 'bad_opcode', null],
    ['opcode high byte', bytes([1, 1], 'a\0octet\0'), 'bad_opcode', null],
    ['file name unterminated', bytes([0, 1], 'abc'), 'unterminated', null],
    ['mode unterminated', bytes([0, 1], 'abc\0octet'), 'unterminated', null],
    ['no mode', bytes([0, 1], 'abc\0'), 'unterminated', null],
    ['empty file name', rrq('', 'octet'), 'bad_filename', ErrorCode.FILE_NOT_FOUND],
    [
      'file name not UTF-8',
      bytes([0, 1, 0xff, 0xfe, 0], 'octet\0'),
      'bad_filename',
      ErrorCode.FILE_NOT_FOUND,
    ],
    ['mail mode', rrq('a', 'mail'), 'bad_mode', ErrorCode.ILLEGAL_OPERATION],
    ['unknown mode', rrq('a', 'binary'), 'bad_mode', ErrorCode.ILLEGAL_OPERATION],
    [
      'NUL inside the name ends it: the rest is a bad mode',
      rrq('a', '../etc/passwd', 'octet'),
      'bad_mode',
      4,
    ],
    ['option without value', rrq('a', 'octet', 'blksize'), 'bad_option', ErrorCode.OPTION_NEGOTIATION],
    ['option value unterminated', bytes(rrq('a', 'octet'), 'blksize\x001468'), 'unterminated', null],
    ['option twice', rrq('a', 'octet', 'blksize', '512', 'BLKSIZE', '1024'), 'bad_option', 8],
    ['junk after padding', bytes(rrq('a', 'octet'), [0], 'x\0'), 'bad_option', 8],
    ['oversize request', rrq('a'.repeat(MAX_REQUEST), 'octet'), 'oversize', null],
  ];
  it.each(bad)('%s -> %s', (_name, packet, reason, answer) => {
    let err: unknown;
    try {
      parsePacket(packet);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PacketError);
    expect((err as PacketError).reason).toBe(reason);
    expect((err as PacketError).answer).toBe(answer);
  });
});

describe('parsePacket: DATA, ACK, ERROR, OACK', () => {
  it.each([
    ['ACK 0', bytes([0, 4, 0, 0]), { op: 'ack', block: 0 }],
    ['ACK 65535', bytes([0, 4, 0xff, 0xff]), { op: 'ack', block: 65535 }],
    ['padded ACK', bytes([0, 4, 1, 2, 0, 0]), { op: 'ack', block: 258 }],
    ['ERROR', bytes([0, 5, 0, 8], 'no thanks\0'), { op: 'error', code: 8, message: 'no thanks' }],
    ['ERROR unterminated', bytes([0, 5, 0, 1], 'gone'), { op: 'error', code: 1, message: 'gone' }],
  ])('%s', (_n, packet, want) => {
    expect(parsePacket(packet)).toEqual(want);
  });

  it('DATA carries block and a view of the payload', () => {
    const p = parsePacket(bytes([0, 3, 0x12, 0x34], 'hello'));
    expect(p).toMatchObject({ op: 'data', block: 0x1234 });
    expect(p.op === 'data' && p.data.toString()).toBe('hello');
  });

  it('OACK options', () => {
    const p = parsePacket(
      encodeOack([
        ['blksize', 1468],
        ['tsize', 99],
      ]),
    );
    expect(p.op === 'oack' && [...p.options]).toEqual([
      ['blksize', '1468'],
      ['tsize', '99'],
    ]);
    expect(() => parsePacket(bytes([0, 6], 'blksize\0'))).toThrow(PacketError);
  });
});

describe('encoding', () => {
  it('round-trips a request', () => {
    const b = encodeRequest('rrq', 'ipxe/undionly.kpxe', 'octet', [
      ['blksize', 1468],
      ['tsize', 0],
    ]);
    expect(b).toEqual(rrq('ipxe/undionly.kpxe', 'octet', 'blksize', '1468', 'tsize', '0'));
    expect(parsePacket(encodeRequest('wrq', 'x', 'netascii'))).toMatchObject({ op: 'wrq', mode: 'netascii' });
  });

  it.each([
    [ErrorCode.FILE_NOT_FOUND, 'file not found', bytes([0, 5, 0, 1], 'file not found\0')],
    [ErrorCode.ACCESS_VIOLATION, 'writes are not allowed', bytes([0, 5, 0, 2], 'writes are not allowed\0')],
    [ErrorCode.OPTION_NEGOTIATION, 'bad\u0000\nname', bytes([0, 5, 0, 8], 'bad??name\0')],
  ])('ERROR %i %j', (code, message, want) => {
    expect(encodeError(code, message)).toEqual(want);
  });

  it('caps ERROR messages so one always fits 512 octets', () => {
    expect(encodeError(0, 'x'.repeat(5000)).length).toBeLessThanOrEqual(512);
  });

  it('ACK, DATA and DATA headers wrap at 16 bits', () => {
    expect(encodeAck(65536 + 7)).toEqual(bytes([0, 4, 0, 7]));
    expect(encodeData(0x0102, bytes('ab'))).toEqual(bytes([0, 3, 1, 2], 'ab'));
    const b = Buffer.alloc(6, 0xee);
    writeDataHeader(b, 65535);
    expect([...b]).toEqual([0, 3, 0xff, 0xff, 0xee, 0xee]);
  });
});

describe('negotiate', () => {
  const limits = { maxWindowBytes: 256 * 1024 };
  const opts = (...kv: string[]) => {
    const m = new Map<string, string>();
    for (let i = 0; i < kv.length; i += 2) m.set(kv[i]!, kv[i + 1]!);
    return m;
  };

  it.each([
    [
      'no options: plain RFC 1350',
      opts(),
      'octet',
      { blksize: 512, windowsize: 1, timeoutMs: null, acked: [] },
    ],
    [
      'blksize and tsize',
      opts('blksize', '1468', 'tsize', '0'),
      'octet',
      {
        blksize: 1468,
        windowsize: 1,
        timeoutMs: null,
        acked: [
          ['blksize', 1468],
          ['tsize', 16777216],
        ],
      },
    ],
    [
      'bounds are inclusive',
      opts('blksize', '65464', 'timeout', '255', 'windowsize', '1'),
      'octet',
      {
        blksize: 65464,
        windowsize: 1,
        timeoutMs: 255_000,
        acked: [
          ['blksize', 65464],
          ['timeout', 255],
          ['windowsize', 1],
        ],
      },
    ],
    [
      'lower bounds',
      opts('blksize', '8', 'timeout', '1'),
      'octet',
      {
        blksize: 8,
        windowsize: 1,
        timeoutMs: 1000,
        acked: [
          ['blksize', 8],
          ['timeout', 1],
        ],
      },
    ],
    [
      'windowsize lowered to the bytes allowed in flight',
      opts('blksize', '65464', 'windowsize', '65535'),
      'octet',
      {
        blksize: 65464,
        windowsize: 4,
        timeoutMs: null,
        acked: [
          ['blksize', 65464],
          ['windowsize', 4],
        ],
      },
    ],
    [
      'tsize left out in netascii',
      opts('tsize', '0'),
      'netascii',
      { blksize: 512, windowsize: 1, timeoutMs: null, acked: [] },
    ],
    [
      'unknown options left out',
      opts('multicast', '', 'utimeout', '5000', 'windowsize', '16'),
      'octet',
      { blksize: 512, windowsize: 16, timeoutMs: null, acked: [['windowsize', 16]] },
    ],
  ] as const)('%s', (_n, o, mode, want) => {
    expect(negotiate(o, mode, 16 * 1024 * 1024, limits)).toEqual(want);
  });

  it.each([
    ['blksize', '7'],
    ['blksize', '65465'],
    ['blksize', ''],
    ['blksize', '0x200'],
    ['blksize', ' 512'],
    ['blksize', '1e3'],
    ['blksize', '-512'],
    ['timeout', '0'],
    ['timeout', '256'],
    ['windowsize', '0'],
    ['windowsize', '65536'],
    ['tsize', 'abc'],
    ['tsize', '99999999999'],
  ])('%s=%j fails with ERROR 8', (name, value) => {
    let err: unknown;
    try {
      negotiate(opts(name, value), 'octet', 100, limits);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PacketError);
    expect((err as PacketError).answer).toBe(ErrorCode.OPTION_NEGOTIATION);
  });
});

describe('netascii', () => {
  it.each([
    ['no line ends', 'abc', 'abc'],
    ['LF', 'a\nb\n', 'a\r\nb\r\n'],
    ['bare CR', 'a\rb', 'a\r\0b'],
    ['CRLF in the file', 'a\r\n', 'a\r\0\r\n'],
    ['empty', '', ''],
  ])('%s', (_n, plain, wire) => {
    expect(toNetascii(Buffer.from(plain, 'latin1')).toString('latin1')).toBe(wire);
    expect(fromNetascii(Buffer.from(wire, 'latin1')).toString('latin1')).toBe(plain);
  });

  it('converts chunk by chunk the same as whole', () => {
    const text = Buffer.from('line one\nline two\r\nbare\rend\n'.repeat(50), 'latin1');
    const parts = [text.subarray(0, 33), text.subarray(33, 34), text.subarray(34)];
    expect(Buffer.concat(parts.map(toNetascii))).toEqual(toNetascii(text));
  });
});
