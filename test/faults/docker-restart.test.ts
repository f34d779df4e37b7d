/**
 * The Docker engine restarts under a running job: once while the job pulls
 * the cache image, once while `devcontainer up` builds. The job must end in a
 * defined state with a stable code (never hang, never an internal error), the
 * node must hold nothing of it the records do not name, and the agent must go
 * on serving: a job submitted after the engine is back ends ready.
 *
 * The agent waits (a bounded time) for an engine that does not answer, so a
 * cut pull is a cache miss and a cut build is a recovery, not a failure.
 * The engine is the testbed's own dockerd; it is stopped with SIGTERM and
 * started again with the same command line and environment.
 */
import { openSync, closeSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { testEnv } from '../support/cli.js';
import { cleanUp, containersWithLabel, wipeImages } from '../support/docker.js';
import { faultRow, suiteSecrets } from '../support/faults.js';
import { agentInvariants } from '../support/invariants.js';
import { makeRepo, runId } from '../support/repos.js';
import { startAgent, waitForStatus, type Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';
import { startThrottleProxy, type ThrottleProxy } from '../support/throttle-proxy.js';
import { sleep, until } from '../support/wait.js';
import { eventsOnDisk } from '../support/events.js';

const tb = loadTestbed();
const agents: Agent[] = [];
const proxies: ThrottleProxy[] = [];
const cleanups: { run: string; ids: string[] }[] = [];
const SETTLED = ['ready', 'recovery', 'failed'];

afterAll(async () => {
  await dockerUp(); // whatever happened, leave the engine running
  for (const a of agents) if (a.process.exitCode === null) await a.term().catch(() => undefined);
  for (const p of proxies) await p.close();
  for (const c of cleanups) await cleanUp({ runId: c.run, workspaceIds: c.ids });
});

async function dockerAnswers(): Promise<boolean> {
  return (await execa('docker', ['info', '--format', '{{.ID}}'], { reject: false, timeout: 10_000 })).exitCode === 0;
}

let dockerdArgv: string[] | null = null;
let dockerdEnv: Record<string, string> = {};

/** Starts dockerd again with the command line it had (the testbed's). */
async function dockerUp(): Promise<void> {
  if (await dockerAnswers()) return;
  if (!dockerdArgv) throw new Error('dockerd is down and its command line is unknown');
  const log = openSync(join(tb.dir, 'dockerd.log'), 'a');
  // Its own environment, not this worker's: a TMPDIR inside the suite dir
  // would leave the engine unable to exec once the suite dir is gone.
  const child = spawn(dockerdArgv[0]!, dockerdArgv.slice(1), { detached: true, stdio: ['ignore', log, log], env: dockerdEnv });
  child.unref();
  closeSync(log);
  await until('dockerd to answer again', dockerAnswers, 60_000);
}

/** SIGTERM to dockerd, wait for it to go, start it again; returns how long the engine was away. */
async function restartDockerd(): Promise<number> {
  // The testbed's engine by its pid file (dockerd's default), not by name: a
  // second engine on the machine (test/testbed/node2.sh) is also a dockerd.
  const pid = Number((await readFile('/var/run/docker.pid', 'utf8')).trim());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error('no pid in /var/run/docker.pid: is the testbed engine up?');
  dockerdArgv = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter(Boolean);
  dockerdEnv = Object.fromEntries(
    (await readFile(`/proc/${pid}/environ`, 'utf8'))
      .split('\0')
      .filter((kv) => kv.includes('=') && !/^(TMPDIR|WARMSTART_)/.test(kv))
      .map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
  );
  const t0 = Date.now();
  process.kill(pid, 'SIGTERM');
  await until('dockerd to exit', async () => !(await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null)), 60_000);
  await dockerUp();
  return Date.now() - t0;
}

const events = (agent: Agent, id: string) => eventsOnDisk(agent.env.WARMSTART_STATE_DIR!, id);

function post(agent: Agent, body: unknown): Promise<Response> {
  return agent.request('/v1/workspaces', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

interface View {
  status: string;
  profile: string | null;
  error: { code: string; message: string; detail?: string } | null;
  cache: { hit: string; reason: string | null } | null;
  push: { status: string; reason: string | null } | null;
}

/** A settled view whose failure, if any, carries one of the agent's stable codes. */
function describeOutcome(v: View): string {
  expect(SETTLED).toContain(v.status);
  if (v.status === 'failed' || v.status === 'recovery') {
    expect(v.error?.code).toMatch(/^[A-Z][A-Z_]+$/);
    expect(v.error?.code).not.toBe('INTERNAL');
  }
  const parts = [`${v.status}${v.error ? ` ${v.error.code} (${v.error.message.slice(0, 90)})` : ''}`];
  if (v.cache) parts.push(`cache ${v.cache.hit}${v.cache.reason ? ` (${v.cache.reason.split(':')[0]})` : ''}`);
  if (v.push) parts.push(`push ${v.push.status}`);
  return parts.join(', ');
}

/** After the engine is back: a new workspace of the same repository ends ready. */
async function nextJobReady(agent: Agent, id: string, repo: string): Promise<string> {
  const res = await post(agent, { id, repository: repo });
  expect(res.status).toBe(202);
  const v = (await waitForStatus(agent, id, SETTLED, 240_000)) as unknown as View;
  expect(v.status).toBe('ready');
  return `next job ${v.status}`;
}

describe('the Docker engine restarts under a job', () => {
  it('while the job pulls the cache image', async () => {
    await faultRow(
      {
        fault: 'Docker engine restarted while pulling',
        expected:
          'ready from the exact image once the engine is back (named by digest, or through the exact tag; never the cut pull); next job ready',
      },
      async () => {
        const run = runId('dkpull');
        const ids = [`${run}-seed`, `${run}-ws`, `${run}-next`];
        cleanups.push({ run, ids });
        const repo = await makeRepo('small', { runId: run, baseImage: tb.baseImage, owner: 'acme', name: `dkpull-${run}` });
        const agent = await startAgent(await testEnv(tb.baseImage), { token: suiteSecrets().apiToken });
        agents.push(agent);
        const namespace = `warmstart-test/${run}`;
        const creds = { username: tb.registryUser, password: tb.registryPassword };

        // Seed the cache, then make the node cold again.
        expect((await post(agent, { id: ids[0], repository: repo, cache: { registry: `${tb.registry}/${namespace}`, ...creds } })).status).toBe(202);
        await waitForStatus(agent, ids[0]!, ['ready'], 240_000);
        await until(
          'the seed push',
          async () => ((await (await agent.request(`/v1/workspaces/${ids[0]}`)).json()) as View).push?.status === 'pushed',
          120_000,
        );
        expect((await agent.request(`/v1/workspaces/${ids[0]}`, { method: 'DELETE' })).ok).toBe(true);
        await wipeImages(run);

        // The pull goes through a proxy that holds it to 200 kB/s: the 12 MB layer takes a minute.
        const proxy = await startThrottleProxy({ upstream: tb.registry, bytesPerSecond: 200_000, direction: 'down', maxLifetimeMs: 280_000 });
        proxies.push(proxy);
        expect((await post(agent, { id: ids[1], repository: repo, cache: { registry: `${proxy.host}/${namespace}`, ...creds } })).status).toBe(202);
        await until(
          'the pull to start',
          async () => (await events(agent, ids[1]!)).some((e) => e.type === 'phase-start' && /^pull/.test(e.phase ?? '')),
          120_000,
        );
        await sleep(2_000); // bytes are flowing
        const pulling = (await events(agent, ids[1]!)).filter((e) => e.type === 'phase-start' && /^pull/.test(e.phase ?? '')).map((e) => e.phase);
        const away = await restartDockerd();

        const v = (await waitForStatus(agent, ids[1]!, SETTLED, 240_000)) as unknown as View;
        const outcome = describeOutcome(v);
        // The moving tag is the exact image. Either `up` had already started on
        // it by digest (cache-phase.ts movingAsExact) and the CLI's own pull of
        // that digest brought it once the engine was back, or the cut pull made
        // the agent take it through the exact tag: ready from the exact image
        // either way, without building.
        expect(v.status).toBe('ready');
        expect(v.profile).toBe('devcontainer');
        expect(v.cache?.hit).toBe('exact');
        const evs = await events(agent, ids[1]!);
        const byDigest = evs.some((e) => (e.text ?? '').includes('the moving image is the exact image for this key'));
        const byTag = evs.some((e) => e.type === 'phase-start' && e.phase === 'pull-exact');
        expect(byDigest || byTag).toBe(true);
        expect(evs.some((e) => e.type === 'phase-start' && e.phase === 'up')).toBe(true);
        const inv = await agentInvariants(agent, [ids[1]!], v.status === 'failed' ? [] : [`warmstart-ws-${ids[1]}`]);
        const next = await nextJobReady(agent, ids[2]!, repo);
        return `restart during ${pulling.join('+')} (engine away ${(away / 1000).toFixed(1)} s): ${outcome} (${byDigest ? 'the moving image by digest' : 'through the exact tag'}); ${next}; ${inv}`;
      },
    );
  });

  it('while devcontainer up builds', async () => {
    await faultRow(
      {
        fault: 'Docker engine restarted while building',
        expected: 'recovery DEVCONTAINER_UP_FAILED (the build was cut), no build container left; next job ready',
      },
      async () => {
        const run = runId('dkbuild');
        const ids = [`${run}-ws`, `${run}-next`];
        cleanups.push({ run, ids });
        const repo = await makeRepo(
          {
            '.devcontainer/devcontainer.json': '{ "build": { "dockerfile": "Dockerfile" }, "remoteUser": "root" }\n',
            '.devcontainer/Dockerfile':
              'FROM @@BASE_IMAGE@@\nLABEL warmstart.test-run=@@RUN_ID@@\nRUN echo slow-step-begins && sleep 20 && echo built > /built\n',
          },
          { runId: run, baseImage: tb.baseImage, owner: 'acme', name: `dkbuild-${run}` },
        );
        const agent = await startAgent(await testEnv(tb.baseImage), { token: suiteSecrets().apiToken });
        agents.push(agent);

        expect((await post(agent, { id: ids[0], repository: repo })).status).toBe(202);
        await until(
          'the build to reach its slow step',
          async () => (await events(agent, ids[0]!)).some((e) => e.type === 'log' && /slow-step-begins/.test(e.text ?? '')),
          120_000,
        );
        const away = await restartDockerd();

        const v = (await waitForStatus(agent, ids[0]!, SETTLED, 240_000)) as unknown as View;
        const outcome = describeOutcome(v);
        // The build was cut off: the default image starts once the engine is back.
        expect(v.status).toBe('recovery');
        expect(v.error?.code).toBe('DEVCONTAINER_UP_FAILED');
        // The classic builder's container for the cut-off RUN step must not outlive the job.
        const buildContainers = await containersWithLabel(`warmstart.test-run=${run}`);
        expect(buildContainers, 'containers of the cut-off build').toEqual([]);
        const inv = await agentInvariants(agent, [ids[0]!], v.status === 'failed' ? [] : [`warmstart-ws-${ids[0]}`]);
        const next = await nextJobReady(agent, ids[1]!, repo);
        return `engine away ${(away / 1000).toFixed(1)} s: ${outcome}; 0 build containers left; ${next}; ${inv}`;
      },
    );
  });
});
