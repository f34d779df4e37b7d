/**
 * GitHub App installation tokens as ghcr.io credentials (docs/how-it-works.md "Registry
 * credentials", step 2). The token is cached by us, not by @octokit/auth-app,
 * because we need an injectable clock and a refresh margin before expiry.
 */
import { createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createAppAuth, type StrategyOptions } from '@octokit/auth-app';
import { Octokit } from '@octokit/rest';
import { WarmstartError } from '../errors.js';
import { GHCR_HOST, type CredentialScope, type CredentialSource, type RegistryCredentials } from './credentials.js';

/** The only registry an installation token is good for. */
export { GHCR_HOST };

/** Options of {@link githubAppCredentials}. */
export interface GithubAppCredentialsOptions {
  appId: string | number;
  /** PEM, PKCS#1 or PKCS#8 */
  privateKey: string;
  installationId: string | number;
  /** ms since epoch; injectable so tests can move time */
  now?: () => number;
  /** fetch a new token this long before the old one expires; default 5 min */
  refreshMarginMs?: number;
  /** timeout of the token request; default 15 s */
  timeoutMs?: number;
  /** GitHub API base, for GitHub Enterprise Server; default https://api.github.com */
  baseUrl?: string;
  /** replaces the HTTP layer entirely (tests); baseUrl/timeoutMs then do not apply */
  request?: StrategyOptions['request'];
  /**
   * `repository` (default): a job's registry token is limited to the job's
   * repository when it is one of the installation's (a token per repository,
   * as a workflow's GITHUB_TOKEN is); `installation`: one token for every
   * job, for packages not linked to their repository.
   */
  registryScope?: 'repository' | 'installation';
}

/** What the registry token asks for: pushing to (and pulling from) ghcr.io, nothing else. */
export const REGISTRY_PERMISSIONS = { packages: 'write' } as const;
/** What a clone token asks for, for one repository. */
export const CLONE_PERMISSIONS = { contents: 'read' } as const;

const DEFAULT_REFRESH_MARGIN_MS = 5 * 60_000;
const DEFAULT_TIMEOUT_MS = 15_000;

interface CachedToken {
  token: string;
  expiresAtMs: number;
}

/** The App's two uses: registry credentials for ghcr.io, and clone tokens for single repositories. */
export interface GithubApp {
  registry: CredentialSource;
  /**
   * A fresh installation token for cloning one repository of the
   * installation's account (`contents: read`, that repository only). Never
   * cached: it lives as long as the job's clone needs it, in memory.
   */
  cloneToken(repositoryName: string, signal?: AbortSignal): Promise<string>;
}

/** Both uses of one App (see {@link GithubApp}). */
export function githubApp(opts: GithubAppCredentialsOptions): GithubApp {
  const auth = createAppAuth({
    appId: opts.appId,
    privateKey: opts.privateKey,
    installationId: opts.installationId,
    request: opts.request ?? quietRequest(opts.baseUrl, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS),
  });
  return {
    registry: registrySource(auth, opts),
    async cloneToken(repositoryName, signal) {
      signal?.throwIfAborted();
      const asked = `contents: read on ${repositoryName}`;
      try {
        const result = await auth({ type: 'installation', refresh: true, repositoryNames: [repositoryName], permissions: CLONE_PERMISSIONS });
        if (!result.token)
          throw new WarmstartError('GITHUB_APP_AUTH_FAILED', 'GitHub returned no usable installation token', { detail: 'response lacked a token' });
        return result.token;
      } catch (err) {
        throw toAuthError(err, opts.installationId, asked);
      }
    },
  };
}

/**
 * A credential source that answers for ghcr.io only, with an installation
 * token (username `x-access-token`) that asks for `packages: write` and
 * nothing more. The token is reused until `refreshMarginMs` before it
 * expires; concurrent callers share one request. Failures throw
 * GITHUB_APP_AUTH_FAILED without key or token bytes.
 */
export function githubAppCredentials(opts: GithubAppCredentialsOptions): CredentialSource {
  return githubApp(opts).registry;
}

/** Tokens kept per repository (and '' for the installation-wide one); a node serves a bounded set of repositories at a time. */
const MAX_CACHED_TOKENS = 256;

