import { isIPv6 } from 'node:net';
import type { Repository } from '../workspace/repository.js';

/**
 * Which repository a cache image belongs to, as one string:
 * `github.com/<owner>/<name>`, `<host>[:<port>]/<owner>/<name>` for other
 * git hosts (a port that is the scheme's default is left out, so
 * `https://h:443/o/r` and `https://h/o/r` are one repository), and
 * `local:<absolute path>` for a repository on this node's disk. Remote
 * identities are lowercase: the cache path is, and the hosts compare owner
 * and name without case. Exact-hit images carry it as a label
 * (agent/src/cache/image-labels.ts).
 */
export function repositoryIdentity(repo: Repository): string {
  if (repo.kind === 'local') return `local:${repo.cloneUrl}`;
  if (repo.isGitHub) return `github.com/${repo.owner}/${repo.name}`.toLowerCase();
  const { host, port } = remoteHost(repo);
  return `${port === null ? host : `${host}:${port}`}/${repo.owner}/${repo.name}`.toLowerCase();
}

const DEFAULT_PORTS: Record<string, number> = { https: 443, ssh: 22 };
// The authority of an https:// or ssh:// clone URL (parseRepository refused userinfo with a password).
const AUTHORITY = /^([a-z]+):\/\/(?:[^@/]*@)?(\[[^\]]*\]|[^/:]+)(?::([0-9]+))?/i;

/**
 * The host and the port (null: none or the default) a remote repository is
 * cloned from. The Repository keeps the host only, so the port is read from
 * the clone URL; scp-like `user@host:path` has none.
 */
export function remoteHost(repo: Repository): { host: string; port: number | null } {
  const host = (repo.host ?? '').toLowerCase();
  const match = AUTHORITY.exec(repo.cloneUrl);
  if (!match || match[3] === undefined) return { host, port: null };
  const port = Number(match[3]);
  return { host, port: port === DEFAULT_PORTS[(match[1] ?? '').toLowerCase()] ? null : port };
}

/**
 * A git host as one OCI path component. DNS names and IPv4 addresses are
 * valid as they are. Every other form uses `_`, which no DNS name holds, so
 * none can be mistaken for a real host: a port joins with `_`
 * (`gitlab.example_8443`), an IPv6 address is written out in full with
 * `_` between its groups.
 */
export function hostComponent(host: string, port: number | null): string {
  const bare = host.startsWith('[') ? host.slice(1, -1) : host;
  const name = isIPv6(bare) ? expandIPv6(bare).join('_') : bare.toLowerCase();
  return port === null ? name : `${name}_${port}`;
}

/** The eight groups of an IPv6 address, four hex digits each (an embedded IPv4 tail becomes two groups). */
function expandIPv6(address: string): string[] {
  let text = address.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, v4.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const front = head === '' ? [] : head.split(':');
  const back = tail === undefined || tail === '' ? [] : tail.split(':');
  const zeros = tail === undefined ? [] : Array.from({ length: 8 - front.length - back.length }, () => '0');
  return [...front, ...zeros, ...back].map((group) => group.padStart(4, '0'));
}
