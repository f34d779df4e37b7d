/**
 * GitHub App installation tokens as ghcr.io credentials and as clone tokens
 * (docs/how-it-works.md "Registry credentials", step 2). Every call to GitHub
 * goes through Octokit's typed endpoints, signed with the App's JWT by
 * @octokit/auth-app; the tokens are cached by us, not by auth-app, because we
 * need an injectable clock and a refresh margin before expiry. This module is
 * imported only where a GitHub App is configured (agent.ts), so a node
 * without one never loads Octokit.
 */
import { createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createAppAuth } from '@octokit/auth-app';
import { Octokit } from '@octokit/rest';
import { WarmstartError } from '../errors.js';
import { GHCR_HOST, type CredentialScope, type CredentialSource, type RegistryCredentials } from './credentials.js';

/** The only registry an installation token is good for. */
export { GHCR_HOST };

/** Options of {@link githubApp}. */
export interface GithubAppCredentialsOptions {
  appId: string | number;
  /** PEM, PKCS#1 or PKCS#8 */
  privateKey: string;
  /** a whole number: GitHub's id of the App's installation on an account */
  installationId: string | number;
  /** ms since epoch; injectable so tests can move time */
  now?: () => number;
  /** fetch a new token this long before the old one expires; default 5 min */
  refreshMarginMs?: number;
  /** timeout of each call to GitHub; default 15 s */
  timeoutMs?: number;
  /** GitHub API base, for GitHub Enterprise Server; default https://api.github.com */
  baseUrl?: string;
  /** the HTTP layer (tests); default the global fetch. The timeout applies to it too. */
  fetch?: typeof fetch;
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
/** How long a repository's installation, once looked up, is taken as known. */
const LOOKUP_TTL_MS = 10 * 60_000;
/** Tokens and lookups kept per repository; a node serves a bounded set of repositories at a time. */
const MAX_CACHED = 256;

interface CachedToken {
  token: string;
  expiresAtMs: number;
}

/** A repository on GitHub, as a job names it. */
export interface GithubRepository {
  owner: string;
  name: string;
}

/** The App's two uses: registry credentials for ghcr.io, and clone tokens for single repositories. */
export interface GithubApp {
  registry: CredentialSource;
  /**
   * A fresh installation token for cloning one repository (`contents: read`,
   * that repository only). GitHub is asked first which installation of the
   * App covers the repository: a repository of another account, or one the
   * installation does not include, gets no token. Never cached: it lives as
   * long as the job's clone needs it, in memory.
   */
  cloneToken(repository: GithubRepository, signal?: AbortSignal): Promise<string>;
}

/** The installation-token call: `POST /app/installations/{id}/access_tokens`. */
type TokenAsk = { repositories?: string[]; permissions: Record<string, 'read' | 'write'> };

/** Both uses of one App (see {@link GithubApp}). */
export function githubApp(opts: GithubAppCredentialsOptions): GithubApp {
  const installationId = Number(opts.installationId);
  if (!Number.isSafeInteger(installationId) || installationId <= 0) {
    throw new WarmstartError(
      'INVALID_ARGUMENT',
      `WARMSTART_GITHUB_INSTALLATION_ID must be a whole number, got ${JSON.stringify(String(opts.installationId).slice(0, 40))}`,
    );
  }
  const octokit = appClient(opts);
  const now = opts.now ?? Date.now;

  const createToken = async (ask: TokenAsk, signal?: AbortSignal): Promise<CachedToken> => {
    const { data } = await octokit.rest.apps.createInstallationAccessToken({
      installation_id: installationId,
      ...ask,
      ...(signal ? { request: { signal } } : {}),
    });
    const expiresAtMs = Date.parse(data.expires_at);
    if (!data.token || Number.isNaN(expiresAtMs)) {
      throw new WarmstartError('GITHUB_APP_AUTH_FAILED', 'GitHub returned no usable installation token', {
        detail: 'response lacked token or expires_at',
      });
    }
    return { token: data.token, expiresAtMs };
  };

  /** owner/name (lower case) -> the installation GitHub said covers it, and when */
  const lookups = new Map<string, { installationId: number; atMs: number }>();
  const repositoryInstallation = async (repo: GithubRepository, signal?: AbortSignal): Promise<number> => {
    const key = `${repo.owner}/${repo.name}`.toLowerCase();
    const known = lookups.get(key);
    if (known && now() - known.atMs < LOOKUP_TTL_MS) return known.installationId;
    const { data } = await octokit.rest.apps.getRepoInstallation({ owner: repo.owner, repo: repo.name, ...(signal ? { request: { signal } } : {}) });
    if (lookups.size >= MAX_CACHED) lookups.delete(lookups.keys().next().value!);
    lookups.set(key, { installationId: data.id, atMs: now() });
    return data.id;
  };

  return {
    registry: registrySource(createToken, opts),
    async cloneToken(repo, signal) {
      signal?.throwIfAborted();
      const full = `${repo.owner}/${repo.name}`;
      const asked = `contents: read on ${full}`;
      let coveredBy: number;
      try {
        coveredBy = await repositoryInstallation(repo, signal);
      } catch (err) {
        throw toAuthError(err, installationId, asked, full);
      }
      if (coveredBy !== installationId) {
        throw new WarmstartError(
          'GITHUB_APP_AUTH_FAILED',
          `${full} is in installation ${coveredBy} of the GitHub App, not in ${installationId}, the one this agent uses`,
          {
            detail: `GET /repos/${full}/installation: id ${coveredBy}`,
          },
        );
      }
      try {
        return (await createToken({ repositories: [repo.name], permissions: CLONE_PERMISSIONS }, signal)).token;
      } catch (err) {
        throw toAuthError(err, installationId, asked);
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

function registrySource(createToken: (ask: TokenAsk) => Promise<CachedToken>, opts: GithubAppCredentialsOptions): CredentialSource {
  const now = opts.now ?? Date.now;
  const margin = opts.refreshMarginMs ?? DEFAULT_REFRESH_MARGIN_MS;
  const perRepository = (opts.registryScope ?? 'repository') === 'repository';

  const cached = new Map<string, CachedToken>();
  const inFlight = new Map<string, Promise<CachedToken>>();
  /** repositories the installation cannot scope a token to: they get the installation-wide token */
  const unscopable = new Set<string>();

  const fetchToken = async (repository: string): Promise<CachedToken> => {
    try {
      return await createToken({ ...(repository === '' ? {} : { repositories: [repository] }), permissions: REGISTRY_PERMISSIONS });
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
          if (cached.size >= MAX_CACHED) cached.delete(cached.keys().next().value!);
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
      if (unscopable.size >= MAX_CACHED) unscopable.clear();
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
 * Octokit authenticated as the App: auth-app signs every `/app/...` and
 * `/repos/{owner}/{repo}/installation` call with a fresh JWT (and retries
 * once with GitHub's clock on a 401 that says the clocks differ). No
 * installation id is given to auth-app, so it can never mint or cache an
 * installation token of its own. Every call gets a timeout on top of the
 * caller's signal, and Octokit's log is silent (its error lines are noise
 * next to our own error).
 */
function appClient(opts: GithubAppCredentialsOptions): Octokit {
  const silent = (): void => {};
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Octokit({
    authStrategy: createAppAuth,
    auth: { appId: opts.appId, privateKey: opts.privateKey },
    ...(opts.baseUrl ? { baseUrl: opts.baseUrl } : {}),
    log: { debug: silent, info: silent, warn: silent, error: silent },
    request: {
      fetch: (input: string | URL | Request, init?: RequestInit) => {
        const timeout = AbortSignal.timeout(timeoutMs);
        return (opts.fetch ?? globalThis.fetch)(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, timeout]) : timeout });
      },
    },
  });
}

/**
 * Maps whatever Octokit threw to GITHUB_APP_AUTH_FAILED. We keep only the
 * status and GitHub's own message: the octokit error carries the request
 * (headers, JWT-bearing options) and must not travel on as `cause`.
 * `lookedUp` names the repository when the call was its installation lookup.
 */
function toAuthError(err: unknown, installationId: string | number, asked: string, lookedUp?: string): WarmstartError {
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
        : status === 404 && lookedUp !== undefined
          ? `the GitHub App is not installed on ${lookedUp} (or the repository does not exist): no token asked for`
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
