/**
 * Registry credentials and the order in which the agent looks for them (see
 * docs/how-it-works.md "Registry credentials"): the job's own, then a GitHub App
 * installation token for ghcr.io, then static config; none means pull-only.
 */

/** GitHub's container registry: the only host a GitHub App's installation token is for. Here, not in github-app.ts, so naming it does not load Octokit. */
export const GHCR_HOST = 'ghcr.io';

/** One username/password pair for one registry, and where it came from. */
export interface RegistryCredentials {
  /** host[:port], as used in image references and in docker's `auths` map */
  registry: string;
  username: string;
  /** a secret: never log it, never put it in an error */
  password: string;
  /** recorded in results so operators know which path was taken */
  source: 'job' | 'github-app' | 'static';
}

/** What the credentials are for, so a source that can narrow its token does (the GitHub App: one repository). */
export interface CredentialScope {
  /** the job's repository name (no owner) when it is on the GitHub App's git hosts */
  githubRepository?: string;
}

/** Something that may hold credentials for a registry host. */
export interface CredentialSource {
  /** null when this source has nothing for that registry */
  get(registryHost: string, signal?: AbortSignal, scope?: CredentialScope): Promise<RegistryCredentials | null>;
}

/**
 * Asks each source in order and returns the first credentials found, or null
 * (pull public images only, skip pushes). A source that fails throws: the
 * caller records why (e.g. GITHUB_APP_AUTH_FAILED) instead of us silently
 * falling through to weaker credentials.
 */
export async function resolveCredentials(
  sources: readonly CredentialSource[],
  registryHost: string,
  signal?: AbortSignal,
  scope?: CredentialScope,
): Promise<RegistryCredentials | null> {
  for (const source of sources) {
    signal?.throwIfAborted();
    const found = await source.get(registryHost, signal, scope);
    if (found) return found;
  }
  return null;
}

/**
 * A fixed username/password (from the job or the agent's config), bound to
 * the registry hosts it was given for: it answers for those hosts only
 * (case-insensitive; a pasted `https://` prefix or trailing `/` is
 * tolerated) and never for any other, so a job that names its own registry
 * cannot collect it. No host, or an empty username or password, means
 * "not configured": the source then has nothing.
 */
export function staticCredentials(
  c: { registry: string | readonly string[] | null; username: string; password: string },
  source: 'job' | 'static',
): CredentialSource {
  const hosts = c.registry === null || c.registry === undefined ? [] : typeof c.registry === 'string' ? [c.registry] : c.registry;
  const wanted = new Set(hosts.map(normalizeRegistryHost).filter((h) => h !== ''));
  return {
    async get(registryHost) {
      if (!c.username || !c.password) return null;
      if (!wanted.has(normalizeRegistryHost(registryHost))) return null;
      // Report the host asked for, so docker's `auths` key matches the image ref.
      return { registry: registryHost, username: c.username, password: c.password, source };
    },
  };
}

/** Lowercased host[:port] without scheme or trailing slashes, for comparisons. */
export function normalizeRegistryHost(registry: string): string {
  return registry
    .trim()
    .replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')
    .replace(/\/+$/, '')
    .toLowerCase();
}
