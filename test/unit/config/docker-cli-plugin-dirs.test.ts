// WARMSTART_DOCKER_CLI_PLUGIN_DIRS reaches each job's DOCKER_CONFIG as
// cliPluginsExtraDirs, and the runner's buildx probe looks where the job's docker CLI will.
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { configFromEnv } from '../../../agent/src/config/agent-config.js';
import { DevcontainerCliRunner } from '../../../agent/src/devcontainer/cli-runner.js';
import { isWarmstartError } from '../../../agent/src/errors.js';
import { createDockerConfig } from '../../../agent/src/registry/docker-config.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
const tmp = async (): Promise<string> => {
  const d = await mkdtemp(join(tmpdir(), 'ws-plugin-dirs-'));
  dirs.push(d);
  return d;
};

describe('WARMSTART_DOCKER_CLI_PLUGIN_DIRS', () => {
  it('is empty by default and splits absolute dirs on ":"', () => {
    expect(configFromEnv({}).dockerCliPluginDirs).toEqual([]);
    expect(configFromEnv({ WARMSTART_DOCKER_CLI_PLUGIN_DIRS: '/a/plugins::/b' }).dockerCliPluginDirs).toEqual(['/a/plugins', '/b']);
  });

  it('refuses a relative dir', () => {
    let err: unknown;
    try {
      configFromEnv({ WARMSTART_DOCKER_CLI_PLUGIN_DIRS: '/a:plugins' });
    } catch (e) {
      err = e;
    }
    expect(isWarmstartError(err) && err.code === 'INVALID_ARGUMENT').toBe(true);
  });
});

describe('createDockerConfig with plugin dirs', () => {
  it('writes cliPluginsExtraDirs only when given', async () => {
    const parent = await tmp();
    const plain = await createDockerConfig(parent, null);
    expect(JSON.parse(await readFile(join(plain.dir, 'config.json'), 'utf8'))).toEqual({ auths: {} });
    const withDirs = await createDockerConfig(parent, null, { cliPluginDirs: ['/opt/node2/cli-plugins'] });
    expect(JSON.parse(await readFile(join(withDirs.dir, 'config.json'), 'utf8'))).toEqual({
      auths: {},
      cliPluginsExtraDirs: ['/opt/node2/cli-plugins'],
    });
  });
});

describe('DevcontainerCliRunner.usesClassicBuilder with plugin dirs', () => {
  // A stand-in docker that has buildx only when DOCKER_CONFIG's config.json names the plugin dir.
  const fakeDocker = async (pluginDir: string): Promise<string> => {
    const bin = join(await tmp(), 'docker');
    await writeFile(
      bin,
      `#!/bin/sh\n[ "$1" = buildx ] && [ -n "$DOCKER_CONFIG" ] && grep -q '${pluginDir}' "$DOCKER_CONFIG/config.json" && exit 0\nexit 1\n`,
    );
    await chmod(bin, 0o755);
    return bin;
  };

  it('probes through a DOCKER_CONFIG naming the dirs', async () => {
    const docker = await fakeDocker('/opt/node2/cli-plugins');
    expect(await new DevcontainerCliRunner({ dockerPath: docker, script: '/x' }).usesClassicBuilder()).toBe(true);
    expect(
      await new DevcontainerCliRunner({ dockerPath: docker, script: '/x', cliPluginDirs: ['/opt/node2/cli-plugins'] }).usesClassicBuilder(),
    ).toBe(false);
  });
});
