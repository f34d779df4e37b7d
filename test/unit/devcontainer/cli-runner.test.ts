import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cliEnv, DevcontainerCliRunner, parseUpResult, pinnedCliScript, upArgs } from '../../../agent/src/devcontainer/cli-runner.js';
import { isWarmstartError } from '../../../agent/src/errors.js';

const FAKE = fileURLToPath(new URL('../../fixtures/fake-cli/devcontainer.mjs', import.meta.url));

async function run(mode: string, extra: { timeoutMs?: number } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'warmstart-fake-cli-'));
  const record = join(dir, 'record.json');
  const pidfile = join(dir, 'grandchild.pid');
  const logs: string[] = [];
  const runner = new DevcontainerCliRunner({ script: FAKE, killGraceMs: 300 });
  const outcome = await runner
    .up({
      workspaceFolder: '/src/app',
      configPath: '/src/app/.devcontainer/devcontainer.json',
      overrideConfigPath: '/tmp/job/devcontainer.override.json',
      idLabels: { 'warmstart.workspace': 'ws1' },
      env: { DOCKER_CONFIG: '/tmp/job/docker', FAKE_CLI_MODE: mode, FAKE_CLI_RECORD: record, FAKE_CLI_PIDFILE: pidfile },
      timeoutMs: extra.timeoutMs ?? 30_000,
      onLog: (l) => logs.push(l),
    })
    .then(
      (r) => ({ ok: true as const, r }),
      (e: unknown) => ({ ok: false as const, e }),
    );
  return { outcome, logs, record, pidfile };
}

describe('devcontainer up argv', () => {
  it('passes the discovered config, our override, the id label, JSON logs and the docker path', () => {
    expect(
      upArgs(
        {
          workspaceFolder: '/s',
          configPath: '/s/.devcontainer/a/devcontainer.json',
          overrideConfigPath: '/j/o.json',
          idLabels: { 'warmstart.workspace': 'w' },
          timeoutMs: 1,
        },
        'docker',
      ),
    ).toEqual([
      'up',
      '--workspace-folder',
      '/s',
      '--config',
      '/s/.devcontainer/a/devcontainer.json',
      '--override-config',
      '/j/o.json',
      '--id-label',
      'warmstart.workspace=w',
      '--log-format',
      'json',
      '--docker-path',
      'docker',
    ]);
  });

  it('runs the pinned CLI from node_modules', () => {
    expect(pinnedCliScript()).toMatch(/node_modules\/@devcontainers\/cli\/devcontainer\.js$/);
  });
});

describe('DevcontainerCliRunner against recorded CLI output', () => {
  it('returns the container from the result line and streams every log line', async () => {
    const { outcome, logs, record } = await run('success');
    expect(outcome.ok && outcome.r).toEqual({ containerId: 'a'.repeat(64), remoteUser: 'root', remoteWorkspaceFolder: '/workspaces/app' });
    expect(logs).toHaveLength(2);
    expect(JSON.parse(logs[1]!).type).toBe('raw');
    const rec = JSON.parse(await readFile(record, 'utf8')) as { argv: string[]; dockerConfig: string };
    expect(rec.argv.slice(0, 3)).toEqual(['up', '--workspace-folder', '/src/app']);
    expect(rec.dockerConfig).toBe('/tmp/job/docker');
  });

  it('turns an error result into DEVCONTAINER_UP_FAILED with the description as detail', async () => {
    const { outcome } = await run('build-error');
    expect(outcome.ok).toBe(false);
    const e = !outcome.ok ? outcome.e : null;
    expect(isWarmstartError(e, 'DEVCONTAINER_UP_FAILED')).toBe(true);
    expect((e as { detail?: string }).detail).toBe('An error occurred building the image.');
  });

  it('reports DEVCONTAINER_NO_RESULT when stdout holds no JSON', async () => {
    const { outcome } = await run('no-json');
    expect(!outcome.ok && isWarmstartError(outcome.e, 'DEVCONTAINER_NO_RESULT')).toBe(true);
  });

  it('kills the whole process group on timeout, even a CLI that ignores SIGTERM', async () => {
    const { outcome, pidfile } = await run('hang', { timeoutMs: 1500 });
    expect(!outcome.ok && isWarmstartError(outcome.e, 'DEVCONTAINER_UP_TIMEOUT')).toBe(true);
    const pid = Number(await readFile(pidfile, 'utf8'));
    await new Promise((r) => setTimeout(r, 500));
    expect(() => process.kill(pid, 0)).toThrow();
  });
});

describe('parseUpResult', () => {
  it('takes the last JSON object line of stdout', () => {
    expect(parseUpResult('noise\n{"outcome":"error"}\n{"outcome":"success","containerId":"c"}\n')).toEqual({ outcome: 'success', containerId: 'c' });
    expect(parseUpResult('no json\n[1,2]\n')).toBeNull();
  });
});

describe('cliEnv', () => {
  it('keeps what the CLI needs and drops the agent settings and anything else', () => {
    const env = cliEnv(
      {
        PATH: '/usr/bin',
        HOME: '/root',
        WARMSTART_GIT_TOKEN: 'ghs_x',
        WARMSTART_REGISTRY_PASSWORD: 'p',
        AWS_SECRET_ACCESS_KEY: 'k',
        DOCKER_HOST: 'unix:///d.sock',
      },
      { DOCKER_CONFIG: '/tmp/j' },
    );
    expect(env).toEqual({ PATH: '/usr/bin', HOME: '/root', DOCKER_HOST: 'unix:///d.sock', DOCKER_CONFIG: '/tmp/j' });
  });
});
