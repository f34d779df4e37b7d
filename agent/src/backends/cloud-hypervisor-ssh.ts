import { spawn } from 'node:child_process';
import { constants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import { isAbsolute, posix } from 'node:path';
import { WarmstartError } from '../errors.js';
import type { ExecResult } from './backend.js';
import type { CloudHypervisorGuest, HostHooks } from './cloud-hypervisor-host.js';
import { checkName } from './cloud-hypervisor-layout.js';
import { unlessMissing } from '../util/best-effort.js';

/**
 * The SSH channel into cloud-hypervisor guests (the `CloudHypervisorGuest` of
 * cloud-hypervisor-host.ts), and the credential wipe and re-injection
 * hooks built on it. The system `ssh` client runs with an argv array (no
 * local shell), a pinned known-hosts file, the operator's key only, no
 * agent and no forwarding. Configured from the environment by
 * {@link chSshFromEnv}; deploy/cloud-hypervisor/README.md documents it.
 */

export interface ChSshAddress {
  host: string;
  port: number;
}

/** One operator-listed credential file: copied from `hostPath` to `guestPath` (mode 0600) after every launch and restore. */
export interface ChInjectEntry {
  hostPath: string;
  guestPath: string;
}

export interface ChSshConfig {
  /** the private key ssh authenticates with (`-i`, IdentitiesOnly) */
  keyFile: string;
  /** the only known-hosts file consulted (StrictHostKeyChecking=yes) */
  knownHostsFile: string;
  user: string;
  /** `{machine}` is replaced by the machine's name; `host`, `host:port` or `[v6]:port` */
  addressTemplate?: string;
  /** `machine host[:port]` per line; wins over the template; read at every connection */
  hostsFile?: string;
  /** used when the address names none */
  defaultPort: number;
  connectTimeoutSec: number;
  /** the ssh client; default `ssh` on PATH */
  sshBinary: string;
}

/** What the environment asks for: the channel (when configured), and the credential hooks' lists. */
export interface ChSshSettings {
  ssh: ChSshConfig | null;
  /** null: no wipe list given (fail closed); [] only when the operator said `none` */
  wipePaths: string[] | null;
  inject: ChInjectEntry[];
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)$/;
const IPV6 = /^[0-9A-Fa-f:.]+$/;
const USER = /^[a-z_][a-z0-9_-]{0,31}$/;

function invalid(message: string, detail?: string): WarmstartError {
  return new WarmstartError('INVALID_ARGUMENT', message, detail === undefined ? {} : { detail });
}

function parsePort(text: string, where: string): number {
  const port = /^\d{1,5}$/.test(text) ? Number(text) : NaN;
  if (!(port >= 1 && port <= 65535)) throw invalid(`${where}: port must be 1-65535, got ${JSON.stringify(text)}`);
  return port;
}

/** `host`, `host:port`, `[v6]` or `[v6]:port`; the host is checked so it can never read as an ssh option. */
export function parseAddress(text: string, defaultPort: number, where = 'ssh address'): ChSshAddress {
  let host: string;
  let port = defaultPort;
  const v6 = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (v6) {
    host = v6[1]!;
    if (!IPV6.test(host) || !host.includes(':')) throw invalid(`${where}: not an IPv6 address: ${JSON.stringify(text)}`);
    if (v6[2] !== undefined) port = parsePort(v6[2], where);
  } else {
    const parts = text.split(':');
    if (parts.length > 2) throw invalid(`${where}: write an IPv6 address as [addr]:port, got ${JSON.stringify(text)}`);
    host = parts[0] ?? '';
    if (parts[1] !== undefined) port = parsePort(parts[1], where);
    if (!IPV4.test(host) && !HOSTNAME.test(host)) throw invalid(`${where}: not a host name or address: ${JSON.stringify(text)}`);
  }
  return { host, port };
}

/** An absolute guest path without `.`/`..` segments, NUL or newline, and not `/` itself. */
export function checkGuestPath(path: string, what: string): string {
  const segments = path.split('/');
  if (!path.startsWith('/') || /[\0\n]/.test(path) || segments.some((s) => s === '..' || s === '.')) {
    throw invalid(`${what} must be an absolute path without '.' or '..': ${JSON.stringify(path)}`);
  }
  const normal = posix.normalize(path).replace(/\/+$/, '');
  if (normal === '') throw invalid(`${what} cannot be /`);
  return normal;
}

/** `WARMSTART_CH_WIPE_PATHS`: absolute guest paths separated by `,` or `:`; `none` says there is nothing to wipe. */
export function parseWipePaths(text: string | undefined): string[] | null {
  if (text === undefined || text.trim() === '') return null;
  if (text.trim() === 'none') return [];
  return text
    .split(/[,:]/)
    .map((p) => p.trim())
    .filter((p) => p !== '')
    .map((p) => checkGuestPath(p, 'WARMSTART_CH_WIPE_PATHS entry'));
}

/** `WARMSTART_CH_INJECT`: `hostpath:guestpath` pairs separated by `,` (neither path may hold `:` or `,`). */
export function parseInject(text: string | undefined): ChInjectEntry[] {
  if (text === undefined || text.trim() === '') return [];
  const entries = text
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e !== '')
    .map((entry) => {
      const parts = entry.split(':');
      if (parts.length !== 2) throw invalid(`WARMSTART_CH_INJECT entries are hostpath:guestpath, got ${JSON.stringify(entry)}`);
      const [hostPath, guestPath] = parts as [string, string];
      if (!isAbsolute(hostPath)) throw invalid(`WARMSTART_CH_INJECT host path must be absolute: ${JSON.stringify(hostPath)}`);
      return { hostPath, guestPath: checkGuestPath(guestPath, 'WARMSTART_CH_INJECT guest path') };
    });
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.guestPath)) throw invalid(`WARMSTART_CH_INJECT names guest path ${e.guestPath} twice`);
    seen.add(e.guestPath);
  }
  return entries;
}

