import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { logMessages, parseList } from '../../../agent/src/backends/lima-cli.js';
import { readQcow2Backing } from '../../../agent/src/backends/lima-qcow2.js';
import { type FakeLima, fakeLima } from '../../fakes/lima/harness.js';

vi.setConfig({ testTimeout: 30_000 });

// The fake refuses what the real limactl refuses, with its messages and exit
// codes (sources in test/fakes/lima/*.mjs). A fake that accepts more than the
// tool would hide a backend bug.

let lima: FakeLima | undefined;
afterEach(async () => {
  await lima?.cleanup();
  lima = undefined;
});

const fatal = (stderr: string) => logMessages(stderr, 'fatal').at(-1);

async function running(version = '2.3.0', vmType: 'qemu' | 'vz' = 'qemu') {
  lima = await fakeLima({ version });
  await lima.makeBase('base', { vmType });
  expect((await lima.run(['start', '--tty=false', 'base'])).exitCode).toBe(0);
  return lima;
}

describe('fake limactl refuses what limactl refuses', () => {
  it('clone of a running instance (pkg/instance/clone.go)', async () => {
    const l = await running();
    const r = await l.run(['clone', '--tty=false', 'base', 'copy']);
    expect(r.exitCode).toBe(1);
    expect(fatal(r.stderr)).toBe('cannot clone a running instance');
    expect(fatal((await l.run(['clone', 'nope', 'copy'])).stderr)).toBe('instance "nope" not found');
  });

  it('clone before Lima 2.0: an unknown command, for `clone --help` too', async () => {
    const l = await running('1.2.1');
    await l.run(['stop', 'base']);
    for (const args of [
      ['clone', 'base', 'copy'],
      ['clone', '--help'],
    ]) {
      const r = await l.run(args);
      expect(r.exitCode).toBe(1);
      expect(fatal(r.stderr)).toBe('unknown command "clone" for "limactl"');
    }
    expect((await l.run(['--version'])).stdout).toBe('limactl version 1.2.1\n');
  });

  it('snapshot on vz: the driver has none ("unimplemented", lima-vm/lima#3682)', async () => {
    const l = await running('2.3.0', 'vz');
    for (const sub of ['create', 'apply', 'delete']) {
      const r = await l.run(['snapshot', sub, 'base', '--tag', 's1']);
      expect(r.exitCode).toBe(1);
      expect(fatal(r.stderr)).toBe('unimplemented');
      expect(logMessages(r.stderr, 'warning')).toContain('`limactl snapshot` is experimental');
    }
    expect(fatal((await l.run(['snapshot', 'list', 'base'])).stderr)).toBe('unimplemented');
  });

  it('snapshot without a tag', async () => {
    const l = await running();
    expect(fatal((await l.run(['snapshot', 'create', 'base'])).stderr)).toBe('expected tag');
  });

  it('delete of a running instance without -f; -f deletes it', async () => {
    const l = await running();
    const r = await l.run(['delete', 'base']);
    expect(r.exitCode).toBe(1);
    expect(fatal(r.stderr)).toBe('failed to delete instance "base": expected status "Stopped", got "Running"');
    expect((await l.run(['delete', '-f', 'base'])).exitCode).toBe(0);
    expect(parseList((await l.run(['list', '--json'])).stdout)).toEqual([]);
    // a missing instance is only a warning (cmd/limactl/delete.go)
    expect((await l.run(['delete', 'base'])).exitCode).toBe(0);
  });

  it('shell into a stopped or missing instance', async () => {
    const l = await running();
    await l.run(['stop', 'base']);
    const stopped = await l.run(['shell', 'base', 'true']);
    expect(stopped.exitCode).toBe(1);
    expect(fatal(stopped.stderr)).toBe('instance "base" is stopped, run `limactl start base` to start the instance');
    expect(fatal((await l.run(['shell', 'nope', 'true'])).stderr)).toBe(
      'instance "nope" does not exist, run `limactl create nope` to create a new instance',
    );
  });

  it('stop of a stopped instance', async () => {
    const l = await running();
    await l.run(['stop', 'base']);
    expect(fatal((await l.run(['stop', 'base'])).stderr)).toBe('expected status "Running", got "Stopped" (maybe use `limactl stop -f`?)');
  });

  it('a snapshot apply of a missing tag: exit 0 with a warning when running (HMP), "exit status 1" when stopped (qemu-img)', async () => {
    const l = await running();
    const hot = await l.run(['snapshot', 'apply', 'base', '--tag', 'nope']);
    expect(hot.exitCode).toBe(0);
    expect(logMessages(hot.stderr, 'warning')).toContain("output: Error: Snapshot 'nope' does not exist in one or more devices");
    await l.run(['stop', 'base']);
    const cold = await l.run(['snapshot', 'apply', 'base', '--tag', 'nope']);
    expect(cold.exitCode).toBe(1);
    expect(fatal(cold.stderr)).toBe('exit status 1');
  });
});

