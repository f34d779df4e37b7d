/**
 * `/v1/machines`, `/v1/images`, their jobs and the snapshot routes of a real
 * `warmstart serve` over HTTP, on the real engine and registry: machine up
 * (docker backend) miss then hit as accepted jobs; a golden image made and
 * pushed as a job (202 at once, then done, the phases in its events, the
 * image in the registry); an image job the credential audit refuses ends
 * `failed` with its code; the one error shape for 400 / 401 / 404 / 409 /
 * 501; delete. The LXD side (provisioning, snapshots, a restart in the
 * middle of a job): machines-lxd.test.ts. Everything this run makes is named
 * with its own prefix.
 */
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../../support/cli.js';
import { cleanUp } from '../../support/docker.js';
import { acceptedJob, followJob, shortly, waitForJob } from '../../support/jobs.js';
import { makeRepo, runId } from '../../support/repos.js';
import { startAgent, waitForStatus, type Agent } from '../../support/serve.js';
import { loadTestbed } from '../../support/testbed.js';

const tb = loadTestbed();
const run = runId('dmach');
const names = { a: `${run}-a`, b: `${run}-b` };
const workspaces = { clean: `${run}-ws`, leaky: `${run}-leaky` };
const registryPath = `${tb.openRegistry}/warmstart-test/${run}`;
const image = `${run}-img`;

interface UpJson {
  instance: string;
  cache: 'hit' | 'miss';
  key: string;
  ms: number;
}

