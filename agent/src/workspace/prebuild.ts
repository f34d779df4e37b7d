import { mkdir, readdir, rename, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { PrebuildResult } from '../../../shared/src/prebuild-result.js';
import { repositoryIdentity } from '../cache/identity.js';
import { discoverConfig } from '../devcontainer/discover.js';
import { describeError, ERROR_CODES, toErrorBody, WarmstartError, type ErrorBody, type ErrorCode } from '../errors.js';
import { redactingSink, SecretSet, type EventSink } from '../events/events.js';
import { PhaseRecorder } from '../events/phase-recorder.js';
import { WorkspaceStore } from '../state/workspace-store.js';
import { CacheSession } from './cache-phase.js';
import { findExact } from './exact.js';
import { prepareWorkspace, type PipelineDeps } from './pipeline.js';
import { configSkipReason, planPrebuild, prebuildId, pushSkipReason, type PrebuildPlan, type PrebuildRequest } from './prebuild-plan.js';
import { builderOf, forBuilder } from './plan.js';
import { removeWorkspace, workspaceVolume } from './remove.js';
import { unlessMissing } from '../util/best-effort.js';

export interface PrebuildOptions {
  /** Aborting stops the prebuild at its next phase: `failed` with JOB_CANCELLED, and the clean-up still runs. */
  signal?: AbortSignal;
}

/** Where prebuilds keep their clone and record while they run: apart from the workspaces, so no list or reconcile sees them. */
export function prebuildStateDir(stateDir: string): string {
  return join(stateDir, 'prebuilds');
}

type Outcome = Omit<PrebuildResult, 'repository' | 'configName' | 'timings'> & { buildMs: number | null };

/**
 * Builds a repository's dev container image the way `up` does and pushes its
 * moving and exact tags, keeping nothing: what a control plane runs after a
 * push to a default branch, so that the next start anywhere is an exact hit.
 *
 * It is the workspace pipeline under an internal workspace id, so the image,
 * its labels and its push (the same push path as `up`'s) are exactly what
 * `up` would have made. Before building, it decides what needs no build:
 * no push possible, a config that builds nothing, or an exact tag that exists
 * (the exact lookup of exact.ts). Whatever the outcome, the containers, the
 * volume, the clone and the record go. Input errors throw before anything is
 * created; everything later is the result, never an exception.
 */
export async function runPrebuild(deps: PipelineDeps, req: PrebuildRequest, sink: EventSink, options: PrebuildOptions = {}): Promise<PrebuildResult> {
  let planned = planPrebuild(req, deps.config, prebuildId());
  const t0 = performance.now();
  const pdeps: PipelineDeps = { ...deps, store: new WorkspaceStore(prebuildStateDir(deps.config.stateDir)) };
  // A workspace of the same id would share its volume and container label: draw again.
  while ((await deps.store.load(planned.id)) !== null || (await deps.engine.volumeExists(workspaceVolume(planned.id)))) {
    planned = planPrebuild(req, deps.config, prebuildId());
  }
  const secrets = new SecretSet();
  secrets.add(planned.plan.jobCredentials?.password, deps.config.gitToken, deps.config.registryPassword);
  const redacted = redactingSink(sink, secrets);
  let outcome: Outcome;
  try {
    outcome = await build(pdeps, planned, redacted, secrets, options.signal ?? new AbortController().signal);
  } catch (err) {
    outcome = failed(
      err instanceof WarmstartError
        ? toErrorBody(err)
        : { code: 'INTERNAL', message: 'the prebuild failed unexpectedly', detail: describeError(err) },
    );
  } finally {
    await cleanUp(pdeps, planned.id, redacted);
  }
  const { buildMs, ...rest } = outcome;
  return {
    ...rest,
    repository: planned.plan.repo.cloneUrl,
    configName: planned.plan.configName,
    timings: { buildMs, pushMs: outcome.push?.ms ?? null, totalMs: Math.round(performance.now() - t0) },
  };
}

async function build(deps: PipelineDeps, planned: PrebuildPlan, sink: EventSink, secrets: SecretSet, signal: AbortSignal): Promise<Outcome> {
  const plan = forBuilder(planned.plan, await builderOf(deps.devcontainer));
  const rec = new PhaseRecorder(planned.id, sink);
  const moving = plan.cacheRef;
  const checkCancelled = (): void => {
    if (signal.aborted) throw new WarmstartError('JOB_CANCELLED', 'the prebuild was cancelled (agent stopping)');
  };
  // The check needs no moving image: a prebuild that ends up skipped pulls nothing but what the exact lookup verifies.
  const cache = CacheSession.start(deps, plan, rec, { pullMoving: false })!;
  const credentials = await cache.credentials;
  secrets.add(credentials?.password);
  const noPush = pushSkipReason(deps.config, credentials);
  if (noPush) return skipped(noPush, moving, null);
  const blocked = await cache.pushBlocked;
  if (blocked)
    return failed({ code: registryCode(blocked, 'REGISTRY_PUSH_DENIED'), message: `the registry would refuse the push: ${blocked}` }, moving);

  checkCancelled();
  const src = deps.store.sourceDir(planned.id);
  await rec.phase('clone', () => clone(deps, planned, src, signal));
  const discovered = await rec.phase('config', () => discoverConfig(src, plan.configName));
  const nothingBuilt = configSkipReason(discovered);
  if (nothingBuilt || !discovered) return skipped(nothingBuilt ?? 'no devcontainer config in the repository', moving, null);
  const exact = await findExact(deps, cache, moving, discovered, src, rec, repositoryIdentity(plan.repo));
  if (exact?.hit) return skipped('exact tag exists', moving, exact.ref);

  checkCancelled();
  // The pipeline finds the clone in place ("host clone exists"), builds as `up` does and pushes on its own push path.
  const prepared = await prepareWorkspace(deps, planned.request, sink, { signal });
  const result = prepared.result;
  const push = await prepared.push;
  const buildMs = result.timings.ready ?? null;
  const exactRef = exact?.ref ?? null;
  if (result.outcome !== 'ready') {
    const error = result.error ?? { code: 'DEVCONTAINER_UP_FAILED', message: 'the dev container did not build' };
    return { ...failed(error, moving, exactRef), buildMs };
  }
  // Another node pushed the exact tag between the check and the pipeline's own lookup.
  if (result.cache.hit === 'exact') return { ...skipped('exact tag exists', moving, result.cache.ref), push, buildMs };
  if (push.status === 'pushed') {
    return {
      status: 'done',
      reason: exactRef ? null : `only the moving tag was pushed: ${exact?.reason ?? 'no content key'}`,
      refs: { moving, exact: exactRef },
      pushed: exactRef ? [moving, exactRef] : [moving],
      push,
      error: null,
      buildMs,
    };
  }
  if (push.status === 'skipped') return { ...skipped(push.reason ?? 'push skipped', moving, exactRef), push, buildMs };
  const code = push.status === 'timeout' ? 'PUSH_TIMEOUT' : registryCode(push.reason ?? '', 'REGISTRY_ERROR');
  return {
    ...failed(
      { code, message: `the push ${push.status === 'timeout' ? 'timed out' : 'failed'}: ${push.reason ?? 'no reason given'}` },
      moving,
      exactRef,
    ),
    push,
    buildMs,
  };
}

/** The clone the pipeline then reuses; made aside and renamed, as job.ts does, so a half-made one is never taken for a clone. */
async function clone(deps: PipelineDeps, planned: PrebuildPlan, src: string, signal: AbortSignal): Promise<void> {
  const { plan } = planned;
  const partial = `${src}.partial`;
  await mkdir(join(src, '..'), { recursive: true, mode: 0o700 });
  await deps.git.clone(plan.repo.cloneUrl, partial, { ...(plan.gitToken ? { token: plan.gitToken, tokenHost: plan.gitTokenHost } : {}), signal });
  await rename(partial, src);
}

/** Containers, volume, clone, record and runtime secrets of the internal workspace; then the prebuild dirs if no other prebuild uses them. */
async function cleanUp(deps: PipelineDeps, id: string, sink: EventSink): Promise<void> {
  try {
    // The record's directory holds the clone and any half-made one (`src.partial`): purge removes it whole.
    await removeWorkspace(deps, id, true);
  } catch (err) {
    sink.emit({
      ts: new Date().toISOString(),
      workspaceId: id,
      type: 'note',
      phase: 'clean-up',
      text: `could not remove everything: ${describeError(err)}`,
    });
  }
  const root = prebuildStateDir(deps.config.stateDir);
  // rmdir removes only an empty directory: one another prebuild is using stays.
  await rmdir(join(root, 'workspaces')).catch(() => undefined);
  await rmdir(root).catch(() => undefined); // not empty (another prebuild) or gone: either is fine
}

/**
 * What prebuilds of an agent that died left behind (their ids under the
 * prebuild state dir): containers, volume, clone, record. Only the daemon
 * calls it, at start-up, when none of its prebuilds can be running; returns
 * the ids it removed.
 */
export async function sweepPrebuilds(deps: PipelineDeps): Promise<string[]> {
  const pdeps: PipelineDeps = { ...deps, store: new WorkspaceStore(prebuildStateDir(deps.config.stateDir)) };
  const ids = await unlessMissing(readdir(join(prebuildStateDir(deps.config.stateDir), 'workspaces')), [] as string[]);
  const left = ids.filter((id) => /^prebuild-[0-9a-f]{12}$/.test(id));
  for (const id of left) await removeWorkspace(pdeps, id, true);
  await rmdir(join(prebuildStateDir(deps.config.stateDir), 'workspaces')).catch(() => undefined); // not empty or gone: either is fine
  await rmdir(prebuildStateDir(deps.config.stateDir)).catch(() => undefined); // not empty or gone: either is fine
  return left;
}

/** The registry error code a reason names (describeError writes `CODE: message`), else `fallback`. */
function registryCode(reason: string, fallback: ErrorCode): ErrorCode {
  const named = /\b(REGISTRY_[A-Z_]+|PUSH_TIMEOUT|GITHUB_APP_AUTH_FAILED)\b/.exec(reason)?.[1];
  return (ERROR_CODES as readonly string[]).includes(named ?? '') ? (named as ErrorCode) : fallback;
}

function skipped(reason: string, moving: string, exact: string | null): Outcome {
  return { status: 'skipped', reason, refs: { moving, exact }, pushed: [], push: null, error: null, buildMs: null };
}

function failed(error: ErrorBody, moving: string | null = null, exact: string | null = null): Outcome {
  return { status: 'failed', reason: error.message, refs: { moving, exact }, pushed: [], push: null, error, buildMs: null };
}