async function requireFile(path: string, variable: string, what: string): Promise<void> {
  const s = await unlessMissing(stat(path), null);
  if (!s?.isFile()) throw new WarmstartError('BACKEND_PRECONDITION', `${variable}: ${what} ${path} does not exist or is not a file`);
  await access(path, constants.R_OK).catch(() => {
    throw new WarmstartError('BACKEND_PRECONDITION', `${variable}: ${what} ${path} is not readable`);
  });
}

/**
 * Reads the SSH channel's settings from the environment and checks the files
 * they name (without reading any secret's bytes). No `WARMSTART_CH_SSH_*`
 * variable at all: no channel (`ssh: null`). Malformed values are
 * INVALID_ARGUMENT; missing or unusable files BACKEND_PRECONDITION.
 */
export async function chSshFromEnv(env: NodeJS.ProcessEnv): Promise<ChSshSettings> {
  const wipePaths = parseWipePaths(env.WARMSTART_CH_WIPE_PATHS);
  const inject = parseInject(env.WARMSTART_CH_INJECT);
  const sshVars = Object.keys(env).filter((k) => k.startsWith('WARMSTART_CH_SSH_') && env[k] !== undefined && env[k] !== '');
  if (sshVars.length === 0) {
    if (inject.length > 0 || (wipePaths !== null && wipePaths.length > 0)) {
      throw invalid('WARMSTART_CH_WIPE_PATHS and WARMSTART_CH_INJECT need the SSH channel: set WARMSTART_CH_SSH_KEY, _KNOWN_HOSTS and _ADDRESS');
    }
    return { ssh: null, wipePaths, inject };
  }
  const keyFile = env.WARMSTART_CH_SSH_KEY;
  const knownHostsFile = env.WARMSTART_CH_SSH_KNOWN_HOSTS;
  if (!keyFile) throw invalid('WARMSTART_CH_SSH_KEY is not set (the private key file for the guests)');
  if (!knownHostsFile) throw invalid('WARMSTART_CH_SSH_KNOWN_HOSTS is not set (the pinned known-hosts file of the guests)');
  if (!isAbsolute(keyFile) || !isAbsolute(knownHostsFile)) throw invalid('WARMSTART_CH_SSH_KEY and WARMSTART_CH_SSH_KNOWN_HOSTS take absolute paths');
  const addressTemplate = env.WARMSTART_CH_SSH_ADDRESS || undefined;
  const hostsFile = env.WARMSTART_CH_SSH_HOSTS_FILE || undefined;
  if (!addressTemplate && !hostsFile) throw invalid('set WARMSTART_CH_SSH_ADDRESS (e.g. {machine}.vm:22) or WARMSTART_CH_SSH_HOSTS_FILE');
  if (hostsFile && !isAbsolute(hostsFile)) throw invalid('WARMSTART_CH_SSH_HOSTS_FILE takes an absolute path');
  const user = env.WARMSTART_CH_SSH_USER || 'root';
  if (!USER.test(user)) throw invalid(`WARMSTART_CH_SSH_USER is not a user name: ${JSON.stringify(user)}`);
  const defaultPort = env.WARMSTART_CH_SSH_PORT ? parsePort(env.WARMSTART_CH_SSH_PORT, 'WARMSTART_CH_SSH_PORT') : 22;
  const timeoutText = env.WARMSTART_CH_SSH_CONNECT_TIMEOUT || '5';
  const connectTimeoutSec = /^\d{1,3}$/.test(timeoutText) ? Number(timeoutText) : NaN;
  if (!(connectTimeoutSec >= 1)) throw invalid(`WARMSTART_CH_SSH_CONNECT_TIMEOUT takes whole seconds ≥ 1, got ${JSON.stringify(timeoutText)}`);
  // The template must give a valid address for a valid machine name.
  if (addressTemplate) parseAddress(addressTemplate.replaceAll('{machine}', 'machine'), defaultPort, 'WARMSTART_CH_SSH_ADDRESS');

  await requireFile(keyFile, 'WARMSTART_CH_SSH_KEY', 'key file');
  const keyMode = (await stat(keyFile)).mode;
  if ((keyMode & 0o077) !== 0) {
    throw new WarmstartError('BACKEND_PRECONDITION', `WARMSTART_CH_SSH_KEY: ${keyFile} is readable by others; ssh refuses such a key`, {
      detail: `chmod 600 ${keyFile}`,
    });
  }
  await requireFile(knownHostsFile, 'WARMSTART_CH_SSH_KNOWN_HOSTS', 'known-hosts file');
  if (hostsFile) await requireFile(hostsFile, 'WARMSTART_CH_SSH_HOSTS_FILE', 'hosts file');
  for (const e of inject) await requireFile(e.hostPath, 'WARMSTART_CH_INJECT', 'host file');
  return {
    ssh: {
      keyFile,
      knownHostsFile,
      user,
      ...(addressTemplate ? { addressTemplate } : {}),
      ...(hostsFile ? { hostsFile } : {}),
      defaultPort,
      connectTimeoutSec,
      sshBinary: env.WARMSTART_CH_SSH_BINARY || 'ssh',
    },
    wipePaths,
    inject,
  };
}

