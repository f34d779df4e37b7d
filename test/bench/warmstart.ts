import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BENCH_CONTAINER_LABEL, docker, fileInContainer, removeContainers, removeWorkspace } from './docker.js';
import { runTimed, type TimedRun } from './proc.js';
import { round } from './stats.js';

/** Where the bench's postCreateCommand writes its marker (fixture devcontainer.json). */
export const POSTCREATE_MARKER = '/root/.bench-postcreate';

/** One run of one case. `ms` is the case's measure; everything else is detail. */
export interface RunRecord {
  i: number;
  ok: boolean;
  ms: number | null;
  error?: string;
  /** cache.hit warmstart reported, and what this case expects */
  hit?: string;
  expectedHit?: string;
  hitMismatch?: boolean;
  outcome?: string;
  /** timings.ready from warmstart's JSON */
  readyMs?: number;
  /** spawn to the "ready after" line on stderr */
  wallToReadyMs?: number | null;
  /** spawn to exit (includes the push for warmstart with push on) */
  wallMs?: number;
  push?: { status: string; ms: number | null; reason: string | null };
  timings?: Record<string, number>;
  /** each phase's first start and last end, ms from the job's first event */
  phaseWindows?: Record<string, { start: number; end: number }>;
  peakRssMb?: number | null;
  treePeakRssMb?: number | null;
  stepsCached?: number | null;
  stepsTotal?: number | null;
  /** the postCreateCommand's marker is in the container */
  postCreate?: boolean;
  /** floor parts */
  pullMs?: number;
  runMs?: number;
  upMs?: number;
  /** the registry held an exact-* tag right before this run */
  exactTagInRegistry?: boolean;
  /** images of this bench run left on the engine when the run started (0 = a fresh node) */
  leftoverImages?: number;
  /**
   * The build failed because another build on the engine retagged the CLI's
   * shared `dev_container_feature_content_temp` image meanwhile (docs/operations.md
   * "Known limits"): not this run's fault, so the bench retries it.
   */
  featureContentCollision?: boolean;
  /** earlier attempts of this run that hit such a collision */
  retries?: number;
  /** other workloads (not the bench's) seen on the machine during the run */
  contention?: string[];
}

/** The classic builder's message when the feature-content image no longer holds this build's features. */
export const FEATURE_COLLISION = /COPY failed: stat \/?tmp\/build-features\/[^:]+: file does not exist/;

export interface Tools {
  node: string;
  /** dist/agent/src/cli/main.js */
  cli: string;
  /** node_modules/@devcontainers/cli/devcontainer.js */
  devcontainer: string;
}

const READY_LINE = /\] (ready|recovery|failed) after /;

export interface WarmstartUpOptions {
  tools: Tools;
  repo: string;
  workspaceId: string;
  env: NodeJS.ProcessEnv;
  noCache?: boolean;
  noPush?: boolean;
  expectedHit: string;
  timeoutMs: number;
  /** WARMSTART_STATE_DIR of the run: its event log tells a build collision apart */
  stateDir: string;
}

const mb = (kb: number | null): number | null => (kb === null ? null : round(kb / 1024, 1));

function tail(text: string, n = 1500): string {
  return text.length > n ? `…${text.slice(-n)}` : text;
}

/** `warmstart up --json` as a user runs it; measures spawn→ready and samples its RSS. Removes the workspace after. */
export async function warmstartUp(i: number, o: WarmstartUpOptions): Promise<RunRecord> {
  const args = [o.tools.cli, 'up', o.repo, '--workspace-id', o.workspaceId, '--json'];
  if (o.noCache) args.push('--no-cache');
  if (o.noPush) args.push('--no-push');
  let run: TimedRun | null = null;
  const rec: RunRecord = { i, ok: false, ms: null, expectedHit: o.expectedHit };
  try {
    run = await runTimed(o.tools.node, args, { env: o.env, pollRss: true, readyPattern: READY_LINE, timeoutMs: o.timeoutMs });
    rec.wallMs = run.wallMs;
    rec.wallToReadyMs = run.readyWallMs;
    rec.peakRssMb = mb(run.peakRssKb);
    rec.treePeakRssMb = mb(run.treePeakRssKb);
    const line = run.stdout.trim().split('\n').pop() ?? '';
    let result: {
      outcome: string;
      containerId: string | null;
      cache: { hit: string; reason: string | null; stepsCached: number | null; stepsTotal: number | null };
      push: { status: string; ms: number | null; reason: string | null };
      timings: Record<string, number>;
      error: { code: string; message: string } | null;
    };
    try {
      result = JSON.parse(line) as typeof result;
    } catch {
      throw new Error(`no JSON result (exit ${run.code}${run.timedOut ? ', timed out' : ''}): ${tail(run.stderr)}`);
    }
    rec.outcome = result.outcome;
    rec.hit = result.cache.hit;
    rec.hitMismatch = result.cache.hit !== o.expectedHit;
    rec.stepsCached = result.cache.stepsCached;
    rec.stepsTotal = result.cache.stepsTotal;
    rec.push = { status: result.push.status, ms: result.push.ms, reason: result.push.reason };
    rec.timings = result.timings;
    rec.readyMs = result.timings.ready;
    if (result.outcome !== 'ready') {
      throw new Error(`outcome ${result.outcome}: ${result.error?.code ?? ''} ${result.error?.message ?? ''} (cache: ${result.cache.reason ?? ''})`);
    }
    if (result.containerId) rec.postCreate = await fileInContainer(result.containerId, POSTCREATE_MARKER, o.env);
    rec.phaseWindows = await phaseWindows(join(o.stateDir, 'workspaces', o.workspaceId, 'events.ndjson'));
    // spawn→ready as the user waits for it; if the progress line was not seen, ready as warmstart counts it.
    rec.ms = run.readyWallMs ?? result.timings.ready ?? null;
    rec.ok = rec.ms !== null;
  } catch (err) {
    rec.error = (err as Error).message;
    const events = await readFile(join(o.stateDir, 'workspaces', o.workspaceId, 'events.ndjson'), 'utf8').catch(() => '');
    if (FEATURE_COLLISION.test(events) || FEATURE_COLLISION.test(run?.stdout ?? '')) rec.featureContentCollision = true;
  } finally {
    await removeWorkspace(o.workspaceId, o.env);
  }
  return rec;
}

