/**
 * The check a workspace container passes before it is committed as a golden
 * image: no credential may be in what `docker commit` keeps (the container's
 * own filesystem layer, its env, its labels). Pure functions over what the
 * engine reports, so every rule has a unit test. With the repository in the
 * image, the same holds for the workspace folder's files
 * (`auditWorkspaceArchive`), read from the tar the image's last layer is
 * made of.
 */
import type { Readable } from 'node:stream';
import { extract } from 'tar-stream';
import type { ContainerChange, ContainerDetails } from '../docker/engine.js';
import { WarmstartError } from '../errors.js';
import { CONTAINER_GIT_DIR } from '../git/container-credentials.js';

/** Env names that hold a secret when they have a value (GIT_CONFIG_* never does). */
const SECRET_ENV_NAME = /TOKEN|PASSWORD|PASSWD|SECRET|API_?KEY|PRIVATE_?KEY/i;
/** Files that are credentials wherever they are written (git's credential-store, netrc, docker login). */
const CREDENTIAL_FILES: readonly RegExp[] = [/(^|\/)\.git-credentials$/, /(^|\/)[._]netrc$/, /(^|\/)\.docker\/config\.json$/];
/** The env warmstart gives a workspace container for its git credential helper (container-credentials.ts). */
const GIT_CONFIG_ENV = /^GIT_CONFIG_(COUNT|KEY_\d+|VALUE_\d+)$/;

export interface AuditInput {
  container: ContainerDetails;
  /** paths of the container's writable layer */
  changes: readonly ContainerChange[];
  /** secret values the agent knows of (git token, registry passwords); matched in env and labels */
  knownSecrets?: readonly (string | null | undefined)[];
}

/** What is wrong, one line each; names paths and variables, never a value. */
export function auditContainer(input: AuditInput): string[] {
  const { container, changes } = input;
  const problems: string[] = [];
  const secrets = (input.knownSecrets ?? []).filter((s): s is string => typeof s === 'string' && s.length >= 4);

  const gitMounts = container.mounts.filter((m) => m.destination === CONTAINER_GIT_DIR);
  for (const m of gitMounts) {
    if (m.type !== 'bind') problems.push(`${CONTAINER_GIT_DIR} is a ${m.type} mount, not a bind mount: its files could be committed`);
  }
  for (const c of changes) {
    if (c.kind === 'deleted') continue;
    if (c.path.startsWith(`${CONTAINER_GIT_DIR}/`)) {
      problems.push(`${c.path} is in the container's own layer (the git credential must only come from the bind mount)`);
    } else if (CREDENTIAL_FILES.some((re) => re.test(c.path))) {
      problems.push(`${c.path} is a credential file in the container's own layer; remove it first`);
    }
  }
  // The helper path in env without its mount: the token was put somewhere else.
  const helperEnv = container.env.some((e) => e.startsWith('GIT_CONFIG_VALUE_') && e.includes(`${CONTAINER_GIT_DIR}/`));
  if (helperEnv && gitMounts.length === 0) {
    problems.push(`git's credential helper points at ${CONTAINER_GIT_DIR} but nothing is mounted there`);
  }

  const env = new Map<string, string>();
  for (const entry of container.env) {
    const eq = entry.indexOf('=');
    env.set(eq < 0 ? entry : entry.slice(0, eq), eq < 0 ? '' : entry.slice(eq + 1));
  }
  for (const [name, value] of env) {
    if (value === '') continue;
    if (secrets.some((s) => value.includes(s))) problems.push(`env ${name} holds a known secret`);
    else if (!GIT_CONFIG_ENV.test(name) && SECRET_ENV_NAME.test(name)) {
      problems.push(`env ${name} has a value (its name says it is a secret)`);
    }
    // git config from env that sends a header (`http.<url>.extraheader`) carries the credential itself.
    const key = /^GIT_CONFIG_KEY_(\d+)$/.exec(name);
    if (key && /extraheader$/i.test(value) && (env.get(`GIT_CONFIG_VALUE_${key[1]}`) ?? '') !== '') {
      problems.push(`env GIT_CONFIG_VALUE_${key[1]} sets ${value} (an HTTP header with a credential)`);
    }
  }
  for (const [key, value] of Object.entries(container.labels)) {
    if (secrets.some((s) => value.includes(s) || key.includes(s))) problems.push(`label ${key} holds a known secret`);
  }
  return problems;
}