const post = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('warmstart serve: machines, images and snapshots over HTTP (docker backend)', () => {
  let agent: Agent;
  const keys = new Set<string>();
  const up = (name: string) =>
    agent.request(
      '/v1/machines',
      post({
        backend: 'docker',
        name,
        base: tb.baseImage,
        provision: `#!/bin/sh\nset -e\necho "provisioned ${run}" > /provisioned.txt\n`,
        files: [{ path: '/etc/tool.cfg', content: Buffer.from('setting=1\n').toString('base64') }],
      }),
    );
  const exec = async (name: string, cmd: string) => String((await execa('docker', ['exec', name, 'sh', '-c', cmd])).stdout).trim();

  beforeAll(async () => {
    agent = await startAgent(await testEnv(tb.baseImage, { WARMSTART_CACHE_REGISTRY: registryPath }));
  });
  afterAll(async () => {
    await agent?.term();
    for (const name of Object.values(names)) await execa('docker', ['rm', '-f', name], { reject: false });
    for (const key of keys) await execa('docker', ['rmi', '-f', `warmstart-cache-${key.slice(0, 16)}`], { reject: false });
    await cleanUp({
      runId: run,
      workspaceIds: Object.values(workspaces),
      refs: [`warmstart-golden/${image}:latest`, `warmstart-golden/${run}-leak:latest`, `${registryPath}/golden/${image}:latest`],
    });
  });

  it('POST /v1/machines: 202 and a job that ends done, miss then hit, with the provisioned and copied files in the new machine', async () => {
    const first = await acceptedJob(await up(names.a));
    const a = (await waitForJob(agent, first.id)).result as UpJson;
    keys.add(a.key);
    expect(a).toMatchObject({ instance: names.a, cache: 'miss' });
    expect(a.key).toMatch(/^[0-9a-f]{64}$/);
    expect((await followJob(agent, first.id)).events.map(shortly).filter((e) => e.startsWith('phase-end'))).toEqual([
      'phase-end lookup ok',
      'phase-end launch ok',
      'phase-end files ok',
      'phase-end provision ok',
      'phase-end capture ok',
      'phase-end post-launch ok',
    ]);

    const second = await waitForJob(agent, (await acceptedJob(await up(names.b))).id);
    expect(second).toMatchObject({ status: 'done', result: { instance: names.b, cache: 'hit', key: a.key } });
    expect(await exec(names.b, 'cat /provisioned.txt /etc/tool.cfg')).toBe(`provisioned ${run}\nsetting=1`);
    expect(await exec(names.b, 'cat /etc/warmstart/machine.json')).toContain(names.b);

    const machines = (await (await agent.request('/v1/machines?backend=docker')).json()) as { machines: unknown[] };
    expect(machines.machines).toContainEqual({ name: names.a, state: 'running' });
    expect(machines.machines).toContainEqual({ name: names.b, state: 'running' });
    const cache = (await (await agent.request('/v1/machines/cache?backend=docker')).json()) as { images: { name: string }[] };
    expect(cache.images.map((i) => i.name)).toContain(`warmstart-cache-${a.key.slice(0, 16)}`);
  });

  it('the same auth and error shape: 401, 400 with validations, 409 for a taken name, 501 for snapshots on docker (new and deprecated routes)', async () => {
    const noToken = await agent.request('/v1/machines?backend=docker', { auth: null });
    expect(noToken.status).toBe(401);
    expect(noToken.headers.get('www-authenticate')).toBe('Bearer');
    expect(await noToken.json()).toEqual({ code: 'UNAUTHENTICATED', message: 'a bearer token is required' });

    const bad = await agent.request('/v1/machines', post({ backend: 'vmware', name: 'Bad_Name', base: tb.baseImage, extra: 1 }));
    expect(bad.status).toBe(400);
    const body = (await bad.json()) as { code: string; validations: { field: string }[] };
    expect(body.code).toBe('INVALID_REQUEST');
    expect(body.validations.map((v) => v.field).sort()).toEqual(['backend', 'extra', 'name']);

    const taken = await up(names.a);
    expect(taken.status).toBe(409);
    expect(await taken.json()).toMatchObject({ code: 'BACKEND_PRECONDITION' });

    const snap = await agent.request(`/v1/machines/${names.a}/snapshots?backend=docker`, post({ name: 'before' }));
    expect(snap.status).toBe(501);
    expect(await snap.json()).toMatchObject({ code: 'BACKEND_UNSUPPORTED', message: expect.stringMatching(/Docker cannot save or restore/) });
    expect((await agent.request(`/v1/machines/${names.a}/snapshots?backend=docker`)).status).toBe(501);
    const old = await agent.request('/v1/snapshots', post({ backend: 'docker', machine: names.a, name: 'before' }));
    expect(old.status).toBe(501);
    expect(old.headers.get('deprecation')).toBe('true');
  });

  it('/v1/images: list 200, delete of an unknown image 404, a bad name 400, an unknown workspace 404: all before any job', async () => {
    const list = await agent.request('/v1/images');
    expect(list.status).toBe(200);
    expect(await list.json()).toEqual({ images: expect.any(Array) });
    const gone = await agent.request(`/v1/images/${run}-none?tag=v1`, { method: 'DELETE' });
    expect(gone.status).toBe(404);
    expect(await gone.json()).toMatchObject({ code: 'IMAGE_NOT_FOUND' });
    const bad = await agent.request('/v1/images', post({ workspaceId: `${run}-ws`, name: 'A' }));
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'INVALID_IMAGE_NAME' });
    const none = await agent.request('/v1/images', post({ workspaceId: `${run}-nows`, name: `${run}-x` }));
    expect(none.status).toBe(404);
    expect(await none.json()).toMatchObject({ code: 'WORKSPACE_NOT_FOUND' });
  });

  it('POST /v1/images with push: 202 at once, then done with the pushed image; its events show audit, commit and push', async () => {
    const repo = await makeRepo(
      { 'README.md': `golden ${run}\n`, '.git-credentials': 'https://x:not-a-real-token@git.invalid\n' },
      {
        runId: run,
        baseImage: tb.baseImage,
        name: 'golden-job',
      },
    );
    for (const id of Object.values(workspaces)) {
      const r = await agent.request('/v1/workspaces', post({ id, repository: repo, lightweight: true }));
      expect(r.status, await r.clone().text()).toBe(202);
    }
    for (const id of Object.values(workspaces)) await waitForStatus(agent, id, ['ready']);

    const t0 = performance.now();
    const res = await agent.request('/v1/images', post({ workspaceId: workspaces.clean, name: image, push: true, capabilities: ['node'] }));
    const acceptMs = Math.round(performance.now() - t0);
    const job = await acceptedJob(res);
    expect(job).toMatchObject({
      kind: 'image',
      request: { workspaceId: workspaces.clean, name: image, tag: 'latest', push: true, withWorkspace: false },
    });
    const { events } = await followJob(agent, job.id);
    const done = await waitForJob(agent, job.id);
    const doneMs = Math.round(performance.now() - t0);
    expect(events.map(shortly)).toEqual([
      'status running',
      'phase-start audit',
      'phase-end audit ok',
      'phase-start commit',
      'phase-end commit ok',
      'phase-start push',
      'phase-end push ok',
      'push pushed',
      'status done',
    ]);
    expect(done).toMatchObject({
      status: 'done',
      error: null,
      result: {
        workspaceId: workspaces.clean,
        image: { ref: `warmstart-golden/${image}:latest`, capabilities: expect.arrayContaining(['custom:node']) },
        push: { status: 'pushed', ref: `${registryPath}/golden/${image}:latest` },
      },
    });
    const manifest = await fetch(`http://${tb.openRegistry}/v2/warmstart-test/${run}/golden/${image}/manifests/latest`, {
      headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
    });
    expect(manifest.status).toBe(200);
    console.log(`image job with push: 202 in ${acceptMs} ms, done in ${doneMs} ms`);
  });

  it('an image job the credential audit refuses (the repository holds .git-credentials) ends failed with BACKEND_PRECONDITION; no image is left', async () => {
    const job = await acceptedJob(
      await agent.request('/v1/images', post({ workspaceId: workspaces.leaky, name: `${run}-leak`, withWorkspace: true })),
    );
    const failed = await waitForJob(agent, job.id);
    expect(failed).toMatchObject({ status: 'failed', result: null, error: { code: 'BACKEND_PRECONDITION' } });
    expect(failed.error?.message).toContain('may hold a credential');
    expect(JSON.stringify(failed)).not.toContain('not-a-real-token');
    const last = (await followJob(agent, job.id)).events.at(-1);
    expect(last).toMatchObject({ type: 'status', status: 'failed', code: 'BACKEND_PRECONDITION' });
    const left = await execa('docker', ['image', 'ls', '-q', `warmstart-golden/${run}-leak`]);
    expect(String(left.stdout).trim()).toBe('');
  });

  it('DELETE /v1/machines/:name: 200, then 404 MACHINE_NOT_FOUND', async () => {
    const del = await agent.request(`/v1/machines/${names.a}?backend=docker`, { method: 'DELETE' });
    expect(del.status).toBe(200);
    expect(await del.json()).toEqual({ machine: names.a, deleted: true });
    const again = await agent.request(`/v1/machines/${names.a}?backend=docker`, { method: 'DELETE' });
    expect(again.status).toBe(404);
    expect(await again.json()).toMatchObject({ code: 'MACHINE_NOT_FOUND' });
    const machines = (await (await agent.request('/v1/machines?backend=docker')).json()) as { machines: { name: string }[] };
    expect(machines.machines.map((m) => m.name)).not.toContain(names.a);
  });
});
