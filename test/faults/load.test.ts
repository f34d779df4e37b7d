/**
 * Load on one node: 20 workspaces prepared back to back, then 20 more
 * submitted at once to an agent that builds 4 at a time, all from the small
 * fixture with the registry cache on. Every one must end ready, none may be
 * lost (record, container and volume for each), the agent's own view must
 * agree with the engine's, and its memory must stay flat. The numbers are
 * printed as a table; speed is not asserted here (that is the benchmark's job).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { testEnv } from '../support/cli.js';
import { cleanUp, containersWithLabel, volumeExists } from '../support/docker.js';
import { githubAppEnv, report, suiteSecrets, table } from '../support/faults.js';
import { dropMemoryProbe, liveHeapMb, memoryProbeEnv, rssMb } from '../support/agent-memory.js';
import { agentInvariants } from '../support/invariants.js';
import { makeRepo, runId } from '../support/repos.js';
import { startAgent, waitForStatus, type Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';

const tb = loadTestbed();
const run = runId('load');
const PER_ROUND = 20;
const AT_A_TIME = 4;
const ids: string[] = [];
let agent: Agent | undefined;

afterAll(async () => {
  if (agent && agent.process.exitCode === null) await agent.term().catch(() => undefined);
  if (agent) await dropMemoryProbe(agent);
  await cleanUp({ runId: run, workspaceIds: ids });
});

/** Waits until no push of these workspaces is pending, so the heap is measured at rest. */
async function waitForPushes(a: Agent, ids: string[]): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const list = (await (await a.request('/v1/workspaces')).json()) as { workspaces: { id: string; push: { status: string } | null }[] };
    if (!list.workspaces.some((w) => ids.includes(w.id) && w.push?.status === 'pending')) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('pushes still pending after 2 minutes');
}

