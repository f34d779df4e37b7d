// Disk files of the fake limactl. The guest's files live *in the disk files*,
// so a backend that copies an instance without its disks, or whose copy still
// points at another instance's base disk, gets a machine without its files
// (or one that will not start), as with the real tool.
//
// Two formats, like Lima's:
// - a whole disk ("image", Lima >= 2.1 "disk", a vz "diffdisk"): JSON
//   `{fakeLimaDisk: 1, files, snapshots}`;
// - a qcow2 overlay (qemu "diffdisk" before Lima 2.1): a real qcow2 v3 header
//   cluster, as `qemu-img create -f qcow2 -F qcow2 -b <ABSOLUTE basedisk>`
//   writes it (Lima's qemu EnsureDisk passes the absolute path; lima-vm/lima
//   issue #1599 "diffdisk should refer to basedisk by its relative path" is
//   still open), then the overlay's own files as JSON from the second cluster.
//   A relative backing name is resolved against the overlay's directory, as
//   qemu does.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';

const QCOW2_MAGIC = 0x514649fb;
const CLUSTER = 1 << 16;
const HEADER_LENGTH = 112;

export function emptyDisk(files = {}) {
  return { fakeLimaDisk: 1, files: { ...files }, deleted: [], snapshots: [] };
}

export function writeRawDisk(path, disk) {
  writeFileSync(path, JSON.stringify(disk));
}

/** `qemu-img create -f qcow2 -F qcow2 -b BACKING path`, with the fake's payload after the header cluster. */
export function createOverlay(path, backing, virtualSize = 100 * 1024 ** 3) {
  const header = Buffer.alloc(CLUSTER);
  header.writeUInt32BE(QCOW2_MAGIC, 0);
  header.writeUInt32BE(3, 4); // version
  header.writeUInt32BE(16, 20); // cluster_bits
  header.writeBigUInt64BE(BigInt(virtualSize), 24);
  header.writeUInt32BE(4, 96); // refcount_order
  header.writeUInt32BE(HEADER_LENGTH, 100);
  // header extension: backing file format "qcow2", then the end marker
  let off = HEADER_LENGTH;
  header.writeUInt32BE(0xe2792aca, off);
  header.writeUInt32BE(5, off + 4);
  header.write('qcow2', off + 8, 'latin1');
  off += 16;
  off += 8; // end of extensions (type 0, length 0)
  const name = Buffer.from(backing, 'utf8');
  name.copy(header, off);
  header.writeBigUInt64BE(BigInt(off), 8);
  header.writeUInt32BE(name.length, 16);
  writeFileSync(path, Buffer.concat([header, Buffer.from(JSON.stringify(emptyDisk()))]));
}

function parse(path) {
  const buf = readFileSync(path);
  if (buf.length >= 4 && buf.readUInt32BE(0) === QCOW2_MAGIC) {
    const offset = Number(buf.readBigUInt64BE(8));
    const size = buf.readUInt32BE(16);
    const backing = offset === 0 ? null : buf.subarray(offset, offset + size).toString('utf8');
    return { qcow2: true, header: buf.subarray(0, CLUSTER), backing, disk: JSON.parse(buf.subarray(CLUSTER).toString('utf8')) };
  }
  return { qcow2: false, header: null, backing: null, disk: JSON.parse(buf.toString('utf8')) };
}

export function readDisk(path) {
  return parse(path);
}

/** Rewrites a disk's own contents, keeping a qcow2 header exactly as it is on disk. */
export function saveDisk(path, disk) {
  const p = parse(path);
  if (p.qcow2) writeFileSync(path, Buffer.concat([p.header, Buffer.from(JSON.stringify(disk))]));
  else writeRawDisk(path, disk);
}

export class BackingFileError extends Error {}

function backingFiles(path, p) {
  if (p.backing === null) return {};
  const base = isAbsolute(p.backing) ? p.backing : join(dirname(path), p.backing);
  if (!existsSync(base)) {
    throw new BackingFileError(`Could not open backing file: Could not open '${base}': No such file or directory`);
  }
  return guestFiles(base);
}

/** The guest's view: the chain of backing files merged, top disk last; throws like qemu when a backing file is gone. */
export function guestFiles(path) {
  const p = parse(path);
  const files = backingFiles(path, p);
  for (const d of p.disk.deleted ?? []) delete files[d];
  return { ...files, ...p.disk.files };
}

/** Writes the guest's new view into the top disk: only what differs from the backing chain, as copy-on-write does. */
export function writeGuestFiles(path, files) {
  const p = parse(path);
  const base = backingFiles(path, p);
  const own = {};
  for (const [f, c] of Object.entries(files)) if (base[f] !== c) own[f] = c;
  const deleted = Object.keys(base).filter((f) => files[f] === undefined);
  saveDisk(path, { ...p.disk, files: own, deleted });
}
