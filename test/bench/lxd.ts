/**
 * `machine up` on a cache hit against the raw `lxc launch` of the same
 * cached image, on the real LXD of the testbed: what the bench
 * reports as a ratio. Used by test/integration/machines/machine-up-lxd.test.ts
 * and callable from the bench (`benchMachineUpHit`).
 */
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import { IncusBackend } from '../../agent/src/backends/incus.js';
import { cacheImageName } from '../../agent/src/machines/cache.js';
import { machineUp } from '../../agent/src/machines/machine-up.js';
import { hostSpecificsHook } from '../../agent/src/machines/post-launch.js';

/** Options of {@link benchMachineUpHit}. */
export interface MachineUpBenchOptions {
  /** the daemon's socket (the testbed's WARMSTART_TESTBED_LXD_SOCKET) */
  socket: string;
  /** the base alias (WARMSTART_TESTBED_LXD_IMAGE) */
  baseImage: string;
  /** timed pairs (one hit, one raw launch each); default 5 */
  runs?: number;
  /**
   * untimed pairs first; default 2. The first launches after a publish run
   * slower on both sides for a while (LXD's background work on the new
   * image), which says nothing about either.
   */
  warmup?: number;
  /** names of every machine and image made start with it; letters and digits, starting with a letter */
  prefix: string;
  /** the raw launch command; default `lxc launch` (LXD), `incus launch` for Incus */
  launchCommand?: [string, ...string[]];
}

/** Timings in ms; `ratio` = median hit / median raw launch. */
export interface MachineUpBenchResult {
  image: string;
  /** the one miss that made the cache image (launch + provision + publish) */
  missMs: number;
  hitMs: number[];
  rawLaunchMs: number[];
  medianHitMs: number;
  medianRawLaunchMs: number;
  ratio: number;
}

/**
 * Makes a cache image with one miss, then alternates `machineUp` hits (with
 * the default post-launch hook, as the CLI runs it) and raw launches of the
 * same image, so drift hits both alike. Removes everything it made.
 */
export async function benchMachineUpHit(opts: MachineUpBenchOptions): Promise<MachineUpBenchResult> {
  const runs = opts.runs ?? 5;
  const [cmd, ...cmdArgs] = opts.launchCommand ?? ['lxc', 'launch'];
  const backend = new IncusBackend({ socketPath: opts.socket });
  const provision = { path: 'bench.sh', content: Buffer.from(`echo ${opts.prefix} > /bench-provisioned\n`) };
  const hook = hostSpecificsHook({ git: { name: 'Bench', email: 'bench@warmstart.invalid' } });
  const names: string[] = [];
  let image = '';
  try {
    names.push(`${opts.prefix}-miss`);
    const miss = await machineUp(backend, { name: `${opts.prefix}-miss`, base: opts.baseImage, provision, postLaunch: hook });
    image = cacheImageName(miss.key);
    const hitMs: number[] = [];
    const rawLaunchMs: number[] = [];
    const warmup = opts.warmup ?? 2;
    for (let i = 0; i < warmup + runs; i++) {
      names.push(`${opts.prefix}-hit${i}`);
      const hit = await machineUp(backend, { name: `${opts.prefix}-hit${i}`, base: opts.baseImage, provision, postLaunch: hook });
      if (hit.cache !== 'hit') throw new Error(`bench: expected a hit, got ${hit.cache}`);
      if (i >= warmup) hitMs.push(hit.ms);
      names.push(`${opts.prefix}-raw${i}`);
      const t0 = performance.now();
      // stdin must not be a pipe: `lxc launch` reads instance config (YAML)
      // from a non-terminal stdin and waits for its end forever
      await execa(cmd!, [...cmdArgs, image, `${opts.prefix}-raw${i}`], { stdin: 'ignore', timeout: 120_000 });
      if (i >= warmup) rawLaunchMs.push(Math.round(performance.now() - t0));
    }
    const medianHitMs = median(hitMs);
    const medianRawLaunchMs = median(rawLaunchMs);
    return {
      image,
      missMs: miss.ms,
      hitMs,
      rawLaunchMs,
      medianHitMs,
      medianRawLaunchMs,
      ratio: Math.round((medianHitMs / medianRawLaunchMs) * 100) / 100,
    };
  } finally {
    const existing = new Set((await backend.listMachines()).map((m) => m.name));
    for (const n of names) if (existing.has(n)) await backend.removeMachine(n);
    if (image && (await backend.imageExists(image))) await backend.removeImage(image);
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : Math.round((s[mid - 1]! + s[mid]!) / 2);
}
