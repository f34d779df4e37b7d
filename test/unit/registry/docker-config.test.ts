import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDockerConfig, toDockerAuthConfig } from '../../../agent/src/registry/docker-config.js';
import type { RegistryCredentials } from '../../../agent/src/registry/credentials.js';

const creds: RegistryCredentials = { registry: '127.0.0.1:5000', username: 'u', password: 'p@ss:word', source: 'job' };

let parent: string;
beforeAll(async () => {
  parent = await mkdtemp(join(tmpdir(), 'warmstart-dockercfg-'));
});
afterAll(async () => {
  await rm(parent, { recursive: true, force: true });
});

describe('createDockerConfig', () => {
  it('writes config.json with the auth entry, dir 0700 and file 0600', async () => {
    const cfg = await createDockerConfig(parent, creds);
    expect(cfg.dir.startsWith(parent)).toBe(true);
    expect((await stat(cfg.dir)).mode & 0o777).toBe(0o700);
    const file = join(cfg.dir, 'config.json');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const json = JSON.parse(await readFile(file, 'utf8')) as { auths: Record<string, { auth: string }> };
    expect(Object.keys(json.auths)).toEqual(['127.0.0.1:5000']);
    expect(Buffer.from(json.auths['127.0.0.1:5000']!.auth, 'base64').toString()).toBe('u:p@ss:word');
    await cfg.dispose();
  });

  it('writes empty auths without credentials', async () => {
    const cfg = await createDockerConfig(parent, null);
    expect(JSON.parse(await readFile(join(cfg.dir, 'config.json'), 'utf8'))).toEqual({ auths: {} });
    await cfg.dispose();
  });

  it('gives each job its own directory, and creates a missing parent', async () => {
    const nested = join(parent, 'a', 'b');
    const [one, two] = await Promise.all([createDockerConfig(nested, creds), createDockerConfig(nested, null)]);
    expect(one.dir).not.toBe(two.dir);
    await Promise.all([one.dispose(), two.dispose()]);
  });

  it('dispose removes the directory and is idempotent', async () => {
    const cfg = await createDockerConfig(parent, creds);
    await cfg.dispose();
    await expect(stat(cfg.dir)).rejects.toMatchObject({ code: 'ENOENT' });
    await expect(cfg.dispose()).resolves.toBeUndefined();
  });

  it('keys Docker Hub by its index URL', async () => {
    const cfg = await createDockerConfig(parent, { ...creds, registry: 'docker.io' });
    const json = JSON.parse(await readFile(join(cfg.dir, 'config.json'), 'utf8')) as { auths: object };
    expect(Object.keys(json.auths)).toEqual(['https://index.docker.io/v1/']);
    await cfg.dispose();
  });
});

describe('toDockerAuthConfig', () => {
  it('maps credentials for dockerode, undefined without', () => {
    expect(toDockerAuthConfig(creds)).toEqual({ username: 'u', password: 'p@ss:word', serveraddress: '127.0.0.1:5000' });
    expect(toDockerAuthConfig(null)).toBeUndefined();
    expect(toDockerAuthConfig(undefined)).toBeUndefined();
  });
});
