import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { removeWorkspace } from './docker.js';
import { makeRepoFromFiles } from './fixture.js';
import { procStatusKb } from './proc.js';
import { median, percentile, round } from './stats.js';
import { freePort } from '../support/ports.js';

export interface ServeMeasurement {
  idleRssMb: number | null;
  /** the largest VmRSS seen while the 3 jobs were queued, building or pushing */
  jobsPeakRssMb: number | null;
  /** VmHWM at the end: the process's peak since it started */
  hwmMb: number | null;
  jobs: { id: string; status: string; cacheHit: string | null; push: string | null; readyMs: number | null }[];
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
  log: string;
  errors: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mb = (kb: number | null): number | null => (kb === null ? null : round(kb / 1024, 1));

export interface ServeOptions {
  cli: string;
  workDir: string;
  runId: string;
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
 * `warmstart serve`: RSS idle (5 s after start), the peak RSS while 3 small
 * jobs run (2 build at once: the default concurrency), and the latency of
 * sequential GET /health while 2 builds run.
 */
export async function measureServe(o: ServeOptions): Promise<ServeMeasurement> {
  const errors: string[] = [];
  const token = `bench-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
  const tokenFile = join(o.workDir, 'serve-api-token');
  await writeFile(tokenFile, `${token}\n`, { mode: 0o600 });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const repos: string[] = [];
  for (let n = 1; n <= 3; n++) {
    repos.push(await makeRepoFromFiles(join(o.workDir, 'serve-repos', 'bench', `small-${n}`), smallRepoFiles(o.runId, o.baseImage, n, o.quick)));
  }

  let log = '';
  const proc: ChildProcess = spawn(process.execPath, [o.cli, 'serve'], {
    env: {
      ...o.env,
      WARMSTART_API_TOKEN_FILE: tokenFile,
      WARMSTART_ALLOW_LOCAL_REPOS: '1',
      WARMSTART_LISTEN: `127.0.0.1:${port}`,
      WARMSTART_STATE_DIR: join(o.workDir, 'serve-state'),
      WARMSTART_RUNTIME_DIR: join(o.workDir, 'serve-runtime'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout?.on('data', (d: Buffer) => (log += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (log += d.toString()));
  const pid = proc.pid!;
  const auth = { authorization: `Bearer ${token}` };
  const ids = [1, 2, 3].map((n) => `${o.runId}-srv-${n}`);
  for (const id of ids) o.workspaceIds.add(id);

  const result: ServeMeasurement = {
    idleRssMb: null,
    jobsPeakRssMb: null,
    hwmMb: null,
    jobs: [],
    jobsWallMs: 0,
    health: { p99Ms: null, p50Ms: null, maxMs: null, count: 0, anyBuild: { p99Ms: null, count: 0 }, failures: 0 },
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

    // Memory: VmRSS every 50 ms for as long as the jobs run.
    let peakKb = 0;
    let stop = false;
    const memLoop = (async () => {
      while (!stop) {
        peakKb = Math.max(peakKb, (await procStatusKb(pid, 'VmRSS')) ?? 0);
        await sleep(50);
      }
    })();

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
      result.jobs.push({
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
