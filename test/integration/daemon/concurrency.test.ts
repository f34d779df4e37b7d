/**
 * Acceptance (issue 3): three jobs for three different repositories at once
 * with WARMSTART_MAX_CONCURRENT_BUILDS=2 — the third waits in `queued` while
 * the other two are `creating`, never more than two build at a time, and all
 * three end `ready`. Real process, engine and devcontainers CLI; each build
 * has a `sleep 4` step so the overlap is long enough to see.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../../support/cli.js';
import { cleanUp } from '../../support/docker.js';
import { makeRepo, runId } from '../../support/repos.js';
import { startAgent, waitForStatus, type Agent } from '../../support/serve.js';
import { loadTestbed } from '../../support/testbed.js';

const tb = loadTestbed();
const run = runId('dconc');
const names = ['one', 'two', 'three'] as const;
const ids = names.map((n) => `${run}-${n}`);

/** A repository whose build takes a few seconds; its own RUN line, so no layer is shared with the others. */
const slowRepo = (name: string): Record<string, string> => ({
  '.devcontainer/Dockerfile': ['FROM @@BASE_IMAGE@@', 'LABEL warmstart.test-run=@@RUN_ID@@', `RUN echo ${name} > /which && sleep 4`, ''].join('\n'),
  '.devcontainer/devcontainer.json': '{ "build": { "dockerfile": "Dockerfile" }, "remoteUser": "root" }\n',
  'README.md': `${name}\n`,
});

describe('warmstart serve: the build queue (limit 2, three jobs)', () => {
  let agent: Agent;
  const repos: string[] = [];

  beforeAll(async () => {
    for (const n of names) repos.push(await makeRepo(slowRepo(n), { runId: run, baseImage: tb.baseImage, owner: 'Acme', name: `conc-${n}-${run}` }));
    agent = await startAgent(await testEnv(tb.baseImage), { env: { WARMSTART_MAX_CONCURRENT_BUILDS: '2' } });
  });

  afterAll(async () => {
    await agent?.term();
    await cleanUp({ runId: run, workspaceIds: ids });
  });

  it('runs two at a time; the third waits in queued; all three end ready', async () => {
    const posted = await Promise.all(
      ids.map((id, i) =>
        agent.request('/v1/workspaces', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ id, repository: repos[i] }),
        }),
      ),
    );
    for (const r of posted) expect(r.status).toBe(202);
    const accepted = (await Promise.all(posted.map((r) => r.json()))) as Array<{ status: string }>;
    for (const a of accepted) expect(['queued', 'creating']).toContain(a.status);

    // Watch the list until every job is over, as fast as the API answers.
    const snapshots: Array<Record<string, string>> = [];
    const deadline = Date.now() + 240_000;
    for (;;) {
      const list = (await (await agent.request('/v1/workspaces')).json()) as { workspaces: Array<{ id: string; status: string }> };
      const mine = Object.fromEntries(list.workspaces.filter((w) => ids.includes(w.id)).map((w) => [w.id, w.status]));
      snapshots.push(mine);
      if (ids.every((id) => ['ready', 'recovery', 'failed'].includes(mine[id] ?? ''))) break;
      if (Date.now() > deadline) throw new Error(`jobs did not finish: ${JSON.stringify(mine)}`);
      await new Promise((r) => setTimeout(r, 50));
    }

    const count = (s: Record<string, string>, status: string) => Object.values(s).filter((v) => v === status).length;
    // Seen: two building while the third waited.
    const overlap = snapshots.filter((s) => count(s, 'creating') === 2 && count(s, 'queued') === 1);
    expect(overlap.length, JSON.stringify(snapshots.slice(0, 20))).toBeGreaterThan(0);
    // Never three at once.
    expect(Math.max(...snapshots.map((s) => count(s, 'creating')))).toBe(2);
    // The waiting one started only after one of the first two was ready.
    const waiting = Object.entries(overlap[0]!).find(([, v]) => v === 'queued')![0];
    const startedAt = snapshots.findIndex((s) => s[waiting] === 'creating');
    expect(startedAt).toBeGreaterThan(snapshots.indexOf(overlap[0]!));
    expect(count(snapshots[startedAt]!, 'ready')).toBeGreaterThanOrEqual(1);

    for (const id of ids) {
      const view = await waitForStatus(agent, id, ['ready', 'recovery', 'failed'], 1_000);
      expect(view, id).toMatchObject({ status: 'ready', profile: 'devcontainer', error: null });
    }
  });
});