/** Quotes one word for the guest's POSIX shell (ssh joins its command words with spaces). */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/** ssh's own failures (exit 255): which of them will not go away by waiting. */
const HOST_KEY_REFUSED = /Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|No [A-Z0-9-]+ host key is known/i;
const AUTH_REFUSED = /Permission denied \(/;
const NOT_YET =
  /Connection refused|Connection timed out|timed out|No route to host|Network is unreachable|Connection reset|Connection closed|kex_exchange_identification|Could not resolve hostname|banner exchange/i;

interface SshRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/**
 * `CloudHypervisorGuest` over ssh. `ready` is false while the guest does not
 * take connections yet; it throws BACKEND_PRECONDITION when the guest
 * answers but will never be let in (host key not pinned, key refused), so a
 * launch fails at once with the reason instead of waiting out its timeout.
 */
export class ChSshGuest implements CloudHypervisorGuest {
  constructor(
    private readonly config: ChSshConfig,
    private readonly options: { readyTimeoutMs?: number } = {},
  ) {}

  /** The machine's address: the hosts file's line for it, else the template. */
  async address(machine: string): Promise<ChSshAddress> {
    checkName('machine', machine);
    if (this.config.hostsFile) {
      const text = await readFile(this.config.hostsFile, 'utf8').catch((cause: unknown) => {
        throw new WarmstartError('BACKEND_PRECONDITION', `cannot read WARMSTART_CH_SSH_HOSTS_FILE ${this.config.hostsFile}`, { cause });
      });
      for (const line of text.split('\n')) {
        const [name, addr, ...extra] = line.replace(/#.*/, '').trim().split(/\s+/);
        if (name === machine && addr && extra.length === 0)
          return parseAddress(addr, this.config.defaultPort, `${this.config.hostsFile} (${machine})`);
      }
    }
    if (!this.config.addressTemplate) {
      throw new WarmstartError('BACKEND_PRECONDITION', `no address for machine ${machine} in ${this.config.hostsFile}`);
    }
    return parseAddress(this.config.addressTemplate.replaceAll('{machine}', machine), this.config.defaultPort, 'WARMSTART_CH_SSH_ADDRESS');
  }

  /** The ssh argv for one remote command (exported for tests through {@link sshArgv}). */
  async argv(machine: string, remote: string[]): Promise<string[]> {
    return sshArgv(this.config, await this.address(machine), remote);
  }

  async ready(machine: string): Promise<boolean> {
    const r = await this.run(machine, ['true'], undefined, (this.config.connectTimeoutSec + 5) * 1000);
    if (r.exitCode === 0) return true;
    if (r.exitCode === 255 && HOST_KEY_REFUSED.test(r.stderr)) throw this.refused(machine, 'its host key is not in the pinned known-hosts file', r);
    if (r.exitCode === 255 && AUTH_REFUSED.test(r.stderr)) throw this.refused(machine, 'it refused the key', r);
    return false; // refused, timed out, or sshd not up yet: the caller polls
  }

  async exec(machine: string, argv: string[], input?: string): Promise<ExecResult> {
    const r = await this.run(machine, argv, input);
    if (r.exitCode === 255 && (HOST_KEY_REFUSED.test(r.stderr) || AUTH_REFUSED.test(r.stderr))) {
      throw this.refused(machine, HOST_KEY_REFUSED.test(r.stderr) ? 'its host key is not in the pinned known-hosts file' : 'it refused the key', r);
    }
    if (r.exitCode === 255 && NOT_YET.test(r.stderr) && /^ssh: /m.test(r.stderr)) {
      throw new WarmstartError('BACKEND_UNAVAILABLE', `cannot reach the guest of machine ${machine} over ssh`, { detail: lastLine(r.stderr) });
    }
    return r;
  }

  private refused(machine: string, why: string, r: SshRun): WarmstartError {
    return new WarmstartError('BACKEND_PRECONDITION', `ssh to the guest of machine ${machine} refused: ${why}`, {
      detail: `${lastLine(r.stderr)} (known hosts: ${this.config.knownHostsFile})`,
    });
  }

  /** One ssh process; `input` goes to its stdin (closed at once when there is none). */
  private async run(machine: string, remote: string[], input?: string, killAfterMs?: number): Promise<SshRun> {
    if (remote.length === 0) throw new WarmstartError('INVALID_ARGUMENT', 'exec needs a command');
    const args = await this.argv(machine, remote);
    return new Promise<SshRun>((resolve, reject) => {
      const child = spawn(this.config.sshBinary, args, { stdio: ['pipe', 'pipe', 'pipe'], env: sshEnv() });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (c: Buffer) => out.push(c));
      child.stderr.on('data', (c: Buffer) => err.push(c));
      child.stdin.on('error', () => undefined); // the guest may close its stdin before reading all of it
      const timer = killAfterMs === undefined ? null : setTimeout(() => child.kill('SIGKILL'), killAfterMs);
      child.once('error', (cause: NodeJS.ErrnoException) => {
        if (timer) clearTimeout(timer);
        reject(
          new WarmstartError('BACKEND_UNAVAILABLE', `cannot run the ssh client ${this.config.sshBinary}`, {
            cause,
            detail: cause.code ?? cause.message,
          }),
        );
      });
      child.once('close', (code, signal) => {
        if (timer) clearTimeout(timer);
        const stderr = Buffer.concat(err).toString('utf8');
        resolve({
          exitCode: code ?? 255,
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: signal ? `${stderr}ssh: killed by ${signal} (timed out)\n` : stderr,
        });
      });
      child.stdin.end(input ?? '');
    });
  }
}

/** The whole ssh command line: every option pinned, nothing from ~/.ssh/config, the remote words quoted. */
export function sshArgv(config: ChSshConfig, address: ChSshAddress, remote: string[]): string[] {
  const options = [
    'BatchMode=yes',
    'IdentitiesOnly=yes',
    'IdentityAgent=none',
    'StrictHostKeyChecking=yes',
    `UserKnownHostsFile=${config.knownHostsFile}`,
    'GlobalKnownHostsFile=/dev/null',
    'UpdateHostKeys=no',
    'ForwardAgent=no',
    'ForwardX11=no',
    'ClearAllForwardings=yes',
    'PermitLocalCommand=no',
    'PasswordAuthentication=no',
    'KbdInteractiveAuthentication=no',
    `ConnectTimeout=${config.connectTimeoutSec}`,
    'ServerAliveInterval=15',
    'LogLevel=ERROR',
  ];
  return [
    '-F',
    '/dev/null',
    '-T',
    '-i',
    config.keyFile,
    ...options.flatMap((o) => ['-o', o]),
    '-p',
    String(address.port),
    '-l',
    config.user,
    '--',
    address.host,
    remote.map(shellQuote).join(' '),
  ];
}

/** ssh gets no SSH_AUTH_SOCK (no agent) and no askpass; the rest of the agent's env is kept (PATH, HOME). */
function sshEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.SSH_AUTH_SOCK;
  delete env.SSH_ASKPASS;
  delete env.DISPLAY;
  return env;
}

