/**
 * Attack 7a: a registry answers the push probe's upload POST with a Location
 * on another host, and the probe's cancel (DELETE) used to carry the
 * credentials there. Two stand-in servers on loopback: the registry (Basic
 * auth; a job brings its own credentials for it) and the other host. The
 * other host must see nothing; an upload on the registry itself is still
 * cancelled, with the credentials. The workspaces are ready either way.
 */
import type { ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../support/cli.js';
import { cleanUp } from '../support/docker.js';
import { makeRepo, runId } from '../support/repos.js';
import { startAgent, waitForStatus, type Agent } from '../support/serve.js';
import { startStandin, type RecordedRequest, type Standin } from '../support/standin.js';
import { loadTestbed } from '../support/testbed.js';

const tb = loadTestbed();
const run = runId('secredir');
const PASSWORD = `job-registry-pw-${run}`;
const ids = { away: `${run}-away`, same: `${run}-same` };

describe('attack 7a: an upload Location on another host gets no credentials', () => {
  let agent: Agent;
  let other: Standin;
  let registry: Standin;
  let repo: string;

  beforeAll(async () => {
    other = await startStandin();
    registry = await startStandin((req: RecordedRequest, res: ServerResponse) => {
      if (!req.headers.authorization) {
        res.writeHead(401, { 'www-authenticate': 'Basic realm="registry"', 'docker-distribution-api-version': 'registry/2.0' }).end();
      } else if (req.method === 'POST' && /\/blobs\/uploads\/$/.test(req.url.split('?')[0]!)) {
        const away = req.url.startsWith('/v2/away/');
        res.writeHead(202, { location: away ? `${other.url}/v2/upload/u1` : '/v2/same/acme/app/blobs/uploads/u2' }).end();
      } else if (req.method === 'DELETE') res.writeHead(204).end();
      else res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}');
    });
    // An image-based config: nothing is built or pushed, but the push probe runs.
    repo = await makeRepo(
      { '.devcontainer/devcontainer.json': JSON.stringify({ image: tb.baseImage, remoteUser: 'root' }) },
      {
        runId: run,
        baseImage: tb.baseImage,
        owner: 'acme',
        name: 'app',
      },
    );
    agent = await startAgent(await testEnv(tb.baseImage));
  });

  afterAll(async () => {
    await agent?.term();
    await registry?.close();
    await other?.close();
    await cleanUp({ runId: run, workspaceIds: Object.values(ids) });
  });

  async function prepareAndProbe(id: string, namespace: string): Promise<RecordedRequest[]> {
    const from = registry.requests.length;
    const r = await agent.request('/v1/workspaces', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id, repository: repo, cache: { registry: `${registry.host}/${namespace}`, username: 'ci', password: PASSWORD } }),
    });
    expect(r.status, await r.clone().text()).toBe(202);
    const view = (await waitForStatus(agent, id, ['ready', 'recovery', 'failed'])) as { status: string; profile: string };
    expect(view).toMatchObject({ status: 'ready', profile: 'devcontainer' });
    // The probe runs beside the job: wait for its POST, then give a cancel time to go out.
    const deadline = Date.now() + 30_000;
    while (!registry.requests.slice(from).some((q) => q.method === 'POST' && q.headers.authorization) && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 100));
    }
    await new Promise((res) => setTimeout(res, 1000));
    return registry.requests.slice(from);
  }

  it('the other host sees no request, no Authorization, no password', async () => {
    const seen = await prepareAndProbe(ids.away, 'away');
    // The registry really got the authenticated upload POST whose Location points away.
    expect(seen.some((q) => q.method === 'POST' && q.headers.authorization?.startsWith('Basic '))).toBe(true);
    expect(other.requests.filter((q) => q.headers.authorization !== undefined)).toEqual([]);
    expect(other.saw(PASSWORD)).toBe(false);
    expect(other.requests).toEqual([]);
    console.log(`[attack 7a] registry: ${seen.length} requests; other host: ${other.requests.length} requests`);
  });

  it('an upload on the registry itself is still cancelled, with the credentials', async () => {
    const seen = await prepareAndProbe(ids.same, 'same');
    const del = seen.find((q) => q.method === 'DELETE');
    expect(del?.url).toBe('/v2/same/acme/app/blobs/uploads/u2');
    expect(del?.headers.authorization?.startsWith('Basic ')).toBe(true);
    expect(other.requests).toEqual([]);
  });
});
