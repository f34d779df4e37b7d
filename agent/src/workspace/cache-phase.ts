import { tooOld } from '../cache/exact-max-age.js';
import { repositoryIdentity } from '../cache/identity.js';
import { labelMismatch } from '../cache/image-labels.js';
import { builderRef, type Builder } from '../cache/ref.js';
import { readImageConfig, type ImageConfigFacts } from '../cache/relabel.js';
import { signatureRefusal } from '../cache/signature-store.js';
import type { AgentConfig } from '../config/agent-config.js';
import type { DockerEngine } from '../docker/engine.js';
import { describeError, describeErrorWithDetail } from '../errors.js';
import type { PhaseRecorder } from '../events/phase-recorder.js';
import { normalizeRegistryHost, resolveCredentials, type CredentialSource, type RegistryCredentials } from '../registry/credentials.js';
import { toDockerAuthConfig } from '../registry/docker-config.js';
import { createOciApi, type OciApi } from '../registry/oci-api.js';
import type { RegistryClient } from '../registry/registry-client.js';
import type { JobPlan } from './plan.js';
import { splitTag } from '../cache/image-ref.js';

export interface CacheDeps {
  engine: DockerEngine;
  registry: RegistryClient;
  credentialSources: CredentialSource[];
  /** its cacheTrustedKeys, when set, admit only signed images (ensureTrusted) */
  config?: Pick<AgentConfig, 'cacheTrustedKeys'>;
  /** for reading the moving image's labels; the default talks to the registry */
  oci?: OciApi;
}

/** What the moving-ref pull came to. */
export interface MovingPull {
  /** true when the cache image is on this engine now (pulled, or already there with the same digest) */
  available: boolean;
  /** why not, when it is not */
  reason: string | null;
  /** true: the registry has an image under the ref, but its signature did not admit it */
  refused?: boolean;
}

function repositoryOf(ref: string): string {
  return splitTag(ref).repository;
}

function tagOf(ref: string): string {
  return splitTag(ref).tag ?? 'latest';
}

/** The moving image taken as the exact image ({@link CacheSession.movingAsExact}). */
export interface MovingExact {
  /** `repository@digest`: the name `up` runs */
  image: string;
  digest: string;
  /** the image's labels, as its config in the registry has them */
  labels: Record<string, string>;
}

/**
 * The registry side of one job. Each piece of its work is one step the job
 * begins itself (Job.run names them: `login`, `pullMoving`,
 * `readMovingLabels`, `probePush`), before the clone, so that they overlap
 * it: none needs the repository's files. A step runs once; asking again (or
 * reading `credentials`, `moving`, `movingConfig`, `pushBlocked`) gets the
 * same promise, and a step nobody began starts when first read. Never
 * rejects: registry trouble becomes a reason.
 */
export class CacheSession {
  /** the moving ref of this node's builder (agent/src/cache/ref.ts builderRef), known once the builder probe answers */
  readonly movingRef: Promise<string>;
  private credentialNote: string | null = null;
  /** what the moving pull came to, once it has */
  private movingSettled: MovingPull | null = null;
  private steps: {
    login?: Promise<RegistryCredentials | null>;
    pull?: Promise<MovingPull>;
    labels?: Promise<ImageConfigFacts | null>;
    probe?: Promise<string | null>;
  } = {};

  constructor(
    private readonly deps: CacheDeps,
    private readonly plan: JobPlan & { cacheRef: string; registryHost: string },
    private readonly rec: PhaseRecorder,
    /** false: the moving ref is not pulled (a prebuild's check before it decides to build, workspace/prebuild.ts) */
    private readonly pullsMoving = true,
    /** the node's builder, whose probe runs beside the login; absent: `plan.cacheRef` is the moving ref as it is */
    builder?: Promise<Builder>,
  ) {
    this.movingRef = builder ? builder.then((b) => builderRef(plan.cacheRef, b)) : Promise.resolve(plan.cacheRef);
    this.movingRef.catch(() => undefined); // read by every step that needs it
  }

  /** A session when the job has a cache ref (null otherwise), with every step begun. */
  static start(
    deps: CacheDeps,
    plan: JobPlan,
    rec: PhaseRecorder,
    options: { pullMoving?: boolean; builder?: Promise<Builder> } = {},
  ): CacheSession | null {
    const session = CacheSession.open(deps, plan, rec, options);
    session?.beginAll();
    return session;
  }

  /** A session when the job has a cache ref (null otherwise); nothing begun yet. */
  static open(
    deps: CacheDeps,
    plan: JobPlan,
    rec: PhaseRecorder,
    options: { pullMoving?: boolean; builder?: Promise<Builder> } = {},
  ): CacheSession | null {
    if (!plan.cacheRef || !plan.registryHost) return null;
    return new CacheSession(deps, plan as JobPlan & { cacheRef: string; registryHost: string }, rec, options.pullMoving ?? true, options.builder);
  }

