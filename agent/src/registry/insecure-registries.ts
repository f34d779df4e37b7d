/**
 * Which registries the Docker engine treats as insecure, read from its
 * `GET /info` (RegistryConfig), and the same decision taken for the agent's
 * own registry calls (registry-transports.ts): a registry dockerd would
 * reach without TLS verification, or over plain http, the agent reaches the
 * same way, and no other.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

/** The engine's registry settings, in the agent's words. */
export interface EngineRegistryConfig {
  /** host[:port] (lowercased) → whether the engine verifies it (`IndexConfigs[host].Secure`) */
  secureByHost: Record<string, boolean>;
  /** `InsecureRegistryCIDRs`: a registry whose address falls in one is insecure */
  insecureCidrs: string[];
}

/**
 * What dockerd assumes when nothing else is configured: loopback registries
 * are insecure (its `InsecureRegistryCIDRs` default; the engines of
 * test/testbed/up.sh report exactly this). Used when the engine does not say.
 */
export const DOCKERD_DEFAULTS: EngineRegistryConfig = { secureByHost: {}, insecureCidrs: ['127.0.0.0/8'] };

/**
 * The parts of a `GET /info` body this reads. An engine that reports no
 * RegistryConfig at all gets dockerd's defaults; inside it, an entry that is
 * missing or malformed counts as not configured.
 */
export function registryConfigFromInfo(info: unknown): EngineRegistryConfig {
  const rc = (info as { RegistryConfig?: unknown } | null)?.RegistryConfig as
    { IndexConfigs?: Record<string, { Secure?: unknown } | null>; InsecureRegistryCIDRs?: unknown } | undefined;
  if (typeof rc !== 'object' || rc === null) return DOCKERD_DEFAULTS;
  const secureByHost: Record<string, boolean> = {};
  for (const [name, index] of Object.entries(typeof rc.IndexConfigs === 'object' && rc.IndexConfigs !== null ? rc.IndexConfigs : {})) {
    if (typeof index?.Secure === 'boolean') secureByHost[name.toLowerCase()] = index.Secure;
  }
  const cidrs: unknown[] = Array.isArray(rc.InsecureRegistryCIDRs) ? rc.InsecureRegistryCIDRs : [];
  return { secureByHost, insecureCidrs: cidrs.filter((c): c is string => typeof c === 'string') };
}

/** Why a host is (in)secure: shown by `warmstart doctor`. */
export interface SecurityDecision {
  secure: boolean;
  reason: string;
}

/** Resolves a hostname to its addresses; dockerd resolves names too before matching CIDRs. */
export type AddressLookup = (hostname: string) => Promise<string[]>;

export const systemLookup: AddressLookup = async (hostname) => (await dnsLookup(hostname, { all: true })).map((a) => a.address);

/**
 * dockerd's rule: a registry named in IndexConfigs is what that entry says;
 * otherwise it is insecure when one of its addresses (the name resolved, as
 * dockerd does) lies in an insecure CIDR. A name that does not resolve is
 * secure. `host` is host[:port] as in an image reference.
 */
export async function decideSecurity(host: string, config: EngineRegistryConfig, lookup: AddressLookup = systemLookup): Promise<SecurityDecision> {
  const name = host.toLowerCase();
  // Docker Hub is always verified: dockerd refuses to list it as insecure.
  if (DOCKER_HUB.has(name)) return { secure: true, reason: 'Docker Hub' };
  const listed = config.secureByHost[name];
  if (listed !== undefined) return { secure: listed, reason: `the engine lists ${name} as ${listed ? 'secure' : 'an insecure registry'}` };
  const hostname = hostnameOf(name);
  const blocks = cidrBlocks(config.insecureCidrs);
  if (blocks === null) return { secure: true, reason: 'no insecure registries configured' };
  let addresses: string[];
  try {
    addresses = isIP(hostname) ? [hostname] : await lookup(hostname);
  } catch {
    return { secure: true, reason: `${hostname} does not resolve here` };
  }
  for (const address of addresses) {
    const family = isIP(address);
    const cidr = family === 0 ? undefined : blocks.find((b) => b.list.check(address, family === 4 ? 'ipv4' : 'ipv6'));
    if (cidr) return { secure: false, reason: `${address} is in the engine's insecure range ${cidr.text}` };
  }
  return { secure: true, reason: 'not an insecure registry of the engine' };
}

const DOCKER_HUB = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** `host`, `host:port`, `[v6]` or `[v6]:port` without port and brackets. */
export function hostnameOf(host: string): string {
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']'));
  return host.replace(/:\d+$/, '');
}

/** One BlockList per CIDR (so the matching one can be named); null when there are none. Entries that do not parse are skipped. */
function cidrBlocks(cidrs: string[]): { text: string; list: BlockList }[] | null {
  const out: { text: string; list: BlockList }[] = [];
  for (const text of cidrs) {
    const m = /^([^/]+)\/(\d{1,3})$/.exec(text.trim());
    const family = m ? isIP(m[1]!) : 0;
    if (!m || family === 0) continue;
    const list = new BlockList();
    try {
      list.addSubnet(m[1]!, Number(m[2]), family === 4 ? 'ipv4' : 'ipv6');
    } catch {
      continue; // a prefix out of range: dockerd would not have started with it
    }
    out.push({ text: text.trim(), list });
  }
  return out.length > 0 ? out : null;
}
