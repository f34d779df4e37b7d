import { rm } from 'node:fs/promises';
import type { PushResult, WorkspaceResult } from '../../../shared/src/workspace-result.js';
import { redactingSink, SecretSet, type EventSink } from '../events/events.js';
import { PhaseRecorder } from '../events/phase-recorder.js';
import { makeJobDir } from '../state/runtime-dir.js';
import { bestEffort } from '../util/best-effort.js';
import type { PipelineDeps } from './deps.js';
import { Job } from './job.js';
import { planJob, type JobPlan } from './plan.js';
import type { PrepareRequest } from './request.js';

export type { PipelineDeps } from './deps.js';

export interface PreparedWorkspace {
  /** the result at ready; push is `pending` or already decided */
  result: WorkspaceResult;
  /** settles when the background push does (never rejects) */
  push: Promise<PushResult>;
}

/**
 * How the one who runs the pipeline records the workspace (through
 * workspace/lifecycle.ts); the pipeline itself keeps no record.
 */
export interface PipelineRecorder {
  /** Before anything is created; a rejection (WORKSPACE_CONFLICT, a full disk) stops the pipeline with it. */
  started(plan: JobPlan): Promise<void>;
  /**
   * The result at ready. A rejection means it is not recorded: nothing is
   * pushed, the job dir goes, and the pipeline rejects with it.
   */
  settled(result: WorkspaceResult): Promise<void>;
}

export interface PrepareOptions {
  /** Aborting stops the job where it is: the outcome is `failed` with JOB_CANCELLED, no fallback. */
  signal?: AbortSignal;
  /** absent: nothing is recorded (a prebuild's internal workspace, workspace/prebuild.ts) */
  record?: PipelineRecorder;
}

/** The pipeline as those who run it take it (jobs/local-job-manager.ts is given it). */
export type Pipeline = (deps: PipelineDeps, req: PrepareRequest, sink: EventSink, options?: PrepareOptions) => Promise<PreparedWorkspace>;

/**
 * Prepares one workspace, docs/how-it-works.md "Pipeline" top to bottom. Input errors
 * throw before anything is created; every later failure is an outcome
 * (`recovery` or `failed`), never an exception. The push runs after the
 * result is recorded; the push promise settles with its result, which the
 * caller records (WorkspaceLifecycle.pushSettled).
 */
export async function prepareWorkspace(
  deps: PipelineDeps,
  req: PrepareRequest,
  sink: EventSink,
  options: PrepareOptions = {},
): Promise<PreparedWorkspace> {
  const plan = planJob(req, deps.config);
  const secrets = new SecretSet();
  secrets.add(plan.gitToken, deps.config.gitToken, plan.jobCredentials?.password, deps.config.registryPassword);
  const rec = new PhaseRecorder(plan.workspaceId, redactingSink(sink, secrets));
  await options.record?.started(plan);

  const jobDir = await makeJobDir(deps.config.runtimeDir);
  const job = new Job(deps, plan, rec, jobDir, options.signal ?? new AbortController().signal, secrets);
  const result = await job.run();
  try {
    await options.record?.settled(result);
  } catch (err) {
    // Unrecorded, the workspace is not kept (the caller fails it): nothing is pushed, and the job dir, which holds registry credentials, goes now.
    await bestEffort(`remove the job dir ${jobDir} (it holds registry credentials)`, rm(jobDir, { recursive: true, force: true }), (m) =>
      rec.note(m),
    );
    throw err;
  }
  rec.outcome(result.outcome, result.timings.ready ?? rec.elapsed());

  const push = job.push().then(async (pushResult) => {
    await bestEffort(`remove the job dir ${jobDir} (it holds registry credentials)`, rm(jobDir, { recursive: true, force: true }), (m) =>
      rec.note(m, 'push'),
    );
    rec.push(pushResult.status, pushResult.reason, pushResult.ms);
    return pushResult;
  });
  return { result, push };
}