describe('fake limactl behaves like limactl where it does not refuse', () => {
  it('`start NAME` of a missing instance creates it from template:default (a backend must not rely on start to fail)', async () => {
    lima = await fakeLima();
    const r = await lima.run(['start', '--tty=false', 'typo']);
    expect(r.exitCode).toBe(0);
    expect(parseList((await lima.run(['list', '--json'])).stdout).map((i) => [i.name, i.status])).toEqual([['typo', 'Running']]);
  });

  it('lays disks out per version: "image" + "disk" -> "image" from 2.1; "basedisk" + qcow2 "diffdisk" on its absolute path before', async () => {
    lima = await fakeLima({ version: '2.1.0' });
    await lima.makeBase('new');
    expect(await readlink(join(lima.home, 'new', 'disk'))).toBe('image');
    await lima.cleanup();
    lima = await fakeLima({ version: '2.0.3' });
    await lima.makeBase('old');
    expect(await lstat(join(lima.home, 'old', 'disk')).catch(() => null)).toBeNull();
    expect((await readQcow2Backing(join(lima.home, 'old', 'diffdisk')))?.name).toBe(join(lima.home, 'old', 'basedisk'));
    await lima.makeBase('oldvz', { vmType: 'vz' });
    expect(await readQcow2Backing(join(lima.home, 'oldvz', 'diffdisk'))).toBeNull(); // raw, converted for vz
  });

  it('a 2.0 clone still reads through the source basedisk: delete the source and it will not start', async () => {
    const l = await running('2.0.3');
    await l.run(['shell', 'base', 'sh', '-c', 'echo x > /x']);
    await l.run(['stop', 'base']);
    expect((await l.run(['clone', '--tty=false', 'base', 'copy'])).exitCode).toBe(0);
    expect((await l.run(['delete', 'base'])).exitCode).toBe(0);
    const r = await l.run(['start', '--tty=false', 'copy']);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toMatch(/Could not open backing file: Could not open '.*\/base\/basedisk': No such file or directory/);
  });

  it('migrates an old instance on start with 2.1 (disk -> diffdisk), keeping the old files', async () => {
    lima = await fakeLima({ version: '2.0.3' });
    await lima.makeBase('old');
    expect((await lima.run(['start', '--tty=false', 'old'], { version: '2.1.4' })).exitCode).toBe(0);
    expect(await readlink(join(lima.home, 'old', 'disk'))).toBe('diffdisk');
    expect(await lstat(join(lima.home, 'old', 'basedisk')).then(() => true)).toBe(true);
  });

  it('prints one JSON object per line in list --json, and runs the command with its exit status in shell', async () => {
    const l = await running();
    await l.makeBase('other');
    const list = (await l.run(['list', '--json'])).stdout.trim().split('\n');
    expect(list.map((line) => (JSON.parse(line) as { name: string; status: string }).status)).toEqual(['Running', 'Stopped']);
    expect(await l.run(['shell', 'base', 'sh', '-c', 'echo out; echo err >&2; echo gone > /dev/null; exit 3'])).toMatchObject({
      exitCode: 3,
      stdout: 'out\n',
      stderr: 'err\n',
    });
    const unmodelled = await l.run(['shell', 'base', 'sh', '-c', 'echo a | cat']);
    expect(unmodelled.exitCode).toBe(2); // outside the modelled shell: fails loudly, never silently
    expect(unmodelled.stderr).toMatch(/unsupported shell syntax/);
    expect((await l.run(['shell', 'base', 'sh', '-c', 'echo "$1 $0" && exit 3', 'zero', 'one'])).exitCode).toBe(3);
    expect((await l.run(['shell', 'base', '--', 'sh', '-c', 'echo "$1 $0"', 'zero', 'one'])).stdout).toBe('one zero\n');
    expect(fatal((await l.run(['list', '--json', 'nope'])).stderr)).toBeUndefined();
    expect((await l.run(['list', '--json', 'nope'])).exitCode).toBe(1);
  });
});
