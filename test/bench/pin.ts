/**
 * What pinning the moving inputs (agent/src/cache/pinned-inputs.ts) adds to
 * a start: the exact key is the content key plus a manifest HEAD per base
 * image and remote feature, run alongside the hashing as
 * agent/src/workspace/exact.ts runs them. Measured on the bench fixture
 * against the testbed's real registry, interleaved: run i of "key only"
 * next to run i of "key + pins"; added = the per-pair difference.
 *
 * Alone: node dist/test/bench/pin.js [--runs N]   (npm run build first)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { computeContentKey, readDockerfile } from '../../agent/src/cache/content-key.js';
import { pinnedKey, pinTargets, resolvePins } from '../../agent/src/cache/pinned-inputs.js';
import { discoverConfig } from '../../agent/src/devcontainer/discover.js';
import { createRegistryClient } from '../../agent/src/registry/registry-client.js';
import { loadTestbed, makeBenchRepo } from './fixture.js';
import { median, round } from './stats.js';

export interface PinMeasurement {
  runs: number;
  targets: string[];
  keyOnlyMedianMs: number | null;
  keyAndPinsMedianMs: number | null;
  pinsAloneMedianMs: number | null;
  /** median over pairs of (key + pins) - (key only): what a start waits for in addition */
  addedMedianMs: number | null;
  addedMaxMs: number | null;
}

export async function measurePinning(o: { runs: number; baseImage: string; platform?: string }): Promise<PinMeasurement> {
  const work = await mkdtemp(join(tmpdir(), 'warmstart-bench-pin-'));
  try {
    const repo = await makeBenchRepo(join(work, 'bench', 'app'), { runId: 'pinbench', baseImage: o.baseImage, quick: true });
    const discovered = await discoverConfig(repo, undefined);
    if (discovered === null) throw new Error('the bench fixture has no devcontainer config');
    const registry = createRegistryClient();
    const platform = o.platform ?? 'linux/amd64';
    const keyOnly = async (): Promise<string> => (await computeContentKey({ discovered, repoDir: repo, platform })).key;
    const pins = async () => {
      const { text, buildArgs } = await readDockerfile(discovered, repo);
      const { targets, reason } = pinTargets(text, buildArgs, discovered.config.features);
      if (reason !== null) throw new Error(`not pinnable: ${reason}`);
      const out = await resolvePins({ registry, credentialsFor: async () => null }, targets);
      if (out.pins === null) throw new Error(`pins failed: ${out.reason}`);
      return out.pins;
    };
    const keyAndPins = async (): Promise<string> => {
      const [key, p] = await Promise.all([keyOnly(), pins()]);
      return pinnedKey(key, p);
    };
    const time = async (fn: () => Promise<unknown>): Promise<number> => {
      const t0 = performance.now();
      await fn();
      return performance.now() - t0;
    };
    const targets = (await pins()).map((p) => `${p.kind} ${p.ref}`);
    await keyAndPins(); // warm both paths once (module code, connections)
    const a: number[] = [];
    const b: number[] = [];
    const alone: number[] = [];
    for (let i = 0; i < o.runs; i++) {
      a.push(await time(keyOnly));
      b.push(await time(keyAndPins));
      alone.push(await time(pins));
    }
    const added = b.map((v, i) => v - a[i]!);
    return {
      runs: o.runs,
      targets,
      keyOnlyMedianMs: round(median(a), 1),
      keyAndPinsMedianMs: round(median(b), 1),
      pinsAloneMedianMs: round(median(alone), 1),
      addedMedianMs: round(median(added), 1),
      addedMaxMs: round(Math.max(...added), 1),
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export function pinRow(m: PinMeasurement): string {
  return (
    `pinning (${m.targets.length} HEAD${m.targets.length === 1 ? '' : 's'}: ${m.targets.join(', ')}), ${m.runs} pairs: ` +
    `key ${m.keyOnlyMedianMs} ms, key+pins ${m.keyAndPinsMedianMs} ms, pins alone ${m.pinsAloneMedianMs} ms; ` +
    `added median ${m.addedMedianMs} ms (max ${m.addedMaxMs} ms), goal ≤ 100 ms`
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { runs: { type: 'string' } }, strict: true });
  const tb = await loadTestbed();
  const m = await measurePinning({ runs: Number(values.runs ?? 20), baseImage: tb.baseImage });
  process.stdout.write(`${pinRow(m)}\n${JSON.stringify(m)}\n`);
}
