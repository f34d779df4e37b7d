/**
 * Attack 6: callback URLs aimed at the node's own network. A stand-in
 * "internal service" on 127.0.0.1 records whatever reaches it; POSTs whose
 * callback points at it (directly, by `localhost`, by a mapped or numeric
 * form, with a `#` or `?` to swallow the path suffix), or at the metadata
 * address, are refused 400 INVALID_CALLBACK_URL with no workspace made, and
 * the stand-in sees nothing. A listed control-plane origin still gets its
 * ready callback at `<url>/workspaces/<id>/ready`, the suffix in the path.
 * Two real agents: one with WARMSTART_CALLBACK_ORIGINS set to the control
 * plane (the origin rule), one without it (the address rules).
 */
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../support/cli.js';
import { startControlPlane } from '../support/control-plane.js';
import { cleanUp } from '../support/docker.js';
import { makeRepo, runId } from '../support/repos.js';
import { startAgent, waitForStatus, type Agent } from '../support/serve.js';
import { startStandin, type Standin } from '../support/standin.js';
import { until } from '../support/wait.js';
import { loadTestbed } from '../support/testbed.js';

const tb = loadTestbed();
const run = runId('ssrf');
const CB_TOKEN = `cb-${run}-secret-token`;

let standin: Standin;
let cp: Awaited<ReturnType<typeof startControlPlane>>;
let listed: Agent;
let unlisted: Agent;
let repo: string;
const ids: string[] = [];

beforeAll(async () => {
  standin = await startStandin();
  cp = await startControlPlane();
  repo = await makeRepo(
    {
      '.devcontainer/devcontainer.json': '{ "build": { "dockerfile": "Dockerfile" }, "remoteUser": "root" }\n',
      '.devcontainer/Dockerfile': 'FROM @@BASE_IMAGE@@\nLABEL warmstart.test-run=@@RUN_ID@@\nRUN echo ssrf > /built\n',
    },
    { runId: run, baseImage: tb.baseImage, owner: 'acme', name: 'ssrf' },
  );
  listed = await startAgent(await testEnv(tb.baseImage), { env: { WARMSTART_CALLBACK_ORIGINS: cp.url } });
  unlisted = await startAgent(await testEnv(tb.baseImage), { env: { WARMSTART_CALLBACK_ORIGINS: '' } });
});

afterAll(async () => {
  await listed?.term();
  await unlisted?.term();
  await standin?.close();
  await cp?.close();
  await cleanUp({ runId: run, workspaceIds: ids });
});

async function post(agent: Agent, id: string, url: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await agent.request('/v1/workspaces', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id, repository: repo, lightweight: true, callback: { url, token: CB_TOKEN } }),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

async function workspaceDirs(agent: Agent): Promise<string[]> {
  return readdir(join(agent.env.WARMSTART_STATE_DIR!, 'workspaces')).catch(() => []);
}

describe('attack 6: callback URLs aimed at internal services', () => {
  it('refuses every internal target with 400 INVALID_CALLBACK_URL; nothing created, the stand-in sees no request', async () => {
    const port = standin.port;
    const cases: Array<[Agent, string]> = [
      // An agent with the control plane listed: anything else is outside the list.
      [listed, `${standin.url}/admin/reset`],
      [listed, `${standin.url}/admin/reset#`],
      [listed, `${standin.url}/admin/reset?`],
      [listed, `http://localhost:${port}/admin`],
      [listed, 'http://169.254.169.254/latest/meta-data/iam#'],
      // Listed, but a `#` or `?` would swallow the suffix.
      [listed, `${cp.url}/internal#`],
      [listed, `${cp.url}/internal?x=`],
      // No list: the address rules.
      [unlisted, `${standin.url}/admin/reset`],
      [unlisted, `${standin.url}/admin/reset#`],
      [unlisted, `${standin.url}/admin/reset?`],
      [unlisted, `http://localhost:${port}/admin`],
      [unlisted, `http://[::1]:${port}/admin`],
      [unlisted, `http://[::ffff:127.0.0.1]:${port}/admin`],
      [unlisted, `http://2130706433:${port}/admin`],
      [unlisted, 'http://169.254.169.254/latest/meta-data/iam'],
      [unlisted, `http://user:pw@example.com/cb`],
    ];
    const messages: string[] = [];
    for (const [n, [agent, url]] of cases.entries()) {
      const id = `${run}-r${n}`;
      ids.push(id);
      const res = await post(agent, id, url);
      expect({ status: res.status, code: res.body.code }, url).toEqual({ status: 400, code: 'INVALID_CALLBACK_URL' });
      expect(JSON.stringify(res.body)).not.toContain(CB_TOKEN);
      messages.push(String(res.body.message));
      expect((await agent.request(`/v1/workspaces/${id}`)).status, url).toBe(404);
    }
    expect(await workspaceDirs(listed)).toEqual([]);
    expect(await workspaceDirs(unlisted)).toEqual([]);
    // Give a wrongly queued callback time to go out.
    await new Promise((r) => setTimeout(r, 1_000));
    expect(standin.requests).toHaveLength(0);
    expect(cp.calls).toHaveLength(0);
    expect(listed.output() + unlisted.output()).not.toContain(CB_TOKEN);
    console.log(
      `callback SSRF: ${cases.length} refused 400, stand-in requests ${standin.requests.length}; reasons: ${[...new Set(messages)].join(' | ')}`,
    );
  });

  it('a listed control plane gets its ready callback with the path suffix intact', async () => {
    const id = `${run}-ok`;
    ids.push(id);
    const res = await post(listed, id, `${cp.url}/agent-api/v1/`);
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    const view = await waitForStatus(listed, id, ['ready', 'recovery', 'failed'], 240_000);
    expect(view.status).toBe('ready');
    const call = await until('the ready callback', async () => cp.calls.find((c) => c.answered === 200), 30_000, 50);
    expect(call.path).toBe(`/agent-api/v1/workspaces/${id}/ready`);
    expect(call.authorization).toBe(`Bearer ${CB_TOKEN}`);
    expect(standin.requests).toHaveLength(0);
    console.log(`callback delivered to ${call.path}`);
  });
});
