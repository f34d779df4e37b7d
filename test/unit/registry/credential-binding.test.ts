import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { credentialSourcesFromConfig } from '../../../agent/src/agent.js';
import { envWithCacheRegistryFlag } from '../../../agent/src/cli/args.js';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import { resolveCredentials } from '../../../agent/src/registry/credentials.js';
import { createDockerConfig } from '../../../agent/src/registry/docker-config.js';
import { nodeRegistryCredentials, pullAuthFor, registryOfImage } from '../../../agent/src/registry/image-credentials.js';

const ENV = { WARMSTART_REGISTRY_USERNAME: 'node', WARMSTART_REGISTRY_PASSWORD: 'node-secret-91' };
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function sourcesFor(env: Record<string, string>) {
  const config = configFromEnv(env);
  return { config, sources: await credentialSourcesFromConfig(config) };
}

describe("the node's static registry credentials are bound to hosts", () => {
  it("serve the cache registry's host by default, and no other", async () => {
    const { sources } = await sourcesFor({ ...ENV, WARMSTART_CACHE_REGISTRY: 'Registry.Example:5000/team' });
    expect((await resolveCredentials(sources, 'registry.example:5000'))?.password).toBe('node-secret-91');
    for (const host of ['evil.example', 'registry.example', 'registry.example:5001', '127.0.0.1:5000', 'ghcr.io']) {
      expect(await resolveCredentials(sources, host)).toBeNull();
    }
  });

  it('serve exactly WARMSTART_REGISTRY_CREDENTIAL_HOSTS when it is set', async () => {
    const { sources } = await sourcesFor({
      ...ENV,
      WARMSTART_CACHE_REGISTRY: 'cache.example',
      WARMSTART_REGISTRY_CREDENTIAL_HOSTS: 'https://mirror.example/, base.example:8443',
    });
    expect((await resolveCredentials(sources, 'mirror.example'))?.source).toBe('static');
    expect((await resolveCredentials(sources, 'base.example:8443'))?.source).toBe('static');
    expect(await resolveCredentials(sources, 'cache.example')).toBeNull();
  });

  it('serve nothing without a cache registry or a host list', async () => {
    const { sources } = await sourcesFor(ENV);
    expect(await resolveCredentials(sources, 'registry.example')).toBeNull();
  });

  it('on the CLI, --cache-registry is the configured registry (flag over env) unless the host list is set', async () => {
    const env = { ...ENV, WARMSTART_CACHE_REGISTRY: 'env.example' };
    const flagged = await sourcesFor(envWithCacheRegistryFlag(env, '127.0.0.1:5000/ns') as Record<string, string>);
    expect(flagged.config.cacheRegistry).toBe('127.0.0.1:5000/ns');
    expect((await resolveCredentials(flagged.sources, '127.0.0.1:5000'))?.username).toBe('node');
    expect(await resolveCredentials(flagged.sources, 'env.example')).toBeNull();
    const listed = await sourcesFor(
      envWithCacheRegistryFlag({ ...env, WARMSTART_REGISTRY_CREDENTIAL_HOSTS: 'env.example' }, '127.0.0.1:5000') as Record<string, string>,
    );
    expect(await resolveCredentials(listed.sources, '127.0.0.1:5000')).toBeNull();
    expect(envWithCacheRegistryFlag(env, undefined)).toBe(env);
  });
});

describe("the node's credentials serve other pulls from their hosts", () => {
  it("finds an image's registry as Docker does", () => {
    expect(registryOfImage('127.0.0.1:5000/base/img:1')).toBe('127.0.0.1:5000');
    expect(registryOfImage('Registry.Example/a/b@sha256:00')).toBe('registry.example');
    expect(registryOfImage('localhost/x')).toBe('localhost');
    expect(registryOfImage('mcr.microsoft.com/devcontainers/base:bookworm')).toBe('mcr.microsoft.com');
    expect(registryOfImage('library/ubuntu')).toBe('docker.io');
    expect(registryOfImage('ubuntu:24.04')).toBe('docker.io');
  });

  it('pulls the default image with them on a configured host, anonymously elsewhere', async () => {
    const { sources } = await sourcesFor({ ...ENV, WARMSTART_CACHE_REGISTRY: '127.0.0.1:5000' });
    expect(await pullAuthFor(sources, '127.0.0.1:5000/base:1')).toEqual({
      username: 'node',
      password: 'node-secret-91',
      serveraddress: '127.0.0.1:5000',
    });
    expect(await pullAuthFor(sources, 'evil.example/base:1')).toBeUndefined();
    expect(await pullAuthFor(sources, 'ubuntu')).toBeUndefined();
    const notes: string[] = [];
    const failing = [{ get: () => Promise.reject(new Error('app down')) }];
    expect(await pullAuthFor(failing, '127.0.0.1:5000/base:1', (t) => notes.push(t))).toBeUndefined();
    expect(notes[0]).toContain('app down');
  });

  it("puts the node's hosts beside the job's registry in the job's DOCKER_CONFIG, and no other host", async () => {
    const { config, sources } = await sourcesFor({
      ...ENV,
      WARMSTART_CACHE_REGISTRY: 'cache.example',
      WARMSTART_REGISTRY_CREDENTIAL_HOSTS: 'cache.example,base.example',
    });
    const node = await nodeRegistryCredentials(config, sources);
    expect(node.map((c) => c.registry).sort()).toEqual(['base.example', 'cache.example']);
    const parent = await mkdtemp(join(tmpdir(), 'ws-binding-'));
    dirs.push(parent);
    const job = { registry: 'cache.example', username: 'job', password: 'job-pw', source: 'job' as const };
    const cfg = await createDockerConfig(parent, [job, ...node, null]);
    const auths = (JSON.parse(await readFile(join(cfg.dir, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string }> }).auths;
    expect(Object.keys(auths).sort()).toEqual(['base.example', 'cache.example']);
    // The job's own credentials win for its registry.
    expect(Buffer.from(auths['cache.example']!.auth, 'base64').toString()).toBe('job:job-pw');
    expect(Buffer.from(auths['base.example']!.auth, 'base64').toString()).toBe('node:node-secret-91');
  });
});
