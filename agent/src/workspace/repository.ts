import path from 'node:path';
import { isIPv4, isIPv6 } from 'node:net';
import { fileURLToPath } from 'node:url';
import { WarmstartError } from '../errors.js';

/** A repository the agent may clone, as parsed from caller input. */
export interface Repository {
  kind: 'https' | 'ssh' | 'github' | 'local';
  /** what git clones: https URL, ssh URL, https://github.com/o/r.git for 'github', absolute path for local */
  cloneUrl: string;
  /** host for https/ssh/github ('github.com' for github), null for local */
  host: string | null;
  /** second-to-last path segment (as given, case kept) */
  owner: string;
  /** last path segment, `.git` dropped */
  name: string;
  /** true when the repository is on github.com (owner/repo, https or ssh to github.com) */
  isGitHub: boolean;
}

/** Options for {@link parseRepository}. */
export interface ParseRepositoryOptions {
  /** Base for relative local paths; defaults to process.cwd(). */
  cwd?: string;
}

const ACCEPTED_FORMS =
  'use https://host/owner/repo, ssh://[user@]host/owner/repo, user@host:owner/repo, ' +
  'a GitHub owner/repo, a local path (/abs, ./rel, ../rel) or a file:// URL';

/** As the HTTP API's schema; longer is no real URL or path, and would only reach git to fail. */
const MAX_REPOSITORY_LENGTH = 2048;
const BLANK_OR_CONTROL = /[\s\u0000-\u001f\u007f-\u009f]/;
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
// git's `<transport>::<address>` syntax runs arbitrary remote helpers.
const TRANSPORT_HELPER = /^[A-Za-z][A-Za-z0-9+.-]*::/;
const SCP_LIKE = /^([A-Za-z0-9._-]+)@(\[[^\]]*\]|[^/:@[\]]+):(.*)$/;
const SSH_USER = /^[A-Za-z0-9._-]+$/;
const GITHUB_OWNER = /^[A-Za-z0-9][A-Za-z0-9-]{0,38}$/;
const GITHUB_REPO = /^[A-Za-z0-9._-]{1,100}$/;
const GITHUB_HOSTS = new Set(['github.com', 'ssh.github.com']);
// RFC 3986 unreserved characters, plus percent-escapes where the form is a URL.
const URL_SEGMENT = /^(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2})+$/;
const SCP_SEGMENT = /^[A-Za-z0-9._~-]+$/;
const DNS_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

function refuse(message: string): never {
  throw new WarmstartError('INVALID_REPOSITORY', message);
}

/**
 * Shows caller input in a message without anything that may be a secret:
 * userinfo, query and fragment are masked.
 */
