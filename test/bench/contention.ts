import { readdir, readFile } from 'node:fs/promises';

/**
 * Watches for other workloads on this machine that would disturb the timings
 * (another session's tests or builds using the same Docker engine): processes
 * running the devcontainers CLI, warmstart, vitest or docker build/pull/push
 * that are not descendants of the bench. Samples every 2 s; a run is
 * "contended" when a sample during it saw any.
 */
export class ContentionWatch {
  private readonly samples: { t: number; procs: string[] }[] = [];
  private timer: NodeJS.Timeout | null = null;
  private busy = false;

  start(): void {
    const tick = (): void => {
      if (this.busy) return;
      this.busy = true;
      void foreignWorkloads()
        .then((procs) => {
          this.samples.push({ t: performance.now(), procs });
        })
        .catch(() => undefined)
        .finally(() => (this.busy = false));
    };
    tick();
    this.timer = setInterval(tick, 2000);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One sample now. */
  async now(): Promise<string[]> {
    return foreignWorkloads().catch(() => []);
  }

  /** Foreign processes seen between t0 and t1 (performance.now() times), deduplicated. */
  seenBetween(t0: number, t1: number): string[] {
    const seen = new Set<string>();
    for (const s of this.samples) if (s.t >= t0 - 2000 && s.t <= t1 + 2000) for (const p of s.procs) seen.add(p);
    return [...seen];
  }
}

/** What counts as another workload, by kind. */
const KINDS: [string, RegExp][] = [
  ['vitest', /vitest/],
  ['tsc', /\btsc\b/],
  ['devcontainers CLI', /devcontainer\.js/],
  ['warmstart', /cli\/main\.js (up|serve|down|doctor)/],
  ['docker build/pull/push', /(^|\/)docker (build|pull|push)\b/],
];

/** Kinds of foreign workloads running now, each with how many processes. */
async function foreignWorkloads(): Promise<string[]> {
  const self = process.pid;
  const parent = new Map<number, number>();
  const cmd = new Map<number, string>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(pid, ppid);
      cmd.set(pid, (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').join(' ').trim());
    } catch {
      // gone
    }
  }
  const ours = (pid: number): boolean => {
    for (let p = pid, n = 0; p > 1 && n < 64; p = parent.get(p) ?? 0, n++) if (p === self) return true;
    return false;
  };
  const counts = new Map<string, number>();
  for (const [pid, c] of cmd) {
    if (pid === self || ours(pid)) continue;
    const kind = KINDS.find(([, re]) => re.test(c))?.[0];
    if (kind) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return [...counts.keys()];
}
