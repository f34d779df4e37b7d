import type { DockerEngine } from '../docker/engine.js';
import { describeError } from '../errors.js';
import type { PhaseRecorder } from '../events/phase-recorder.js';
import { resolveCredentials, type CredentialSource, type RegistryCredentials } from '../registry/credentials.js';
import { toDockerAuthConfig } from '../registry/docker-config.js';
import type { RegistryClient } from '../registry/registry-client.js';
import type { JobPlan } from './plan.js';

export interface CacheDeps {
  engine: DockerEngine;
  registry: RegistryClient;
  credentialSources: CredentialSource[];
}

/** What the moving-ref pull came to. */
export interface MovingPull {
  /** true when the cache image is on this engine now (pulled, or already there with the same digest) */
  available: boolean;
  /** why not, when it is not */
  reason: string | null;
}

function repositoryOf(ref: string): string {
  return ref.slice(0, ref.lastIndexOf(':'));
}

function tagOf(ref: string): string {
  return ref.slice(ref.lastIndexOf(':') + 1);
}

/**
 * The registry side of one job, started before the clone so that logging in,
 * probing push permission and pulling the moving ref overlap with it (none of
 * them needs the repository's files). Never rejects: registry trouble becomes
 * a reason.
 */
export class CacheSession {
  readonly credentials: Promise<RegistryCredentials | null>;
  readonly moving: Promise<MovingPull>;
  /** why a push would be refused (null: go ahead) */
  readonly pushBlocked: Promise<string | null>;
  private credentialNote: string | null = null;

  constructor(
    private readonly deps: CacheDeps,
    private readonly plan: JobPlan & { cacheRef: string; registryHost: string },
    private readonly rec: PhaseRecorder,
  ) {
    const host = plan.registryHost;
    const sources = plan.jobCredentials ? [{ get: async () => plan.jobCredentials }, ...deps.credentialSources] : deps.credentialSources;
    this.credentials = rec.phase('credentials', async () => {
      try {
        return await resolveCredentials(sources, host);
      } catch (err) {
        this.credentialNote = `credentials unavailable: ${describeError(err)}`;
        rec.note(this.credentialNote, 'credentials');
        return null;
      }
    });
    this.moving = this.credentials.then((c) => rec.phase('pull', () => this.ensureLocal(plan.cacheRef, c, null)));
    this.pushBlocked = this.credentials.then((c) =>
      c
        ? deps.registry
            .probePush(repositoryOf(plan.cacheRef), c)
            .then(() => null)
            .catch((err: unknown) => `push permission probe: ${describeError(err)}`)
        : null,
    );
  }

  /** Starts a session when the job has a cache ref; null otherwise. */
  static start(deps: CacheDeps, plan: JobPlan, rec: PhaseRecorder): CacheSession | null {
    if (!plan.cacheRef || !plan.registryHost) return null;
    const session = new CacheSession(deps, plan as JobPlan & { cacheRef: string; registryHost: string }, rec);
    // Settle quietly if the job ends before anyone awaits these (lightweight, no config).
    session.moving.catch(() => undefined);
    session.pushBlocked.catch(() => undefined);
    return session;
  }

  /** The digest of `ref` in the registry, or null when it is not there (or the registry cannot say). */
  async lookup(ref: string): Promise<string | null> {
    const creds = await this.credentials;
    try {
      return await this.deps.registry.headManifest(repositoryOf(ref), tagOf(ref), creds);
    } catch (err) {
      this.rec.note(`exact lookup failed: ${describeError(err)}`, 'exact-lookup');
      return null;
    }
  }

  /**
   * Makes `ref` local: nothing to do when the engine already has it with the
   * registry's digest, else a pull. `digest` is the registry's, when known.
   */
  async ensureLocal(ref: string, creds: RegistryCredentials | null, digest: string | null): Promise<MovingPull> {
    const { engine, registry } = this.deps;
    try {
      const local = await engine.imageRepoDigests(ref);
      if (local.length > 0) {
        const want = digest ?? (await registry.headManifest(repositoryOf(ref), tagOf(ref), creds).catch(() => null));
        if (want && local.includes(`${repositoryOf(ref)}@${want}`)) {
          this.rec.note(`${ref} is already on this engine (${want.slice(0, 19)}…): no pull`, 'pull');
          return { available: true, reason: null };
        }
      }
      await engine.pullImage(ref, toDockerAuthConfig(creds));
      return { available: true, reason: null };
    } catch (err) {
      const reason = describeError(err);
      return { available: false, reason: this.credentialNote ? `${reason} (${this.credentialNote})` : reason };
    }
  }
}