/** Throws BACKEND_PRECONDITION listing every problem the audit found; nothing is committed then. */
export function assertNoCredentials(input: AuditInput): void {
  const problems = auditContainer(input);
  if (problems.length === 0) return;
  throw new WarmstartError('BACKEND_PRECONDITION', `refusing to commit container ${input.container.id.slice(0, 12)}: it may hold a credential`, {
    detail: problems.join('; '),
  });
}

/**
 * The env entries that neutralize warmstart's git helper variables in the
 * image (Docker keeps every container env key not given in the commit):
 * the source image's own value when it has one, else empty (`0` for the count).
 */
export function neutralGitEnv(containerEnv: readonly string[], imageEnv: readonly string[]): string[] {
  const imageValue = new Map(imageEnv.map((e) => [e.slice(0, e.indexOf('=') < 0 ? e.length : e.indexOf('=')), e]));
  const out: string[] = [];
  for (const entry of containerEnv) {
    if (imageEnv.includes(entry)) continue;
    const name = entry.slice(0, entry.indexOf('=') < 0 ? entry.length : entry.indexOf('='));
    if (!GIT_CONFIG_ENV.test(name)) continue;
    out.push(imageValue.get(name) ?? (name === 'GIT_CONFIG_COUNT' ? `${name}=0` : `${name}=`));
  }
  return out;
}

/** git config keys and URLs that carry a credential: an HTTP header, or a URL's `user:password@`. */
const GIT_CONFIG_CREDENTIAL: readonly { re: RegExp; what: string }[] = [
  { re: /^\s*extraheader\s*=\s*\S/im, what: 'an http extraheader (a credential sent with every request)' },
  { re: /[a-z][a-z0-9+.-]*:\/\/[^/@\s]*:[^/@\s]+@/i, what: 'a URL with a password in it' },
];
/** A git config file inside a `.git` directory: the repository's own, a submodule's, a worktree's. */
const GIT_CONFIG_FILE = /(^|\/)\.git\/(modules\/.+\/)?config(\.worktree)?$/;
/** Enough of a git config file to judge it; one larger than this is a problem of its own. */
const GIT_CONFIG_MAX = 1 << 20;

/**
 * What in a tar of the workspace folder must not go into an image, one line
 * each, naming paths and never a value: credential files (as in a
 * container's layer), git configs that hold a credential, and any regular
 * file holding one of `knownSecrets`' bytes. Reads the whole archive.
 * The first path component (the folder's own name) is left out of the names.
 */
export async function auditWorkspaceArchive(archive: Readable, knownSecrets: readonly (string | null | undefined)[]): Promise<string[]> {
  const secrets = knownSecrets.filter((s): s is string => typeof s === 'string' && s.length >= 4).map((s) => Buffer.from(s));
  const carry = Math.max(0, ...secrets.map((s) => s.length - 1));
  const problems: string[] = [];
  const unpack = extract();
  unpack.on('entry', (header, stream, next) => {
    const path = header.name.replace(/^\.?\/?[^/]*\/?/, '').replace(/\/$/, '');
    if (path !== '' && CREDENTIAL_FILES.some((re) => re.test(path))) problems.push(`${path} is a credential file; remove it first`);
    const isGitConfig = GIT_CONFIG_FILE.test(path);
    let tail = Buffer.alloc(0);
    let hit = false;
    const config: Buffer[] = [];
    let configBytes = 0;
    stream.on('data', (chunk: Buffer) => {
      if (header.type !== 'file' && header.type !== 'contiguous-file') return;
      const window = Buffer.concat([tail, chunk]);
      if (!hit && secrets.some((s) => window.includes(s))) hit = true;
      tail = window.subarray(Math.max(0, window.length - carry));
      if (isGitConfig && configBytes <= GIT_CONFIG_MAX) {
        config.push(chunk);
        configBytes += chunk.length;
      }
    });
    stream.on('end', () => {
      if (hit) problems.push(`${path} holds a known secret`);
      if (isGitConfig) {
        if (configBytes > GIT_CONFIG_MAX) problems.push(`${path} is larger than a git config should be (${configBytes} bytes read)`);
        const text = Buffer.concat(config).toString('utf8');
        for (const c of GIT_CONFIG_CREDENTIAL) if (c.re.test(text)) problems.push(`${path} sets ${c.what}`);
      }
      next();
    });
    stream.resume();
  });
  await new Promise<void>((resolve, reject) => {
    unpack.on('finish', resolve);
    unpack.on('error', reject);
    archive.on('error', reject);
    archive.pipe(unpack);
  });
  return problems;
}
