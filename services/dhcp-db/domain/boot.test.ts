import { describe, expect, it } from 'vitest';
import { type BootMap, type ClientKind, chooseBoot, classifyClient } from './boot.js';
import { parsePacket } from './packet.js';

const opt = (code: number, ...value: number[]) => [code, value.length, ...value];
const optS = (code: number, s: string) => opt(code, ...Buffer.from(s, 'latin1'));
const arch = (...a: number[]) => opt(93, ...a.flatMap((n) => [n >> 8, n & 0xff]));
const vc = (s: string) => optS(60, s);
const uc = (s: string) => optS(77, s);
const ipxeEncap = opt(175, 177, 5, 1, 0x80, 0x86, 0x10, 0x0e);

function discover(...options: number[][]) {
  const b = Buffer.alloc(300);
  b[0] = 1;
  b[1] = 1;
  b[2] = 6;
  b.set([0x52, 0x54, 0x00, 0x12, 0x34, 0x56], 28);
  b.set([99, 130, 83, 99], 236);
  b.set([...opt(53, 1), ...options.flat(), 255], 240);
  return parsePacket(b);
}

const full: BootMap = {
  tftp: { bios: 'undionly.kpxe', uefi32: 'ipxe32.efi', uefi64: 'ipxe.efi', arm64: 'arm64/ipxe.efi' },
  http: { uefi64: '/boot/x64/ipxe.efi', arm64: 'boot/arm64/ipxe.efi' },
  script: '/nodes/{mac}.ipxe',
  localBootenvs: ['local', 'sledgehammer-local'],
};
const sparse: BootMap = {
  tftp: { bios: 'undionly.kpxe', uefi32: null, uefi64: 'ipxe.efi', arm64: null },
  http: { uefi64: 'boot/x64/ipxe.efi', arm64: null },
  script: 'nodes/{mac}.ipxe',
  localBootenvs: [],
};
const ctx = { server: '198.18.0.2', httpBase: 'http://198.18.0.2:8091/', mac: '52:54:00:12:34:56' };
const HB = 'http://198.18.0.2:8091';

describe('classifyClient', () => {
  const k = (a: number | null, ipxe = false, httpClient = false, pxeClient = false): ClientKind => ({
    arch: a,
    ipxe,
    httpClient,
    pxeClient,
  });
  it.each<[string, number[][], ClientKind]>([
    ['an OS dhclient', [], k(null)],
    ['firmware PXE x64', [arch(7), vc('PXEClient:Arch:00007:UNDI:003016')], k(7, false, false, true)],
    [
      'option 93 wins over the vendor class',
      [arch(9), vc('PXEClient:Arch:00000:UNDI:002001')],
      k(9, false, false, true),
    ],
    ['arch from the vendor class', [vc('PXEClient:Arch:00000:UNDI:002001')], k(0, false, false, true)],
    ['HTTP arch from the vendor class', [vc('HTTPClient:Arch:00019:UNDI:003000')], k(19, false, true)],
    ['bare HTTPClient', [vc('HTTPClient')], k(null, false, true)],
    ['bare PXEClient', [vc('PXEClient')], k(null, false, false, true)],
    ['a non-decimal Arch tag', [vc('PXEClient:Arch:0x007:UNDI')], k(null, false, false, true)],
    ['a six-digit Arch tag', [vc('PXEClient:Arch:000007')], k(null, false, false, true)],
    ['an empty Arch tag', [vc('PXEClient:Arch::UNDI')], k(null, false, false, true)],
    ['an Arch tag at the end', [vc('PXEClient:Arch:00011')], k(11, false, false, true)],
    ['a lower-case vendor class', [vc('pxeclient:Arch:00007')], k(null)],
    [
      'iPXE by user class',
      [arch(0), vc('PXEClient:Arch:00000:UNDI:002001'), uc('iPXE')],
      k(0, true, false, true),
    ],
    ['iPXE by RFC 3004 user class', [arch(7), opt(77, 3, 102, 111, 111, 4, 105, 80, 88, 69)], k(7, true)],
    ['iPXE by option 175', [arch(7), ipxeEncap], k(7, true)],
    ['another user class', [arch(7), uc('gPXE')], k(7)],
    ['a malformed option 93', [opt(93, 7), vc('PXEClient:Arch:00006')], k(6, false, false, true)],
  ])('%s', (_, options, want) => expect(classifyClient(discover(...options))).toEqual(want));
});