function lastLine(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ').slice(0, 500);
}

/** Writes stdin (base64: files may not be text) to `$1` atomically with mode 0600 (umask 077, then chmod for good measure). */
const WRITE_SECRET = [
  'umask 077',
  'd=$(dirname -- "$1") && mkdir -p -- "$d" || exit 1',
  't="$d/.warmstart-inject.$$"',
  'if base64 -d > "$t" && chmod 600 "$t" && mv -f -- "$t" "$1"; then exit 0; fi',
  'rm -f -- "$t"; exit 1',
].join('\n');

/**
 * `wipeCredentials` / `injectCredentials` over the guest channel. Wipe runs
 * `rm -rf --` on exactly the listed paths (an empty list: nothing to do);
 * inject sends each host file's bytes on ssh's stdin, never on a command
 * line, and never puts them in an error.
 */
export function sshCredentialHooks(
  guest: CloudHypervisorGuest,
  settings: { wipePaths: string[] | null; inject: ChInjectEntry[] },
): Partial<Pick<HostHooks, 'wipeCredentials' | 'injectCredentials'>> {
  const hooks: Partial<Pick<HostHooks, 'wipeCredentials' | 'injectCredentials'>> = {};
  const wipePaths = settings.wipePaths;
  if (wipePaths !== null) {
    hooks.wipeCredentials = async (machine) => {
      if (wipePaths.length === 0) return;
      const r = await guest.exec(machine, ['rm', '-rf', '--', ...wipePaths]);
      if (r.exitCode !== 0) {
        throw new WarmstartError('BACKEND_ERROR', `could not wipe credentials in machine ${machine} (rm exit ${r.exitCode}); nothing was captured`, {
          detail: lastLine(r.stderr) || undefined,
        });
      }
    };
  }
  if (settings.inject.length > 0) {
    hooks.injectCredentials = async (machine) => {
      for (const e of settings.inject) {
        const content = await readFile(e.hostPath).catch((cause: NodeJS.ErrnoException) => {
          throw new WarmstartError('BACKEND_PRECONDITION', `cannot read credential file ${e.hostPath}`, { detail: cause.code ?? 'unreadable' });
        });
        const r = await guest.exec(machine, ['sh', '-c', WRITE_SECRET, 'sh', e.guestPath], content.toString('base64'));
        if (r.exitCode !== 0) {
          // stderr only: stdout never carries the file, but nothing read from the guest's side of the copy is echoed
          throw new WarmstartError('BACKEND_ERROR', `could not put credential file ${e.guestPath} into machine ${machine} (exit ${r.exitCode})`, {
            detail: lastLine(r.stderr) || undefined,
          });
        }
      }
    };
  }
  return hooks;
}
