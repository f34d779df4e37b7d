import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containersWithLabel, volumeExists } from '../support/docker.js';
import { cleanUpScenarios, describeView, eventsOf, scenario, settled, startSuiteAgent, submit, type Scenario } from '../support/fault-jobs.js';
import { faultRow, suiteSecrets } from '../support/faults.js';
import { addBareRepo, GIT_HTTP_USER, startGitHttpsServer, type GitHttpsServer } from '../support/git-https-server.js';
import { agentInvariants } from '../support/invariants.js';
import { fakeToken, needlesFor, placesFromTree, scan, type Place } from '../support/secret-scan.js';
import type { Agent } from '../support/serve.js';
import { loadTestbed } from '../support/testbed.js';
import { expectedCacheRef } from '../support/cache-ref.js';

/**
 * Clone faults against a running agent, through a real HTTPS git server that
 * wants the suite's git token: a repository that does not exist, a wrong
 * token, and the good clone beside them. A clone that fails fails the
 * workspace (there is nothing to build) but creates nothing: no volume, no
 * container, no host clone, and a refused token is printed nowhere.
 */
const tb = loadTestbed();
const OWNER = 'acme';
const scenarios: Scenario[] = [];
let server: GitHttpsServer;
let agent: Agent;
let s: Scenario;

beforeAll(async () => {
  s = await scenario(
    tb,
    'fgit',
    {
      '.devcontainer/devcontainer.json': '{ "build": { "dockerfile": "Dockerfile" }, "remoteUser": "root" }\n',
      '.devcontainer/Dockerfile': 'FROM @@BASE_IMAGE@@\nLABEL warmstart.test-run=@@RUN_ID@@\nRUN echo cloned > /built\n',
    },
    { owner: OWNER, name: 'service' },
  );
  scenarios.push(s);
  const projectRoot = await mkdtemp(join(tmpdir(), 'warmstart-git-root-'));
  await addBareRepo(s.repo, projectRoot, OWNER, 'service');
  server = await startGitHttpsServer({ projectRoot, token: suiteSecrets().gitToken });
  agent = await startSuiteAgent(tb, { GIT_SSL_CAINFO: server.caFile });
});

afterAll(async () => {
  await agent?.term();
  await server?.close();
  await cleanUpScenarios(scenarios);
});

/** A job cloning `<server>/acme/<name>.git` with `gitToken`, the testbed registry as its cache. */
async function job(id: string, name: string, gitToken: string): Promise<void> {
  s.ids.push(id);
  await submit(agent, {
    id,
    repository: `${server.url}/${OWNER}/${name}.git`,
    gitToken,
    cache: { registry: `${tb.registry}/${s.namespace}`, username: tb.registryUser, password: tb.registryPassword },
  });
}

/** What a failed clone must not leave: a volume, a container, a host clone, a job dir with secrets in it. */
async function expectNothingLeft(id: string): Promise<string> {
  expect(await volumeExists(`warmstart-ws-${id}`)).toBe(false);
  expect(await containersWithLabel(`warmstart.workspace=${id}`)).toEqual([]);
  const wsDir = join(agent.env.WARMSTART_STATE_DIR!, 'workspaces', id);
  const kept = await readdir(wsDir);
  expect(kept.filter((f) => f.startsWith('src'))).toEqual([]);
  const jobDirs = (await readdir(agent.env.WARMSTART_RUNTIME_DIR!)).filter((f) => f.startsWith('job-'));
  expect(jobDirs).toEqual([]);
  return `no volume, container, host clone or job dir (kept: ${kept.sort().join(', ')})`;
}

