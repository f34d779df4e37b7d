import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, parseResult, runCli, testEnv, type CliRun } from '../support/cli.js';
import { cleanUp, containersWithLabel, readFromVolume, volumeExists } from '../support/docker.js';
import { makeRepo, runId } from '../support/repos.js';
import { loadTestbed, node2Env } from '../support/testbed.js';

const tb = loadTestbed();
const run = runId('cli');
const namespace = `warmstart-test/${run}`;

// runCli (execa) strips the final newline of stdout.
function onlyJson<T>(r: CliRun): T {
  const lines = r.stdout.trim().split('\n');
  expect(lines, `stdout: ${r.stdout}\nstderr: ${r.stderr}`).toHaveLength(1);
  return JSON.parse(lines[0]!) as T;
}

/** `doctor`'s text output as check name → status (`ok`, `fail`, `skip`). */
function doctorLines(stdout: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of stdout.trim().split('\n')) {
    const m = /^(ok|fail|skip)\s+([^:]+):/.exec(line);
    if (m) out[m[2]!] = m[1]!;
  }
  return out;
}

describe('warmstart down', () => {
  const id = `${run}-down`;
  let env: Record<string, string>;
  let repo: string;

  beforeAll(async () => {
    env = await testEnv(tb.baseImage);
    repo = await makeRepo('small', { runId: run, baseImage: tb.baseImage });
  });
  afterAll(async () => {
    await cleanUp({ runId: run, workspaceIds: [id] });
  });

  it('removes the containers and keeps the volume; --purge removes the volume and state; then the id is unknown', async () => {
    const up = await runCli(['up', repo, '--workspace-id', id, '--json'], { env });
    const res = parseResult(up);
    expect(up.code, up.stderr).toBe(0);
    expect(res.profile).toBe('devcontainer');
    const volume = `warmstart-ws-${id}`;
    const stateDir = join(env.WARMSTART_STATE_DIR!, 'workspaces', id);
    expect(await containersWithLabel(`warmstart.workspace=${id}`)).toHaveLength(1);

    const down = await runCli(['down', id, '--json'], { env });
    expect(down.code, down.stderr).toBe(0);
    expect(onlyJson(down)).toEqual({ workspaceId: id, containersRemoved: 1, volumeRemoved: false });
    expect(await containersWithLabel(`warmstart.workspace=${id}`)).toEqual([]);
    expect(await volumeExists(volume)).toBe(true);
    // The user's files are still in the volume.
    expect(await readFromVolume(volume, '.devcontainer/devcontainer.json', tb.baseImage)).toContain('dockerfile');
    expect(existsSync(join(stateDir, 'workspace.json'))).toBe(true);

    const purge = await runCli(['down', id, '--purge', '--json'], { env });
    expect(purge.code, purge.stderr).toBe(0);
    expect(onlyJson(purge)).toEqual({ workspaceId: id, containersRemoved: 0, volumeRemoved: true });
    expect(await volumeExists(volume)).toBe(false);
    expect(existsSync(stateDir)).toBe(false);

    const again = await runCli(['down', id, '--json'], { env });
    expect(again.code).toBe(1);
    expect(onlyJson<{ error: { code: string } }>(again).error.code).toBe('WORKSPACE_NOT_FOUND');
  });

  it('an id this node never saw → exit 1 WORKSPACE_NOT_FOUND', async () => {
    const unknown = `${run}-never-seen`;
    const r = await runCli(['down', unknown, '--json'], { env });
    expect(r.code).toBe(1);
    expect(onlyJson<{ error: { code: string } }>(r).error.code).toBe('WORKSPACE_NOT_FOUND');
    expect(r.stderr).toContain(`WORKSPACE_NOT_FOUND: no workspace ${unknown}`);
    const text = await runCli(['down', unknown], { env });
    expect(text.code).toBe(1);
    expect(text.stdout).toBe('');
  });
});

