import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IncusBackend } from '../../../agent/src/backends/incus.js';
import { isWarmstartError } from '../../../agent/src/errors.js';
import { CACHE_PROPERTIES, cacheImageName, cacheList } from '../../../agent/src/machines/cache.js';
import { machineUp, type MachineUpOptions } from '../../../agent/src/machines/machine-up.js';
import { hostSpecificsHook, MACHINE_STATE_FILE } from '../../../agent/src/machines/post-launch.js';
import { benchMachineUpHit } from '../../bench/lxd.js';
import { loadLxdTestbed, lxdRunPrefix, type LxdTestbed } from './lxd-testbed.js';

// Real LXD from test/testbed/lxd.sh. Every machine this file makes starts with
// `prefix`; the cache images are the ones whose keys it produced (the script
// carries the prefix, so no earlier run can have cached the same key).
const prefix = lxdRunPrefix('wsmu');
let lxd: LxdTestbed;
let backend: IncusBackend;
const keys = new Set<string>();

const configBytes = Buffer.from([0x23, 0x20, 0xff, 0x00, 0x0a, 0x61, 0x3d, 0x31, 0x0a]); // not UTF-8: must arrive byte for byte
const script = (marker: string): Buffer =>
  Buffer.from(
    [
      '#!/bin/sh',
      'set -e',
      `# run ${prefix}`,
      'mkdir -p /opt/ws',
      `echo "${marker}" > /opt/ws/provisioned.txt`,
      "sha256sum /etc/app/app.conf | cut -d' ' -f1 > /opt/ws/config.sha",
      '',
    ].join('\n'),
  );
const opts = (name: string, content: Buffer): MachineUpOptions => ({
  name: `${prefix}-${name}`,
  base: lxd.baseImage,
  provision: { path: 'provision.sh', content },
  files: [{ path: '/etc/app/app.conf', content: configBytes }],
  postLaunch: hostSpecificsHook({ git: { name: 'Test User', email: 'test@warmstart.invalid' } }),
});
const sh = async (machine: string, cmd: string): Promise<string> => {
  const r = await backend.exec(`${prefix}-${machine}`, ['sh', '-c', cmd]);
  expect(r.exitCode, r.stderr).toBe(0);
  return r.stdout.trim();
};

beforeAll(() => {
  lxd = loadLxdTestbed();
  backend = new IncusBackend({ socketPath: lxd.socket });
});

afterAll(async () => {
  if (!backend) return;
  for (const m of await backend.listMachines()) if (m.name.startsWith(`${prefix}-`)) await backend.removeMachine(m.name);
  for (const k of keys) if (await backend.imageExists(cacheImageName(k))) await backend.removeImage(cacheImageName(k));
});

