/**
 * The node's registry credentials serve every pull from the hosts they are
 * configured for, not only the cache's: a default image kept on the node's
 * own password-protected registry is pulled with them (it used to fail with
 * DEFAULT_IMAGE_FAILED), and with the credentials bound to another host the
 * same pull is anonymous and refused.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseResult, runCli, testEnv } from '../../support/cli.js';
import { cleanUp, imageExists } from '../../support/docker.js';
import { makeRepo, runId } from '../../support/repos.js';
import { loadTestbed } from '../../support/testbed.js';

const tb = loadTestbed();
const run = runId('defimg');
const privateImage = `${tb.registry}/warmstart-test/${run}/base:1`;
const ids = { ok: `${run}-ok`, other: `${run}-other` };

describe('default image on the password-protected registry', () => {
  let repo: string;
  beforeAll(async () => {
    repo = await makeRepo('no-config', { runId: run, baseImage: tb.baseImage });
    const config = await mkdtemp(join(tmpdir(), 'warmstart-docker-config-'));
    try {
      const docker = (args: string[], input?: string) => execa('docker', ['--config', config, ...args], input !== undefined ? { input } : {});
      await docker(['login', tb.registry, '-u', tb.registryUser, '--password-stdin'], tb.registryPassword);
      await docker(['tag', tb.baseImage, privateImage]);
      await docker(['push', privateImage]);
      await docker(['rmi', privateImage]);
    } finally {
      await rm(config, { recursive: true, force: true });
    }
    expect(await imageExists(privateImage)).toBe(false);
  });

  afterAll(async () => {
    await cleanUp({ runId: run, workspaceIds: Object.values(ids), refs: [privateImage] });
  });

  const up = async (id: string, extra: Record<string, string>) => {
    const env = await testEnv(privateImage, {
      WARMSTART_CACHE_REGISTRY: `${tb.registry}/warmstart-test/${run}`,
      WARMSTART_REGISTRY_USERNAME: tb.registryUser,
      WARMSTART_REGISTRY_PASSWORD: tb.registryPassword,
      ...extra,
    });
    const r = await runCli(['up', repo, '--workspace-id', id, '--lightweight', '--json'], { env });
    expect(r.stdout + r.stderr).not.toContain(tb.registryPassword);
    return { run: r, result: parseResult(r) };
  };

  it('with the credentials bound to another host, the pull is anonymous and refused', async () => {
    const { run: r, result } = await up(ids.other, { WARMSTART_REGISTRY_CREDENTIAL_HOSTS: 'registry.invalid' });
    expect(r.code).toBe(1);
    expect(result.error?.code).toBe('DEFAULT_IMAGE_FAILED');
    expect(await imageExists(privateImage)).toBe(false);
  });

  it("is pulled with the node's credentials for its host, and the workspace is ready", async () => {
    const { run: r, result } = await up(ids.ok, {});
    expect(r.code, r.stderr).toBe(0);
    expect(result).toMatchObject({ outcome: 'ready', profile: 'lightweight', error: null });
    expect(await imageExists(privateImage)).toBe(true);
  });
});
