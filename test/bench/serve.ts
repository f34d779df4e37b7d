import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeWorkspace } from './docker.js';
import { makeRepoFromFiles } from './fixture.js';
import { mainThreadSchedMs, procStatusKb } from './proc.js';
import { median, percentile, round } from './stats.js';
import { freePort } from '../support/ports.js';

export interface ServeMeasurement {
  /** VmRSS 5 s after /health first answered */
  idleRssMb: number | null;
  /** VmRSS 20 s after: V8 gives back the heap it grew for loading the modules once the process is quiet (its memory reducer, about 10 s) */
  idleSettledRssMb: number | null;
  /** the largest VmRSS seen while the 3 jobs were queued, building or pushing */
  jobsPeakRssMb: number | null;
  /** VmHWM at the end: the process's peak since it started */
  hwmMb: number | null;
  jobs: { id: string; status: string; cacheHit: string | null; push: string | null; readyMs: number | null; error?: string }[];
  /** ms from the first POST to the last job settled (push included) */
  jobsWallMs: number;
  health: {
    /** p99 over GETs made while 2 builds ran at once (status `creating` for 2 jobs) */
    p99Ms: number | null;
    p50Ms: number | null;
    maxMs: number | null;
    count: number;
    /** the same over every GET made while at least one job was building */
    anyBuild: { p99Ms: number | null; count: number };
    failures: number;
  };
  /**
   * The daemon's own event-loop delay while the jobs ran, from its /metrics
   * (prom-client's monitorEventLoopDelay gauges; a scrape resets them, so the
   * one before the jobs starts the window and the one after ends it). ms.
   */
  eventLoopDelay: { p50Ms: number | null; p99Ms: number | null; maxMs: number | null } | null;
  /**
   * The daemon's main thread (its event loop) from the first POST to the
   * jobs settled: ms it ran, and ms it was runnable but waited for a CPU
   * (the machine's load, not the daemon's work).
   */
  mainThread: { cpuMs: number; runqueueWaitMs: number } | null;
  /** other workloads seen on the machine while this run went on */
  contention?: string[];
  log: string;
  errors: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The event-loop gauges of a /metrics text, in ms (null when absent). */
function eventLoopGauges(text: string): { p50Ms: number | null; p99Ms: number | null; maxMs: number | null } {
  const get = (name: string): number | null => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm').exec(text);
    return m ? round(Number(m[1]) * 1000, 1) : null;
  };
  return {
    p50Ms: get('nodejs_eventloop_lag_p50_seconds'),
    p99Ms: get('nodejs_eventloop_lag_p99_seconds'),
    maxMs: get('nodejs_eventloop_lag_max_seconds'),
  };
}
const mb = (kb: number | null): number | null => (kb === null ? null : round(kb / 1024, 1));

export interface ServeOptions {
  cli: string;
  workDir: string;
  runId: string;
  /** which of several serve runs this is (1-based): ids, repos and state of its own */
  attempt?: number;
  baseImage: string;
  env: NodeJS.ProcessEnv;
  registry: string;
  registryUser: string;
  registryPassword: string;
  /** registry namespace the jobs push to */
  namespace: string;
  quick: boolean;
  workspaceIds: Set<string>;
  /** how long to sample /health at most */
  timeoutMs: number;
  /** node options for the daemon (e.g. `--cpu-prof`), before the script */
  nodeArgs?: string[];
}

/** A small workspace: one Dockerfile step of a few seconds and a 20 MB layer, no features. */
function smallRepoFiles(runId: string, baseImage: string, n: number, quick: boolean): Record<string, string> {
  return {
    '.devcontainer/devcontainer.json': `{ "build": { "dockerfile": "Dockerfile" }, "remoteUser": "root" }\n`,
    '.devcontainer/Dockerfile': [
      `FROM ${baseImage}`,
      `LABEL warmstart.bench-run=${runId}`,
      `RUN sleep ${quick ? 1 : 6} && head -c 20000000 /dev/urandom > /payload && echo small-${n} > /which`,
      '',
    ].join('\n'),
    'README.md': `small bench workspace ${n}\n`,
  };
}

/**
 * `warmstart serve`: RSS idle (5 s and 20 s after start), the peak RSS while 3 small
 * jobs run (2 build at once: the default concurrency), and the latency of
 * sequential GET /health while 2 builds run.
 */
