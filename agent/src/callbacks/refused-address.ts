import { isIP } from 'node:net';

/**
 * Addresses a callback must not reach unless its origin is listed in
 * WARMSTART_CALLBACK_ORIGINS: the node itself, its link, private networks
 * and the cloud metadata service. A caller who could aim the agent's POSTs
 * (with the callback token) there would get a blind request into the
 * operator's network, sent from inside it (agent/src/callbacks/callback-url.ts).
 */

/** Why an IPv4 address (four octets) is refused, or null. */
function ipv4Problem(o: readonly number[]): string | null {
  const [a, b] = [o[0]!, o[1]!];
  if (a === 0) return 'the "this network" range 0.0.0.0/8';
  if (a === 127) return 'loopback';
  if (a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168)) return 'a private (RFC 1918) network';
  if (a === 169 && b === 254) return 'link-local (the cloud metadata address among them)';
  if (a === 100 && b >= 64 && b <= 127) return 'carrier-grade NAT (100.64.0.0/10)';
  if (a === 192 && b === 0 && o[2] === 0) return 'IETF protocol assignments (192.0.0.0/24)';
  if (a === 198 && (b === 18 || b === 19)) return 'a benchmarking network (198.18.0.0/15)';
  if (a >= 224) return 'multicast, reserved or broadcast';
  return null;
}

function parseIpv4(ip: string): number[] | null {
  const parts = ip.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return null;
  return parts.map(Number);
}

/** The eight 16-bit groups of an IPv6 address (zone dropped, a trailing dotted quad folded in), or null. */
export function ipv6Groups(ip: string): number[] | null {
  let s = ip.replace(/^\[|\]$/g, '').split('%', 1)[0]!;
  const quad = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (quad) {
    const v4 = parseIpv4(quad[2]!);
    if (!v4) return null;
    s = `${quad[1]}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return null;
  const split = (h: string): string[] => (h === '' ? [] : h.split(':'));
  const head = split(halves[0]!);
  const tail = halves.length === 2 ? split(halves[1]!) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  if (!groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return null;
  return groups.map((g) => parseInt(g, 16));
}

const embeddedV4 = (hi: number, lo: number): number[] => [hi >> 8, hi & 0xff, lo >> 8, lo & 0xff];

function ipv6Problem(g: readonly number[]): string | null {
  const zeroUpTo = (n: number): boolean => g.slice(0, n).every((x) => x === 0);
  if (zeroUpTo(8)) return 'the unspecified address ::';
  if (zeroUpTo(7) && g[7] === 1) return 'loopback';
  const withV4 = (what: string, v4: number[]): string | null => {
    const p = ipv4Problem(v4);
    return p === null ? null : `${what} of ${p}`;
  };
  // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d):
  // each reaches the IPv4 address it carries.
  if (zeroUpTo(5) && g[5] === 0xffff) return withV4('an IPv4-mapped form', embeddedV4(g[6]!, g[7]!));
  if (zeroUpTo(6)) return withV4('an IPv4-compatible form', embeddedV4(g[6]!, g[7]!));
  if (g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0)) return withV4('a NAT64 form', embeddedV4(g[6]!, g[7]!));
  if (g[0] === 0x2002) return withV4('a 6to4 form', embeddedV4(g[1]!, g[2]!));
  const first = g[0]!;
  if ((first & 0xffc0) === 0xfe80) return 'link-local (fe80::/10)';
  if ((first & 0xffc0) === 0xfec0) return 'site-local (fec0::/10)';
  if ((first & 0xfe00) === 0xfc00) return 'a unique local network (fc00::/7)';
  if ((first & 0xff00) === 0xff00) return 'multicast';
  return null;
}

/**
 * Why a callback may not go to this IP address (a sentence fragment), or
 * null when it may. Anything that is not an IP address is refused: the
 * caller resolves names first.
 */
export function refusedAddress(ip: string): string | null {
  const bare = ip.replace(/^\[|\]$/g, '');
  const version = isIP(bare.split('%', 1)[0]!);
  if (version === 4) return ipv4Problem(parseIpv4(bare)!);
  if (version === 6) {
    const groups = ipv6Groups(bare);
    return groups ? ipv6Problem(groups) : 'an IPv6 address that could not be read';
  }
  return 'not an IP address';
}
