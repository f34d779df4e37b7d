import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, testEnv } from '../../support/cli.js';
import { runId } from '../../support/repos.js';
import { loadTestbed } from '../../support/testbed.js';

const tb = loadTestbed();
const run = runId('mcli');

interface UpJson {
  instance: string;
  cache: 'hit' | 'miss';
  key: string;
  ms: number;
}

describe('warmstart machine / snapshot commands (docker backend, real engine)', () => {
  let env: Record<string, string>;
  let dir: string;
  const made: string[] = [];
  const keys = new Set<string>();
  const up = async (name: string, script: string): Promise<UpJson> => {
    const r = await runCli(
      [
        'machine',
        'up',
        '--backend',
        'docker',
        '--name',
        name,
        '--base',
        tb.baseImage,
        '--provision',
        script,
        '--file',
        `${join(dir, 'tool.cfg')}:/etc/tool.cfg`,
        '--json',
      ],
      { env },
    );
    expect(r.code, r.stderr).toBe(0);
    made.push(name);
    const result = JSON.parse(r.stdout) as UpJson;
    keys.add(result.key);
    return result;
  };
  const exec = async (name: string, cmd: string) => String((await execa('docker', ['exec', name, 'sh', '-c', cmd])).stdout).trim();

  beforeAll(async () => {
    env = await testEnv(tb.baseImage);
    dir = await mkdtemp(join(tmpdir(), 'warmstart-machine-cli-'));
    await writeFile(join(dir, 'provision.sh'), `#!/bin/sh\nset -e\necho "provisioned ${run}" > /provisioned.txt\n`);
    await writeFile(join(dir, 'tool.cfg'), 'setting=1\n');
  });
  afterAll(async () => {
    for (const name of made) await execa('docker', ['rm', '-f', name], { reject: false });
    // only the cache images this run made (other runs' stay)
    for (const key of keys) await execa('docker', ['rmi', '-f', `warmstart-cache-${key.slice(0, 16)}`], { reject: false });
  });

  it('machine up: miss, then hit with the provisioned file and the host specifics; one changed byte misses', async () => {
    const first = await up(`${run}-a`, join(dir, 'provision.sh'));
    expect(first).toMatchObject({ instance: `${run}-a`, cache: 'miss' });
    expect(first.key).toMatch(/^[0-9a-f]{64}$/);
    const second = await up(`${run}-b`, join(dir, 'provision.sh'));
    expect(second).toMatchObject({ instance: `${run}-b`, cache: 'hit', key: first.key });
    expect(await exec(`${run}-b`, 'cat /provisioned.txt /etc/tool.cfg')).toBe(`provisioned ${run}\nsetting=1`);
    // the post-launch hook re-applied this machine's own state file
    expect(await exec(`${run}-b`, 'cat /etc/warmstart/machine.json')).toContain(`${run}-b`);

    const list = await runCli(['machine', 'cache', 'list', '--backend', 'docker', '--json'], { env });
    expect((JSON.parse(list.stdout) as { images: { name: string }[] }).images.map((i) => i.name)).toContain(
      `warmstart-cache-${first.key.slice(0, 16)}`,
    );

    await writeFile(join(dir, 'provision.sh'), `#!/bin/sh\nset -e\necho "provisioned ${run}" > /provisioned.txt \n`);
    const third = await up(`${run}-c`, join(dir, 'provision.sh'));
    expect(third.cache).toBe('miss');
    expect(third.key).not.toBe(first.key);
  });

  it('bad input exits 2 and makes nothing; docker has no state snapshots (exit 1, BACKEND_UNSUPPORTED)', async () => {
    const bad = await runCli(['machine', 'up', '--backend', 'vmware', '--name', `${run}-x`, '--base', tb.baseImage], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('INVALID_ARGUMENT');
    expect((await execa('docker', ['inspect', `${run}-x`], { reject: false })).exitCode).not.toBe(0);
    const missing = await runCli(['machine', 'up', '--backend', 'docker', '--name', `${run}-y`], { env });
    expect(missing.code).toBe(2);
    const snap = await runCli(['snapshot', 'create', '--backend', 'docker', '--machine', `${run}-a`, '--name', 's1', '--json'], { env });
    expect(snap.code).toBe(1);
    expect(JSON.parse(snap.stdout)).toMatchObject({ error: { code: 'BACKEND_UNSUPPORTED' } });
  });
});
