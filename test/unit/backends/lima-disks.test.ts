import { execFileSync } from 'node:child_process';
import { cp, lstat, mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { copyInstanceDir, repointBackingFiles } from '../../../agent/src/backends/lima-copy.js';
import { readQcow2Backing, setQcow2Backing } from '../../../agent/src/backends/lima-qcow2.js';
import { createOverlay as overlay } from '../../fakes/lima/disk.mjs';

/** qemu-img and qemu-io (Debian's qemu-utils): an extra check against the real tools where they are installed. */
function hasQemuImg(): boolean {
  try {
    execFileSync('qemu-img', ['--version'], { stdio: 'ignore' });
    execFileSync('qemu-io', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'warmstart-lima-disks-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('qcow2 backing file', () => {
  it('reads and shortens the name in place, zeroing what the old name left', async () => {
    const path = join(root, 'diffdisk');
    overlay(path, '/home/u/.lima/img/basedisk');
    expect(await readQcow2Backing(path)).toMatchObject({ name: '/home/u/.lima/img/basedisk', size: 26 });
    const before = await readFile(path);
    await setQcow2Backing(path, 'basedisk');
    const after = await readFile(path);
    const b = await readQcow2Backing(path);
    expect(b).toMatchObject({ name: 'basedisk', size: 8 });
    expect(after.subarray(b!.offset + 8, b!.offset + 26).every((x) => x === 0)).toBe(true);
    expect(after.subarray(65536).equals(before.subarray(65536))).toBe(true); // only the header changed
  });

  it('refuses a longer name, and says null for a raw disk or an image without backing', async () => {
    const path = join(root, 'diffdisk');
    overlay(path, '/short');
    await expect(setQcow2Backing(path, '/a/much/longer/name')).rejects.toThrow(/1\.\.6 bytes/);
    await writeFile(join(root, 'raw'), '{"fakeLimaDisk":1}');
    expect(await readQcow2Backing(join(root, 'raw'))).toBeNull();
  });

  it.skipIf(!hasQemuImg())('agrees with the real qemu-img: the repointed overlay follows its directory when moved', async () => {
    const a = join(root, 'a');
    await mkdir(a);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(a, 'basedisk'), '64M']);
    execFileSync('qemu-io', ['-c', 'write -P 0xab 0 64k', join(a, 'basedisk')]);
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', join(a, 'basedisk'), join(a, 'diffdisk'), '1G']);
    expect((await readQcow2Backing(join(a, 'diffdisk')))?.name).toBe(join(a, 'basedisk'));

    await cp(a, join(root, 'b'), { recursive: true });
    expect(await repointBackingFiles(a, join(root, 'b'))).toEqual(['diffdisk']);
    await rm(a, { recursive: true });
    const info = JSON.parse(execFileSync('qemu-img', ['info', '--output=json', join(root, 'b', 'diffdisk')], { encoding: 'utf8' })) as Record<
      string,
      unknown
    >;
    expect(info['backing-filename']).toBe('basedisk');
    expect(info['full-backing-filename']).toBe(join(root, 'b', 'basedisk'));
    expect(info['backing-filename-format']).toBe('qcow2');
    execFileSync('qemu-img', ['check', '-q', join(root, 'b', 'diffdisk')]);
    // the guest's reads go through to the moved base
    const read = execFileSync('qemu-io', ['-c', 'read -P 0xab 0 64k', join(root, 'b', 'diffdisk')], { encoding: 'utf8' });
    expect(read).toMatch(/read 65536\/65536 bytes/);
  });
});

describe('copyInstanceDir', () => {
  it('copies like limactl clone: skips protected/*.pid/*.sock/*.tmp, empties vz-identifier, keeps sibling symlinks', async () => {
    const src = join(root, 'lima', 'img');
    await mkdir(join(src, 'sock'), { recursive: true });
    await writeFile(join(src, 'lima.yaml'), 'vmType: vz\n');
    await writeFile(join(src, 'image'), 'DISK');
    await symlink('image', join(src, 'disk'));
    await writeFile(join(root, 'outside'), 'OUTSIDE');
    await symlink(join(root, 'outside'), join(src, 'kernel'));
    for (const f of ['ha.pid', 'ha.sock', 'x.tmp', 'protected']) await writeFile(join(src, f), 'x');
    await writeFile(join(src, 'vz-identifier'), 'ID-OF-THE-SOURCE');
    await writeFile(join(src, 'warmstart-image.json'), '{}');
    await writeFile(join(src, 'sock', 'keep.txt'), 'k');

    const dst = join(root, 'lima', 'm');
    await copyInstanceDir(src, dst, new Set(['warmstart-image.json']));
    const { readdir } = await import('node:fs/promises');
    expect((await readdir(dst)).sort()).toEqual(['disk', 'image', 'kernel', 'lima.yaml', 'sock', 'vz-identifier']);
    expect(await readlink(join(dst, 'disk'))).toBe('image');
    expect((await lstat(join(dst, 'kernel'))).isSymbolicLink()).toBe(false); // outside the dir: its bytes
    expect(await readFile(join(dst, 'kernel'), 'utf8')).toBe('OUTSIDE');
    expect(await readFile(join(dst, 'vz-identifier'), 'utf8')).toBe('');
    expect(await readFile(join(dst, 'sock', 'keep.txt'), 'utf8')).toBe('k');
  });

  it('refuses a target that exists and leaves it alone', async () => {
    const src = join(root, 'src');
    const dst = join(root, 'dst');
    await mkdir(src);
    await mkdir(dst);
    await writeFile(join(dst, 'mine'), 'm');
    await expect(copyInstanceDir(src, dst)).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await readFile(join(dst, 'mine'), 'utf8')).toBe('m');
  });
});

describe('repointBackingFiles', () => {
  it('repoints only a backing file inside the source dir, and fails when the copy lacks it', async () => {
    const src = join(root, 'src');
    const dst = join(root, 'dst');
    await mkdir(src);
    await mkdir(dst);
    overlay(join(dst, 'diffdisk'), join(src, 'basedisk'));
    await writeFile(join(dst, 'basedisk'), 'base');
    expect(await repointBackingFiles(src, dst)).toEqual(['diffdisk']);
    expect(await repointBackingFiles(src, dst)).toEqual([]); // relative now: nothing to do

    overlay(join(dst, 'diffdisk'), '/var/cache/lima/shared-base.qcow2');
    expect(await repointBackingFiles(src, dst)).toEqual([]);
    expect((await readQcow2Backing(join(dst, 'diffdisk')))?.name).toBe('/var/cache/lima/shared-base.qcow2');

    overlay(join(dst, 'diffdisk'), join(src, 'basedisk'));
    await rm(join(dst, 'basedisk'));
    await expect(repointBackingFiles(src, dst)).rejects.toThrow(/was not copied/);
  });
});