export async function measureServe(o: ServeOptions): Promise<ServeMeasurement> {
  const errors: string[] = [];
  const token = `bench-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
  const attempt = o.attempt ?? 1;
  const tokenFile = join(o.workDir, 'serve-api-token');
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const repos: string[] = [];
  for (let n = 1; n <= 3; n++) {
    repos.push(
      await makeRepoFromFiles(join(o.workDir, `serve-repos-${attempt}`, 'bench', `small-${n}`), smallRepoFiles(o.runId, o.baseImage, n, o.quick)),
    );
  }

  let log = '';
  const proc: ChildProcess = spawn(process.execPath, [...(o.nodeArgs ?? []), o.cli, 'serve'], {
    env: {
      ...o.env,
      WARMSTART_API_TOKEN_FILE: tokenFile,
      WARMSTART_ALLOW_LOCAL_REPOS: '1',
      WARMSTART_LISTEN: `127.0.0.1:${port}`,
      WARMSTART_STATE_DIR: join(o.workDir, `serve-state-${attempt}`),
      WARMSTART_RUNTIME_DIR: join(o.workDir, `serve-runtime-${attempt}`),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  const pid = proc.pid!;
  const auth = { authorization: `Bearer ${token}` };
  const ids = [1, 2, 3].map((n) => `${o.runId}-srv${attempt}-${n}`);
  for (const id of ids) o.workspaceIds.add(id);

  const result: ServeMeasurement = {
    idleRssMb: null,
    idleSettledRssMb: null,
    jobsPeakRssMb: null,
    hwmMb: null,
    jobs: [],
    jobsWallMs: 0,
    health: { p99Ms: null, p50Ms: null, maxMs: null, count: 0, anyBuild: { p99Ms: null, count: 0 }, failures: 0 },
    eventLoopDelay: null,
    mainThread: null,
    log: '',
    errors,
  };
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ok = await fetch(`${url}/health`)
        .then((r) => r.ok)
        .catch(() => false);
      if (ok) break;
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`warmstart serve did not come up (exit ${proc.exitCode}):\n${log}`);
      await sleep(100);
    }
    await sleep(5000);
    result.idleRssMb = mb(await procStatusKb(pid, 'VmRSS'));
    await sleep(15_000);
    result.idleSettledRssMb = mb(await procStatusKb(pid, 'VmRSS'));

    // Memory: VmRSS every 50 ms for as long as the jobs run.
    let peakKb = 0;
    let stop = false;
    const memLoop = (async () => {
      while (!stop) {
        peakKb = Math.max(peakKb, (await procStatusKb(pid, 'VmRSS')) ?? 0);
        await sleep(50);
      }
    })();

    // A scrape resets the daemon's event-loop histogram: this one opens the window the jobs run in.
    const scrape = (): Promise<string | null> =>
      fetch(`${url}/metrics`, { headers: auth })
        .then((r) => (r.ok ? r.text() : null))
        .catch(() => null);
    await scrape();

    const sched0 = await mainThreadSchedMs(pid);
    const t0 = performance.now();
    for (let k = 0; k < 3; k++) {
      const r = await fetch(`${url}/v1/workspaces`, {
        method: 'POST',
        headers: { ...auth, 'content-type': 'application/json' },
        body: JSON.stringify({
          id: ids[k],
          repository: repos[k],
          cache: { registry: `${o.registry}/${o.namespace}`, username: o.registryUser, password: o.registryPassword },
        }),
      });
      if (r.status !== 202) errors.push(`POST ${ids[k]}: HTTP ${r.status} ${await r.text()}`);
    }

    // Who is building: GET /v1/workspaces every 500 ms.
    let building = 0;
    let settled = false;
    const views = new Map<string, Record<string, unknown>>();
    const statusLoop = (async () => {
      while (!settled && performance.now() - t0 < o.timeoutMs) {
        try {
          const r = await fetch(`${url}/v1/workspaces`, { headers: auth });
          if (r.ok) {
            const body = (await r.json()) as { workspaces: Record<string, unknown>[] };
            const mine = body.workspaces.filter((w) => ids.includes(String(w.id)));
            for (const w of mine) views.set(String(w.id), w);
            building = mine.filter((w) => w.status === 'creating').length;
            const pushOf = (w: Record<string, unknown>) => (w.push as { status?: string } | null | undefined)?.status;
            settled =
              mine.length === ids.length && mine.every((w) => ['ready', 'recovery', 'failed'].includes(String(w.status)) && pushOf(w) !== 'pending');
          }
        } catch (err) {
          errors.push(`GET /v1/workspaces: ${(err as Error).message}`);
        }
        if (!settled) await sleep(500);
      }
    })();

    // /health: sequential GETs, 20 ms apart, at most 5000.
    const during2: number[] = [];
    const duringAny: number[] = [];
    let failures = 0;
    while (!settled && duringAny.length + failures < 5000 && performance.now() - t0 < o.timeoutMs) {
      const b = building;
      const s = performance.now();
      const ok = await fetch(`${url}/health`)
        .then(async (r) => {
          await r.arrayBuffer();
          return r.ok;
        })
        .catch(() => false);
      const ms = performance.now() - s;
      if (!ok) failures++;
      else if (b >= 1 && building >= 1) {
        duringAny.push(ms);
        if (b >= 2 && building >= 2) during2.push(ms);
      }
      await sleep(20);
    }
    await statusLoop;
    result.jobsWallMs = Math.round(performance.now() - t0);
    const sched1 = await mainThreadSchedMs(pid);
    if (sched0 && sched1) {
      result.mainThread = { cpuMs: Math.round(sched1.cpuMs - sched0.cpuMs), runqueueWaitMs: Math.round(sched1.waitMs - sched0.waitMs) };
    }
    const metricsText = await scrape();
    result.eventLoopDelay = metricsText === null ? null : eventLoopGauges(metricsText);
    stop = true;
    await memLoop;
    if (!settled) errors.push(`the 3 jobs did not settle within ${Math.round(o.timeoutMs / 1000)} s`);
    result.jobsPeakRssMb = mb(peakKb || null);
    result.hwmMb = mb(await procStatusKb(pid, 'VmHWM'));
    result.health = {
      p99Ms: round(percentile(during2, 99), 1),
      p50Ms: round(median(during2), 1),
      maxMs: round(during2.length ? Math.max(...during2) : null, 1),
      count: during2.length,
      anyBuild: { p99Ms: round(percentile(duringAny, 99), 1), count: duringAny.length },
      failures,
    };
    for (const id of ids) {
      const w = views.get(id) ?? {};
      const cache = w.cache as { hit?: string } | null | undefined;
      const push = w.push as { status?: string } | null | undefined;
      const timings = w.timings as Record<string, number> | undefined;
      const error = w.error as { code?: string; message?: string } | null | undefined;
      result.jobs.push({
        ...(error ? { error: `${error.code}: ${String(error.message).slice(0, 300)}` } : {}),
        id,
        status: String(w.status ?? 'unknown'),
        cacheHit: cache?.hit ?? null,
        push: push?.status ?? null,
        readyMs: timings?.ready ?? null,
      });
    }
  } catch (err) {
    errors.push((err as Error).message);
  } finally {
    // Remove the workspaces through the API (stops anything still running), then stop the agent.
    for (const id of ids) {
      await fetch(`${url}/v1/workspaces/${id}?purge=true`, { method: 'DELETE', headers: auth }).catch(() => undefined);
    }
    const exit = new Promise<boolean>((r) => (proc.exitCode !== null || proc.signalCode !== null ? r(true) : proc.once('exit', () => r(true))));
    proc.kill('SIGTERM');
    const exited = await Promise.race([exit, sleep(20_000).then(() => false)]);
    if (!exited) {
      errors.push('warmstart serve did not exit within 20 s of SIGTERM: killed');
      proc.kill('SIGKILL');
    }
    for (const id of ids) await removeWorkspace(id);
    result.log = log.slice(-4000);
  }
  return result;
}

/** One line for the bench's log. */
export function serveRow(m: ServeMeasurement): string {
  const eld = m.eventLoopDelay;
  return (
    `serve: idle ${m.idleRssMb} MB (after 20 s ${m.idleSettledRssMb ?? '—'} MB), peak with 3 jobs ${m.jobsPeakRssMb} MB (VmHWM ${m.hwmMb} MB); ` +
    `/health p99 ${m.health.p99Ms} ms (p50 ${m.health.p50Ms}, max ${m.health.maxMs}) over ${m.health.count} GETs with 2 builds; ` +
    `event-loop delay p99 ${eld?.p99Ms ?? '—'} ms, max ${eld?.maxMs ?? '—'} ms; ` +
    `main thread ${m.mainThread?.cpuMs ?? '—'} ms on CPU, ${m.mainThread?.runqueueWaitMs ?? '—'} ms waiting for one; ` +
    `jobs ${m.jobs.map((j) => `${j.status}/${j.cacheHit}/${j.push}`).join(' ')}`
  );
}

/**
 * Several serve runs as one: the median of each number over the runs (the
 * jobs, log and errors of the first run). Null for no runs; the run itself
 * for one.
 */
export function medianServe(runs: readonly ServeMeasurement[]): ServeMeasurement | null {
  if (runs.length <= 1) return runs[0] ?? null;
  const med = (pick: (r: ServeMeasurement) => number | null | undefined): number | null =>
    round(median(runs.map(pick).filter((v): v is number => typeof v === 'number')), 1);
  const first = runs[0]!;
  return {
    ...first,
    idleRssMb: med((r) => r.idleRssMb),
    idleSettledRssMb: med((r) => r.idleSettledRssMb),
    jobsPeakRssMb: med((r) => r.jobsPeakRssMb),
    hwmMb: med((r) => r.hwmMb),
    jobsWallMs: med((r) => r.jobsWallMs) ?? 0,
    health: {
      p99Ms: med((r) => r.health.p99Ms),
      p50Ms: med((r) => r.health.p50Ms),
      maxMs: med((r) => r.health.maxMs),
      count: runs.reduce((n, r) => n + r.health.count, 0),
      anyBuild: { p99Ms: med((r) => r.health.anyBuild.p99Ms), count: runs.reduce((n, r) => n + r.health.anyBuild.count, 0) },
      failures: runs.reduce((n, r) => n + r.health.failures, 0),
    },
    mainThread: {
      cpuMs: med((r) => r.mainThread?.cpuMs) ?? 0,
      runqueueWaitMs: med((r) => r.mainThread?.runqueueWaitMs) ?? 0,
    },
    eventLoopDelay: {
      p50Ms: med((r) => r.eventLoopDelay?.p50Ms),
      p99Ms: med((r) => r.eventLoopDelay?.p99Ms),
      maxMs: med((r) => r.eventLoopDelay?.maxMs),
    },
    errors: runs.flatMap((r) => r.errors),
  };
}
