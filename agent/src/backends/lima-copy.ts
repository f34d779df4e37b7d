import { constants } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, readdir, readlink, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { readQcow2Backing, setQcow2Backing } from './lima-qcow2.js';
import { unlessMissing } from '../util/best-effort.js';

/**
 * What `limactl clone` does (pkg/instance/clone.go), for a Lima that lacks
 * it (before 2.0): copy a stopped instance's directory, skipping what belongs
 * to one running instance (`protected`, *.pid, *.sock, *.tmp) and emptying
 * `vz-identifier` so vz makes a new machine identity. Files are reflinked
 * (`COPYFILE_FICLONE`: clonefile on APFS, FICLONE on btrfs/XFS; Node falls
 * back to a plain copy where the filesystem cannot). Unlike clone, a symlink
 * to a sibling (Lima 2.1's `disk` -> `image`) stays a symlink, so the copy has
 * one disk and not two. `skip` names more files to leave out (our marker).
 */
export async function copyInstanceDir(src: string, dst: string, skip: ReadonlySet<string> = new Set()): Promise<void> {
  await mkdir(dst, { mode: 0o700 }); // EEXIST when the name is taken: the caller checked, so that is a race
  try {
    await copyTree(src, dst, src, skip);
  } catch (err) {
    await rm(dst, { recursive: true, force: true });
    throw err;
  }
}

const SKIP_SUFFIXES = ['.pid', '.sock', '.tmp'];

async function copyTree(from: string, to: string, root: string, skip: ReadonlySet<string>): Promise<void> {
  for (const entry of await readdir(from, { withFileTypes: true })) {
    const name = entry.name;
    if (name === 'protected' || skip.has(name) || SKIP_SUFFIXES.some((s) => name.endsWith(s))) continue;
    const src = join(from, name);
    const dst = join(to, name);
    if (entry.isDirectory()) {
      await mkdir(dst, { mode: (await stat(src)).mode & 0o777 });
      await copyTree(src, dst, root, skip);
    } else if (name === 'vz-identifier') {
      await writeFile(dst, '');
    } else if (entry.isSymbolicLink()) {
      const target = await readlink(src);
      const inside = !isAbsolute(target) && isInside(root, resolve(from, target));
      if (inside) await symlink(target, dst);
      else await copyFile(src, dst, constants.COPYFILE_FICLONE);
    } else if (entry.isFile()) {
      await copyFile(src, dst, constants.COPYFILE_FICLONE);
      await chmod(dst, (await stat(src)).mode & 0o777);
    }
  }
}

/** The writable disks an instance may have: `disk` (Lima >= 2.1, or its migration symlink) and `diffdisk` (before). */
const DISKS = ['disk', 'diffdisk'];

/**
 * Makes a copied instance stand on its own disks. A qcow2 disk whose backing
 * file is a file of the source instance (its absolute `basedisk`) is pointed
 * at the copy's own file of that name, stored as the bare name: qemu resolves
 * it against the disk's directory, so later copies of the copy need no fix
 * either. A backing file outside the source dir is left as it is: it is not
 * ours to copy, and must stay put. Returns the disks it repointed.
 */
export async function repointBackingFiles(srcDir: string, dstDir: string): Promise<string[]> {
  const done: string[] = [];
  const srcReal = await realpath(srcDir).catch(() => resolve(srcDir)); // not resolvable: compared as written
  for (const disk of DISKS) {
    const path = join(dstDir, disk);
    const st = await unlessMissing(lstat(path), null);
    if (st === null || !st.isFile()) continue; // absent, or a symlink to a disk handled by its own name
    const backing = await readQcow2Backing(path);
    if (backing === null || !isAbsolute(backing.name)) continue;
    const backingDir = await realpath(dirname(backing.name)).catch(() => resolve(dirname(backing.name))); // not resolvable: compared as written
    if (backingDir !== srcReal && backingDir !== resolve(srcDir)) continue;
    const own = join(dstDir, basename(backing.name));
    const ownStat = await unlessMissing(stat(own), null);
    if (ownStat === null) throw new Error(`${path} is backed by ${backing.name}, which was not copied`);
    await setQcow2Backing(path, basename(backing.name));
    done.push(disk);
  }
  return done;
}

/** True when `child` is `dir` or inside it. */
export function isInside(dir: string, child: string): boolean {
  const rel = relative(dir, child);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}