describe('machine up on real LXD', () => {
  it('miss then hit with the same inputs; the provisioned files are in the second machine; the hook ran on both', async () => {
    const first = await machineUp(backend, opts('one', script('v1')));
    keys.add(first.key);
    expect(first).toMatchObject({ instance: `${prefix}-one`, cache: 'miss' });
    expect((await cacheList(backend)).map((i) => i.name)).toContain(cacheImageName(first.key));

    const second = await machineUp(backend, opts('two', script('v1')));
    expect(second).toMatchObject({ instance: `${prefix}-two`, cache: 'hit', key: first.key });
    expect(await sh('two', 'cat /opt/ws/provisioned.txt')).toBe('v1');
    // the copied file arrived byte for byte (sha256 of configBytes)
    expect(await sh('two', 'cat /opt/ws/config.sha')).toBe(createHash('sha256').update(configBytes).digest('hex'));
    for (const [m, cache] of [
      ['one', 'miss'],
      ['two', 'hit'],
    ] as const) {
      const state = JSON.parse(await sh(m, `cat ${MACHINE_STATE_FILE}`)) as Record<string, unknown>;
      expect(state).toMatchObject({ instance: `${prefix}-${m}`, key: first.key, cache, backend: 'incus', base: lxd.baseImage });
    }
    expect((await backend.listMachines()).find((m) => m.name === `${prefix}-one`)?.state).toBe('running');
    console.log(`machine up on LXD: miss ${first.ms} ms, hit ${second.ms} ms`);
  });

  it('the cache image holds the provisioning but no per-machine state', async () => {
    const key = [...keys][0]!;
    await backend.launch(cacheImageName(key), `${prefix}-raw`);
    expect(await sh('raw', 'cat /opt/ws/provisioned.txt')).toBe('v1');
    // The state file's launch template renders what the launch gives it: nothing, for a launch outside machine up.
    expect(await sh('raw', `wc -c < ${MACHINE_STATE_FILE}`)).toBe('0');
    expect(await sh('raw', 'ls /etc/warmstart')).toBe('machine.json');
    expect(await sh('raw', 'ls /tmp')).toBe(''); // no stdin or script files left behind
  });

  it('one byte changed in the script is a miss with another key', async () => {
    const changed = await machineUp(backend, opts('three', script('v2')));
    keys.add(changed.key);
    expect(changed.cache).toBe('miss');
    expect(keys.size).toBe(2);
    expect(await sh('three', 'cat /opt/ws/provisioned.txt')).toBe('v2');
  });

  it('a failing provision script is a typed error and leaves no machine', async () => {
    const bad = Buffer.from(`#!/bin/sh\n# run ${prefix}\necho doing >&2\necho broken >&2\nexit 4\n`);
    const err = await machineUp(backend, opts('four', bad)).then(
      () => null,
      (e: unknown) => e,
    );
    expect(isWarmstartError(err, 'BACKEND_ERROR'), String(err)).toBe(true);
    expect((err as Error).message).toContain('exited with 4');
    expect(isWarmstartError(err) && err.detail).toContain('broken');
    expect((await backend.listMachines()).map((m) => m.name)).not.toContain(`${prefix}-four`);
  });

  it('the cache image says whether git is in it: a hit without git reaches into the machine not once; with git, the identity is set', async () => {
    // Counts what reaches inside the machines: execs and file writes (the miss provisions and probes;
    // a git-less hit should do neither: the launch template wrote the state file before the first start).
    const execs: string[] = [];
    const counting = Object.assign(Object.create(backend) as IncusBackend, {
      exec: (machine: string, argv: string[], o?: { input?: string }) => {
        execs.push(`${machine}: ${argv.join(' ').slice(0, 60)}`);
        return backend.exec(machine, argv, o);
      },
      writeFile: (machine: string, path: string, content: Buffer, mode: number) => {
        execs.push(`${machine}: write ${path}`);
        return backend.writeFile(machine, path, content, mode);
      },
    });
    const noGit = await machineUp(counting, opts('nogit-a', script('nogit')));
    keys.add(noGit.key);
    const images = await cacheList(backend);
    const made = images.find((i) => i.name === cacheImageName(noGit.key));
    expect(made?.properties[CACHE_PROPERTIES.git]).toBe('absent');
    expect(made?.properties[CACHE_PROPERTIES.launchFiles]).toBe(MACHINE_STATE_FILE);
    // the miss itself wrote its state file through the file API (its own launch had no template)
    expect(execs).toContain(`${prefix}-nogit-a: write ${MACHINE_STATE_FILE}`);
    execs.length = 0;
    const hit = await machineUp(counting, opts('nogit-b', script('nogit')));
    expect(hit.cache).toBe('hit');
    expect(execs).toEqual([]);
    expect(JSON.parse(await sh('nogit-b', `cat ${MACHINE_STATE_FILE}`))).toMatchObject({
      instance: `${prefix}-nogit-b`,
      cache: 'hit',
      key: noGit.key,
    });
    expect(await sh('nogit-b', `stat -c '%a %u' ${MACHINE_STATE_FILE}`)).toBe('644 0');

    // An image with git (a stand-in that records what it is asked): the hit sets the identity through it.
    const fakeGit = Buffer.concat([
      script('git'),
      Buffer.from('printf \'#!/bin/sh\\necho "$*" >> /opt/ws/git-calls\\n\' > /usr/bin/git && chmod 755 /usr/bin/git\n'),
    ]);
    const withGit = await machineUp(counting, opts('git-a', fakeGit));
    keys.add(withGit.key);
    expect((await cacheList(backend)).find((i) => i.name === cacheImageName(withGit.key))?.properties[CACHE_PROPERTIES.git]).toBe('present');
    execs.length = 0;
    expect((await machineUp(counting, opts('git-b', fakeGit))).cache).toBe('hit');
    expect(execs.length).toBe(1);
    expect(await sh('git-b', 'cat /opt/ws/git-calls')).toBe('config --global user.name Test User\nconfig --global user.email test@warmstart.invalid');
  });

  it('bench: machine up on a hit against a raw lxc launch of the same image', async () => {
    const r = await benchMachineUpHit({ socket: lxd.socket, baseImage: lxd.baseImage, prefix: `${prefix}-b`, runs: 5 });
    console.log(
      `machine up hit vs raw lxc launch: miss ${r.missMs} ms; hit ${r.hitMs.join('/')} ms (median ${r.medianHitMs}); ` +
        `raw ${r.rawLaunchMs.join('/')} ms (median ${r.medianRawLaunchMs}); ratio ${r.ratio}`,
    );
    expect(r.hitMs.length).toBe(5);
    expect(await backend.imageExists(r.image)).toBe(false);
  });
});
