import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { PushResult, WorkspaceResult } from '../../../shared/src/workspace-result.js';
import { BuildStepCounter } from '../cache/build-steps.js';
import { repositoryIdentity } from '../cache/identity.js';
import { exactImageLabels } from '../cache/image-labels.js';
import { pushCache } from '../cache/push-cache.js';
import { cacheSigner } from '../cache/signature-store.js';
import { discoverConfig, type DiscoveredConfig } from '../devcontainer/discover.js';
import { buildExactOverride } from '../devcontainer/exact-override.js';
import { logLineText } from '../devcontainer/log-line.js';
import { buildOverride, writeOverrideFile } from '../devcontainer/override.js';
import { describeError, describeErrorWithDetail, isWarmstartError, toErrorBody, WarmstartError } from '../errors.js';
import type { PhaseName, SecretSet } from '../events/events.js';
import type { PhaseRecorder } from '../events/phase-recorder.js';
import { shareTokenWith, writeContainerGitCredentials, type ContainerGitCredentials } from '../git/container-credentials.js';
import type { RegistryCredentials } from '../registry/credentials.js';
import { createDockerConfig, toDockerAuthConfig } from '../registry/docker-config.js';
import { nodeRegistryCredentials } from '../registry/image-credentials.js';
import { BuildLog } from './build-log.js';
import { exactImageRefusal, hostAccessRefusal } from './host-access-gate.js';
import { pushDecision } from './push-decision.js';
import { startedContainerRefusal } from './started-container-check.js';
import { CacheSession } from './cache-phase.js';
import { removeWorkspaceContainers, startDefaultContainer, WORKSPACE_LABEL } from './default-container.js';
import { findExact, type ExactLookup, type NoExactKey } from './exact.js';
import type { PipelineDeps } from './deps.js';
import { builderOf, type JobPlan } from './plan.js';
import { bestEffort, isMissing } from '../util/best-effort.js';
import { CacheOutcome } from './cache-outcome.js';

