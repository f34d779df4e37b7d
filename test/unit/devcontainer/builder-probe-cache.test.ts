import { chmod, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cachedProbe, probeFingerprint } from '../../../agent/src/devcontainer/builder-probe-cache.js';

const dirs: string[] = [];
async function dir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'warmstart-probe-'));
  dirs.push(d);
  return d;
}
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

describe('the buildx probe kept between processes', () => {
  it('answers from the file while nothing changed, and probes again when a buildx plugin appears, changes or the settings move', async () => {
    const plugins = await dir();
    const state = await dir();
    const file = join(state, 'builder-probe.json');
    const env = { PATH: '/usr/bin:/bin', DOCKER_CONFIG: await dir() };
    const fp = () => probeFingerprint({ pluginDirs: [plugins], dockerPath: 'docker', env });
    let probes = 0;
    const probe = (answer: boolean) => async () => {
      probes += 1;
      return answer;
    };

    const none = await fp();
    expect(await cachedProbe(file, none, probe(true))).toBe(true);
    expect(await cachedProbe(file, await fp(), probe(false))).toBe(true);
    expect(probes).toBe(1);

    // A buildx plugin installed in a dir the jobs' docker CLI searches: another fingerprint, so the probe runs.
    await writeFile(join(plugins, 'docker-buildx'), '#!/bin/sh\n');
    await chmod(join(plugins, 'docker-buildx'), 0o755);
    const installed = await fp();
    expect(installed).not.toBe(none);
    expect(await cachedProbe(file, installed, probe(false))).toBe(false);
    expect(probes).toBe(2);
    expect(await cachedProbe(file, await fp(), probe(true))).toBe(false);
    expect(probes).toBe(2);

    // Replaced (another mtime), or DOCKER_BUILDKIT set: other fingerprints.
    await utimes(join(plugins, 'docker-buildx'), new Date(2020, 0, 1), new Date(2020, 0, 1));
    expect(await fp()).not.toBe(installed);
    expect(await probeFingerprint({ pluginDirs: [plugins], dockerPath: 'docker', env: { ...env, DOCKER_BUILDKIT: '0' } })).not.toBe(await fp());
  });

  it('probes when the kept file is unreadable, and a file it cannot write only costs a probe next time', async () => {
    const state = await dir();
    const file = join(state, 'builder-probe.json');
    await writeFile(file, 'not json');
    expect(await cachedProbe(file, 'f1', async () => true)).toBe(true);
    expect(await cachedProbe(join(state, 'missing-dir', 'x.json'), 'f1', async () => false)).toBe(false);
  });
});
