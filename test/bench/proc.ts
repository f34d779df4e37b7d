import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';

export interface TimedRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** spawn to exit */
  wallMs: number;
  /** spawn to the first stderr line matching `readyPattern` (null: never seen / not asked) */
  readyWallMs: number | null;
  /** the process's own peak RSS (VmHWM, a running peak), in KiB; null when not polled */
  peakRssKb: number | null;
  /** the largest sum of VmRSS over the process and its descendants seen in one poll, in KiB */
  treePeakRssKb: number | null;
  timedOut: boolean;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  input?: string;
  /** poll /proc/<pid>/status every 50 ms for VmHWM (and the tree's VmRSS) */
  pollRss?: boolean;
  readyPattern?: RegExp;
  timeoutMs: number;
}

/** A field of /proc/<pid>/status in KiB (VmHWM, VmRSS), or null when the process is gone. */
export async function procStatusKb(pid: number, field: 'VmHWM' | 'VmRSS'): Promise<number | null> {
  try {
    const text = await readFile(`/proc/${pid}/status`, 'utf8');
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text);
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

/**
 * The main thread's scheduler times (/proc/<pid>/task/<pid>/schedstat): ms on
 * a CPU, and ms runnable but waiting for one. For a node process the main
 * thread is the event loop: the first is the work it did, the second how long
 * a busy machine kept it from running. Null when the process is gone.
 */
export async function mainThreadSchedMs(pid: number): Promise<{ cpuMs: number; waitMs: number } | null> {
  try {
    const [run, wait] = (await readFile(`/proc/${pid}/task/${pid}/schedstat`, 'utf8')).trim().split(/\s+/).map(Number);
    return { cpuMs: run! / 1e6, waitMs: wait! / 1e6 };
  } catch {
    return null;
  }
}

async function childrenOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  try {
    for (const tid of await readdir(`/proc/${pid}/task`)) {
      const text = await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '');
      for (const c of text.split(/\s+/)) if (c) out.push(Number(c));
    }
  } catch {
    // gone
  }
  return out;
}

async function treeRssKb(pid: number): Promise<number> {
  let sum = 0;
  const seen = new Set<number>();
  const queue = [pid];
  while (queue.length > 0 && seen.size < 200) {
    const p = queue.shift()!;
    if (seen.has(p)) continue;
    seen.add(p);
    sum += (await procStatusKb(p, 'VmRSS')) ?? 0;
    queue.push(...(await childrenOf(p)));
  }
  return sum;
}

/** Runs a command, timing it from spawn to exit (and to a ready line on stderr), optionally sampling its memory. */
export function runTimed(cmd: string, args: string[], o: RunOptions): Promise<TimedRun> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env: o.env ?? process.env, cwd: o.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let readyWallMs: number | null = null;
    let peakRssKb: number | null = null;
    let treePeakRssKb: number | null = null;
    let timedOut = false;
    let stderrLine = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      const text = d.toString();
      stderr += text;
      if (o.readyPattern && readyWallMs === null) {
        stderrLine += text;
        const lines = stderrLine.split('\n');
        stderrLine = lines.pop() ?? '';
        if (lines.some((l) => o.readyPattern!.test(l))) {
          readyWallMs = Math.round(performance.now() - t0);
          if (o.pollRss) sample(false);
        }
      }
    });
    child.stdin.end(o.input ?? '');
    child.stdin.on('error', () => undefined);

    // The sampling must not load the machine it measures: VmHWM is a high-water
    // mark, so a cheap read of one file every 200 ms misses nothing but the
    // last moments (read again at the ready line); the whole tree (every
    // thread's children of every process) is walked once a second.
    let polling = false;
    let ticks = 0;
    const sample = (withTree: boolean): void => {
      if (polling || child.pid === undefined) return;
      polling = true;
      const pid = child.pid;
      void Promise.all([procStatusKb(pid, 'VmHWM'), withTree ? treeRssKb(pid) : Promise.resolve(0)])
        .then(([hwm, tree]) => {
          if (hwm !== null) peakRssKb = Math.max(peakRssKb ?? 0, hwm);
          if (tree > 0) treePeakRssKb = Math.max(treePeakRssKb ?? 0, tree);
        })
        .finally(() => (polling = false));
    };
    const poll = o.pollRss && child.pid !== undefined ? setInterval(() => sample(++ticks % 5 === 0), 200) : null;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, o.timeoutMs);

    child.on('error', (err) => {
      clearTimeout(timer);
      if (poll) clearInterval(poll);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (poll) clearInterval(poll);
      resolve({
        code,
        signal,
        stdout,
        stderr,
        wallMs: Math.round(performance.now() - t0),
        readyWallMs,
        peakRssKb,
        treePeakRssKb,
        timedOut,
      });
    });
  });
}

/** Runs a short helper command (docker, git) and returns its output; never measured. */
export async function sh(cmd: string, args: string[], o: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number } = {}) {
  const r = await runTimed(cmd, args, { ...o, timeoutMs: o.timeoutMs ?? 300_000 });
  return { code: r.code, stdout: r.stdout, stderr: r.stderr, ms: r.wallMs };
}