function registrySource(auth: ReturnType<typeof createAppAuth>, opts: GithubAppCredentialsOptions): CredentialSource {
  const now = opts.now ?? Date.now;
  const margin = opts.refreshMarginMs ?? DEFAULT_REFRESH_MARGIN_MS;
  const perRepository = (opts.registryScope ?? 'repository') === 'repository';

  const cached = new Map<string, CachedToken>();
  const inFlight = new Map<string, Promise<CachedToken>>();
  /** repositories the installation cannot scope a token to: they get the installation-wide token */
  const unscopable = new Set<string>();

  const fetchToken = async (repository: string): Promise<CachedToken> => {
    try {
      // refresh: auth-app keeps its own LRU (59 min on the real clock); we
      // only get here when *we* decided the token is too old, so bypass it.
      const narrow = repository === '' ? {} : { repositoryNames: [repository] };
      const result = await auth({ type: 'installation', refresh: true, ...narrow, permissions: REGISTRY_PERMISSIONS });
      const expiresAtMs = Date.parse(result.expiresAt);
      if (!result.token || Number.isNaN(expiresAtMs)) {
        throw new WarmstartError('GITHUB_APP_AUTH_FAILED', 'GitHub returned no usable installation token', {
          detail: 'response lacked token or expires_at',
        });
      }
      return { token: result.token, expiresAtMs };
    } catch (err) {
      throw toAuthError(err, opts.installationId, repository === '' ? 'packages: write' : `packages: write on ${repository}`);
    }
  };

  const current = (repository: string): Promise<CachedToken> => {
    const have = cached.get(repository);
    if (have && now() < have.expiresAtMs - margin) return Promise.resolve(have);
    let pending = inFlight.get(repository);
    if (!pending) {
      pending = fetchToken(repository)
        .then((t) => {
          if (cached.size >= MAX_CACHED_TOKENS) cached.delete(cached.keys().next().value!);
          cached.set(repository, t);
          return t;
        })
        .finally(() => inFlight.delete(repository));
      inFlight.set(repository, pending);
    }
    return pending;
  };

  /**
   * The job's repository's own token; the installation-wide one when the
   * repository is not the installation's (GitHub answers 422 or 404: the
   * API cannot scope a token to it) or when scoping is off.
   */
  const forScope = async (scope: CredentialScope | undefined): Promise<CachedToken> => {
    const repository = perRepository ? (scope?.githubRepository ?? '') : '';
    if (repository === '' || unscopable.has(repository)) return current('');
    try {
      return await current(repository);
    } catch (err) {
      if (!(err instanceof WarmstartError && /^HTTP (404|422)\b/.test(err.detail ?? ''))) throw err;
      // Not asked again for this repository while the process lives (an installation changes rarely; a restart asks anew).
      if (unscopable.size >= MAX_CACHED_TOKENS) unscopable.clear();
      unscopable.add(repository);
      return current('');
    }
  };

  return {
    async get(registryHost, signal, scope) {
      if (registryHost.trim().toLowerCase() !== GHCR_HOST) return null;
      signal?.throwIfAborted();
      // One caller giving up must not cancel the request others share, so we
      // abandon the wait instead of aborting the fetch.
      const t = await (signal ? raceAbort(forScope(scope), signal) : forScope(scope));
      const creds: RegistryCredentials = {
        registry: GHCR_HOST,
        username: 'x-access-token',
        password: t.token,
        source: 'github-app',
      };
      return creds;
    },
  };
}

/**
 * Reads a GitHub App private key (PEM) from a file. Throws
 * GITHUB_APP_AUTH_FAILED when unreadable or not a PEM private key; the
 * error names the path, never the content.
 */
export async function loadPrivateKey(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new WarmstartError('GITHUB_APP_AUTH_FAILED', `cannot read the GitHub App private key file ${path}`, {
      detail: code,
    });
  }
  const notPem = (why: string): WarmstartError =>
    new WarmstartError('GITHUB_APP_AUTH_FAILED', `${path} does not hold a PEM private key`, { detail: why });
  if (!/-----BEGIN (RSA |EC |ENCRYPTED )?PRIVATE KEY-----/.test(text)) {
    throw notPem('no "-----BEGIN ... PRIVATE KEY-----" line');
  }
  try {
    // Parse now so a truncated or passphrase-protected key fails at startup,
    // not at the first job.
    createPrivateKey(text);
  } catch {
    throw notPem('the key could not be parsed');
  }
  return text;
}

/**
 * Octokit's request, pointed at baseUrl, with a timeout on every call and a
 * silent log (its error log line is noise next to our own error).
 */
function quietRequest(baseUrl: string | undefined, timeoutMs: number): StrategyOptions['request'] {
  const silent = (): void => {};
  const octokit = new Octokit({
    ...(baseUrl ? { baseUrl } : {}),
    log: { debug: silent, info: silent, warn: silent, error: silent },
    request: {
      fetch: (input: string | URL | Request, init?: RequestInit) => fetch(input, { ...init, signal: AbortSignal.timeout(timeoutMs) }),
    },
  });
  return octokit.request as StrategyOptions['request'];
}

/**
 * Maps whatever auth-app threw to GITHUB_APP_AUTH_FAILED. We keep only the
 * status and GitHub's own message: the octokit error carries the request
 * (headers, JWT-bearing options) and must not travel on as `cause`.
 */
function toAuthError(err: unknown, installationId: string | number, asked: string): WarmstartError {
  if (err instanceof WarmstartError) return err;
  const e = err as { status?: unknown; response?: { data?: unknown }; message?: unknown; name?: unknown };
  const status = typeof e.status === 'number' ? e.status : undefined;
  const hasResponse = e.response !== undefined;
  const ghMessage =
    e.response?.data && typeof e.response.data === 'object' && 'message' in e.response.data
      ? String((e.response.data as { message: unknown }).message)
      : undefined;
  let message: string;
  let detail: string;
  if (hasResponse && status !== undefined) {
    message =
      status === 401
        ? 'GitHub rejected the App JWT (wrong app id or private key, or clock skew)'
        : status === 404
          ? `GitHub App installation ${installationId} not found`
          : status === 422
            ? // GitHub's answer when the installation lacks a permission or a repository that was asked for.
              `GitHub App installation ${installationId} does not grant ${asked}: give the App that permission and accept it in the installation (or install it on that repository)`
            : `GitHub refused an installation token for installation ${installationId}`;
    detail = `HTTP ${status}${ghMessage ? `: ${scrub(ghMessage)}` : ''}`;
  } else {
    message = 'could not reach GitHub for an installation token';
    detail = `network error: ${scrub(typeof e.message === 'string' ? e.message : String(err))}`;
  }
  return new WarmstartError('GITHUB_APP_AUTH_FAILED', message, { detail });
}

/** Removes anything shaped like a JWT or a PEM block; belt and braces for detail text. */
function scrub(text: string): string {
  return text
    .replace(/-----BEGIN[\s\S]*?-----END[^-]*-----/g, '[REDACTED]')
    .replace(/[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}/g, '[REDACTED]')
    .slice(0, 300);
}

/** Rejects with the signal's reason when it aborts, leaving `p` running. */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
