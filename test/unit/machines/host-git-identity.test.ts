import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { hostGitIdentity } from '../../../agent/src/machines/host-git-identity.js';

/** The real git, reading a global config of the test's own (no system config). */
describe("the host's git identity, read with the real git", () => {
  let dir: string;
  const saved = { global: process.env.GIT_CONFIG_GLOBAL, nosystem: process.env.GIT_CONFIG_NOSYSTEM, path: process.env.PATH };
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'warmstart-gitid-'));
    process.env.GIT_CONFIG_GLOBAL = join(dir, 'gitconfig');
    process.env.GIT_CONFIG_NOSYSTEM = '1';
  });
  afterEach(async () => {
    for (const [k, v] of [
      ['GIT_CONFIG_GLOBAL', saved.global],
      ['GIT_CONFIG_NOSYSTEM', saved.nosystem],
      ['PATH', saved.path],
    ] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('both set: name and email; one missing, an empty config or no git at all: null', async () => {
    await writeFile(process.env.GIT_CONFIG_GLOBAL!, '[user]\n\tname = Ada Lovelace\n\temail = ada@example.test\n');
    expect(await hostGitIdentity()).toEqual({ name: 'Ada Lovelace', email: 'ada@example.test' });
    await writeFile(process.env.GIT_CONFIG_GLOBAL!, '[user]\n\tname = Ada Lovelace\n');
    expect(await hostGitIdentity()).toBeNull();
    await writeFile(process.env.GIT_CONFIG_GLOBAL!, '');
    expect(await hostGitIdentity()).toBeNull();
    await writeFile(process.env.GIT_CONFIG_GLOBAL!, '[user]\n\tname = Ada\n\temail = ada@example.test\n');
    process.env.PATH = dir; // no git on the PATH
    expect(await hostGitIdentity()).toBeNull();
  });
});