const quantile = (xs: number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

interface Done {
  id: string;
  status: string;
  readyMs: number;
  hit: string;
}

describe('load: 20 back to back, 20 four at a time', () => {
  it('all ready, none lost, state consistent, memory flat', async () => {
    const repo = await makeRepo('small', { runId: run, baseImage: tb.baseImage, owner: 'acme', name: `load-${run}` });
    const base = await testEnv(tb.baseImage, { WARMSTART_MAX_CONCURRENT_BUILDS: String(AT_A_TIME), ...githubAppEnv(), ...(await memoryProbeEnv()) });
    agent = await startAgent(base, { token: suiteSecrets().apiToken });
    const a = agent;
    const cache = { registry: `${tb.registry}/warmstart-test/${run}`, username: tb.registryUser, password: tb.registryPassword };

    const submit = async (id: string): Promise<void> => {
      ids.push(id);
      const r = await a.request('/v1/workspaces', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ id, repository: repo, cache }),
      });
      expect(r.status, await r.clone().text()).toBe(202);
    };
    const settle = async (id: string): Promise<Done> => {
      const v = (await waitForStatus(a, id, ['ready', 'recovery', 'failed'], 240_000)) as {
        status: string;
        timings: { ready?: number };
        cache: { hit: string } | null;
      };
      return { id, status: v.status, readyMs: v.timings.ready ?? -1, hit: v.cache?.hit ?? 'none' };
    };

    // Back to back: the next is submitted when the previous is ready.
    const rssStart = await rssMb(a);
    const serial: Done[] = [];
    const rssSerial: number[] = [];
    const t0 = Date.now();
    let liveWarm = 0;
    let rssWarm = 0;
    for (let i = 0; i < PER_ROUND; i++) {
      const id = `${run}-s${i}`;
      await submit(id);
      serial.push(await settle(id));
      rssSerial.push(await rssMb(a));
      // From the fifth workspace on, every code path (clone, build, push, exact lookup) is loaded.
      if (i === 4) {
        liveWarm = await liveHeapMb(a);
        rssWarm = await rssMb(a); // after the probe, which itself leaves V8 holding more pages
      }
    }
    const serialWall = Date.now() - t0;

    // Four at a time: all submitted at once; the agent's limit keeps 4 building.
    const parallelIds = Array.from({ length: PER_ROUND }, (_, i) => `${run}-p${i}`);
    const t1 = Date.now();
    for (const id of parallelIds) await submit(id);
    let maxCreating = 0;
    const watcher = (async () => {
      for (;;) {
        const list = (await (await a.request('/v1/workspaces')).json()) as { workspaces: { id: string; status: string }[] };
        const mine = list.workspaces.filter((w) => parallelIds.includes(w.id));
        maxCreating = Math.max(maxCreating, mine.filter((w) => w.status === 'creating').length);
        if (mine.every((w) => ['ready', 'recovery', 'failed'].includes(w.status))) return;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const parallel = await Promise.all(parallelIds.map(settle));
    await watcher;
    const parallelWall = Date.now() - t1;
    const rssEnd = await rssMb(a);
    await waitForPushes(a, ids);
    const liveEnd = await liveHeapMb(a);

    const rows = [['back to back', serial, serialWall, 1] as const, [`${AT_A_TIME} at a time`, parallel, parallelWall, maxCreating] as const].map(
      ([name, done, wall, conc]) => {
        const ms = done.map((d) => d.readyMs);
        const hits = [...new Set(done.map((d) => d.hit))].map((h) => `${h} ${done.filter((d) => d.hit === h).length}`).join(', ');
        return [
          name,
          String(done.length),
          String(done.filter((d) => d.status === 'ready').length),
          String(conc),
          String(quantile(ms, 0.5)),
          String(quantile(ms, 0.95)),
          String(Math.max(...ms)),
          (wall / 1000).toFixed(1),
          hits,
        ];
      },
    );
    // Flat memory: the live heap after a full collection, from the fifth
    // workspace to the last. RSS is reported beside it; it rises while V8
    // leaves garbage for a later full collection (see agent-memory.ts).
    const drift = (liveEnd - liveWarm) / liveWarm;
    report(
      'Load',
      `${table(['round', 'workspaces', 'ready', 'max building', 'ready p50 ms', 'p95 ms', 'max ms', 'wall s', 'cache'], rows)}\n` +
        `agent live heap after a full GC: ${liveWarm} MB after 5 workspaces, ${liveEnd} MB after all ${2 * PER_ROUND} (drift ${(drift * 100).toFixed(1)}%, limit 20%)\n` +
        `agent RSS: ${rssStart} MB at start, ${rssSerial[4]} MB after 5; ${rssWarm} MB after the first heap probe, ${rssEnd} MB after all ${2 * PER_ROUND}`,
    );

    // All ready, none lost: every record ready with its own container and volume.
    expect([...serial, ...parallel].filter((d) => d.status !== 'ready')).toEqual([]);
    expect(maxCreating).toBeLessThanOrEqual(AT_A_TIME);
    const listed = (await (await a.request('/v1/workspaces')).json()) as { workspaces: { id: string; status: string; containerId: string | null }[] };
    const mine = listed.workspaces.filter((w) => ids.includes(w.id));
    expect(mine.length).toBe(2 * PER_ROUND);
    const containerIds = new Set<string>();
    for (const w of mine) {
      expect(w.status).toBe('ready');
      expect(await volumeExists(`warmstart-ws-${w.id}`), `volume of ${w.id}`).toBe(true);
      const cs = await containersWithLabel(`warmstart.workspace=${w.id}`);
      expect(cs.length, `containers of ${w.id}`).toBe(1);
      expect(w.containerId?.startsWith(cs[0]!)).toBe(true);
      containerIds.add(w.containerId!);
    }
    expect(containerIds.size).toBe(2 * PER_ROUND);
    await agentInvariants(
      a,
      ids,
      ids.map((id) => `warmstart-ws-${id}`),
    );
    expect(drift, `the agent's live heap grew from ${liveWarm} MB to ${liveEnd} MB`).toBeLessThanOrEqual(0.2);
  });
});