  /** Every step at once (the order they are read in does not matter: each waits for what it needs). */
  beginAll(): void {
    void this.login();
    void this.pullMoving();
    void this.readMovingLabels();
    void this.probePush();
  }

  /** Phase `credentials`: the job's own registry credentials, else the node's for that host (null: anonymous). */
  login(): Promise<RegistryCredentials | null> {
    this.steps.login ??= this.loginStep(this.plan, this.deps, this.rec);
    return this.steps.login;
  }

  /** Phase `pull`: the moving image, once logged in and the builder is known, checked against its identity and keys. */
  pullMoving(): Promise<MovingPull> {
    if (!this.steps.pull) {
      this.steps.pull = this.pullsMoving
        ? Promise.all([this.movingRef, this.login()]).then(([ref, c]) => this.rec.phase('pull', () => this.ensureTrusted(ref, c, null, null)))
        : Promise.resolve({ available: false, reason: 'not pulled' });
      this.steps.pull.then((m) => (this.movingSettled = m)).catch(() => undefined); // awaited by whoever reads `moving`
    }
    return this.steps.pull;
  }

  /** Phase `moving-labels`: the moving image's labels and age, read from the registry beside its pull (null: none, or unreadable). */
  readMovingLabels(): Promise<ImageConfigFacts | null> {
    if (!this.steps.labels) {
      const { deps, rec } = this;
      this.steps.labels = this.pullsMoving
        ? Promise.all([this.movingRef, this.login()]).then(([ref, c]) =>
            rec.phase('moving-labels', () =>
              readImageConfig(deps.oci ?? createOciApi(), repositoryOf(ref), tagOf(ref), c).catch((err: unknown) => {
                rec.note(`moving image labels not read: ${describeError(err)}`, 'moving-labels');
                return null;
              }),
            ),
          )
        : Promise.resolve(null);
      this.steps.labels.catch(() => undefined); // awaited by whoever reads `movingConfig`
    }
    return this.steps.labels;
  }

  /**
   * Whether a push would be refused (null: go ahead): the registry's answer
   * to an upload probe. Credentials a source failed to give (a GitHub App
   * that cannot mint a token) block the push as a failure an operator must
   * see, not as the quiet "no credentials" of a pull-only node.
   */
  probePush(): Promise<string | null> {
    if (!this.steps.probe) {
      const { deps, plan } = this;
      this.steps.probe = this.login().then((c) =>
        c
          ? deps.registry
              .probePush(repositoryOf(plan.cacheRef), c)
              .then(() => null)
              .catch((err: unknown) => `push permission probe: ${describeError(err)}`)
          : this.credentialNote
            ? `REGISTRY_AUTH_FAILED: ${this.credentialNote}`
            : null,
      );
      this.steps.probe.catch(() => undefined); // awaited by whoever reads `pushBlocked`
    }
    return this.steps.probe;
  }

  get credentials(): Promise<RegistryCredentials | null> {
    return this.login();
  }

  get moving(): Promise<MovingPull> {
    return this.pullMoving();
  }

  /** the moving image's labels and age (see readMovingLabels) */
  get movingConfig(): Promise<ImageConfigFacts | null> {
    return this.readMovingLabels();
  }

  /** why a push would be refused (null: go ahead) */
  get pushBlocked(): Promise<string | null> {
    return this.probePush();
  }

  private loginStep(plan: JobPlan & { registryHost: string }, deps: CacheDeps, rec: PhaseRecorder): Promise<RegistryCredentials | null> {
    const sources = plan.jobCredentials ? [{ get: async () => plan.jobCredentials }, ...deps.credentialSources] : deps.credentialSources;
    return rec.phase('credentials', async () => {
      try {
        return await resolveCredentials(
          sources,
          plan.registryHost,
          undefined,
          plan.githubRepository ? { githubRepository: plan.githubRepository } : undefined,
        );
      } catch (err) {
        // The source's detail (GitHub's status and message, scrubbed by github-app.ts) is what an operator acts on.
        this.credentialNote = `credentials unavailable: ${describeErrorWithDetail(err)}`;
        rec.note(this.credentialNote, 'credentials');
        return null;
      }
    });
  }

  /**
   * Credentials for reading from `host`: the job's (as resolved for the
   * cache) when it is the job's registry, else the node's for that host
   * only (credentials.ts binds each source to its hosts); null: anonymous.
   */
  credentialsFor(host: string): Promise<RegistryCredentials | null> {
    if (normalizeRegistryHost(host) === normalizeRegistryHost(this.plan.registryHost)) return this.credentials;
    return resolveCredentials(this.deps.credentialSources, host).catch(() => null); // the node's credentials for another host failing: that read goes anonymous
  }

