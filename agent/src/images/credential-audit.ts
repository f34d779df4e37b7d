/**
 * The check a workspace container passes before it is committed as a golden
 * image: no credential may be in what `docker commit` keeps (the container's
 * own filesystem layer, its env, its labels). Pure functions over what the
 * engine reports, so every rule has a unit test.
 */
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
  throw new WarmstartError(
    'BACKEND_PRECONDITION',
    `refusing to commit container ${input.container.id.slice(0, 12)}: it may hold a credential`,
    { detail: problems.join('; ') },
  );
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