function shown(input: string): string {
  let text = input.replace(/^([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^/?#]*@/, '$1***@');
  text = text.replace(/[?#].*$/s, '?***');
  if (text.length > 120) text = `${text.slice(0, 120)}…`;
  return JSON.stringify(text);
}

/**
 * Splits `host[:port]` (DNS name, IPv4 or `[ipv6]`) and checks it; returns
 * null when it is not a valid host. Shared with cache refs, which use the
 * same host rule for registries.
 */
export function parseHostPort(value: string): { hostname: string; port: number | null } | null {
  let hostname: string;
  let portText: string | undefined;
  if (value.startsWith('[')) {
    const close = value.indexOf(']');
    if (close < 0) return null;
    hostname = value.slice(0, close + 1);
    if (!isIPv6(value.slice(1, close))) return null;
    const rest = value.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return null;
      portText = rest.slice(1);
    }
  } else {
    const parts = value.split(':');
    if (parts.length > 2) return null;
    hostname = parts[0] ?? '';
    portText = parts[1];
    if (!isDnsNameOrIPv4(hostname)) return null;
  }
  if (portText === undefined) return { hostname, port: null };
  if (!/^[0-9]{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port < 1 || port > 65535) return null;
  return { hostname, port };
}

function isDnsNameOrIPv4(name: string): boolean {
  if (name.length === 0 || name.length > 253) return false;
  const labels = name.split('.');
  if (!labels.every((label) => DNS_LABEL.test(label))) return false;
  // An all-numeric name can only mean an IPv4 address; `1.2.3` or `999.1.1.1` is a typo.
  if (labels.every((label) => /^[0-9]+$/.test(label))) return isIPv4(name);
  return true;
}

/**
 * Parses the repository a workspace is prepared from. Accepts https and ssh
 * URLs, scp-like `user@host:owner/repo`, a bare GitHub `owner/repo`, a local
 * path or a `file://` URL; throws INVALID_REPOSITORY for anything else.
 * Credentials in the URL are refused (never echoed): tokens travel apart so
 * they cannot leak into `.git/config`, logs or errors. Local paths are not
 * checked for existence; the clone step reports that.
 */
export function parseRepository(input: string, opts: ParseRepositoryOptions = {}): Repository {
  if (typeof input !== 'string' || input.length === 0) refuse('Repository must not be empty.');
  if (input.length > MAX_REPOSITORY_LENGTH) {
    refuse(`Invalid repository ${shown(input)}: it must be at most ${MAX_REPOSITORY_LENGTH} characters.`);
  }
  if (BLANK_OR_CONTROL.test(input)) {
    refuse(`Invalid repository ${shown(input)}: it must not contain whitespace or control characters.`);
  }
  // git would read a leading '-' as an option.
  if (input.startsWith('-')) refuse(`Invalid repository ${shown(input)}: it must not start with '-'.`);
  if (TRANSPORT_HELPER.test(input)) {
    refuse(`Invalid repository ${shown(input)}: git transport helpers (<transport>::) are not allowed; ${ACCEPTED_FORMS}.`);
  }

  const scheme = SCHEME.exec(input)?.[1]?.toLowerCase();
  if (scheme !== undefined) {
    if (/[?#]/.test(input)) {
      refuse(`Invalid repository ${shown(input)}: a repository URL must not have a query or fragment.`);
    }
    if (scheme === 'https') return parseHttps(input);
    if (scheme === 'ssh') return parseSshUrl(input);
    if (scheme === 'file') return parseFileUrl(input);
    if (scheme === 'http') {
      refuse(`Invalid repository ${shown(input)}: plain http is not allowed; use https://.`);
    }
    refuse(`Invalid repository ${shown(input)}: the ${scheme}:// scheme is not allowed; ${ACCEPTED_FORMS}.`);
  }

  if (input.startsWith('/') || input.startsWith('./') || input.startsWith('../')) {
    return localRepository(path.resolve(opts.cwd ?? process.cwd(), input), input);
  }

  const scp = SCP_LIKE.exec(input);
  if (scp) return parseScpLike(input, scp[2] ?? '', scp[3] ?? '');

  const bare = input.split('/');
  if (bare.length === 2 && !input.includes(':') && !input.includes('@')) {
    return parseGitHubShorthand(input, bare[0] ?? '', bare[1] ?? '');
  }

  refuse(`Invalid repository ${shown(input)}: ${ACCEPTED_FORMS}.`);
}

function parseHttps(input: string): Repository {
  const match = /^https:\/\/([^/]*)(.*)$/i.exec(input);
  const authority = match?.[1] ?? '';
  const rawPath = match?.[2] ?? '';
  if (authority.includes('@')) {
    refuse(
      'Invalid repository: the https URL contains credentials (user:password@ or token@). ' +
        'Remove them from the URL and pass the token separately.',
    );
  }
  const host = hostOf(input, authority);
  const segments = pathSegments(input, rawPath, URL_SEGMENT, true);
  return remoteRepository('https', input, host, segments);
}

function parseSshUrl(input: string): Repository {
  const match = /^ssh:\/\/([^/]*)(.*)$/i.exec(input);
  let authority = match?.[1] ?? '';
  const rawPath = match?.[2] ?? '';
  const at = authority.lastIndexOf('@');
  if (at >= 0) {
    const user = authority.slice(0, at);
    if (user.includes(':')) {
      refuse('Invalid repository: the ssh URL contains a password (user:password@). ' + 'Remove it from the URL and pass credentials separately.');
    }
    if (!SSH_USER.test(user)) {
      refuse(`Invalid repository ${shown(input)}: the ssh user must be letters, digits, '.', '_' or '-'.`);
    }
    authority = authority.slice(at + 1);
  }
  const host = hostOf(input, authority);
  const segments = pathSegments(input, rawPath, URL_SEGMENT, true);
  return remoteRepository('ssh', input, host, segments);
}

function parseScpLike(input: string, hostText: string, rawPath: string): Repository {
  const host = hostOf(input, hostText);
  const segments = pathSegments(input, rawPath, SCP_SEGMENT, false);
  return remoteRepository('ssh', input, host, segments);
}

function parseFileUrl(input: string): Repository {
  let filePath: string;
  try {
    // Also refuses hosts other than localhost and encoded '/' in segments.
    filePath = fileURLToPath(input);
  } catch {
    refuse(`Invalid repository ${shown(input)}: a file URL must be file:///absolute/path.`);
  }
  if (BLANK_OR_CONTROL.test(filePath)) {
    refuse(`Invalid repository ${shown(input)}: the decoded path must not contain whitespace or control characters.`);
  }
  return localRepository(path.resolve(filePath), input);
}

function parseGitHubShorthand(input: string, owner: string, repo: string): Repository {
  const name = dropGitSuffix(repo);
  checkGitHubNames(input, owner, name);
  return {
    kind: 'github',
    cloneUrl: `https://github.com/${owner}/${name}.git`,
    host: 'github.com',
    owner,
    name,
    isGitHub: true,
  };
}

function hostOf(input: string, hostText: string): string {
  const parsed = parseHostPort(hostText);
  if (parsed === null) {
    refuse(`Invalid repository ${shown(input)}: the host must be a DNS name, an IPv4 address or [IPv6], with an optional port.`);
  }
  return parsed.hostname.toLowerCase();
}

/**
 * Splits a remote path into its segments (decoded for URLs). Dot segments
 * are refused rather than resolved: a URL that climbs is a typo or a trick.
 */
function pathSegments(input: string, rawPath: string, segmentRule: RegExp, decode: boolean): string[] {
  // One leading and one trailing '/' are how people write these; empty
  // segments anywhere else are not.
  const trimmed = rawPath.replace(/^\//, '').replace(/\/$/, '');
  const raw = trimmed === '' ? [] : trimmed.split('/');
  if (raw.length < 2) {
    refuse(`Invalid repository ${shown(input)}: the path must have at least two segments (owner/repo).`);
  }
  return raw.map((segment) => {
    if (segment === '') refuse(`Invalid repository ${shown(input)}: the path has an empty segment.`);
    if (!segmentRule.test(segment)) {
      refuse(
        `Invalid repository ${shown(input)}: path segment ${JSON.stringify(segment)} has characters outside letters, digits, '.', '_', '~', '-'${decode ? ' and %-escapes' : ''}.`,
      );
    }
    let value = segment;
    if (decode) {
      try {
        value = decodeURIComponent(segment);
      } catch {
        refuse(`Invalid repository ${shown(input)}: path segment ${JSON.stringify(segment)} has a malformed %-escape.`);
      }
      if (/[/\\]/.test(value) || BLANK_OR_CONTROL.test(value.replace(/ /g, ''))) {
        refuse(`Invalid repository ${shown(input)}: path segment ${JSON.stringify(segment)} decodes to a separator or control character.`);
      }
    }
    if (value === '.' || value === '..') {
      refuse(`Invalid repository ${shown(input)}: path segments must not be '.' or '..'.`);
    }
    return value;
  });
}

function remoteRepository(kind: 'https' | 'ssh', input: string, host: string, segments: string[]): Repository {
  const owner = segments[segments.length - 2] ?? '';
  const name = dropGitSuffix(segments[segments.length - 1] ?? '');
  if (name === '') refuse(`Invalid repository ${shown(input)}: the repository name is empty.`);
  const isGitHub = GITHUB_HOSTS.has(host);
  if (isGitHub) {
    // Deeper paths on github.com are web pages (tree/, blob/), never a clone URL.
    if (segments.length !== 2) {
      refuse(`Invalid repository ${shown(input)}: a GitHub URL must be exactly owner/repo.`);
    }
    checkGitHubNames(input, owner, name);
  }
  return { kind, cloneUrl: input, host, owner, name, isGitHub };
}

function checkGitHubNames(input: string, owner: string, name: string): void {
  if (!GITHUB_OWNER.test(owner)) {
    refuse(`Invalid repository ${shown(input)}: a GitHub owner is 1 to 39 letters, digits or '-', starting with a letter or digit.`);
  }
  if (!GITHUB_REPO.test(name) || name === '.' || name === '..') {
    refuse(`Invalid repository ${shown(input)}: a GitHub repository name is 1 to 100 letters, digits, '.', '_' or '-', and not '.' or '..'.`);
  }
}

function localRepository(absolute: string, input: string): Repository {
  const base = path.basename(absolute);
  const name = dropGitSuffix(base);
  if (base === '' || name === '') {
    refuse(`Invalid repository ${shown(input)}: a local path must name the repository directory (not / or a bare .git).`);
  }
  const parent = path.dirname(absolute);
  const owner = parent === path.parse(parent).root ? 'local' : path.basename(parent);
  return { kind: 'local', cloneUrl: absolute, host: null, owner, name, isGitHub: false };
}

/**
 * host[:port] (lowercased, default port dropped) that git talks to for an
 * https or GitHub repository: what a git token is bound to. Null for ssh,
 * where git asks no credential helper, and for local paths.
 */
export function repositoryAuthority(repo: Repository): string | null {
  if (repo.kind === 'github') return 'github.com';
  if (repo.kind !== 'https') return null;
  return new URL(repo.cloneUrl).host.toLowerCase();
}

function dropGitSuffix(segment: string): string {
  return segment.endsWith('.git') ? segment.slice(0, -'.git'.length) : segment;
}