  /**
   * The moving image, when it is the exact image for `key`: the labels read
   * at t=0 name this repository and key, it is younger than `maxAgeMs`, and
   * (when keys are set) a trusted key signed it for this key. Decided from
   * the registry alone, so `up` can start while the pull begun at t=0 is
   * still running: the image is named by digest (`repository@digest`), which
   * pins it to the very manifest whose labels were read (a tag moved since
   * cannot swap it), and the CLI's own pull of that name, if it gets there
   * first, joins the engine's download in progress rather than fetching the
   * layers again. `labels` are that image's (its `devcontainer.metadata`
   * included). Null otherwise, and the exact tag is looked up as usual.
   */
  async movingAsExact(identity: string, key: string, maxAgeMs: number): Promise<MovingExact | null> {
    const facts = await this.movingConfig;
    if (!facts || labelMismatch(facts.labels, identity, key) !== null || tooOld(facts.created, maxAgeMs) !== null) return null;
    const ref = await this.movingRef;
    const repository = repositoryOf(ref);
    const trusted = this.deps.config?.cacheTrustedKeys;
    if (trusted) {
      const creds = await this.credentials;
      if (await signatureRefusal({ repository, digest: facts.digest, identity, contentKey: key, trusted, creds, api: this.deps.oci })) return null;
    }
    // A pull that has already failed says the engine cannot fetch the image either.
    if (this.movingSettled && !this.movingSettled.available) return null;
    return { image: `${repository}@${facts.digest}`, digest: facts.digest, labels: facts.labels };
  }

  /**
   * Whether the build can take layers from the moving image. The classic
   * builder reads local images only, so it waits for the pull. BuildKit
   * reads the cache from the registry itself: waiting for the pull first
   * gains nothing (`npm run bench`, row "BuildKit: pull first"), so the image
   * being in the registry (its labels read at t=0) is enough, and the pull
   * started at t=0 runs on beside the build (the engine fetches a layer once
   * for both). With trusted keys, only a pulled, verified image counts.
   */
  async layerSource(waitForPull: boolean): Promise<MovingPull> {
    if (waitForPull || this.deps.config?.cacheTrustedKeys) return this.moving;
    const facts = await this.movingConfig;
    // A pull that has already failed says the engine cannot reach the image either.
    if (this.movingSettled && !this.movingSettled.available) return this.movingSettled;
    return facts ? { available: true, reason: null } : this.moving;
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
        const want = digest ?? (await registry.headManifest(repositoryOf(ref), tagOf(ref), creds).catch(() => null)); // no digest from the registry: the local image is not taken as that one
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

  /**
   * ensureLocal, but with WARMSTART_CACHE_TRUSTED_KEYS set only for an image
   * a trusted key signed (agent/src/cache/signature-store.ts): the signature
   * must name the digest the registry gives for `ref` now, this repository
   * and, for an exact tag, `contentKey`; and the image made local must be
   * that digest (a tag that moves during the pull is refused).
   */
  async ensureTrusted(ref: string, creds: RegistryCredentials | null, digest: string | null, contentKey: string | null): Promise<MovingPull> {
    const trusted = this.deps.config?.cacheTrustedKeys;
    if (!trusted) return this.ensureLocal(ref, creds, digest);
    const repository = repositoryOf(ref);
    let want = digest;
    try {
      want ??= await this.deps.registry.headManifest(repository, tagOf(ref), creds);
    } catch (err) {
      return { available: false, reason: describeError(err) };
    }
    if (!want) return { available: false, reason: `CACHE_IMAGE_MISSING: no image under ${ref}` };
    const refusal = await signatureRefusal({
      repository,
      digest: want,
      identity: repositoryIdentity(this.plan.repo),
      contentKey,
      trusted,
      creds,
      api: this.deps.oci,
    });
    if (refusal) {
      this.rec.note(`${ref} not used: ${refusal}`, 'pull');
      return { available: false, reason: refusal, refused: true };
    }
    const local = await this.ensureLocal(ref, creds, want);
    if (!local.available) return local;
    const digests = await this.deps.engine.imageRepoDigests(ref).catch(() => [] as string[]); // no local image: nothing to compare
    if (!digests.includes(`${repository}@${want}`)) {
      const reason = `CACHE_SIGNATURE_INVALID: ${ref} changed between its signature check and the pull`;
      this.rec.note(`${ref} not used: ${reason}`, 'pull');
      return { available: false, reason, refused: true };
    }
    return local;
  }
}
