/** Where a BOOTP/DHCPv4 message keeps its fields (RFC 2131 §2), shared by parsing and encoding. */
export const MIN_PACKET = 240;
export const MAX_PACKET = 4096;
/** The options' magic cookie (RFC 2131 §3). */
export const MAGIC = 0x63825363;
export const SNAME_AT = 44;
export const SNAME_LEN = 64;
export const FILE_AT = 108;
export const FILE_LEN = 128;
export const OPTIONS_AT = 240;
