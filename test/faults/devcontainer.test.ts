import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { containersWithLabel, readFromVolume, volumeExists } from '../support/docker.js';
import {
  cleanUpScenarios,
  describeView,
  eventsOf,
  scenario,
  settled,
  startSuiteAgent,
  submit,
  type Scenario,
  type View,
} from '../support/fault-jobs.js';
import { faultRow } from '../support/faults.js';
import { agentInvariants } from '../support/invariants.js';
import type { Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';

/**
 * Faults of the devcontainers CLI and of the repository's config, against a
 * running agent: a build that fails, a build that hangs past the build
 * timeout, a CLI that dies after creating the container without printing its
 * result, and a repository with no config at all. A failing config gives a
 * `recovery` workspace on the default image, the build log in the volume,
 * and nothing of the failed attempt left running.
 */
const tb = loadTestbed();
const LOG = '.devcontainer-build-error.log';
const NO_RESULT_CLI = fileURLToPath(new URL('../fixtures/fault-cli/no-result/devcontainer.js', import.meta.url));
const scenarios: Scenario[] = [];
const agents: Agent[] = [];

async function agentWith(env: Record<string, string> = {}): Promise<Agent> {
  const a = await startSuiteAgent(tb, env);
  agents.push(a);
  return a;
}

/** One agent with the default settings serves the rows that need nothing else. */
let plain: Promise<Agent> | null = null;
const plainAgent = (): Promise<Agent> => (plain ??= agentWith());

/** A config built from a Dockerfile of the base image with `run` as its one step. */
function dockerfileRepo(run: string): Record<string, string> {
  return {
    '.devcontainer/devcontainer.json': '{ "build": { "dockerfile": "Dockerfile" }, "remoteUser": "root" }\n',
    '.devcontainer/Dockerfile': `FROM @@BASE_IMAGE@@\nLABEL warmstart.test-run=@@RUN_ID@@\nRUN ${run}\n`,
  };
}

async function newScenario(prefix: string, source: string | Record<string, string>): Promise<Scenario> {
  const s = await scenario(tb, prefix, source);
  scenarios.push(s);
  return s;
}

/** A job for the scenario's repository with the testbed registry as its cache (so a push would happen). */
async function job(a: Agent, s: Scenario, id: string): Promise<void> {
  s.ids.push(id);
  await submit(a, {
    id,
    repository: s.repo,
    cache: { registry: `${tb.registry}/${s.namespace}`, username: tb.registryUser, password: tb.registryPassword },
  });
}

interface Inspect {
  Config: { Image: string; Labels: Record<string, string> };
  State: { Running: boolean };
  Mounts: { Type: string; Name?: string }[];
}

async function inspect(id: string): Promise<Inspect> {
  return (JSON.parse(String((await execa('docker', ['inspect', id])).stdout)) as Inspect[])[0]!;
}

/** The recovery container: running, the default image, the workspace volume, the only one of the workspace. */
async function expectRecoveryContainer(v: View, id: string): Promise<void> {
  expect(v.status, JSON.stringify(v)).toBe('recovery');
  expect(v.profile).toBe('recovery');
  const c = await inspect(v.containerId!);
  expect(c.State.Running).toBe(true);
  expect(c.Config.Image).toBe(tb.baseImage);
  expect(c.Config.Labels['warmstart.profile']).toBe('recovery');
  expect(c.Mounts).toContainEqual(expect.objectContaining({ Type: 'volume', Name: `warmstart-ws-${id}` }));
  expect(await containersWithLabel(`warmstart.workspace=${id}`)).toEqual([v.containerId!.slice(0, 12)]);
  // Recovery never pushes, although the registry and its credentials were fine.
  expect(v.push?.status).toBe('skipped');
}

/** Host processes whose command line names the workspace (the CLI, its docker build, ...). */
async function processesOf(id: string): Promise<string[]> {
  const out: string[] = [];
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid) || Number(pid) === process.pid) continue;
    const argv = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (argv.includes(id)) out.push(`${pid} ${argv.split('\0').join(' ').slice(0, 120)}`);
  }
  return out;
}

/** Container create/destroy events of the workspace between two moments (unix seconds). */
async function containerEvents(id: string, since: number): Promise<{ action: string; container: string }[]> {
  const r = await execa('docker', [
    'events',
    '--since',
    String(since),
    '--until',
    String(Math.ceil(Date.now() / 1000) + 1),
    '--filter',
    'type=container',
    '--filter',
    `label=warmstart.workspace=${id}`,
    '--format',
    '{{.Action}} {{.Actor.ID}}',
  ]);
  return String(r.stdout)
    .split('\n')
    .filter(Boolean)
    .map((l) => ({ action: l.split(' ')[0]!, container: l.split(' ')[1]! }));
}

afterAll(async () => {
  for (const a of agents) await a.term();
  await cleanUpScenarios(scenarios);
});