describe('warmstart cache ref', () => {
  let env: Record<string, string>;
  beforeAll(async () => {
    env = await testEnv(tb.baseImage);
  });

  it('prints the lowercased ref with the sanitised config tag', async () => {
    const r = await runCli(['cache', 'ref', 'owner/Repo', '--cache-registry', 'ghcr.io/Org', '--config-name', 'python 3.12'], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe('ghcr.io/org/owner/repo:devcontainer-cache-python-3.12');
  });

  it('takes the registry from WARMSTART_CACHE_REGISTRY, and the flag wins over it', async () => {
    const fromEnv = await runCli(['cache', 'ref', 'https://git.example.com/Team/Tool.git'], {
      env: { ...env, WARMSTART_CACHE_REGISTRY: 'registry.example.com:5000/cache' },
    });
    expect(fromEnv.code, fromEnv.stderr).toBe(0);
    // a git host other than GitHub is part of the path
    expect(fromEnv.stdout).toBe('registry.example.com:5000/cache/git.example.com/team/tool:devcontainer-cache');
    const flag = await runCli(['cache', 'ref', 'Team/Tool', '--cache-registry', 'ghcr.io/x'], {
      env: { ...env, WARMSTART_CACHE_REGISTRY: 'registry.example.com:5000/cache' },
    });
    expect(flag.stdout).toBe('ghcr.io/x/team/tool:devcontainer-cache');
  });

  it("prints this node's builder's ref: BuildKit's own tag where buildx is found, or the one --builder names", async () => {
    const node2 = await runCli(['cache', 'ref', 'owner/repo', '--cache-registry', 'ghcr.io', '--json'], { env: { ...env, ...node2Env(tb) } });
    expect(node2.code, node2.stderr).toBe(0);
    expect(JSON.parse(node2.stdout)).toEqual({ ref: 'ghcr.io/owner/repo:buildkit-devcontainer-cache', builder: 'buildkit' });
    const named = await runCli(['cache', 'ref', 'owner/repo', '--cache-registry', 'ghcr.io', '--builder', 'classic'], {
      env: { ...env, ...node2Env(tb) },
    });
    expect(named.stdout).toBe('ghcr.io/owner/repo:devcontainer-cache');
    const bad = await runCli(['cache', 'ref', 'owner/repo', '--cache-registry', 'ghcr.io', '--builder', 'kaniko', '--json'], { env });
    expect(bad.code).toBe(2);
    expect(onlyJson<{ error: { code: string } }>(bad).error.code).toBe('INVALID_ARGUMENT');
  });

  it('without a registry → exit 2', async () => {
    const r = await runCli(['cache', 'ref', 'owner/repo', '--json'], { env });
    expect(r.code).toBe(2);
    expect(onlyJson<{ error: { code: string } }>(r).error.code).toBe('INVALID_REGISTRY');
    expect(r.stderr).toMatch(/no cache registry/);
  });
});

describe('warmstart doctor', () => {
  let env: Record<string, string>;
  beforeAll(async () => {
    env = await testEnv(tb.baseImage);
  });

  const doctor = (registry: string, password: string) =>
    runCli(['doctor', '--cache-registry', registry, '--registry-username', tb.registryUser, '--registry-password-stdin'], {
      env,
      input: `${password}\n`,
    });

  it('all checks ok against the registry with the right credentials', async () => {
    const r = await doctor(`${tb.registry}/${namespace}`, tb.registryPassword);
    expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
    expect(doctorLines(r.stdout)).toEqual({
      'docker engine': 'ok',
      'devcontainer CLI': 'ok',
      git: 'ok',
      credentials: 'ok',
      'cache registry': 'ok',
      'push permission': 'ok',
      'registry mode': 'ok',
    });
    expect(r.stdout).not.toContain(tb.registryPassword);
  });

  it('the read-only registry: exit 1, push permission fails, the rest is ok', async () => {
    const r = await doctor(`${tb.readonlyRegistry}/${namespace}`, tb.registryPassword);
    expect(r.code, r.stdout).toBe(1);
    const lines = doctorLines(r.stdout);
    expect(lines['push permission']).toBe('fail');
    expect(r.stdout).toMatch(/^fail push permission: REGISTRY_PUSH_DENIED/m);
    expect(lines['cache registry']).toBe('ok');
    expect(lines.credentials).toBe('ok');
    expect(lines['docker engine']).toBe('ok');
  });

  it('a wrong password: exit 1, the registry check fails, the password is not echoed', async () => {
    const wrong = `wrong-${run}-password`;
    const r = await doctor(`${tb.registry}/${namespace}`, wrong);
    expect(r.code, r.stdout).toBe(1);
    const lines = doctorLines(r.stdout);
    expect(lines['cache registry']).toBe('fail');
    expect(r.stdout).toMatch(/^fail cache registry: REGISTRY_AUTH_FAILED/m);
    expect(lines['push permission']).not.toBe('ok');
    expect(r.stdout).not.toContain(wrong);
    expect(r.stderr).not.toContain(wrong);
  });
});

describe('warmstart --version', () => {
  it("prints package.json's version", async () => {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(pkg.version).toMatch(/^\d+\.\d+\.\d+/);
    const r = await runCli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(pkg.version);
  });
});

describe('the built command', () => {
  it('run through its own #! line takes --env-file as its own option, not Node’s', async () => {
    // Node reads --env-file even after the script's name unless `--` ends its options;
    // the #! line passes it (agent/src/cli/main.ts), as bin/warmstart of a release does.
    const { execa } = await import('execa');
    const r = await execa(CLI, ['--env-file', 'none', '--version'], { reject: false, env: { PATH: process.env.PATH ?? '' } });
    expect({ exit: r.exitCode, out: r.stdout, err: r.stderr }).toMatchObject({ exit: 0, err: '' });
    expect(r.stdout).toMatch(/^\d+\.\d+\.\d+/);
  });
});
