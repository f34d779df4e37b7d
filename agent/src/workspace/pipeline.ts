import { rm } from 'node:fs/promises';
import type { PushResult, WorkspaceResult } from '../../../shared/src/workspace-result.js';
import type { PushQueue } from '../cache/push-queue.js';
import type { AgentConfig } from '../config/agent-config.js';
import type { DevcontainerCli } from '../devcontainer/cli.js';
import type { DockerEngine } from '../docker/engine.js';
import { WarmstartError } from '../errors.js';
import { redactingSink, SecretSet, type EventSink } from '../events/events.js';
import { PhaseRecorder } from '../events/phase-recorder.js';
import type { GitClient } from '../git/git.js';
import type { CredentialSource } from '../registry/credentials.js';
import type { RegistryClient } from '../registry/registry-client.js';
import { makeJobDir } from '../state/runtime-dir.js';
import type { WorkspaceStore } from '../state/workspace-store.js';
import { Job } from './job.js';
import type { Mutex } from './mutex.js';
import { planJob } from './plan.js';
import type { PrepareRequest } from './request.js';

/** Everything the pipeline talks to; wired once in createAgent. */
export interface PipelineDeps {
  config: AgentConfig;
  engine: DockerEngine;
  devcontainer: DevcontainerCli;
  git: GitClient;
  registry: RegistryClient;
  credentialSources: CredentialSource[];
  /** clone tokens of the configured GitHub App, for repositories on `hosts` (agent.ts); absent or null without an App */
  githubAppClone?: { hosts: readonly string[]; token(repositoryName: string, signal?: AbortSignal): Promise<string> } | null;
  store: WorkspaceStore;
  pushQueue: PushQueue;
  /**
   * Builds with features take turns on this node: the devcontainers CLI tags
   * every feature build's content image `dev_container_feature_content_temp`
   * and reads it back by that name minutes later, so two at once can build
   * each other's features.
   */
  featureBuilds: Mutex;
}

export interface PreparedWorkspace {
  /** the result at ready; push is `pending` or already decided */
  result: WorkspaceResult;
  /** settles when the background push does (never rejects) */
  push: Promise<PushResult>;
}

export interface PrepareOptions {
  /** Aborting stops the job where it is: the outcome is `failed` with JOB_CANCELLED, no fallback. */
  signal?: AbortSignal;
}

/**
 * Prepares one workspace, docs/how-it-works.md "Pipeline" top to bottom. Input errors
 * throw before anything is created; every later failure is an outcome
 * (`recovery` or `failed`), never an exception.
 */
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
  secrets.add(plan.gitToken, deps.config.gitToken, plan.jobCredentials?.password, deps.config.registryPassword);
  const rec = new PhaseRecorder(plan.workspaceId, redactingSink(sink, secrets));
  const createdAt = existing?.createdAt ?? new Date().toISOString();
  const record = {
    id: plan.workspaceId,
    repository: plan.repo.cloneUrl,
    configName: plan.configName,
    lightweight: plan.lightweight,
    // The owner recorded at creation (the job manager's queued record) stays; a new workspace takes the caller's.
    owner: existing ? (existing.owner ?? null) : (req.owner ?? null),
    createdAt,
  };
  await deps.store.save({ ...record, status: 'creating', result: null, updatedAt: new Date().toISOString() });

  const jobDir = await makeJobDir(deps.config.runtimeDir);
  const job = new Job(deps, plan, rec, jobDir, options.signal ?? new AbortController().signal, secrets);
  const result = await job.run();
  const status = result.outcome;
  await deps.store.save({ ...record, status, result, updatedAt: new Date().toISOString() }).catch(async (err: unknown) => {
    // Unrecorded, the workspace is not kept (the caller fails it): nothing is pushed, and the job dir, which holds registry credentials, goes now.
    await rm(jobDir, { recursive: true, force: true }).catch(() => undefined);
    throw err;
  });
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
