/**
 * Which boot program a DHCP client gets: firmware PXE gets a first-stage iPXE loader over TFTP, UEFI
 * HTTP boot gets an EFI binary by URL, and iPXE itself gets the node's script. Architecture numbers are
 * the IANA processor architecture types of RFC 4578 option 93.
 */
import { clientArch, hasOption, IPXE_ENCAP, userClass, vendorClass } from './options.js';
import type { DhcpPacket } from './packet.js';

export interface ClientKind {
  arch: number | null;
  ipxe: boolean;
  /** Vendor class starts with 'HTTPClient' (UEFI HTTP boot) */
  httpClient: boolean;
  /** Vendor class starts with 'PXEClient' (firmware or iPXE PXE stack) */
  pxeClient: boolean;
}

export interface BootMap {
  /** Per-arch first-stage iPXE loaders served over TFTP, paths in the TFTP root */
  tftp: { bios: string; uefi32: string | null; uefi64: string; arm64: string | null };
  /** Per-arch EFI binaries for UEFI HTTP boot, as paths under the HTTP base */
  http: { uefi64: string; arm64: string | null };
  /** Path template of a node's iPXE script under the HTTP base; `{mac}` → MAC as 52-54-00-12-34-56 */
  script: string;
  /** Bootenvs that boot from the local disk: no boot program at all */
  localBootenvs: string[];
}

export interface BootChoice {
  file: string | null;
  siaddr: string;
  vendorClassEcho: 'HTTPClient' | null;
  reason: string;
}

export interface BootContext {
  /** This server's address on the client's network: next-server */
  server: string;
  /** e.g. 'http://198.18.0.2:8091' */
  httpBase: string;
  mac: string;
}

const PXE_PREFIX = 'PXEClient';
const HTTP_PREFIX = 'HTTPClient';
const ARCH_TAG = ':Arch:';

/** 'PXEClient:Arch:00007:UNDI:003016' → 7; null unless 1–5 decimal digits follow the tag. */
function archFromVendorClass(vc: string, prefixLength: number): number | null {
  if (!vc.startsWith(ARCH_TAG, prefixLength)) return null;
  const from = prefixLength + ARCH_TAG.length;
  let value = 0;
  let i = from;
  for (; i < vc.length; i++) {
    const c = vc.charCodeAt(i);
    if (c === 58) break;
    if (c < 48 || c > 57) return null;
    value = value * 10 + (c - 48);
  }
  const digits = i - from;
  return digits >= 1 && digits <= 5 && value <= 0xffff ? value : null;
}

export function classifyClient(p: DhcpPacket): ClientKind {
  const vc = vendorClass(p) ?? '';
  const httpClient = vc.startsWith(HTTP_PREFIX);
  const pxeClient = vc.startsWith(PXE_PREFIX);
  let arch = clientArch(p);
  if (arch === null && httpClient) arch = archFromVendorClass(vc, HTTP_PREFIX.length);
  if (arch === null && pxeClient) arch = archFromVendorClass(vc, PXE_PREFIX.length);
  const ipxe = hasOption(p, IPXE_ENCAP) || userClass(p).includes('iPXE');
  return { arch, ipxe, httpClient, pxeClient };
}

function joinUrl(base: string, path: string): string {
  if (path.startsWith('http://') || path.startsWith('https://')) return path;
  const b = base.endsWith('/') ? base.slice(0, -1) : base;
  return path.startsWith('/') ? b + path : `${b}/${path}`;
}

const none = (reason: string): BootChoice => ({
  file: null,
  siaddr: '0.0.0.0',
  vendorClassEcho: null,
  reason,
});

function give(
  file: string | null | undefined,
  ctx: BootContext,
  reason: string,
  echo: 'HTTPClient' | null = null,
): BootChoice {
  if (file === null || file === undefined || file === '') return none(`${reason}: no program configured`);
  return { file, siaddr: ctx.server, vendorClassEcho: echo, reason };
}

export function chooseBoot(client: ClientKind, bootenv: string, map: BootMap, ctx: BootContext): BootChoice {
  if (map.localBootenvs.includes(bootenv)) return none(`bootenv ${bootenv} boots from the local disk`);
  if (client.ipxe) {
    const script = map.script.replaceAll('{mac}', ctx.mac.toLowerCase().replaceAll(':', '-'));
    return give(joinUrl(ctx.httpBase, script), ctx, 'iPXE: node script');
  }
  // Firmware without option 93 or an Arch tag: HTTP boot means x64 (arch 16); a bare PXEClient predates
  // option 93 and is x86 BIOS.
  const arch = client.arch ?? (client.httpClient ? 16 : client.pxeClient ? 0 : null);
  if (arch === null) return none('not a PXE client: no architecture and no PXE or HTTP vendor class');
  const http = (path: string | null) => (path ? joinUrl(ctx.httpBase, path) : null);
  switch (arch) {
    case 0:
      return give(map.tftp.bios, ctx, 'arch 0 (x86 BIOS): TFTP loader');
    case 6:
      return give(map.tftp.uefi32 ?? map.tftp.uefi64, ctx, 'arch 6 (x86 UEFI): TFTP loader');
    case 7:
    case 9:
      return give(map.tftp.uefi64, ctx, `arch ${arch} (x64 UEFI): TFTP loader`);
    case 11:
      return give(map.tftp.arm64, ctx, 'arch 11 (arm64 UEFI): TFTP loader');
    case 16:
      return give(http(map.http.uefi64), ctx, 'arch 16 (x64 UEFI HTTP): EFI binary', 'HTTPClient');
    case 19:
      return give(http(map.http.arm64), ctx, 'arch 19 (arm64 UEFI HTTP): EFI binary', 'HTTPClient');
    case 10:
      // An AArch64 loader does not run on 32-bit ARM firmware, and the map has no arm32 entry.
      return none('arch 10 (arm32 UEFI): no arm32 loader in the boot map');
    default:
      return none(`arch ${arch}: unknown architecture`);
  }
}
