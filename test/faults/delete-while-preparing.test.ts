import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { testEnv } from '../support/cli.js';
import { cleanUp, containersWithLabel, volumeExists } from '../support/docker.js';
import { faultRow, githubAppEnv, suiteSecrets } from '../support/faults.js';
import { agentInvariants, cliProcessesFor } from '../support/invariants.js';
import { makeRepo, runId } from '../support/repos.js';
import { startAgent, waitForStatus, type Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';
import { sleep, until } from '../support/wait.js';

/**
 * DELETE /v1/workspaces/:id?purge=true while the workspace's dev container is
 * being built. The API promises that a DELETE stops a running job and removes
 * the containers, and with purge the volume and the record too (without purge
 * the volume, the user's work, is kept). So: the job is cancelled, the DELETE
 * answers 200, then the workspace is gone (404) with no container, no
 * devcontainers CLI, no build container and no volume left, the agent keeps
 * serving, and a new POST with the same id ends ready.
 */
const tb = loadTestbed();
const run = runId('fdel');
const id = `${run}-ws`;
let agent: Agent | undefined;

afterAll(async () => {
  if (agent && agent.process.exitCode === null) await agent.term().catch(() => undefined);
  await cleanUp({ runId: run, workspaceIds: [id] });
});

/** Containers of the run that belong to no workspace: the classic builder's RUN step containers. */
async function buildContainers(): Promise<string[]> {
  const r = await execa(
    'docker',
    ['ps', '-a', '--filter', `label=warmstart.test-run=${run}`, '--format', '{{.ID}}|{{.Label "warmstart.workspace"}}'],
    { reject: false },
  );
  return String(r.stdout)
    .split('\n')
    .filter((l) => l.endsWith('|'));
}

describe('a workspace deleted while it is being prepared', () => {
  it('DELETE ?purge=true during the build', async () => {
    await faultRow(
      {
        fault: 'DELETE ?purge=true while the dev container is being built',
        expected: 'job cancelled, DELETE 200, then 404; no container, CLI or volume left; agent serving; same id posted again ends ready',
      },
      async () => {
        const repo = await makeRepo(
          {
            '.devcontainer/devcontainer.json': '{ "build": { "dockerfile": "Dockerfile" }, "remoteUser": "root" }\n',
            '.devcontainer/Dockerfile':
              'FROM @@BASE_IMAGE@@\nLABEL warmstart.test-run=@@RUN_ID@@\nRUN echo deleting-build && sleep 6 && echo built > /built\n',
          },
          { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'deleted' },
        );
        const env = await testEnv(tb.baseImage, { ...githubAppEnv(), WARMSTART_CACHE_REGISTRY: `${tb.openRegistry}/warmstart-test/${run}` });
        const stateDir = env.WARMSTART_STATE_DIR!;
        agent = await startAgent(env, { token: suiteSecrets().apiToken });
        const a = agent;
        const post = (): Promise<Response> =>
          a.request('/v1/workspaces', {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ id, repository: repo }),
          });
        const created = await post();
        expect(created.status, await created.clone().text()).toBe(202);

        // Follow the job's events until the RUN step that sleeps is running.
        const stream = await a.request(`/v1/workspaces/${id}/events`);
        expect(stream.status).toBe(200);
        const reader = stream.body!.getReader();
        const decoder = new TextDecoder();
        let buffered = '';
        const seen: { type: string; phase?: string; text?: string; status?: string }[] = [];
        const building = (): boolean => seen.some((e) => e.type === 'log' && /deleting-build/.test(e.text ?? '') && !/RUN /.test(e.text ?? ''));
        while (!building()) {
          const { done, value } = await reader.read();
          if (done) throw new Error(`the job ended before its build ran: ${JSON.stringify(seen.slice(-5))}`);
          buffered += decoder.decode(value, { stream: true });
          let nl: number;
          while ((nl = buffered.indexOf('\n')) >= 0) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            if (line.trim()) seen.push(JSON.parse(line) as (typeof seen)[0]);
          }
        }
        const during = (await (await a.request(`/v1/workspaces/${id}`)).json()) as { status: string };
        expect(during.status).toBe('creating');
        const cliAtDelete = await cliProcessesFor(id);
        expect(cliAtDelete.length, 'the devcontainers CLI runs the build').toBeGreaterThan(0);
        expect(await volumeExists(`warmstart-ws-${id}`)).toBe(true);

        const t0 = Date.now();
        const del = await a.request(`/v1/workspaces/${id}?purge=true`, { method: 'DELETE' });
        const deleteMs = Date.now() - t0;
        expect(del.status, await del.clone().text()).toBe(200);
        const last = (await del.json()) as { id: string; status: string };
        expect(last).toMatchObject({ id, status: 'deleting' });
        // The events stream of the cancelled job ends, with the job failed JOB_CANCELLED, not ready.
        const rest = await (async () => {
          let text = buffered;
          for (;;) {
            const { done, value } = await reader.read();
            if (done) return text;
            text += decoder.decode(value, { stream: true });
          }
        })();
        const tail = rest
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as (typeof seen)[0]);
        const outcome = tail.find((e) => e.type === 'outcome');
        expect(outcome?.status ?? 'none').not.toBe('ready');
        const upEnd = tail.find((e) => e.type === 'phase-end' && e.phase === 'up');

        // Gone: the record, the state dir, the containers, the CLI, the volume.
        const gone = await a.request(`/v1/workspaces/${id}`);
        expect(gone.status).toBe(404);
        expect(await gone.json()).toMatchObject({ code: 'WORKSPACE_NOT_FOUND' });
        expect(await stat(join(stateDir, 'workspaces', id)).catch(() => null)).toBeNull();
        expect(await containersWithLabel(`warmstart.workspace=${id}`)).toEqual([]);
        expect(await cliProcessesFor(id)).toEqual([]);
        expect(await volumeExists(`warmstart-ws-${id}`)).toBe(false);
        const list = (await (await a.request('/v1/workspaces')).json()) as { workspaces: { id: string }[] };
        expect(list.workspaces.map((w) => w.id)).not.toContain(id);
        const afterDelete = await agentInvariants(a, [id]);
        // The cancelled build leaves no RUN container, and nothing of it finishes later.
        await until('the build container of the cancelled build to go', async () => (await buildContainers()).length === 0, 15_000, 250);
        await sleep(Math.max(0, t0 + 7_000 - Date.now())); // past the end of the RUN step's sleep
        expect(await containersWithLabel(`warmstart.workspace=${id}`)).toEqual([]);
        expect(await buildContainers()).toEqual([]);
        const runtimeLeft = (await readdir(join(env.WARMSTART_RUNTIME_DIR!, 'jobs')).catch(() => [])).length;
        expect(runtimeLeft, 'the job dir of the cancelled job is left').toBe(0);

        // The id is free again: a new POST ends ready.
        const again = await post();
        expect(again.status, await again.clone().text()).toBe(202);
        const view = (await waitForStatus(a, id, ['ready', 'recovery', 'failed'], 120_000)) as { status: string; error: unknown };
        expect(view.status, JSON.stringify(view.error)).toBe('ready');
        const final = await agentInvariants(a, [id], [`warmstart-ws-${id}`]);
        // A fresh event log: the purged job's events went with its record.
        const log = (await readFile(join(stateDir, 'workspaces', id, 'events.ndjson'), 'utf8'))
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as { type: string; status?: string });
        expect(log.filter((e) => e.type === 'outcome').map((e) => e.status)).toEqual(['ready']);
        return (
          `build running (${cliAtDelete.length} CLI process); DELETE answered ${del.status} after ${deleteMs} ms; job ${outcome?.status ?? 'ended'}` +
          `${upEnd ? ` (up ${upEnd.status})` : ''}; then 404, no container/CLI/build container, volume removed; ${afterDelete}; same id posted again: ${view.status}; ${final}`
        );
      },
    );
  });
});