/** One run of the pipeline; holds what the phases hand each other. */
export class Job {
  private readonly result: WorkspaceResult;
  /** what `result.cache` says (cache-outcome.ts); copied into the result when the job ends */
  private readonly cacheOutcome: CacheOutcome;
  private readonly buildLog = new BuildLog();
  private pushTask: (() => Promise<PushResult>) | null = null;
  private disposeDockerConfig: (() => Promise<void>) | null = null;
  /** a job token was mounted into the container; `up` names who may read it */
  private containerToken = false;
  private readonly rec: PhaseRecorder;
  /** the volume filled and the old containers gone (run() starts it after the clone) */
  private volumeReady: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: PipelineDeps,
    /** its cacheRef becomes this node's builder's moving ref once the builder probe answers (run) */
    private plan: JobPlan,
    recorder: PhaseRecorder,
    private readonly jobDir: string,
    private readonly signal: AbortSignal,
    private readonly secrets: SecretSet,
  ) {
    this.rec = cancellable(recorder, signal);
    this.cacheOutcome = new CacheOutcome(plan.cacheRef, plan.cacheOffReason);
    this.result = {
      outcome: 'failed',
      workspaceId: plan.workspaceId,
      containerId: null,
      profile: null,
      cache: this.cacheOutcome.result(),
      push: { status: 'skipped', ref: null, reason: 'nothing was built', ms: null },
      controls: plan.controls,
      timings: recorder.timings,
      error: null,
    };
  }

  async run(): Promise<WorkspaceResult> {
    const { deps, rec } = this;
    let plan = this.plan;
    try {
      // The registry's part needs none of the repository's files: it starts now and overlaps the clone.
      const cache = plan.lightweight ? null : CacheSession.open(deps, plan, rec, { builder: builderOf(deps.devcontainer) });
      if (cache) {
        void cache.login(); // phase credentials
        void cache.pullMoving(); // phase pull: the builder's moving image, once logged in and the builder probe answers
        void cache.readMovingLabels(); // phase moving-labels: its labels and age, from the registry beside the pull
        void cache.probePush(); // may this node push there (after the login)
      }
      const src = deps.store.sourceDir(plan.workspaceId);
      // Clone before creating the volume, so a repository that cannot be
      // cloned leaves no volume behind.
      const cloned = rec.phase('clone', () => this.clone(src));
      // The engine client loads on first use (agent/src/docker/lazy-engine.ts): let that be while git runs,
      // but after the builder probe's file reads, which the moving pull waits for (its loading would hold them up).
      void (cache ? cache.movingRef : Promise.resolve()).then(() => deps.engine.waitForEngine?.()).catch(() => undefined);
      await cloned;
      if (cache) {
        // Each builder reads and writes its own moving tag (agent/src/cache/ref.ts builderRef).
        plan = this.plan = { ...plan, cacheRef: await cache.movingRef };
        this.cacheOutcome.usesRef(plan.cacheRef!);
      }
      // The volume and the old containers need only the clone; reading the
      // config, the key and the exact lookup run beside them. Everything that
      // starts a container waits for `this.volumeReady` first.
      this.volumeReady = Promise.all([
        rec.phase('volume', () => this.populateVolume(src)),
        rec.phase('remove-old', () => removeWorkspaceContainers(deps.engine, plan.workspaceId)),
      ]).then(() => undefined);
      this.volumeReady.catch(() => undefined);

      let discovered: DiscoveredConfig | null;
      try {
        discovered = await rec.phase('config', () => discoverConfig(src, plan.configName));
      } catch (err) {
        return await this.recover(err);
      }
      if (plan.lightweight || discovered === null) return await this.lightweight(discovered === null);
      // Before the job's DOCKER_CONFIG is written or anything of the repository's starts: a refused config gets only the default image.
      const refused = await rec.phase('host-access', () => hostAccessRefusal(deps.config.hostAccess, discovered, src));
      if (refused) return await this.recover(refused);

      const credentials = cache ? await cache.credentials : null;
      this.secrets.add(credentials?.password);
      // The node's credentials for its own hosts too: a private base image the
      // Dockerfile names on one of them is pulled with them (image-credentials.ts).
      const dockerConfig = await createDockerConfig(
        this.jobDir,
        [credentials, ...(await nodeRegistryCredentials(deps.config, deps.credentialSources))],
        {
          cliPluginDirs: deps.config.dockerCliPluginDirs ?? [],
        },
      );
      this.disposeDockerConfig = dockerConfig.dispose;
      const found =
        cache && plan.cacheRef && discovered.kind === 'dockerfile'
          ? await findExact(deps, cache, plan.cacheRef, discovered, src, rec, repositoryIdentity(plan.repo))
          : null;
      const hit = found?.hit ? found : null;
      // The image's devcontainer.metadata label is merged into the container like the repo's config.
      const imageRefused = hit
        ? await rec.phase('host-access', () => exactImageRefusal(deps.config.hostAccess, deps.engine, hit.image ?? hit.ref, hit.fromMoving?.labels))
        : null;
      if (imageRefused) return await this.recover(imageRefused);

      let steps = new BuildStepCounter();
      let containerId: string;
      let exact = found;
      try {
        containerId = await this.start(src, discovered, cache, exact, dockerConfig.dir, steps);
      } catch (err) {
        if (this.signal.aborted) throw cancelled();
        // The moving image was taken as the exact image before its pull ended (cache-phase.ts movingAsExact).
        // If that pull failed, this is cache trouble: the workspace is built as on a miss.
        const pulled = hit?.fromMoving && cache ? await cache.moving : null;
        if (!hit || !pulled || pulled.available) return await this.recover(err);
        rec.note(`the exact image could not be pulled (${pulled.reason ?? 'unknown'}): building without it`, 'up');
        exact = { ref: hit.ref, key: hit.key, hit: false, reason: null };
        this.cacheOutcome.exactFellThrough(plan.cacheRef);
        steps = new BuildStepCounter();
        try {
          containerId = await this.start(src, discovered, cache, exact, dockerConfig.dir, steps);
        } catch (retryErr) {
          if (this.signal.aborted) throw cancelled();
          return await this.recover(retryErr);
        }
      }
      if (deps.config.hostAccess !== 'allow') {
        const own = { runtimeDir: deps.config.runtimeDir, workspaceId: plan.workspaceId, cloneDir: src };
        const merged = await rec.phase('host-access-started', () => startedContainerRefusal(deps.engine, containerId, own));
        if (merged) return await this.recover(merged);
      }
      const counted = steps.result();
      if (counted && discovered.kind === 'dockerfile') this.cacheOutcome.steps(counted);
      // BuildKit reads the cache from the registry itself (the engine's network, not the agent's): its word decides.
      const importError = plan.cacheRef ? steps.cacheImportErrors.get(plan.cacheRef) : undefined;
      if (importError && plan.cacheRef) this.cacheOutcome.importFailed(plan.cacheRef, importError);
      this.planPush(containerId, discovered.kind, cache ? await cache.pushBlocked : null, credentials, exact);
      return this.ready(containerId, 'devcontainer');
    } catch (err) {
      return this.fail(err);
    }
  }

  /** The background push, or its reason for not running; settles after ready. */
  async push(): Promise<PushResult> {
    try {
      return this.pushTask ? await this.pushTask() : this.result.push;
    } finally {
      if (this.disposeDockerConfig)
        await bestEffort('remove the job docker config (it holds registry credentials)', this.disposeDockerConfig, (m) => this.rec.note(m, 'push'));
    }
  }

  /** Writes the config `up` gets and runs `up` with it (behind the feature-build gate when it builds features); the container. */
  private async start(
    src: string,
    discovered: DiscoveredConfig,
    cache: CacheSession | null,
    exact: ExactLookup | NoExactKey | null,
    dockerConfigDir: string,
    steps: BuildStepCounter,
  ): Promise<string> {
    const overridePath = await this.rec.phase('override', async () =>
      writeOverrideFile(this.jobDir, this.withoutHostCommands(await this.override(discovered, cache, exact))),
    );
    await this.volumeReady;
    const up = () => this.up(src, discovered, overridePath, dockerConfigDir, steps);
    return exact?.hit !== true && hasFeatures(discovered.config) ? await this.deps.featureBuilds.run(up) : await up();
  }

  /**
   * The git credentials a container of this workspace gets, whichever kind it
   * is (dev container, lightweight, recovery): only a token the job brought;
   * the node's never enters a container. Null when there is none.
   */
  private containerGitCredentials(): Promise<ContainerGitCredentials | null> {
    const { plan, deps } = this;
    if (!plan.gitToken || plan.gitTokenSource !== 'job' || plan.repo.kind === 'local') return Promise.resolve(null);
    return writeContainerGitCredentials(deps.config.runtimeDir, plan.workspaceId, plan.gitToken, plan.gitTokenHost);
  }

  /** The config `up` gets: the finished image on an exact hit, else the repo's with our changes. */
  private async override(
    discovered: DiscoveredConfig,
    cache: CacheSession | null,
    exact: ExactLookup | NoExactKey | null,
  ): Promise<Record<string, unknown>> {
    const { deps, plan } = this;
    const workspaceMount = `source=${plan.volume},target=${plan.workspaceFolder},type=volume`;
    const gitCredentials = await this.containerGitCredentials();
    this.containerToken = gitCredentials !== null;
    const runArgs = gitCredentials?.runArgs ?? [];
    // The CLI gives remoteUser the host user's UID with an extra image build
    // on every start. The agent runs as root, and UID 0 always exists in the
    // image, so that build changes nothing (the CLI's script says "User with
    // UID exists"): skip it.
    const settings = process.getuid?.() === 0 ? { updateRemoteUserUID: false } : {};
    if (exact?.hit) {
      this.cacheOutcome.exactImage(exact.ref);
      return buildExactOverride({
        discovered,
        image: exact.image ?? exact.ref,
        workspaceMount,
        workspaceFolder: plan.workspaceFolder,
        runArgs,
        settings,
      });
    }
    const classic = await deps.devcontainer.usesClassicBuilder();
    const moving = cache && discovered.kind === 'dockerfile' ? await cache.layerSource(classic || deps.config.cachePullFirst === 'always') : null;
    // An expired exact image (exact-max-age.ts) is remade by a build that runs every step:
    // cached layers would keep what their steps fetched back then.
    const refresh = exact?.ref ? exact.reason?.startsWith('EXACT_IMAGE_EXPIRED') === true : false;
    // The classic builder keeps the container of a failed step; on a node
    // that builds all day those pile up. BuildKit leaves none.
    const buildOptions = [...(classic ? ['--force-rm'] : []), ...(refresh ? ['--no-cache'] : [])];
    const override = buildOverride({
      discovered,
      cacheFrom: moving?.available && plan.cacheRef && !refresh ? [plan.cacheRef] : [],
      workspaceMount,
      workspaceFolder: plan.workspaceFolder,
      runArgs,
      settings,
      ...(buildOptions.length > 0 ? { buildOptions } : {}),
    });
    if (discovered.kind !== 'dockerfile') {
      this.cacheOutcome.buildsNothing(override.cacheNote);
    } else if (moving) {
      this.cacheOutcome.layerSource(moving, exact ? { ref: exact.ref, reason: exact.reason } : null, refresh);
    }
    return override.config;
  }

  /** A repository's `initializeCommand` would run on this node, not in its container: dropped unless the operator allows it. */
  private withoutHostCommands(config: Record<string, unknown>): Record<string, unknown> {
    if (this.deps.config.allowInitializeCommand || config.initializeCommand === undefined) return config;
    const { initializeCommand: _dropped, ...rest } = config;
    this.rec.note('initializeCommand not run: it would run on the node itself (WARMSTART_ALLOW_INITIALIZE_COMMAND=1 allows it)', 'override');
    return rest;
  }

  private async up(
    src: string,
    discovered: DiscoveredConfig,
    overridePath: string,
    dockerConfigDir: string,
    steps: BuildStepCounter,
  ): Promise<string> {
    const { deps, plan, rec } = this;
    try {
      const up = await rec.phase('up', async () => {
        // The CLI's docker commands fail at once on an engine that is restarting.
        await deps.engine.waitForEngine?.();
        return deps.devcontainer.up({
          workspaceFolder: src,
          configPath: discovered.path,
          overrideConfigPath: overridePath,
          idLabels: { [WORKSPACE_LABEL]: plan.workspaceId },
          env: { DOCKER_CONFIG: dockerConfigDir },
          timeoutMs: deps.config.buildTimeoutMs,
          signal: this.signal,
          // If the agent dies, the next start finds and stops this CLI (reconcile).
          onStart: (pid) =>
            void bestEffort(
              'record the devcontainers CLI pid (a restarted agent cannot stop it)',
              deps.store.saveCliPid(plan.workspaceId, pid),
              (m) => rec.note(m, 'up'),
            ),
          onLog: (line) => {
            steps.push(line);
            const text = logLineText(line);
            this.buildLog.add(text);
            rec.log(text, 'up');
          },
        });
      });
      if (this.containerToken) {
        const note = await shareTokenWith(deps.engine, up.containerId, deps.config.runtimeDir, plan.workspaceId, up.remoteUser).catch(
          (err: unknown) => `git token in the container: its owner could not be set (${describeError(err)})`,
        );
        if (note) rec.note(note, 'up');
      }
      return up.containerId;
    } finally {
      await deps.store.clearCliPid(plan.workspaceId);
    }
  }

  private async clone(src: string): Promise<void> {
    if (await exists(src)) {
      this.rec.note('host clone exists: reusing it', 'clone');
      return;
    }
    const partial = `${src}.partial`;
    await rm(partial, { recursive: true, force: true });
    await mkdir(join(src, '..'), { recursive: true, mode: 0o700 });
    const token = this.plan.gitTokenSource === 'github-app' ? await this.appCloneToken() : this.plan.gitToken;
    if (this.plan.gitTokenNote) this.rec.note(this.plan.gitTokenNote, 'clone');
    else if (token) {
      const whose = { job: "the job's git token", 'github-app': "the GitHub App's token for this repository", node: "the node's git token" }[
        this.plan.gitTokenSource!
      ];
      this.rec.note(`cloning with ${whose}, for ${this.plan.gitTokenHost ?? 'this host'} only`, 'clone');
    }
    await this.deps.git.clone(this.plan.repo.cloneUrl, partial, {
      ...(token ? { token, tokenHost: this.plan.gitTokenHost } : {}),
      signal: this.signal,
    });
    await rename(partial, src);
  }

  /**
   * An installation token of the GitHub App for this one repository, asked
   * for now and kept only in memory (git's credential helper reads it from
   * the clone's environment). If the App cannot give one, the clone goes on
   * without it (a public repository still clones) and the events say why.
   */
  private async appCloneToken(): Promise<string | null> {
    const app = this.deps.githubAppClone;
    if (!app) return null;
    try {
      const token = await this.rec.phase('clone-token', () => app.token(this.plan.repo, this.signal));
      this.secrets.add(token);
      return token;
    } catch (err) {
      if (this.signal.aborted) throw err;
      this.rec.note(
        `no GitHub App token for ${this.plan.repo.owner}/${this.plan.repo.name}, cloning without one: ${describeErrorWithDetail(err)}`,
        'clone',
      );
      return null;
    }
  }

  /** A new volume gets the clone; an existing one is the user's work and is left as it is. */
  private async populateVolume(src: string): Promise<void> {
    const { engine } = this.deps;
    if (await engine.volumeExists(this.plan.volume)) {
      this.rec.note(`volume ${this.plan.volume} exists: keeping its contents`, 'volume');
      return;
    }
    // The default image is pulled only where it runs (lightweight, recovery): the fill needs none.
    await engine.createVolume(this.plan.volume, { [WORKSPACE_LABEL]: this.plan.workspaceId, 'warmstart.managed': 'true' });
    await engine.copyIntoVolume(this.plan.volume, src);
  }

  private async lightweight(noConfig: boolean): Promise<WorkspaceResult> {
    await this.volumeReady;
    const reason = noConfig ? 'no devcontainer config in the repository' : 'lightweight workspace: nothing is built';
    this.cacheOutcome.nothingBuilt(reason);
    this.result.push.reason = reason;
    const id = await this.rec.phase('start-default', () => this.startDefault('lightweight'));
    return this.ready(id, 'lightweight');
  }

  private async startDefault(profile: 'lightweight' | 'recovery'): Promise<string> {
    const { deps, plan } = this;
    const git = await this.containerGitCredentials();
    const id = await startDefaultContainer(deps.engine, {
      image: deps.config.defaultImage,
      workspaceId: plan.workspaceId,
      volume: plan.volume,
      workspaceFolder: plan.workspaceFolder,
      profile,
      credentialSources: deps.credentialSources,
      ...(git ? { git } : {}),
    });
    if (git) {
      // The token file becomes the image's user's, as the dev container's becomes its remote user's.
      const note = await shareTokenWith(deps.engine, id, deps.config.runtimeDir, plan.workspaceId, undefined).catch(
        (err: unknown) => `git token in the container: its owner could not be set (${describeError(err)})`,
      );
      this.rec.note(
        note ?? `the job's git token is offered in the ${profile} container, for ${plan.gitTokenHost ?? 'its host'} only`,
        profile === 'recovery' ? 'fallback' : 'start-default',
      );
    }
    return id;
  }

  /** The repo's config failed: keep its log in the workspace, start the default image. */
  private async recover(cause: unknown): Promise<WorkspaceResult> {
    const error = toErrorBody(cause instanceof WarmstartError ? cause : new WarmstartError('DEVCONTAINER_UP_FAILED', describeError(cause)));
    this.result.error = error;
    this.result.push = { status: 'skipped', ref: null, reason: 'the repository config did not build (recovery)', ms: null };
    // A volume that could not be made fails the job here (run's catch): there is nothing to fall back to.
    await this.volumeReady;
    const fallback = (): Promise<string> =>
      this.rec.phase('fallback', async () => {
        await removeWorkspaceContainers(this.deps.engine, this.plan.workspaceId);
        await this.buildLog.saveInto(this.deps.engine, {
          volume: this.plan.volume,
          scratchDir: this.jobDir,
          error,
        });
        return this.startDefault('recovery');
      });
    try {
      let id: string;
      try {
        id = await fallback();
      } catch (err) {
        // The engine itself went away under the build (a restart): while it comes back it can answer
        // with errors rather than not at all. Once it answers again, the fallback gets one more try.
        if (this.signal.aborted || !isWarmstartError(err) || !['DOCKER_UNAVAILABLE', 'DOCKER_OPERATION_FAILED'].includes(err.code)) throw err;
        this.rec.note(`the fallback met the engine in trouble (${describeError(err)}): trying once more when it answers`, 'fallback');
        await new Promise((r) => setTimeout(r, ENGINE_SETTLE_MS));
        await this.deps.engine.waitForEngine?.();
        id = await fallback();
      }
      return this.ready(id, 'recovery');
    } catch (err) {
      return this.fail(err, error);
    }
  }

  private planPush(
    containerId: string,
    kind: string,
    blocked: string | null,
    credentials: RegistryCredentials | null,
    exact: ExactLookup | NoExactKey | null,
  ): void {
    const { plan, result, deps } = this;
    const refused = pushDecision({ plan, kind, exactHit: exact?.hit === true, credentials, blocked, config: deps.config });
    if (refused || !plan.cacheRef || !credentials) {
      result.push = { status: refused?.status ?? 'skipped', ref: plan.cacheRef, reason: refused?.reason ?? 'no cache ref', ms: null };
      return;
    }
    const ref = plan.cacheRef;
    result.push = { status: 'pending', ref, reason: null, ms: null };
    this.pushTask = () =>
      deps.pushQueue.enqueue(ref, async () =>
        pushCache({
          engine: deps.engine,
          imageId: await deps.engine.containerImageId(containerId),
          refs: [ref],
          exact: exact?.ref
            ? {
                ref: exact.ref,
                labels: exactImageLabels(repositoryIdentity(plan.repo), exact.key, await builderOf(deps.devcontainer)),
                contentKey: exact.key,
              }
            : null,
          auth: toDockerAuthConfig(credentials),
          creds: credentials,
          oci: deps.oci,
          timeoutMs: plan.pushTimeoutMs,
          sign: cacheSigner({
            engine: deps.engine,
            api: deps.oci,
            key: deps.config.cacheSigningKey,
            identity: repositoryIdentity(plan.repo),
            creds: credentials,
            exact: exact?.ref ? { ref: exact.ref, key: exact.key } : null,
          }),
        }),
      );
  }

  private ready(containerId: string, profile: 'devcontainer' | 'lightweight' | 'recovery'): WorkspaceResult {
    this.result.containerId = containerId;
    this.result.profile = profile;
    this.result.outcome = profile === 'recovery' ? 'recovery' : 'ready';
    this.result.cache = this.cacheOutcome.result();
    this.result.timings.ready = this.rec.elapsed();
    return this.result;
  }

  private fail(err: unknown, original?: { code: string; message: string }): WorkspaceResult {
    const body = err instanceof WarmstartError ? toErrorBody(err) : { ...toErrorBody(err), detail: describeError(err) };
    this.result.outcome = 'failed';
    this.result.error = original ? { ...body, detail: `${original.code}: ${original.message}; then ${body.detail ?? body.message}` } : body;
    this.result.push = { status: 'skipped', ref: null, reason: 'workspace failed', ms: null };
    this.result.cache = this.cacheOutcome.result();
    this.result.timings.ready = this.rec.elapsed();
    return this.result;
  }
}

/** A view of the recorder whose phases refuse to start once the job is cancelled. */
function cancellable(rec: PhaseRecorder, signal: AbortSignal): PhaseRecorder {
  return Object.assign(Object.create(rec) as PhaseRecorder, {
    phase: <T>(name: PhaseName, fn: () => Promise<T>): Promise<T> => (signal.aborted ? Promise.reject(cancelled()) : rec.phase(name, fn)),
  });
}

/** How long a restarting engine gets before the fallback is tried again (recover). */
const ENGINE_SETTLE_MS = 3_000;

function hasFeatures(config: Record<string, unknown>): boolean {
  const f = config.features;
  return typeof f === 'object' && f !== null && Object.keys(f).length > 0;
}

function cancelled(): WarmstartError {
  return new WarmstartError('JOB_CANCELLED', 'the job was cancelled (workspace deleted or agent stopping)');
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if (!isMissing(err)) throw err;
    return false;
  }
}