describe('fault matrix: the devcontainers CLI and the repository config', () => {
  it('devcontainer up failing', async () => {
    await faultRow(
      {
        fault: 'devcontainer up fails (a Dockerfile RUN exits 3)',
        expected: 'recovery DEVCONTAINER_UP_FAILED, build log in the volume, no build container left, no push',
      },
      async () => {
        const agent = await plainAgent();
        const s = await newScenario('fupfail', 'broken-build');
        const id = `${s.run}-ws`;
        await job(agent, s, id);
        const v = await settled(agent, id);
        await expectRecoveryContainer(v, id);
        expect(v.error?.code).toBe('DEVCONTAINER_UP_FAILED');
        const log = await readFromVolume(`warmstart-ws-${id}`, LOG, tb.baseImage);
        expect(log).toContain('error: DEVCONTAINER_UP_FAILED');
        expect(log).toContain('fatal: toolchain-compile-error-7731');
        // The failed RUN step's container went with the build.
        expect(await containersWithLabel(`warmstart.test-run=${s.run}`)).toEqual([]);
        const invariants = await agentInvariants(agent, [id], [`warmstart-ws-${id}`]);
        return `${describeView(v)}; ${LOG} in the volume with the RUN's error; 0 build containers; ${invariants}`;
      },
    );
  });

  it('devcontainer up hanging past the build timeout', async () => {
    await faultRow(
      {
        fault: 'devcontainer up hangs (RUN sleep 600) past WARMSTART_BUILD_TIMEOUT_SECONDS=8',
        expected: 'CLI killed; recovery DEVCONTAINER_UP_TIMEOUT; no CLI process or build container left; volume kept',
      },
      async () => {
        const agent = await agentWith({ WARMSTART_BUILD_TIMEOUT_SECONDS: '8' });
        const s = await newScenario('fuphang', dockerfileRepo('echo "resolving dependencies" && sleep 600'));
        const id = `${s.run}-ws`;
        await job(agent, s, id);
        const v = await settled(agent, id);
        await expectRecoveryContainer(v, id);
        expect(v.error?.code).toBe('DEVCONTAINER_UP_TIMEOUT');
        expect(v.error?.message).toMatch(/8 s/);
        // The build did reach the hanging step before it was stopped.
        const events = await eventsOf(agent, id);
        expect(events.some((e) => e.type === 'log' && /resolving dependencies/.test(e.text ?? ''))).toBe(true);
        expect(v.timings.up).toBeGreaterThanOrEqual(8000);
        const log = await readFromVolume(`warmstart-ws-${id}`, LOG, tb.baseImage);
        expect(log).toContain('error: DEVCONTAINER_UP_TIMEOUT');
        // Neither the CLI nor its docker build is left, and the step's container went too.
        expect(await processesOf(id)).toEqual([]);
        expect(await containersWithLabel(`warmstart.test-run=${s.run}`)).toEqual([]);
        expect(await volumeExists(`warmstart-ws-${id}`)).toBe(true);
        const invariants = await agentInvariants(agent, [id], [`warmstart-ws-${id}`]);
        return `${describeView(v)} after up ${v.timings.up} ms; 0 processes, 0 build containers left; ${invariants}`;
      },
    );
  });

  it('devcontainer up printing no result', async () => {
    await faultRow(
      {
        fault: 'devcontainer CLI dies after creating the container, no JSON result (WARMSTART_DEVCONTAINER_CLI wrapper)',
        expected: "recovery DEVCONTAINER_NO_RESULT; the CLI's container removed, replaced by the recovery container",
      },
      async () => {
        const agent = await agentWith({ WARMSTART_DEVCONTAINER_CLI: NO_RESULT_CLI });
        const s = await newScenario('fnoresult', dockerfileRepo('echo built > /built'));
        const id = `${s.run}-ws`;
        const since = Math.floor(Date.now() / 1000) - 1;
        await job(agent, s, id);
        const v = await settled(agent, id);
        await expectRecoveryContainer(v, id);
        expect(v.error?.code).toBe('DEVCONTAINER_NO_RESULT');
        // The real CLI did create and start its container; the agent removed it before starting the recovery one.
        const seen = await containerEvents(id, since);
        const created = [...new Set(seen.filter((e) => e.action === 'create').map((e) => e.container))];
        const cliContainers = created.filter((c) => c !== v.containerId);
        expect(cliContainers.length, JSON.stringify(seen)).toBe(1);
        expect(seen.some((e) => e.action === 'start' && e.container === cliContainers[0])).toBe(true);
        expect(seen.some((e) => e.action === 'destroy' && e.container === cliContainers[0])).toBe(true);
        expect(created).toContain(v.containerId);
        const log = await readFromVolume(`warmstart-ws-${id}`, LOG, tb.baseImage);
        expect(log).toContain('error: DEVCONTAINER_NO_RESULT');
        expect(await processesOf(id)).toEqual([]);
        const invariants = await agentInvariants(agent, [id], [`warmstart-ws-${id}`]);
        return `${describeView(v)}; CLI container ${cliContainers[0]!.slice(0, 12)} created, started, removed; ${invariants}`;
      },
    );
  });

  it('a repository without a devcontainer config', async () => {
    await faultRow(
      {
        fault: 'repository without a devcontainer config',
        expected: 'ready, profile lightweight, default image, cache disabled with reason, no push',
      },
      async () => {
        const agent = await plainAgent();
        const s = await newScenario('fnoconf', 'no-config');
        const id = `${s.run}-ws`;
        await job(agent, s, id);
        const v = await settled(agent, id);
        expect(v.status, JSON.stringify(v)).toBe('ready');
        expect(v.profile).toBe('lightweight');
        expect(v.error).toBeNull();
        expect((await inspect(v.containerId!)).Config.Image).toBe(tb.baseImage);
        expect(v.cache?.hit).toBe('disabled');
        expect(v.cache?.reason).toMatch(/no devcontainer config/);
        expect(v.push?.status).toBe('skipped');
        expect(await readFromVolume(`warmstart-ws-${id}`, 'README.md', tb.baseImage)).toContain('No dev container config');
        const invariants = await agentInvariants(agent, [id], [`warmstart-ws-${id}`]);
        return `${describeView(v)}; image ${tb.baseImage}; ${invariants}`;
      },
    );
  });
});
