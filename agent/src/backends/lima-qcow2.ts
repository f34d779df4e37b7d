import { open } from 'node:fs/promises';

/**
 * The backing-file pointer of a qcow2 image, read and rewritten in its header
 * (qcow2 spec, docs/interop/qcow2.txt: backing_file_offset at byte 8,
 * backing_file_size at 16, both big-endian; the name is not NUL-terminated
 * and lives in the first cluster). Lima before 2.1 creates a qemu instance's
 * `diffdisk` as an overlay whose backing file is the ABSOLUTE path of the
 * instance's own `basedisk` (`qemu-img create -F <fmt> -b <instDir>/basedisk`),
 * so a byte copy of the instance dir still reads through the source's base.
 * Rewriting the name in place is what `qemu-img rebase -u` does, without
 * needing qemu-img on the host.
 */
const MAGIC = 0x514649fb;

export interface Qcow2Backing {
  /** the name as stored: absolute, or relative to the image's own directory */
  name: string;
  offset: number;
  size: number;
}

/** The backing file of `path`, or null when it is not qcow2 or has none. */
export async function readQcow2Backing(path: string): Promise<Qcow2Backing | null> {
  const fh = await open(path, 'r');
  try {
    const head = Buffer.alloc(24);
    const { bytesRead } = await fh.read(head, 0, head.length, 0);
    if (bytesRead < head.length || head.readUInt32BE(0) !== MAGIC) return null;
    const version = head.readUInt32BE(4);
    if (version !== 2 && version !== 3) return null;
    const offset = Number(head.readBigUInt64BE(8));
    const size = head.readUInt32BE(16);
    const clusterSize = 2 ** head.readUInt32BE(20);
    if (offset === 0 || size === 0) return null;
    if (size > 1023 || offset + size > clusterSize) {
      throw new Error(`${path}: backing file name out of the header cluster (offset ${offset}, size ${size})`);
    }
    const name = Buffer.alloc(size);
    await fh.read(name, 0, size, offset);
    return { name: name.toString('utf8'), offset, size };
  } finally {
    await fh.close();
  }
}

/**
 * Points `path` at `name` (stored as given, so a bare file name is resolved
 * against the image's directory by qemu). Only a name no longer than the
 * current one is written, in the current name's place: nothing else in the
 * header cluster moves.
 */
export async function setQcow2Backing(path: string, name: string): Promise<void> {
  const current = await readQcow2Backing(path);
  if (current === null) throw new Error(`${path}: not a qcow2 image with a backing file`);
  const bytes = Buffer.from(name, 'utf8');
  if (bytes.length === 0 || bytes.length > current.size) {
    throw new Error(`${path}: new backing file name must be 1..${current.size} bytes, got ${bytes.length}`);
  }
  const field = Buffer.alloc(current.size); // the old name's bytes, zeroed past the new one
  bytes.copy(field);
  const size = Buffer.alloc(4);
  size.writeUInt32BE(bytes.length, 0);
  const fh = await open(path, 'r+');
  try {
    await fh.write(field, 0, field.length, current.offset);
    await fh.write(size, 0, 4, 16);
    await fh.sync();
  } finally {
    await fh.close();
  }
}
