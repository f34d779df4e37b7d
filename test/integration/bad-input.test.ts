import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, testEnv, type CliRun } from '../support/cli.js';
import { cleanUp, containersWithLabel, volumeExists } from '../support/docker.js';
import { makeRepo, runId } from '../support/repos.js';
import { loadTestbed } from '../support/testbed.js';

const tb = loadTestbed();
const run = runId('bad');

/** The one error object `--json` must print on stdout for bad input. */
function errorOf(r: CliRun): { code: string; message: string } {
  const lines = r.stdout.trim().split('\n');
  expect(lines, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).toHaveLength(1);
  const body = JSON.parse(lines[0]!) as { error?: { code: string; message: string } };
  expect(Object.keys(body)).toEqual(['error']);
  expect(body.error).toBeDefined();
  return body.error!;
}

describe('bad input: exit 2, a clear message, nothing created', () => {
  let env: Record<string, string>;
  let repo: string;
  const made: string[] = [];

  /** Nothing of workspace `id` exists: no volume, no container, no state dir. */
  async function expectNothingFor(id: string): Promise<void> {
    expect(await volumeExists(`warmstart-ws-${id}`), `volume of ${id}`).toBe(false);
    expect(await containersWithLabel(`warmstart.workspace=${id}`), `containers of ${id}`).toEqual([]);
    expect(existsSync(join(env.WARMSTART_STATE_DIR!, 'workspaces', id)), `state dir of ${id}`).toBe(false);
  }

  beforeAll(async () => {
    repo = await makeRepo('small', { runId: run, baseImage: tb.baseImage });
    // A registry and credentials are configured so a run that got past validation would do real work.
    env = await testEnv(tb.baseImage, {
      WARMSTART_CACHE_REGISTRY: `${tb.openRegistry}/warmstart-test/${run}`,
    });
  });
  afterAll(async () => {
    await cleanUp({ runId: run, workspaceIds: made });
  });

  it('the checks below can see a workspace: a valid lightweight up creates volume, container and state', async () => {
    const id = `${run}-control`;
    made.push(id);
    const r = await runCli(['up', repo, '--workspace-id', id, '--lightweight', '--json'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(await volumeExists(`warmstart-ws-${id}`)).toBe(true);
    expect(await containersWithLabel(`warmstart.workspace=${id}`)).toHaveLength(1);
    expect(existsSync(join(env.WARMSTART_STATE_DIR!, 'workspaces', id))).toBe(true);
  });

  it('--config-name ../x → INVALID_CONFIG_NAME', async () => {
    const id = `${run}-cfgname`;
    made.push(id);
    const r = await runCli(['up', repo, '--workspace-id', id, '--config-name', '../x', '--json'], { env });
    expect(r.code, r.stderr).toBe(2);
    expect(errorOf(r).code).toBe('INVALID_CONFIG_NAME');
    expect(r.stderr).toMatch(/INVALID_CONFIG_NAME/);
    expect(r.stderr).toMatch(/config name "\.\.\/x"/i);
    await expectNothingFor(id);
  });

  it.each([
    ['ftp://example.com/a/b', /ftp:\/\/ scheme is not allowed/],
    ['git://example.com/owner/repo.git', /git:\/\/ scheme is not allowed/],
    ['http://example.com/owner/repo.git', /plain http is not allowed/],
    ['ext::sh%20-c%20id', /transport helpers/],
  ])('repository %s → INVALID_REPOSITORY', async (repository, problem) => {
    const id = `${run}-url${Math.random().toString(36).slice(2, 6)}`;
    made.push(id);
    const r = await runCli(['up', repository, '--workspace-id', id, '--json'], { env });
    expect(r.code, r.stderr).toBe(2);
    expect(errorOf(r).code).toBe('INVALID_REPOSITORY');
    expect(r.stderr).toMatch(/INVALID_REPOSITORY/);
    expect(r.stderr).toMatch(problem);
    await expectNothingFor(id);
  });

  it('a workspace id with / → INVALID_WORKSPACE_ID, and no directory is made from it', async () => {
    for (const id of [`${run}/x`, `../${run}`]) {
      const r = await runCli(['up', repo, '--workspace-id', id, '--json'], { env });
      expect(r.code, r.stderr).toBe(2);
      expect(errorOf(r).code).toBe('INVALID_WORKSPACE_ID');
      expect(r.stderr).toMatch(/INVALID_WORKSPACE_ID: Invalid workspace id/);
      expect(r.stderr).toContain(JSON.stringify(id));
      expect(await volumeExists(`warmstart-ws-${id}`)).toBe(false);
      expect(await containersWithLabel(`warmstart.workspace=${id}`)).toEqual([]);
    }
    expect(existsSync(join(env.WARMSTART_STATE_DIR!, 'workspaces', run))).toBe(false);
    expect(existsSync(join(env.WARMSTART_STATE_DIR!, run))).toBe(false);
  });

  it('an https URL with a token in it is refused without echoing the token', async () => {
    const token = `ghp_${run}Sekr3tT0ken`;
    for (const url of [`https://${token}@github.com/acme/widgets.git`, `https://x-access-token:${token}@git.example.com/acme/widgets.git`]) {
      const id = `${run}-tok${Math.random().toString(36).slice(2, 6)}`;
      made.push(id);
      const r = await runCli(['up', url, '--workspace-id', id, '--json'], { env });
      expect(r.code, r.stderr).toBe(2);
      expect(errorOf(r).code).toBe('INVALID_REPOSITORY');
      expect(r.stderr).toMatch(/contains credentials/);
      expect(r.stdout).not.toContain(token);
      expect(r.stderr).not.toContain(token);
      await expectNothingFor(id);
    }
  });

  it('unknown flags and commands → exit 2 (INVALID_ARGUMENT)', async () => {
    const id = `${run}-flags`;
    made.push(id);
    const cases: string[][] = [
      ['up', repo, '--workspace-id', id, '--frobnicate', '--json'],
      ['up', repo, '--workspace-id', id, '--push-timeout', 'soon', '--json'],
      ['down', id, '--force', '--json'],
      ['cache', 'ref', 'acme/widgets', '--cache-registry', 'ghcr.io', '--bogus', '--json'],
      ['doctor', '--bogus', '--json'],
    ];
    for (const args of cases) {
      const r = await runCli(args, { env });
      expect(r.code, `${args.join(' ')}\n${r.stderr}`).toBe(2);
      expect(errorOf(r).code).toBe('INVALID_ARGUMENT');
      expect(r.stderr).toMatch(/INVALID_ARGUMENT/);
    }
    const unknown = await runCli(['frobnicate'], { env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'frobnicate'/);
    await expectNothingFor(id);
  });

  it('no stray workspace directory was left by any refused request', async () => {
    const dir = join(env.WARMSTART_STATE_DIR!, 'workspaces');
    // Only the control workspace (a valid up) may be there.
    expect(await readdir(dir)).toEqual([`${run}-control`]);
  });
});
