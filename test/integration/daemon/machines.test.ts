/**
 * `/v1/machines`, `/v1/snapshots`, `/v1/images` of a real `warmstart serve`
 * over HTTP, with the docker backend on the testbed's base image: machine up
 * miss then hit (the provisioned file and the copied file in the second
 * machine), list, cache list, the one error shape for 400 / 401 / 404 / 409 /
 * 501, and delete. Everything this run makes is named with its own prefix.
 */
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testEnv } from '../../support/cli.js';
import { runId } from '../../support/repos.js';
import { startAgent, type Agent } from '../../support/serve.js';
import { loadTestbed } from '../../support/testbed.js';

const tb = loadTestbed();
const run = runId('dmach');
const names = { a: `${run}-a`, b: `${run}-b` };

interface UpJson {
  instance: string;
  cache: 'hit' | 'miss';
  key: string;
  ms: number;
}

const post = (body: unknown): RequestInit => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('warmstart serve: machines, snapshots and images over HTTP (docker backend)', () => {
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
    agent = await startAgent(await testEnv(tb.baseImage));
  });
  afterAll(async () => {
    await agent?.term();
    for (const name of Object.values(names)) await execa('docker', ['rm', '-f', name], { reject: false });
    for (const key of keys) await execa('docker', ['rmi', '-f', `warmstart-cache-${key.slice(0, 16)}`], { reject: false });
  });

  it('POST /v1/machines: 201 miss, then 201 hit with the provisioned and copied files in the new machine', async () => {
    const first = await up(names.a);
    expect(first.status, await first.clone().text()).toBe(201);
    const a = (await first.json()) as UpJson;
    keys.add(a.key);
    expect(a).toMatchObject({ instance: names.a, cache: 'miss' });
    expect(a.key).toMatch(/^[0-9a-f]{64}$/);

    const second = await up(names.b);
    expect(second.status).toBe(201);
    expect(await second.json()).toMatchObject({ instance: names.b, cache: 'hit', key: a.key });
    expect(await exec(names.b, 'cat /provisioned.txt /etc/tool.cfg')).toBe(`provisioned ${run}\nsetting=1`);
    expect(await exec(names.b, 'cat /etc/warmstart/machine.json')).toContain(names.b);

    const machines = (await (await agent.request('/v1/machines?backend=docker')).json()) as { machines: unknown[] };
    expect(machines.machines).toContainEqual({ name: names.a, state: 'running' });
    expect(machines.machines).toContainEqual({ name: names.b, state: 'running' });
    const cache = (await (await agent.request('/v1/machines/cache?backend=docker')).json()) as { images: { name: string }[] };
    expect(cache.images.map((i) => i.name)).toContain(`warmstart-cache-${a.key.slice(0, 16)}`);
  });

  it('the same auth and error shape: 401, 400 with validations, 409 for a taken name, 501 for snapshots on docker', async () => {
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

    const snap = await agent.request('/v1/snapshots', post({ backend: 'docker', machine: names.a, name: 'before' }));
    expect(snap.status).toBe(501);
    expect(await snap.json()).toMatchObject({ code: 'BACKEND_UNSUPPORTED', message: expect.stringMatching(/Docker cannot save or restore/) });
    const list = await agent.request(`/v1/snapshots?backend=docker&machine=${names.a}`);
    expect(list.status).toBe(501);
  });

  it('/v1/images: list 200, delete of an unknown image 404 IMAGE_NOT_FOUND, a bad name 400', async () => {
    const list = await agent.request('/v1/images');
    expect(list.status).toBe(200);
    expect(await list.json()).toEqual({ images: expect.any(Array) });
    const gone = await agent.request(`/v1/images/${run}-none?tag=v1`, { method: 'DELETE' });
    expect(gone.status).toBe(404);
    expect(await gone.json()).toMatchObject({ code: 'IMAGE_NOT_FOUND' });
    const bad = await agent.request('/v1/images', post({ workspaceId: `${run}-ws`, name: 'A' }));
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({ code: 'INVALID_IMAGE_NAME' });
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
