import { DECLINE, INFORM, OFFER, RELEASE, REQUEST, type RequestSpec } from './dhcp-wire.js';

/** A packet dhcp-db must drop (`drop`: the reason it counts), NAK, or answer in another way (`done`). */
export interface MalformedCase {
  what: string;
  packet: Buffer;
  drop?: string;
  nak?: true;
  done?: string;
}

/**
 * Malformed and misdirected requests for the admin network 198.18.112.0/24 (dhcp range .21–.80, host
 * range from .200) served by `server`, with a second managed network 198.18.115.0/25 and
 * 198.18.115.200 on no managed subnet; `req` builds a relayed DISCOVER from the admin relay with `s`
 * changed.
 */
export function malformedCases(req: (s: Partial<RequestSpec>) => Buffer, server: string): MalformedCase[] {
  return [
    { what: 'empty datagram', packet: Buffer.alloc(0), drop: 'truncated' },
    { what: 'header cut at 239 bytes', packet: req({}).subarray(0, 239), drop: 'truncated' },
    { what: '4097 bytes', packet: Buffer.concat([req({}), Buffer.alloc(3797)]), drop: 'oversize' },
    { what: '9000 bytes', packet: Buffer.concat([req({}), Buffer.alloc(8700)]), drop: 'oversize' },
    { what: 'op BOOTREPLY', packet: req({ op: 2 }), drop: 'bad_op' },
    { what: 'op 7', packet: req({ op: 7 }), drop: 'bad_op' },
    { what: 'htype 99', packet: req({ htype: 99 }), drop: 'bad_htype' },
    { what: 'Ethernet with hlen 7', packet: req({ hlen: 7 }), drop: 'bad_hlen' },
    { what: 'IEEE 802 with hlen 0', packet: req({ htype: 6, hlen: 0 }), drop: 'bad_hlen' },
    { what: 'no magic cookie', packet: req({ magic: 0 }), drop: 'bad_magic' },
    { what: 'BOOTP cookie byte-swapped', packet: req({ magic: 0x53638263 }), drop: 'bad_magic' },
    {
      what: 'option longer than the packet',
      // 53,1,1 then 12,1 and the packet ends where the value should be
      packet: req({ options: [[12, Buffer.from('x')]] }).subarray(0, 240 + 3 + 2),
      drop: 'option_overflow',
    },
    {
      what: 'option without its length byte',
      packet: Buffer.concat([req({ end: false }).subarray(0, 243), Buffer.from([12])]),
      drop: 'option_overflow',
    },
    { what: 'no END option', packet: req({ end: false }), drop: 'no_end' },
    { what: 'no message type', packet: req({ type: null }), drop: 'no_message_type' },
    { what: 'message type 0', packet: req({ type: 0 }), drop: 'bad_message_type' },
    { what: 'message type 9', packet: req({ type: 9 }), drop: 'bad_message_type' },
    {
      what: 'message type two bytes long',
      packet: req({ type: null, options: [[53, Buffer.from([1, 1])]] }),
      drop: 'bad_option',
    },
    { what: 'overload 4', packet: req({ options: [[52, Buffer.from([4])]] }), drop: 'bad_option' },
    { what: 'an OFFER sent to the server', packet: req({ type: OFFER }), drop: 'not_a_client_message' },
    {
      what: 'relay on an unmanaged subnet',
      packet: req({ giaddr: '198.18.115.200' }),
      drop: 'unmanaged_relay',
    },
    {
      what: 'REQUEST (selecting) without option 50',
      packet: req({ type: REQUEST, server }),
      drop: 'request_without_address',
    },
    {
      what: 'REQUEST with nothing to go on',
      packet: req({ type: REQUEST }),
      drop: 'request_without_address',
    },
    {
      what: 'REQUEST (selecting) for an address in no range',
      packet: req({ type: REQUEST, server, requested: '198.18.112.5' }),
      nak: true,
    },
    {
      what: 'REQUEST (selecting) for an address of the reserved host range',
      packet: req({ type: REQUEST, server, requested: '198.18.112.200' }),
      nak: true,
    },
    {
      what: 'REQUEST (selecting) for an address of no managed network',
      packet: req({ type: REQUEST, server, requested: '198.18.115.201' }),
      nak: true,
    },
    {
      what: 'INIT-REBOOT for an address of another managed network',
      packet: req({ type: REQUEST, requested: '198.18.115.50' }),
      nak: true,
    },
    {
      what: 'INIT-REBOOT for an address of no managed network',
      packet: req({ type: REQUEST, requested: '198.18.115.201' }),
      nak: true,
    },
    {
      what: 'RENEWING from an address on another network',
      packet: req({ type: REQUEST, ciaddr: '198.18.115.50' }),
      nak: true,
    },
    {
      what: 'REQUEST for another server',
      packet: req({ type: REQUEST, server: '198.18.112.11', requested: '198.18.112.30' }),
      done: 'ignored',
    },
    {
      what: 'DECLINE without option 50',
      packet: req({ type: DECLINE, server }),
      drop: 'decline_without_address',
    },
    {
      what: 'DECLINE of an address nobody holds',
      packet: req({ type: DECLINE, server, requested: '198.18.112.30' }),
      drop: 'decline_not_held',
    },
    {
      what: 'RELEASE of an address nobody holds',
      packet: req({ type: RELEASE, server, ciaddr: '198.18.112.30' }),
      drop: 'release_not_held',
    },
    { what: 'INFORM without ciaddr', packet: req({ type: INFORM }), drop: 'inform_without_address' },
    {
      what: 'INFORM from another network',
      packet: req({ type: INFORM, ciaddr: '198.18.115.50' }),
      drop: 'inform_without_address',
    },
  ];
}