/**
 * When each phase ran, from the job's event log: its first start and last
 * end, in ms from the job's first event (phases that overlap show it here;
 * `timings` only sums durations).
 */
async function phaseWindows(eventsFile: string): Promise<Record<string, { start: number; end: number }>> {
  const text = await readFile(eventsFile, 'utf8').catch(() => '');
  const out: Record<string, { start: number; end: number }> = {};
  let t0: number | null = null;
  for (const line of text.split('\n')) {
    let e: { ts?: string; type?: string; phase?: string };
    try {
      e = JSON.parse(line) as typeof e;
    } catch {
      continue;
    }
    const t = e.ts ? Date.parse(e.ts) : NaN;
    if (!Number.isFinite(t)) continue;
    t0 ??= t;
    if (!e.phase || (e.type !== 'phase-start' && e.type !== 'phase-end')) continue;
    const w = (out[e.phase] ??= { start: t - t0, end: t - t0 });
    if (e.type === 'phase-start') w.start = Math.min(w.start, t - t0);
    else w.end = Math.max(w.end, t - t0);
  }
  return out;
}

/** The pinned devcontainers CLI's `up`, alone (no warmstart): spawn→exit. Removes its container after. */
export async function devcontainerUp(
  i: number,
  o: { tools: Tools; workspaceFolder: string; runId: string; caseLabel: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<RunRecord & { containerId?: string }> {
  const label = `${BENCH_CONTAINER_LABEL}.case=${o.caseLabel}`;
  const rec: RunRecord & { containerId?: string } = { i, ok: false, ms: null };
  try {
    const run = await runTimed(
      o.tools.node,
      [o.tools.devcontainer, 'up', '--workspace-folder', o.workspaceFolder, '--id-label', `${BENCH_CONTAINER_LABEL}=${o.runId}`, '--id-label', label],
      { env: o.env ?? process.env, timeoutMs: o.timeoutMs },
    );
    rec.wallMs = run.wallMs;
    const line = run.stdout.trim().split('\n').pop() ?? '';
    let result: { outcome?: string; containerId?: string; message?: string } = {};
    try {
      result = JSON.parse(line) as typeof result;
    } catch {
      // handled below
    }
    rec.outcome = result.outcome ?? `exit ${run.code}`;
    if (FEATURE_COLLISION.test(run.stdout) || FEATURE_COLLISION.test(run.stderr)) rec.featureContentCollision = true;
    if (result.outcome !== 'success' || !result.containerId) {
      throw new Error(`devcontainer up: ${result.message ?? ''} (exit ${run.code}${run.timedOut ? ', timed out' : ''}) ${tail(run.stderr)}`);
    }
    rec.containerId = result.containerId;
    rec.postCreate = await fileInContainer(result.containerId, POSTCREATE_MARKER, o.env);
    rec.ms = run.wallMs;
    rec.ok = true;
  } catch (err) {
    rec.error = (err as Error).message;
  } finally {
    await removeContainers(label, o.env);
  }
  return rec;
}

/** `docker pull` then `docker run -d` (create + start; removed after), each timed. */
export async function pullAndRun(ref: string, runId: string, env: NodeJS.ProcessEnv): Promise<{ pullMs: number; runMs: number }> {
  const pull = await runTimed('docker', ['pull', '-q', ref], { env, timeoutMs: 300_000 });
  if (pull.code !== 0) throw new Error(`docker pull ${ref}: ${pull.stderr.trim()}`);
  const label = `${BENCH_CONTAINER_LABEL}=${runId}`;
  const run = await runTimed('docker', ['run', '-d', '--label', label, '--label', `${BENCH_CONTAINER_LABEL}.case=floor-run`, ref, 'sleep', '3600'], {
    env,
    timeoutMs: 120_000,
  });
  if (run.code !== 0) throw new Error(`docker run ${ref}: ${run.stderr.trim()}`);
  await docker(['rm', '-f', run.stdout.trim()], env);
  return { pullMs: pull.wallMs, runMs: run.wallMs };
}
