// The fake's instance store: $LIMA_HOME/<name>/ laid out as Lima lays it out
// (lima.yaml, lima-version, cidata.iso, vz-identifier for vz, ha.pid while
// running, the disks), per the modelled version:
// - Lima >= 2.1 (lima-vm/lima#4587): "image" (the download) and "disk" ->
//   "image" (a symlink; QEMU no longer makes an overlay). An instance made by
//   an older Lima is migrated on start with a "disk" -> "diffdisk" symlink,
//   the old files staying.
// - before 2.1: "basedisk" (the download) and "diffdisk": a qcow2 overlay
//   backed by the ABSOLUTE path of basedisk for qemu; a full raw disk for vz
//   (converted, independent of basedisk).
// Status comes from ha.pid as in store.Inspect, without Lima's liveness check
// of the pid (no process stays behind the fake).
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { createOverlay, emptyDisk, readDisk, writeRawDisk } from './disk.mjs';

export function version() {
  const v = process.env.LIMA_FAKE_VERSION || '2.3.0';
  const [maj = 0, min = 0, patch = 0] = v.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  return { text: v, atLeast: (a, b) => maj > a || (maj === a && min >= b), maj, min, patch };
}

export function limaHome() {
  const dir = process.env.LIMA_HOME || join(homedir(), '.lima');
  return existsSync(dir) ? realpathSync(dir) : dir;
}

/** dirnames.ValidateInstName: identifiers.Validate plus the .yml/.yaml rule. */
export function validateName(name) {
  if (name === '') return `instance name "" is not a valid identifier: identifier must not be empty`;
  if (name.length > 76)
    return `instance name "${name}" is not a valid identifier: identifier \`${name}\` greater than maximum length (76 characters)`;
  if (!/^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$/.test(name)) {
    return `instance name "${name}" is not a valid identifier: identifier \`${name}\` must match ^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$`;
  }
  if (/\.ya?ml$/i.test(name)) return `instance name "${name}" must not end with .yml or .yaml suffix`;
  return null;
}

export const instanceDir = (name) => join(limaHome(), name);

const field = (yaml, key) => new RegExp(`^${key}:\\s*["']?([\\w.-]+)["']?\\s*$`, 'm').exec(yaml)?.[1];

/** null when the instance does not exist (store.Inspect's os.ErrNotExist). */
export function inspect(name) {
  const dir = instanceDir(name);
  const yamlPath = join(dir, 'lima.yaml');
  if (validateName(name) !== null || !existsSync(yamlPath)) return null;
  const yaml = readFileSync(yamlPath, 'utf8');
  const arch = field(yaml, 'arch') ?? (process.arch === 'arm64' ? 'aarch64' : 'x86_64');
  return {
    name,
    dir,
    yaml,
    vmType: field(yaml, 'vmType') ?? 'qemu',
    arch,
    status: existsSync(join(dir, 'ha.pid')) ? 'Running' : 'Stopped',
    protected: existsSync(join(dir, 'protected')),
    limaVersion: existsSync(join(dir, 'lima-version')) ? readFileSync(join(dir, 'lima-version'), 'utf8').trim() : '',
  };
}

export function listNames() {
  const home = limaHome();
  if (!existsSync(home)) return [];
  return readdirSync(home)
    .filter((n) => !n.startsWith('_') && inspect(n) !== null)
    .sort();
}

/** The disk the guest writes to: "disk" (following its symlink) when present, else "diffdisk". */
export function writableDisk(dir) {
  const disk = join(dir, 'disk');
  if (existsSync(disk)) return realpathSync(disk);
  return join(dir, 'diffdisk');
}

export const DEFAULT_TEMPLATE = 'vmType: qemu\nimages: []\n';
const DEFAULT_FILES = { '/etc/os-release': 'PRETTY_NAME="Fake Linux (template:default)"\n' };

/** The files of the image a template names: its first images[].location, a fake raw disk on the host. */
function downloadImage(yaml, templateDir) {
  const m = /^\s*-\s*location:\s*["']?([^"'\n]+?)["']?\s*$/m.exec(yaml);
  if (!m) return { ...DEFAULT_FILES };
  const loc = m[1].replace(/^file:\/\//, '');
  const path = isAbsolute(loc) ? loc : resolve(templateDir, loc);
  if (!existsSync(path)) {
    throw new Error(
      `failed to download the image, attempted 1 candidates, errors=[failed to download "${m[1]}": stat ${path}: no such file or directory]`,
    );
  }
  return readDisk(path).disk.files;
}

/** instance.Create plus Prepare's EnsureDisk: the dir, lima.yaml and the disks of the modelled version's layout. */
export function createInstance(name, yaml, templateDir) {
  const v = version();
  const dir = instanceDir(name);
  const files = downloadImage(yaml, templateDir);
  mkdirSync(dirname(dir), { recursive: true });
  mkdirSync(dir, { mode: 0o700 });
  writeFileSync(join(dir, 'lima.yaml'), yaml);
  writeFileSync(join(dir, 'lima-version'), `${v.text}\n`);
  writeFileSync(join(dir, 'cidata.iso'), `fake cidata for ${name}\n`);
  const vmType = field(yaml, 'vmType') ?? 'qemu';
  if (vmType === 'vz') writeFileSync(join(dir, 'vz-identifier'), `fake-vz-identifier-${name}-${Date.now()}`);
  if (v.atLeast(2, 1)) {
    writeRawDisk(join(dir, 'image'), emptyDisk(files));
    symlinkSync('image', join(dir, 'disk'));
  } else {
    writeRawDisk(join(dir, 'basedisk'), emptyDisk(files));
    if (vmType === 'vz') writeRawDisk(join(dir, 'diffdisk'), emptyDisk(files));
    else createOverlay(join(dir, 'diffdisk'), join(dir, 'basedisk'));
  }
  return inspect(name);
}

/** MigrateDiskLayout (Lima >= 2.1) on start: disk -> diffdisk for an instance made by an older Lima. */
export function migrateLayout(dir) {
  if (!version().atLeast(2, 1)) return;
  const disk = join(dir, 'disk');
  let present = true;
  try {
    lstatSync(disk);
  } catch {
    present = false;
  }
  if (!present && existsSync(join(dir, 'diffdisk'))) symlinkSync('diffdisk', disk);
}