describe('fault matrix: git', () => {
  it('clone of a repository that does not exist', async () => {
    await faultRow({ fault: 'git clone of a missing repository (right token)', expected: 'failed GIT_CLONE_FAILED, nothing created' }, async () => {
      const id = `${s.run}-missing`;
      const from = server.requests.length;
      await job(id, 'no-such-repo', suiteSecrets().gitToken);
      const v = await settled(agent, id);
      expect(v.status, JSON.stringify(v)).toBe('failed');
      expect(v.error?.code).toBe('GIT_CLONE_FAILED');
      expect(v.error?.detail).toMatch(/not found/i);
      expect(v.containerId).toBeNull();
      expect(v.push?.status).toBe('skipped');
      // The server was asked, with the right token, and had nothing.
      const seen = server.requests.slice(from);
      expect(seen.some((r) => r.auth === 'ok' && r.status === 404)).toBe(true);
      const left = await expectNothingLeft(id);
      const invariants = await agentInvariants(agent, [id]);
      return `${describeView(v)}; ${left}; ${invariants}`;
    });
  });

  it('clone with a wrong token', async () => {
    await faultRow(
      { fault: 'git clone with a wrong token', expected: 'failed GIT_CLONE_FAILED, nothing created, the wrong token printed nowhere' },
      async () => {
        const id = `${s.run}-wrong`;
        const wrong = fakeToken();
        const from = server.requests.length;
        await job(id, 'service', wrong);
        const v = await settled(agent, id);
        expect(v.status, JSON.stringify(v)).toBe('failed');
        expect(v.error?.code).toBe('GIT_CLONE_FAILED');
        expect(v.error?.detail).toMatch(/Authentication failed/i);
        const seen = server.requests.slice(from);
        expect(seen.some((r) => r.auth === 'wrong')).toBe(true); // git did present it
        expect(seen.filter((r) => r.auth === 'ok')).toEqual([]);
        const left = await expectNothingLeft(id);

        // Everything the agent said and wrote: its log, the job's view and events, its state and runtime dirs.
        const scratch = await mkdtemp(join(tmpdir(), 'warmstart-scan-'));
        const events = await eventsOf(agent, id);
        expect(events.some((e) => e.type === 'outcome')).toBe(true);
        const places: Place[] = [
          { name: 'agent output', bytes: Buffer.from(agent.output()) },
          { name: 'view', bytes: Buffer.from(JSON.stringify(v)) },
          { name: 'events', bytes: Buffer.from(JSON.stringify(events)) },
          ...(await placesFromTree(agent.env.WARMSTART_STATE_DIR!, 'state/', scratch)),
          ...(await placesFromTree(agent.env.WARMSTART_RUNTIME_DIR!, 'runtime/', scratch)),
        ];
        expect(places.some((p) => p.name === `state/workspaces/${id}/events.ndjson`)).toBe(true);
        expect(scan(places, needlesFor('wrong git token', wrong, GIT_HTTP_USER))).toEqual([]);
        const invariants = await agentInvariants(agent, [id]);
        return `${describeView(v)}; server saw the wrong token, 401; ${left}; wrong token in none of ${places.length} places; ${invariants}`;
      },
    );
  });

  it('clone with the right token', async () => {
    await faultRow(
      { fault: 'none: clone over HTTPS with the right token (beside the faults above)', expected: 'ready with own container, cache pushed' },
      async () => {
        const id = `${s.run}-good`;
        const from = server.requests.length;
        await job(id, 'service', suiteSecrets().gitToken);
        const v = await settled(agent, id);
        expect(v.status, JSON.stringify(v)).toBe('ready');
        expect(v.profile).toBe('devcontainer');
        expect(v.push?.status, JSON.stringify(v.push)).toBe('pushed');
        expect(v.push?.ref).toBe(expectedCacheRef(`${tb.registry}/${s.namespace}`, `${server.url}/${OWNER}/service.git`));
        s.refs.push(v.push!.ref!);
        expect(server.requests.slice(from).some((r) => r.auth === 'ok' && r.method === 'POST' && r.status === 200)).toBe(true);
        const invariants = await agentInvariants(agent, [id], [`warmstart-ws-${id}`]);
        return `${describeView(v)}; ${invariants}`;
      },
    );
  });
});
