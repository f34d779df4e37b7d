import { chmod, mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { PushResult, WorkspaceResult } from '../../../shared/src/workspace-result.js';
import { BuildStepCounter } from '../cache/build-steps.js';
import { pushCache } from '../cache/push-cache.js';
import type { PushQueue } from '../cache/push-queue.js';
import type { AgentConfig } from '../config/agent-config.js';
import type { DevcontainerCli } from '../devcontainer/cli.js';
import { discoverConfig } from '../devcontainer/discover.js';
import { logLineText } from '../devcontainer/log-line.js';
import { buildOverride, writeOverrideFile } from '../devcontainer/override.js';
import type { DockerEngine } from '../docker/engine.js';
import { describeError, toErrorBody, WarmstartError } from '../errors.js';
import { redactingSink, SecretSet, type EventSink } from '../events/events.js';
import { PhaseRecorder } from '../events/phase-recorder.js';
import { writeContainerGitCredentials } from '../git/container-credentials.js';
import type { GitClient } from '../git/git.js';
import type { CredentialSource, RegistryCredentials } from '../registry/credentials.js';
import { createDockerConfig, toDockerAuthConfig } from '../registry/docker-config.js';
import type { RegistryClient } from '../registry/registry-client.js';
import { makeJobDir } from '../state/runtime-dir.js';
import type { WorkspaceStore } from '../state/workspace-store.js';
import { prepareCache } from './cache-phase.js';
import { ensureImage, removeWorkspaceContainers, startDefaultContainer, WORKSPACE_LABEL } from './default-container.js';
import { planJob, type JobPlan } from './plan.js';
import type { PrepareRequest } from './request.js';

/** Everything the pipeline talks to; wired once in createAgent. */
export interface PipelineDeps {
  config: AgentConfig;
  engine: DockerEngine;
  devcontainer: DevcontainerCli;
  git: GitClient;
  registry: RegistryClient;
  credentialSources: CredentialSource[];
  store: WorkspaceStore;
  pushQueue: PushQueue;
}

export interface PreparedWorkspace {
  /** the result at ready; push is `pending` or already decided */
  result: WorkspaceResult;
  /** settles when the background push does (never rejects) */
  push: Promise<PushResult>;
}

const BUILD_LOG_NAME = '.devcontainer-build-error.log';
const MAX_LOG_CHARS = 8 * 1024 * 1024;

/**
 * Prepares one workspace, DESIGN.md's pipeline top to bottom. Input errors
 * throw before anything is created; every later failure is an outcome
 * (`recovery` or `failed`), never an exception.
 */
export interface PrepareOptions {
  /** Aborting stops the job where it is: the outcome is `failed` with JOB_CANCELLED, no fallback. */
  signal?: AbortSignal;
}

export async function prepareWorkspace(
  deps: PipelineDeps,
  req: PrepareRequest,
  sink: EventSink,
  options: PrepareOptions = {},
): Promise<PreparedWorkspace> {
  const plan = planJob(req, deps.config);
  const existing = await deps.store.load(plan.workspaceId);
  if (existing && existing.repository !== plan.repo.cloneUrl) {
    throw new WarmstartError('WORKSPACE_CONFLICT', `workspace ${plan.workspaceId} already exists for another repository`, {
      detail: `existing: ${existing.repository}`,
    });
  }
  const secrets = new SecretSet();
  secrets.add(plan.gitToken, plan.jobCredentials?.password, deps.config.registryPassword);
  const rec = new PhaseRecorder(plan.workspaceId, redactingSink(sink, secrets));
  const createdAt = existing?.createdAt ?? new Date().toISOString();
  const record = {
    id: plan.workspaceId,
    repository: plan.repo.cloneUrl,
    configName: plan.configName,
    lightweight: plan.lightweight,
    createdAt,
  };
  await deps.store.save({ ...record, status: 'creating', result: null, updatedAt: new Date().toISOString() });

  const jobDir = await makeJobDir(deps.config.runtimeDir);
  const job = new Job(deps, plan, rec, jobDir, options.signal ?? new AbortController().signal, secrets);
  const result = await job.run();
  const status = result.outcome;
  await deps.store.save({ ...record, status, result, updatedAt: new Date().toISOString() });
  rec.emit('outcome', { status, ms: result.timings.ready ?? rec.elapsed() });

  const push = job.push().then(async (pushResult) => {
    await rm(jobDir, { recursive: true, force: true }).catch(() => undefined);
    rec.emit('push', { status: pushResult.status, ...(pushResult.reason ? { text: pushResult.reason } : {}), ...(pushResult.ms !== null ? { ms: pushResult.ms } : {}) });
    const settled = { ...result, push: pushResult };
    const latest = await deps.store.load(plan.workspaceId);
    if (latest && latest.status === status) {
      await deps.store.save({ ...latest, result: settled, updatedAt: new Date().toISOString() }).catch(() => undefined);
    }
    return pushResult;
  });
  return { result, push };
}

/** One run of the pipeline; holds what the phases hand each other. */
class Job {
  private readonly result: WorkspaceResult;
  private buildLog: string[] = [];
  private buildLogChars = 0;
  private pushPlan: (() => Promise<PushResult>) | null = null;
  private disposeDockerConfig: (() => Promise<void>) | null = null;

  constructor(
    private readonly deps: PipelineDeps,
    private readonly plan: JobPlan,
    private readonly rec: PhaseRecorder,
    private readonly jobDir: string,
    private readonly signal: AbortSignal,
    private readonly secrets: SecretSet,
  ) {
    this.result = {
      outcome: 'failed',
      workspaceId: plan.workspaceId,
      containerId: null,
      profile: null,
      cache: { ref: plan.cacheRef, hit: 'disabled', reason: plan.cacheOffReason, stepsCached: null, stepsTotal: null },
      push: { status: 'skipped', ref: null, reason: 'nothing was built', ms: null },
      timings: rec.timings,
      error: null,
    };
  }

  async run(): Promise<WorkspaceResult> {
    const { deps, plan } = this;
    const rec = this.cancellable(this.rec);
    try {
      const src = deps.store.sourceDir(plan.workspaceId);
      // Clone before creating the volume, so a repository that cannot be
      // cloned leaves no volume behind.
      await rec.phase('clone', () => this.clone(src));
      await rec.phase('volume', () => this.populateVolume(src));
      await rec.phase('remove-old', () => removeWorkspaceContainers(deps.engine, plan.workspaceId));

      let discovered;
      try {
        discovered = await rec.phase('config', () => discoverConfig(src, plan.configName));
      } catch (err) {
        return await this.recover(err);
      }
      if (plan.lightweight || discovered === null) {
        this.result.cache.reason = plan.lightweight ? 'lightweight workspace: nothing is built' : 'no devcontainer config in the repository';
        this.result.cache.ref = null;
        this.result.push.reason = this.result.cache.reason;
        const id = await rec.phase('start-default', () => this.startDefault('lightweight'));
        return this.ready(id, 'lightweight');
      }

      const prep = await prepareCache(deps, plan, rec);
      this.secrets.add(prep.credentials?.password);
      this.result.cache = prep.cache;
      const dockerConfig = await createDockerConfig(this.jobDir, prep.credentials);
      this.disposeDockerConfig = dockerConfig.dispose;

      const gitCredentials =
        plan.gitToken && plan.repo.kind !== 'local'
          ? await writeContainerGitCredentials(deps.config.runtimeDir, plan.workspaceId, plan.gitToken)
          : null;
      const override = buildOverride({
        discovered,
        cacheFrom: prep.cacheFrom,
        workspaceMount: `source=${plan.volume},target=${plan.workspaceFolder},type=volume`,
        workspaceFolder: plan.workspaceFolder,
        ...(gitCredentials ? { runArgs: gitCredentials.runArgs } : {}),
        // The classic builder keeps the container of a failed step; on a node
        // that builds all day those pile up. BuildKit leaves none.
        ...((await deps.devcontainer.usesClassicBuilder()) ? { buildOptions: ['--force-rm'] } : {}),
      });
      if (discovered.kind !== 'dockerfile' && override.cacheNote) {
        // Nothing is built from this config: a pulled cache image would go unused.
        this.result.cache = { ...this.result.cache, hit: 'disabled', reason: override.cacheNote };
      }
      const overridePath = await rec.phase('override', () => writeOverrideFile(this.jobDir, override));

      const steps = new BuildStepCounter();
      let containerId: string;
      try {
        const up = await rec.phase('up', () =>
          deps.devcontainer.up({
            workspaceFolder: src,
            configPath: discovered.path,
            overrideConfigPath: overridePath,
            idLabels: { [WORKSPACE_LABEL]: plan.workspaceId },
            env: { DOCKER_CONFIG: dockerConfig.dir },
            timeoutMs: deps.config.buildTimeoutMs,
            signal: this.signal,
            // If the agent dies, the next start finds and stops this CLI (reconcile).
            onStart: (pid) => void deps.store.saveCliPid(plan.workspaceId, pid).catch(() => undefined),
            onLog: (line) => {
              steps.push(line);
              const text = logLineText(line);
              this.keepLog(text);
              rec.log(text, 'up');
            },
          }),
        );
        containerId = up.containerId;
        await deps.store.clearCliPid(plan.workspaceId);
      } catch (err) {
        await deps.store.clearCliPid(plan.workspaceId);
        if (this.signal.aborted) throw cancelled();
        return await this.recover(err);
      }
      const counted = steps.result();
      if (counted && discovered.kind === 'dockerfile') {
        this.result.cache.stepsCached = counted.stepsCached;
        this.result.cache.stepsTotal = counted.stepsTotal;
      }
      this.planPush(containerId, discovered.kind, prep.pushBlocked, prep.credentials);
      return this.ready(containerId, 'devcontainer');
    } catch (err) {
      return this.fail(err);
    }
  }

  /** A view of the recorder whose phases refuse to start once the job is cancelled. */
  private cancellable(rec: PhaseRecorder): PhaseRecorder {
    const signal = this.signal;
    return Object.assign(Object.create(rec) as PhaseRecorder, {
      phase: <T>(name: string, fn: () => Promise<T>): Promise<T> => {
        if (signal.aborted) return Promise.reject(cancelled());
        return rec.phase(name, fn);
      },
    });
  }

  /** The background push, or its reason for not running; settles after ready. */
  async push(): Promise<PushResult> {
    try {
      return this.pushPlan ? await this.pushPlan() : this.result.push;
    } finally {
      await this.disposeDockerConfig?.().catch(() => undefined);
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
    await this.deps.git.clone(this.plan.repo.cloneUrl, partial, {
      ...(this.plan.gitToken ? { token: this.plan.gitToken } : {}),
      signal: this.signal,
    });
    await rename(partial, src);
  }

  /** A new volume gets the clone; an existing one is the user's work and is left as it is. */
  private async populateVolume(src: string): Promise<void> {
    const { engine, config } = this.deps;
    if (await engine.volumeExists(this.plan.volume)) {
      this.rec.note(`volume ${this.plan.volume} exists: keeping its contents`, 'volume');
      return;
    }
    await ensureImage(engine, config.defaultImage);
    await engine.createVolume(this.plan.volume, { [WORKSPACE_LABEL]: this.plan.workspaceId, 'warmstart.managed': 'true' });
    await engine.copyIntoVolume(this.plan.volume, src, config.defaultImage);
  }

  private startDefault(profile: 'lightweight' | 'recovery'): Promise<string> {
    return startDefaultContainer(this.deps.engine, {
      image: this.deps.config.defaultImage,
      workspaceId: this.plan.workspaceId,
      volume: this.plan.volume,
      workspaceFolder: this.plan.workspaceFolder,
      profile,
    });
  }

  /** The repo's config failed: keep its log in the workspace, start the default image. */
  private async recover(cause: unknown): Promise<WorkspaceResult> {
    const error = toErrorBody(cause instanceof WarmstartError ? cause : new WarmstartError('DEVCONTAINER_UP_FAILED', describeError(cause)));
    this.result.error = error;
    this.result.push = { status: 'skipped', ref: null, reason: 'the repository config did not build (recovery)', ms: null };
    try {
      const id = await this.rec.phase('fallback', async () => {
        await removeWorkspaceContainers(this.deps.engine, this.plan.workspaceId);
        await this.saveBuildLog(error);
        return this.startDefault('recovery');
      });
      return this.ready(id, 'recovery');
    } catch (err) {
      return this.fail(err, error);
    }
  }

  private async saveBuildLog(error: { code: string; message: string; detail?: string }): Promise<void> {
    const dir = join(this.jobDir, 'build-log');
    await mkdir(dir, { recursive: true });
    // The archive's root entry sets the volume root's mode: keep it ordinary.
    await chmod(dir, 0o755);
    const header = [`warmstart: the dev container did not start`, `error: ${error.code}: ${error.message}`];
    if (error.detail) header.push(`detail: ${error.detail}`);
    await writeFile(join(dir, BUILD_LOG_NAME), `${header.join('\n')}\n\n${this.buildLog.join('\n')}\n`, { mode: 0o644 });
    await this.deps.engine.copyIntoVolume(this.plan.volume, dir, this.deps.config.defaultImage);
  }

  private keepLog(text: string): void {
    this.buildLog.push(text);
    this.buildLogChars += text.length + 1;
    while (this.buildLogChars > MAX_LOG_CHARS && this.buildLog.length > 1) {
      this.buildLogChars -= (this.buildLog.shift() ?? '').length + 1;
    }
  }

  private planPush(
    containerId: string,
    kind: string,
    blocked: string | null,
    credentials: RegistryCredentials | null,
  ): void {
    const { plan, result, deps } = this;
    const skip = (reason: string): void => {
      result.push = { status: 'skipped', ref: plan.cacheRef, reason, ms: null };
    };
    if (!plan.cacheRef) return skip(plan.cacheOffReason ?? 'no cache ref');
    if (kind !== 'dockerfile') return skip(`${kind}-based config: no built image to cache`);
    if (plan.pushOffReason) return skip(plan.pushOffReason);
    if (!credentials) return skip('no registry credentials: pull only');
    if (blocked) {
      result.push = { status: 'failed', ref: plan.cacheRef, reason: blocked, ms: null };
      return;
    }
    const ref = plan.cacheRef;
    result.push = { status: 'pending', ref, reason: null, ms: null };
    this.pushPlan = () =>
      deps.pushQueue.enqueue(ref, async () =>
        pushCache({
          engine: deps.engine,
          imageId: await deps.engine.containerImageId(containerId),
          ref,
          auth: toDockerAuthConfig(credentials),
          timeoutMs: plan.pushTimeoutMs,
        }),
      );
  }

  private ready(containerId: string, profile: 'devcontainer' | 'lightweight' | 'recovery'): WorkspaceResult {
    this.result.containerId = containerId;
    this.result.profile = profile;
    this.result.outcome = profile === 'recovery' ? 'recovery' : 'ready';
    this.result.timings.ready = this.rec.elapsed();
    return this.result;
  }

  private fail(err: unknown, original?: { code: string; message: string }): WorkspaceResult {
    const body = err instanceof WarmstartError ? toErrorBody(err) : { ...toErrorBody(err), detail: describeError(err) };
    this.result.outcome = 'failed';
    this.result.error = original ? { ...body, detail: `${original.code}: ${original.message}; then ${body.detail ?? body.message}` } : body;
    this.result.push = { status: 'skipped', ref: null, reason: 'workspace failed', ms: null };
    this.result.timings.ready = this.rec.elapsed();
    return this.result;
  }
}

function cancelled(): WarmstartError {
  return new WarmstartError('JOB_CANCELLED', 'the job was cancelled (workspace deleted or agent stopping)');
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}