describe('chooseBoot from a DISCOVER', () => {
  it.each<[string, number[][], BootMap, string | null, 'HTTPClient' | null, string]>([
    ['BIOS PXE', [arch(0), vc('PXEClient:Arch:00000:UNDI:002001')], full, 'undionly.kpxe', null, 'arch 0'],
    [
      'BIOS from the vendor class only',
      [vc('PXEClient:Arch:00000:UNDI:002001')],
      full,
      'undionly.kpxe',
      null,
      'BIOS',
    ],
    ['legacy PXEClient without arch', [vc('PXEClient')], full, 'undionly.kpxe', null, 'BIOS'],
    ['x86 UEFI 32', [arch(6)], full, 'ipxe32.efi', null, 'arch 6'],
    ['x86 UEFI 32 without its own loader', [arch(6)], sparse, 'ipxe.efi', null, 'arch 6'],
    ['x64 UEFI (7)', [arch(7)], sparse, 'ipxe.efi', null, 'arch 7'],
    ['x64 UEFI (9)', [arch(9)], full, 'ipxe.efi', null, 'arch 9'],
    ['arm64 UEFI', [arch(11)], full, 'arm64/ipxe.efi', null, 'arch 11'],
    ['arm64 UEFI unconfigured', [arch(11)], sparse, null, null, 'no program configured'],
    ['arm32 UEFI', [arch(10)], full, null, null, 'arm32'],
    [
      'x64 HTTP boot',
      [arch(16), vc('HTTPClient:Arch:00016:UNDI:003001')],
      full,
      `${HB}/boot/x64/ipxe.efi`,
      'HTTPClient',
      'arch 16',
    ],
    ['x64 HTTP boot, relative path', [arch(16)], sparse, `${HB}/boot/x64/ipxe.efi`, 'HTTPClient', 'arch 16'],
    ['HTTPClient without arch', [vc('HTTPClient')], full, `${HB}/boot/x64/ipxe.efi`, 'HTTPClient', 'arch 16'],
    [
      'arm64 HTTP boot',
      [vc('HTTPClient:Arch:00019:UNDI:003000')],
      full,
      `${HB}/boot/arm64/ipxe.efi`,
      'HTTPClient',
      'arch 19',
    ],
    ['arm64 HTTP boot unconfigured', [arch(19)], sparse, null, null, 'no program configured'],
    [
      'iPXE on BIOS',
      [arch(0), vc('PXEClient:Arch:00000:UNDI:002001'), uc('iPXE')],
      full,
      `${HB}/nodes/52-54-00-12-34-56.ipxe`,
      null,
      'iPXE',
    ],
    ['iPXE by option 175', [arch(7), ipxeEncap], sparse, `${HB}/nodes/52-54-00-12-34-56.ipxe`, null, 'iPXE'],
    ['iPXE without any arch', [uc('iPXE')], full, `${HB}/nodes/52-54-00-12-34-56.ipxe`, null, 'iPXE'],
    ['an OS dhclient', [opt(55, 1, 3, 6)], full, null, null, 'not a PXE client'],
    ['an unknown arch', [arch(0x1234)], full, null, null, 'arch 4660'],
    ['x64 UEFI HTTP 32-bit (15)', [arch(15)], full, null, null, 'arch 15'],
    ['a non-PXE vendor class', [vc('MSFT 5.0')], full, null, null, 'not a PXE client'],
  ])('%s', (_, options, map, file, echo, reason) => {
    const got = chooseBoot(classifyClient(discover(...options)), 'sledgehammer', map, ctx);
    expect(got).toMatchObject({
      file,
      vendorClassEcho: echo,
      siaddr: file === null ? '0.0.0.0' : ctx.server,
    });
    expect(got.reason).toContain(reason);
  });
});

describe('chooseBoot rules', () => {
  const pxe64: ClientKind = { arch: 7, ipxe: false, httpClient: false, pxeClient: true };
  const ipxe: ClientKind = { ...pxe64, ipxe: true };
  it.each<[string, ClientKind, string, BootMap, Partial<typeof ctx>, string | null, string]>([
    ['a local bootenv', pxe64, 'local', full, {}, null, 'local disk'],
    ['a local bootenv for iPXE', ipxe, 'sledgehammer-local', full, {}, null, 'local disk'],
    ['an empty bootenv', pxe64, '', full, {}, 'ipxe.efi', 'arch 7'],
    [
      'an upper-case MAC',
      ipxe,
      'x',
      full,
      { mac: 'AA:BB:CC:00:11:22' },
      `${HB}/nodes/aa-bb-cc-00-11-22.ipxe`,
      'iPXE',
    ],
    [
      'a base without slash',
      ipxe,
      'x',
      sparse,
      { httpBase: 'http://h:1' },
      'http://h:1/nodes/52-54-00-12-34-56.ipxe',
      'iPXE',
    ],
    [
      'a script that is a URL',
      ipxe,
      'x',
      { ...full, script: 'https://s/{mac}/{mac}' },
      {},
      'https://s/52-54-00-12-34-56/52-54-00-12-34-56',
      'iPXE',
    ],
    [
      'an empty BIOS loader',
      { ...pxe64, arch: 0 },
      'x',
      { ...full, tftp: { ...full.tftp, bios: '' } },
      {},
      null,
      'no program configured',
    ],
    ['arch 65535', { ...pxe64, arch: 0xffff }, 'x', full, {}, null, 'arch 65535'],
  ])('%s', (_, client, bootenv, map, over, file, reason) => {
    const got = chooseBoot(client, bootenv, map, { ...ctx, ...over });
    expect(got.file).toBe(file);
    expect(got.siaddr).toBe(file === null ? '0.0.0.0' : ctx.server);
    expect(got.vendorClassEcho).toBeNull();
    expect(got.reason).toContain(reason);
  });
});
