import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

// The probe runs on the first job of a daemon's boot: it must not load execa (cli-runner.ts buildxMissing).
const loads = vi.hoisted(() => ({ execa: 0 }));
vi.mock('../../../agent/src/devcontainer/load-execa.js', () => ({
  loadExeca: () => {
    loads.execa++;
    return Promise.reject(new Error('execa loaded'));
  },
}));
const { DevcontainerCliRunner } = await import('../../../agent/src/devcontainer/cli-runner.js');

describe('the buildx probe (usesClassicBuilder)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'warmstart-probe-'));
    loads.execa = 0;
  });
  afterEach(async () => rm(dir, { recursive: true, force: true }));

  const docker = async (script: string): Promise<string> => {
    const bin = join(dir, 'docker');
    await writeFile(bin, `#!/bin/sh\n${script}\n`);
    await chmod(bin, 0o755);
    return bin;
  };

  it('buildx answers: not classic; it fails, or there is no docker: classic; execa never loaded', async () => {
    expect(
      await new DevcontainerCliRunner({
        dockerPath: await docker('[ "$1 $2" = "buildx version" ] && exit 0; exit 3'),
        script: '/x',
      }).usesClassicBuilder(),
    ).toBe(false);
    expect(await new DevcontainerCliRunner({ dockerPath: await docker('exit 1'), script: '/x' }).usesClassicBuilder()).toBe(true);
    expect(await new DevcontainerCliRunner({ dockerPath: join(dir, 'no-docker-here'), script: '/x' }).usesClassicBuilder()).toBe(true);
    expect(loads.execa).toBe(0);
  });

  it("sees the daemon's environment plus the probe's own (DOCKER_CONFIG for plugin dirs)", async () => {
    process.env.WARMSTART_PROBE_TEST = 'inherited';
    try {
      const bin = await docker('[ "$WARMSTART_PROBE_TEST" = inherited ] && [ -f "$DOCKER_CONFIG/config.json" ] && exit 0; exit 1');
      expect(await new DevcontainerCliRunner({ dockerPath: bin, script: '/x', cliPluginDirs: ['/opt/p'] }).usesClassicBuilder()).toBe(false);
      expect(await new DevcontainerCliRunner({ dockerPath: bin, script: '/x' }).usesClassicBuilder()).toBe(true);
    } finally {
      delete process.env.WARMSTART_PROBE_TEST;
    }
    expect(loads.execa).toBe(0);
  });
});
